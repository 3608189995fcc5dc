"""A BitTorrent tracker (BEP 3 announces, BEP 23 compact peers, BEP 7 peers6), peers in memory.

- Peers expire after `peer_ttl` seconds without an announce; libtorrent re-announces no sooner
  than every 300 s, so the TTL is 3 x the 300 s interval.
- Only torrents the server serves are tracked (`known(info_hash)`); others get a failure reason.
- When the inventory knows switches (`switch_of(ip)`), peers on the requester's switch come first.
- A malformed announce gets a bencoded `failure reason` (HTTP 200, as clients expect), never a 500.
- `stats()` sums what every peer reported (uploaded/downloaded), including peers that left.

The tracker runs on the server's event loop thread only, so it needs no lock.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from server.bencode import encode

INTERVAL = 300
MIN_INTERVAL = 60
PEER_TTL = 3 * INTERVAL
DEFAULT_NUMWANT = 50
MAX_NUMWANT = 200
EVENTS = (b"", b"started", b"stopped", b"completed", b"paused")
MAX_QUERY = 4096
# At most this many peers of one swarm from one IP address (different ports): one machine cannot
# fill a swarm's peer lists (what the tracker hands out) with itself. A new one from an address at
# its limit replaces that address's least recently seen peer. Tests run many clients on loopback.
PEERS_PER_IP = 16


class AnnounceError(ValueError):
    """A malformed announce; the message is the failure reason the client gets."""


@dataclass
class Peer:
    peer_id: bytes
    ip: str
    port: int
    left: int
    uploaded: int
    downloaded: int
    seen: float
    switch: str | None
    compact: bytes  # 6 bytes (IPv4) or 18 bytes (IPv6)
    v6: bool
    remote: bool = False  # announced to another head node's tracker (server/cluster.py)


class PeerList:
    """Peers in a list with O(1) add, remove (swap with the last) and O(k) random samples."""

    def __init__(self) -> None:
        self.items: list[Peer] = []
        self.index: dict[int, int] = {}

    def add(self, peer: Peer) -> None:
        self.index[id(peer)] = len(self.items)
        self.items.append(peer)

    def remove(self, peer: Peer) -> None:
        i = self.index.pop(id(peer))
        last = self.items.pop()
        if last is not peer:
            self.items[i] = last
            self.index[id(last)] = i

    def sample(self, k: int) -> list[Peer]:
        """k peers at random: a true sample of a small pool, a window at a random offset of a large
        one (O(k) with one random number; swap-removals keep the order mixed)."""
        n = len(self.items)
        if n <= 4 * k:
            return random.sample(self.items, min(k, n))
        start = random.randrange(n)
        window = self.items[start : start + k]
        return window + self.items[: k - len(window)] if len(window) < k else window


@dataclass
class Swarm:
    peers: dict[tuple[str, int], Peer] = field(default_factory=dict)
    leechers: PeerList = field(default_factory=PeerList)  # left > 0
    seeds: PeerList = field(default_factory=PeerList)  # left == 0
    by_switch: dict[str, PeerList] = field(default_factory=dict)
    by_ip: dict[str, dict[int, Peer]] = field(default_factory=dict)  # ip -> port -> peer
    completed: int = 0
    has_v6: bool = False
    # what peers that left (stopped or expired) had reported last
    gone_uploaded: int = 0
    gone_downloaded: int = 0

    def add(self, peer: Peer) -> None:
        self.has_v6 = self.has_v6 or peer.v6
        self.peers[(peer.ip, peer.port)] = peer
        self.by_ip.setdefault(peer.ip, {})[peer.port] = peer
        (self.seeds if peer.left == 0 else self.leechers).add(peer)
        if peer.switch is not None:
            self.by_switch.setdefault(peer.switch, PeerList()).add(peer)

    def remove(self, peer: Peer) -> None:
        del self.peers[(peer.ip, peer.port)]
        same_ip = self.by_ip[peer.ip]
        del same_ip[peer.port]
        if not same_ip:
            del self.by_ip[peer.ip]
        (self.seeds if peer.left == 0 else self.leechers).remove(peer)
        if peer.switch is not None:
            self.by_switch[peer.switch].remove(peer)

    def retire(self, peer: Peer) -> None:
        self.remove(peer)
        self.gone_uploaded += peer.uploaded
        self.gone_downloaded += peer.downloaded


@dataclass(frozen=True)
class Announce:
    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int
    downloaded: int
    left: int
    event: bytes
    numwant: int
    compact: bool
    no_peer_id: bool


def _int(params: dict[bytes, bytes], key: bytes, default: int | None = None, maximum: int = 2**63) -> int:
    raw = params.get(key)
    if raw is None:
        if default is None:
            raise AnnounceError(f"missing {key.decode()}")
        return default
    if not raw.isdigit() or len(raw) > 20:
        raise AnnounceError(f"invalid {key.decode()}: must be a non-negative integer")
    value = int(raw)
    if value > maximum:
        raise AnnounceError(f"invalid {key.decode()}: too large")
    return value


def parse_query(query: bytes) -> Announce:
    """Parse an announce query string (raw bytes: info_hash and peer_id are binary)."""
    if len(query) > MAX_QUERY:
        raise AnnounceError("announce query too long")
    params: dict[bytes, bytes] = {}
    for part in query.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        if b"%" in key or b"+" in key:
            key = unquote_to_bytes(key)
        params[key] = unquote_to_bytes(value) if b"%" in value else value
    info_hash = params.get(b"info_hash")
    if info_hash is None:
        raise AnnounceError("missing info_hash")
    if len(info_hash) != 20:
        raise AnnounceError(f"invalid info_hash: must be 20 bytes, got {len(info_hash)}")
    peer_id = params.get(b"peer_id")
    if peer_id is None:
        raise AnnounceError("missing peer_id")
    if len(peer_id) != 20:
        raise AnnounceError(f"invalid peer_id: must be 20 bytes, got {len(peer_id)}")
    port = _int(params, b"port", maximum=65535)
    if port == 0:
        raise AnnounceError("invalid port: 0")
    event = params.get(b"event", b"")
    if event not in EVENTS:
        raise AnnounceError(f"invalid event {event.decode(errors='replace')!r}")
    return Announce(
        info_hash=info_hash,
        peer_id=peer_id,
        port=port,
        uploaded=_int(params, b"uploaded", 0),
        downloaded=_int(params, b"downloaded", 0),
        left=_int(params, b"left", 0),
        event=event,
        numwant=min(_int(params, b"numwant", DEFAULT_NUMWANT), MAX_NUMWANT),
        compact=params.get(b"compact", b"1") != b"0",
        no_peer_id=params.get(b"no_peer_id", b"0") == b"1",
    )


def failure(reason: str) -> bytes:
    return encode({"failure reason": reason})


def _compact(ip: str, port: int) -> tuple[bytes, bool]:
    try:
        return socket.inet_aton(ip) + struct.pack("!H", port), False
    except OSError:
        pass
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.packed + struct.pack("!H", port), addr.version == 6


class Tracker:
    def __init__(
        self,
        known: Callable[[bytes], bool] | None = None,
        switch_of: Callable[[str], str | None] | None = None,
        interval: int = INTERVAL,
        peer_ttl: float = PEER_TTL,
        clock: Callable[[], float] = time.monotonic,
        *,
        peers_per_ip: int = PEERS_PER_IP,
    ) -> None:
        self.peers_per_ip = peers_per_ip
        self.known = known or (lambda _h: True)
        self.switch_of = switch_of or (lambda _ip: None)
        self.interval = interval
        self.peer_ttl = peer_ttl
        self.clock = clock
        self.swarms: dict[bytes, Swarm] = {}
        self.announces = 0
        self.failures = 0
        self._last_expiry = clock()
        # (info_hash, ip, port) of local peers that changed since the cluster sync last looked
        self.dirty: set[tuple[bytes, str, int]] = set()

    def announce(self, query: bytes, client_ip: str) -> bytes:
        """Handle one announce; always returns a bencoded body (a failure reason on bad input)."""
        self.announces += 1
        try:
            req = parse_query(query)
            if not client_ip:
                raise AnnounceError("cannot tell the client's address")
            if not self.known(req.info_hash):
                raise AnnounceError("unregistered torrent: this server does not serve that info_hash")
            return self._announce(req, client_ip)
        except AnnounceError as exc:
            self.failures += 1
            return failure(str(exc))

    def _announce(self, req: Announce, ip: str) -> bytes:
        now = self.clock()
        if now - self._last_expiry > 30:
            self.expire(now)
        swarm = self.swarms.setdefault(req.info_hash, Swarm())
        key = (ip, req.port)
        old = swarm.peers.get(key)
        self.dirty.add((req.info_hash, ip, req.port))
        if old is not None and old.remote:  # it announces here now: ours from now on
            swarm.remove(old)
            old = None
        if req.event == b"stopped":
            if old is not None:
                old.uploaded, old.downloaded = req.uploaded, req.downloaded
                swarm.retire(old)
            return encode({"interval": self.interval, "peers": b""})
        if req.event == b"completed" or (old is not None and old.left > 0 and req.left == 0):
            swarm.completed += 1
        if old is None:
            try:
                packed, v6 = _compact(ip, req.port)
            except ValueError:
                raise AnnounceError(f"invalid client address {ip!r}") from None
            same_ip = swarm.by_ip.get(ip, {})
            if len(same_ip) >= self.peers_per_ip:  # the address's oldest peer makes room
                swarm.retire(min(same_ip.values(), key=lambda p: p.seen))
            peer = Peer(
                req.peer_id,
                ip,
                req.port,
                req.left,
                req.uploaded,
                req.downloaded,
                now,
                self.switch_of(ip),
                packed,
                v6,
            )
            swarm.add(peer)
        else:
            peer = old
            if (old.left == 0) != (req.left == 0):  # became a seed (or started over)
                swarm.remove(old)
                old.left = req.left
                swarm.add(old)
            peer.peer_id, peer.left, peer.seen = req.peer_id, req.left, now
            peer.uploaded, peer.downloaded = req.uploaded, req.downloaded
        return self._response(swarm, peer, req)

    def _select(self, swarm: Swarm, me: Peer, numwant: int) -> list[Peer]:
        """Up to numwant peers: same switch first, then leechers, then (for a leecher) seeds, at random.

        Costs O(numwant), not O(swarm size): it samples index lists, never shuffles the swarm.
        """
        chosen: list[Peer] = []
        seen = {id(me)}
        pools = []
        if me.switch is not None and me.switch in swarm.by_switch:
            pools.append(swarm.by_switch[me.switch])
        pools.append(swarm.leechers)
        if me.left > 0:  # a seed needs no seeds
            pools.append(swarm.seeds)
        for pool in pools:
            for peer in pool.sample(numwant + 1):
                if len(chosen) >= numwant:
                    return chosen
                if id(peer) in seen or (me.left == 0 and peer.left == 0):
                    continue
                seen.add(id(peer))
                chosen.append(peer)
        return chosen

    def _response(self, swarm: Swarm, me: Peer, req: Announce) -> bytes:
        chosen = self._select(swarm, me, req.numwant)
        seeds = len(swarm.seeds.items)
        body: dict[str, Any] = {
            "interval": self.interval,
            "min interval": MIN_INTERVAL,
            "complete": seeds,
            "incomplete": len(swarm.peers) - seeds,
            "downloaded": swarm.completed,
        }
        if req.compact:
            four = b"".join([p.compact for p in chosen if not p.v6])
            six = b"".join([p.compact for p in chosen if p.v6]) if swarm.has_v6 else b""
            if not six:  # the common case, encoded directly (keys in bencode's sorted order)
                return (
                    b"d8:completei%de10:downloadedi%de10:incompletei%de8:intervali%de"
                    b"12:min intervali%de5:peers%d:%se"
                    % (
                        seeds,
                        swarm.completed,
                        len(swarm.peers) - seeds,
                        self.interval,
                        MIN_INTERVAL,
                        len(four),
                        four,
                    )
                )
            body["peers"], body["peers6"] = four, six
        else:
            body["peers"] = [
                {"ip": p.ip, "port": p.port}
                if req.no_peer_id
                else {"ip": p.ip, "port": p.port, "peer id": p.peer_id}
                for p in chosen
            ]
        return encode(body)

    def expire(self, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        self._last_expiry = now
        removed = 0
        for info_hash, swarm in self.swarms.items():
            for peer in list(swarm.peers.values()):
                if now - peer.seen > self.peer_ttl:
                    swarm.retire(peer)
                    removed += 1
                    if not peer.remote:
                        self.dirty.add((info_hash, peer.ip, peer.port))
        return removed

    # -- peers of the other head nodes (server/cluster.py) -----------------------------------------
    def merge_remote(
        self, info_hash: bytes, ip: str, port: int, *, peer_id: bytes, left: int, uploaded: int = 0,
        downloaded: int = 0, age: float = 0.0,
    ) -> None:
        """A peer another head node's tracker knows (`age` seconds since it announced there)."""
        if not self.known(info_hash):
            return
        swarm = self.swarms.setdefault(info_hash, Swarm())
        old = swarm.peers.get((ip, port))
        if old is not None and not old.remote:
            return  # it announces here too: what it told us is at least as fresh
        if old is not None:
            swarm.remove(old)
        try:
            packed, v6 = _compact(ip, port)
        except ValueError:
            return
        seen = self.clock() - max(0.0, age)
        peer = Peer(peer_id, ip, port, left, uploaded, downloaded, seen, self.switch_of(ip), packed, v6, True)
        swarm.add(peer)

    def drop_remote(self, info_hash: bytes, ip: str, port: int) -> None:
        swarm = self.swarms.get(info_hash)
        old = swarm.peers.get((ip, port)) if swarm else None
        if swarm is not None and old is not None and old.remote:
            swarm.remove(old)

    def local_peer(self, info_hash: bytes, ip: str, port: int) -> Peer | None:
        swarm = self.swarms.get(info_hash)
        peer = swarm.peers.get((ip, port)) if swarm else None
        return peer if peer is not None and not peer.remote else None

    def refresh_switches(self) -> None:
        """Re-map every peer's switch (after the inventory changed)."""
        for swarm in self.swarms.values():
            for peer in list(swarm.peers.values()):
                swarm.remove(peer)
                peer.switch = self.switch_of(peer.ip)
                swarm.add(peer)

    def stats(self) -> dict[str, dict[str, Any]]:
        out = {}
        for info_hash, swarm in self.swarms.items():
            peers = list(swarm.peers.values())
            out[info_hash.hex()] = {
                "remote_peers": sum(1 for p in peers if p.remote),
                "seeders": sum(1 for p in peers if p.left == 0),
                "leechers": sum(1 for p in peers if p.left > 0),
                "completed": swarm.completed,
                "uploaded": swarm.gone_uploaded + sum(p.uploaded for p in peers),
                "downloaded": swarm.gone_downloaded + sum(p.downloaded for p in peers),
                "peers": [
                    {
                        "ip": p.ip,
                        "port": p.port,
                        "left": p.left,
                        "uploaded": p.uploaded,
                        "downloaded": p.downloaded,
                        "switch": p.switch,
                        "remote": p.remote,
                    }
                    for p in peers
                ],
            }
        return out
