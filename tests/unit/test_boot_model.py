"""The whole-boot model (bench/boot_model.py): its shared-link arithmetic, its limit, and the e2e
log it is calibrated on, read as the e2e tests print it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# appended, not prepended: bench/server.py must not shadow the `server` package for later tests
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

from boot_model import (
    GB,
    Cluster,
    Fixed,
    boot,
    check_e2e,
    http_finish,
    limit,
    parse_e2e,
    plain_http,
    reseed_starts,
)
from swarm_sim import Params, simulate

from lab.timeline import timeline_line

SWARM = {"slots": 4, "efficiency": 0.9, "hop_delay": 0.05}
FIXED = Fixed(ipxe=2.0, kernel=5.0, agent=1.5, switch_root=0.5)


def test_downloads_started_together_share_the_server_and_end_together() -> None:
    assert http_finish([0.0] * 10, 100.0, rate=100.0, cap=50.0) == pytest.approx([10.0] * 10)
    # two downloads: each is held to its own link (cap), not half the server's
    assert http_finish([0.0, 0.0], 100.0, rate=100.0, cap=20.0) == pytest.approx([5.0, 5.0])


def test_a_later_download_shares_only_while_both_run() -> None:
    # the first runs alone at 100 B/s for 0.5 s (50 B), then both at 50 B/s: it ends at 1.5 s; the
    # second then has 50 B and runs alone: 0.5 s more
    assert http_finish([0.0, 0.5], 100.0, rate=100.0, cap=1000.0) == pytest.approx([1.5, 2.0])


@pytest.mark.parametrize("peers", [False, True])
def test_the_model_never_beats_the_physical_limit(peers: bool) -> None:
    cluster = Cluster(
        nodes=40,
        head_bit=1e9,
        node_bit=1e9,
        image=GB // 8,
        boot_files=40 * 10**6,
        plans_per_second=5000,
        boot_files_from_peers=peers,
    )
    b = boot(cluster, FIXED, SWARM)
    assert min(b.done) >= limit(cluster, FIXED) * 0.999
    assert b.p(99) <= 1.6 * limit(cluster, FIXED)
    # the swarm ends well before plain HTTP would: 40 copies of the image through one link
    assert max(b.done) < plain_http(cluster, FIXED)


def test_the_boot_files_through_the_head_node_grow_with_n_from_peers_they_do_not() -> None:
    kw = {
        "head_bit": 1e9,
        "node_bit": 1e9,
        "image": GB // 16,
        "boot_files": 40 * 10**6,
        "plans_per_second": 5000,
    }
    small = boot(Cluster(nodes=10, **kw), FIXED, SWARM).boot_files_last  # type: ignore[arg-type]
    large = boot(Cluster(nodes=100, **kw), FIXED, SWARM).boot_files_last  # type: ignore[arg-type]
    assert large - FIXED.ipxe == pytest.approx(10 * (small - FIXED.ipxe), rel=0.01)
    peers = boot(Cluster(nodes=100, boot_files_from_peers=True, **kw), FIXED, SWARM)  # type: ignore[arg-type]
    assert peers.boot_files_last < small


def test_the_e2e_log_gives_each_nodes_fixed_times_and_the_check_holds_the_others_out() -> None:
    # the host clock is printed in whole seconds (timeline_line)
    def lines(name: str, script: float, kernel: float, agent: float, exit_: float, *, own: float) -> str:
        host = {"ipxe": 1.0, "script": script, "kernel": kernel, "init": kernel + 3}
        guest = {"init": 3.4, "agent": agent, "agent_exit": exit_, "switch_root": exit_ + 1.7}
        return (
            f"{name} (bios, root overlay): booted report at uptime 70.1 s; agent 33.8 s, own time "
            f"(without transfer) {own} s; download 300 MiB in 31.5 s (BitTorrent 300 MiB, web seed 0 MiB); "
            f"stages {{}}\n{name} timeline: " + timeline_line(host, guest, 70.1) + "\n"
        )

    text = "noise\n" + lines("n1", 3.0, 9.0, 15.1, 48.9, own=2.3)
    text += lines("n2", 4.0, 10.0, 15.5, 49.5, own=2.5)
    n1, n2 = parse_e2e(text)
    assert n1.fixed() == Fixed(ipxe=2.0, kernel=15.1, agent=2.3, switch_root=pytest.approx(1.7))
    assert n1.boot_files_seconds == 6.0 and n1.download == 31.5
    (row,) = check_e2e([n1, n2])
    assert row["node"] == "n2" and row["measured"] == pytest.approx(10.0 - 1.0 + 49.5 + 1.7)
    assert row["model"] == pytest.approx(Fixed(2.0, 15.1, 2.3, 1.7).total + 6.0 + 31.5)  # n1's fixed times


def test_a_cold_start_from_peers_sends_few_copies_from_the_head_and_ends_sooner() -> None:
    from boot_model import cold_peer_files

    arrivals = [0.0] * 400
    alone = http_finish(arrivals, 100.0, rate=100.0, cap=100.0)  # 400 copies through the head: 400 s
    files, from_head = cold_peer_files(arrivals, 100.0, rate=100.0, cap=100.0, streams=4,
                                       serving=(10.0, 1e9, 1e9))
    assert max(alone) == pytest.approx(400.0)
    assert from_head < 100 and max(files) < 0.5 * max(alone)
    assert sorted(files)[:4] == pytest.approx([4.0] * 4)  # the first 4 share the head's link
    # nobody serves before it has the files and its kernel is up
    never, head_only = cold_peer_files([0.0] * 8, 100.0, rate=100.0, cap=100.0, streams=4,
                                       serving=(1e9, 2e9, 2e9))
    assert head_only == 8 and max(never) == pytest.approx(8.0)
    # a holder in its switch_root gap serves nobody: the head node does meanwhile
    gap, from_head_gap = cold_peer_files(arrivals, 100.0, rate=100.0, cap=100.0, streams=4,
                                         serving=(10.0, 11.0, 1e9))
    assert from_head_gap > from_head and max(gap) > max(files)


def test_the_cold_start_limit_from_peers_counts_how_fast_copies_can_spread() -> None:
    from boot_model import peer_files_bound

    # the head sends one copy per second; each node sends one per second from 2 s after its own
    assert peer_files_bound(5, 100.0, rate=100.0, cap=100.0, serve_after=2.0) == [1, 2, 3, 4, 4]
    assert peer_files_bound(3, 100.0, rate=200.0, cap=100.0, serve_after=9.0) == [1, 1, 2]  # 2 channels


def test_no_modelled_cold_start_from_peers_beats_its_limit() -> None:
    """The limit is a lower bound: the model of the product's rules never ends before it."""
    from boot_model import GB, Cluster, Fixed, boot, limit

    fixed = Fixed(ipxe=19.0, kernel=13.7, agent=1.0, switch_root=1.1)
    swarm = {"slots": 16, "hop_delay": 0.0, "efficiency": 0.94}
    for head, node, image in ((1, 1, 1), (1, 25, 4), (10, 10, 1)):
        cluster = Cluster(nodes=200, head_bit=head * 1e9, node_bit=node * 1e9, image=image * GB,
                          boot_files=int(53.2e6), plans_per_second=26508, cold_from_peers=True)
        b = boot(cluster, fixed, swarm)
        assert b.p(99) >= limit(cluster, fixed) >= limit(cluster, fixed, naive=True) * 0.999


