"""The tracker's announce handling: parsing, failures, compact peers, switch ordering, expiry."""

from __future__ import annotations

import socket
import struct
from urllib.parse import quote_from_bytes

import libtorrent as lt
import pytest

from server.bencode import encode
from server.tracker import AnnounceError, Tracker, parse_query

HASH = bytes(range(20))
OTHER = bytes(range(1, 21))


def query(
    info_hash: bytes = HASH, peer: bytes = b"-XX0001-000000000001", port: int = 6881, **extra: object
) -> bytes:
    parts = [f"info_hash={quote_from_bytes(info_hash)}", f"peer_id={quote_from_bytes(peer)}", f"port={port}"]
    parts += [f"{k}={v}" for k, v in {"uploaded": 0, "downloaded": 0, "left": 100, **extra}.items()]
    return "&".join(parts).encode()


def decode(body: bytes) -> dict[bytes, object]:
    value = lt.bdecode(body)
    assert isinstance(value, dict), body
    return value


def peers_of(body: bytes) -> list[tuple[str, int]]:
    raw = decode(body)[b"peers"]
    assert isinstance(raw, bytes)
    return [
        (socket.inet_ntoa(raw[i : i + 4]), struct.unpack("!H", raw[i + 4 : i + 6])[0])
        for i in range(0, len(raw), 6)
    ]


def test_bencode_matches_libtorrent() -> None:
    data = {"interval": 300, "peers": b"\x01\x02", "list": [1, "a"], "b": {"x": -3}}
    assert lt.bdecode(encode(data)) == {
        b"interval": 300,
        b"peers": b"\x01\x02",
        b"list": [1, b"a"],
        b"b": {b"x": -3},
    }


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "missing info_hash"),
        (b"info_hash=abc&peer_id=x&port=1", "info_hash: must be 20 bytes"),
        (query().replace(b"peer_id=", b"peerid="), "missing peer_id"),
        (query(port=0), "invalid port"),
        (query(port=70000), "invalid port"),
        (query().replace(b"port=6881", b"port=abc"), "invalid port"),
        (query(left=-5), "invalid left"),
        (query(event="bogus"), "invalid event"),
        (query(numwant="many"), "invalid numwant"),
        (b"info_hash=" + b"%00" * 5000, "too long"),
    ],
)
def test_malformed_announces_get_a_failure_reason(raw: bytes, reason: str) -> None:
    body = Tracker().announce(raw, "10.0.0.5")
    failure = decode(body)[b"failure reason"]
    assert isinstance(failure, bytes) and reason in failure.decode(), failure
    with pytest.raises(AnnounceError):
        parse_query(raw)


def test_unknown_torrents_are_refused() -> None:
    tracker = Tracker(known=lambda h: h == HASH)
    assert b"unregistered torrent" in decode(tracker.announce(query(OTHER), "10.0.0.5"))[b"failure reason"]
    assert b"peers" in decode(tracker.announce(query(HASH), "10.0.0.5"))


def test_compact_peers_exclude_the_requester_and_seeds_get_only_leechers() -> None:
    tracker = Tracker()
    tracker.announce(query(peer=b"-XX0001-seed00000000", port=7000, left=0), "10.0.0.1")
    tracker.announce(query(peer=b"-XX0001-aaaaaaaaaaaa", port=7001), "10.0.0.2")
    body = tracker.announce(query(peer=b"-XX0001-bbbbbbbbbbbb", port=7002), "10.0.0.3")
    assert sorted(peers_of(body)) == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    answer = decode(body)
    assert answer[b"interval"] == 300 and answer[b"complete"] == 1 and answer[b"incomplete"] == 2
    seed_view = peers_of(tracker.announce(query(peer=b"-XX0001-seed00000000", port=7000, left=0), "10.0.0.1"))
    assert sorted(seed_view) == [("10.0.0.2", 7001), ("10.0.0.3", 7002)]


def test_non_compact_answer_lists_dicts() -> None:
    tracker = Tracker()
    tracker.announce(query(peer=b"-XX0001-aaaaaaaaaaaa", port=7001), "10.0.0.2")
    peers = decode(tracker.announce(query(port=7002, compact=0), "10.0.0.3"))[b"peers"]
    assert peers == [{b"ip": b"10.0.0.2", b"port": 7001, b"peer id": b"-XX0001-aaaaaaaaaaaa"}]


def test_peers_on_the_same_switch_come_first() -> None:
    switches = {f"10.0.1.{i}": "sw1" for i in range(1, 30)} | {f"10.0.2.{i}": "sw2" for i in range(1, 30)}
    tracker = Tracker(switch_of=switches.get)
    for i in range(1, 30):
        tracker.announce(query(peer=b"-XX0001-%012d" % i, port=7000 + i), f"10.0.2.{i}")
    for i in range(1, 6):
        tracker.announce(query(peer=b"-XX0001-%012d" % (100 + i), port=8000 + i), f"10.0.1.{i}")
    for _ in range(20):  # the order among the rest is random: check it every time
        got = peers_of(
            tracker.announce(query(peer=b"-XX0001-requester000", port=9000, numwant=10), "10.0.1.20")
        )
        assert len(got) == 10
        assert {ip for ip, _ in got[:5]} == {f"10.0.1.{i}" for i in range(1, 6)}
        assert all(ip.startswith("10.0.2.") for ip, _ in got[5:])


def test_stopped_peers_leave_and_silent_peers_expire() -> None:
    now = [1000.0]
    tracker = Tracker(clock=lambda: now[0], peer_ttl=900)
    tracker.announce(query(peer=b"-XX0001-aaaaaaaaaaaa", port=7001, uploaded=10, downloaded=5), "10.0.0.2")
    tracker.announce(query(peer=b"-XX0001-bbbbbbbbbbbb", port=7002, uploaded=1, downloaded=2), "10.0.0.3")
    tracker.announce(
        query(peer=b"-XX0001-bbbbbbbbbbbb", port=7002, uploaded=3, downloaded=4, event="stopped"), "10.0.0.3"
    )
    stats = tracker.stats()[HASH.hex()]
    assert stats["leechers"] == 1 and stats["uploaded"] == 13 and stats["downloaded"] == 9
    now[0] += 600  # inside 2 x the 300 s re-announce interval: still there
    assert tracker.expire() == 0
    now[0] += 400
    assert tracker.expire() == 1
    stats = tracker.stats()[HASH.hex()]
    assert stats["leechers"] == 0 and stats["uploaded"] == 13  # what gone peers reported is kept


def test_completion_is_counted_once_per_transition() -> None:
    tracker = Tracker()
    tracker.announce(query(port=7001, left=100), "10.0.0.2")
    tracker.announce(query(port=7001, left=0, event="completed"), "10.0.0.2")
    tracker.announce(query(port=7001, left=0), "10.0.0.2")
    assert tracker.stats()[HASH.hex()]["completed"] == 1
