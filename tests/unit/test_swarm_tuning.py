"""The swarm tuning's pure parts: stripe priorities, the server's address for the filter, the
tuned libtorrent settings and the plan's stripe hint."""

from __future__ import annotations

import pytest

from bootagent.download import host_address
from bootagent.lan_tuning import NODE_REQUEST_QUEUE, session_settings
from bootagent.stripes import DEFAULT_PRIORITY, TOP_PRIORITY, stripe_priorities
from ground.contract.plan import BootPlan


def test_each_piece_is_in_exactly_one_stripe() -> None:
    pieces, count = 1021, 8
    owners = [[k for k, p in enumerate(stripe_priorities(pieces, i, count)) if p == TOP_PRIORITY]
              for i in range(count)]
    assert sorted(k for own in owners for k in own) == list(range(pieces))
    assert {len(own) for own in owners} == {127, 128}
    assert owners[3][:3] == [3, 11, 19]
    assert set(stripe_priorities(pieces, 0, count)) == {TOP_PRIORITY, DEFAULT_PRIORITY}


def test_more_stripes_than_pieces_leaves_some_owners_without_pieces() -> None:
    assert stripe_priorities(4, 5, 8) == [DEFAULT_PRIORITY] * 4
    assert stripe_priorities(4, 2, 8) == [DEFAULT_PRIORITY, DEFAULT_PRIORITY, TOP_PRIORITY, DEFAULT_PRIORITY]


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://10.77.0.1:8080/announce", "10.77.0.1"),
        ("http://[fd00::1]:8080/announce", "fd00::1"),
        ("http://localhost:8080/announce", "127.0.0.1"),
        ("", ""),
        ("http://no-such-host.invalid/announce", ""),
    ],
)
def test_the_server_address_comes_from_the_tracker_url(url: str, address: str) -> None:
    got = host_address(url)
    assert got == address or (address == "127.0.0.1" and got in ("127.0.0.1", "::1"))


def test_node_and_seed_settings_carry_the_measured_tuning() -> None:
    import libtorrent as lt

    node = session_settings("node", "0.0.0.0:6881")
    assert node["whole_pieces_threshold"] == 0
    assert node["initial_picker_threshold"] == 0
    assert node["max_out_request_queue"] == NODE_REQUEST_QUEUE
    assert node["apply_ip_filter_to_trackers"] is False
    seed = session_settings("seed", "0.0.0.0:6880")
    assert seed["suggest_mode"] == int(lt.suggest_mode_t.no_piece_suggestions)
    assert seed["unchoke_slots_limit"] == -1  # the high-performance seed preset is kept
    assert not seed["enable_outgoing_utp"] and not node["enable_incoming_utp"]
    assert session_settings("node", "x:1", max_out_request_queue=3)["max_out_request_queue"] == 3


def test_the_plan_carries_the_stripe_hint_with_defaults_for_old_servers() -> None:
    doc = {
        "version": 1,
        "node": {"name": "n1", "hostname": "n1", "group": "g"},
        "image": {"name": "i", "version": 1, "format": "squashfs", "size": 1, "sha256": "0" * 64,
                  "torrent_url": "http://s/t", "http_url": "http://s/i"},
        "reporting": {"events_url": "http://s/e"},
    }
    assert (BootPlan.from_dict(doc).torrent.stripe, BootPlan.from_dict(doc).torrent.stripes) == (-1, 0)
    doc["torrent"] = {"stripe": 3, "stripes": 8}
    plan = BootPlan.from_dict(doc)
    assert (plan.torrent.stripe, plan.torrent.stripes) == (3, 8)
    assert BootPlan.from_dict(plan.to_dict(plan.minor)) == plan