def test_booted_holders_seed_again_one_per_leecher_at_the_rate_their_asks_come() -> None:
    # 2,000 waiting services ask 200 times a second in all: a yes every 5 ms, each after its leecher
    again = reseed_starts([1.0, 1.0, 1.0, 9.0], holding=2000, start=0.3)
    assert again == pytest.approx([1.0025 + 0.3, 1.0075 + 0.3, 1.0125 + 0.3, 9.0025 + 0.3])
    assert len(reseed_starts([1.0] * 10, holding=3, start=0.3)) == 3  # no more holders than there are
    assert reseed_starts([1.0], holding=0, start=0.3) == []


def test_holders_upload_only_and_the_bytes_still_add_up() -> None:
    p = {"nodes": 12, "size": 64 * 2**20, "piece": 2**20, "link": 1e8, "server_link": 1e8, "slots": 4}
    alone, helped = simulate(Params(**p)), simulate(Params(**p, holders=12))
    helped.check()
    assert len(helped.done) == 12 and helped.server_bytes < alone.server_bytes
    assert helped.last < 0.85 * alone.last  # (the stripe owners still fetch theirs from the server)


def test_a_rolling_reboot_with_holders_beats_the_head_node_alone_and_not_its_limit() -> None:
    kw = {"nodes": 40, "head_bit": 1e9, "node_bit": 1e9, "image": GB // 4, "boot_files": 40 * 10**6,
          "plans_per_second": 5000, "boot_files_from_peers": True}
    alone = boot(Cluster(**kw), FIXED, SWARM)  # type: ignore[arg-type]
    cluster = Cluster(**kw, holding=360)  # type: ignore[arg-type]
    helped = boot(cluster, FIXED, SWARM)
    assert helped.p(99) < alone.p(99) and helped.server_copies < alone.server_copies
    assert min(helped.done) >= limit(cluster, FIXED) * 0.999
