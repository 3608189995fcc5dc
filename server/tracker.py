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


@dataclass
class Swarm:
    peers: dict[tuple[str, int], Peer] = field(default_factory=dict)
    completed: int = 0
    # what peers that left (stopped or expired) had reported last
    gone_uploaded: int = 0
    gone_downloaded: int = 0

    def retire(self, peer: Peer) -> None:
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
        params[unquote_to_bytes(key)] = unquote_to_bytes(value)
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
    ) -> None:
        self.known = known or (lambda _h: True)
        self.switch_of = switch_of or (lambda _ip: None)
        self.interval = interval
        self.peer_ttl = peer_ttl
        self.clock = clock
        self.swarms: dict[bytes, Swarm] = {}
        self.announces = 0
        self.failures = 0
        self._last_expiry = clock()

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
        if req.event == b"stopped":
            if old is not None:
                del swarm.peers[key]
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
            swarm.peers[key] = peer
        else:
            peer = old
            peer.peer_id, peer.left, peer.seen = req.peer_id, req.left, now
            peer.uploaded, peer.downloaded = req.uploaded, req.downloaded
        return self._response(swarm, peer, req)

    def _select(self, swarm: Swarm, me: Peer, numwant: int) -> list[Peer]:
        others = [p for p in swarm.peers.values() if p is not me]
        if me.left == 0:  # a seed needs no seeds
            others = [p for p in others if p.left > 0]
        random.shuffle(others)
        if me.switch is not None:
            others.sort(key=lambda p: p.switch != me.switch)  # stable: same switch first, shuffled
        return others[:numwant]

    def _response(self, swarm: Swarm, me: Peer, req: Announce) -> bytes:
        chosen = self._select(swarm, me, req.numwant)
        seeds = sum(1 for p in swarm.peers.values() if p.left == 0)
        body: dict[str, Any] = {
            "interval": self.interval,
            "min interval": MIN_INTERVAL,
            "complete": seeds,
            "incomplete": len(swarm.peers) - seeds,
            "downloaded": swarm.completed,
        }
        if req.compact:
            body["peers"] = b"".join(p.compact for p in chosen if not p.v6)
            six = b"".join(p.compact for p in chosen if p.v6)
            if six:
                body["peers6"] = six
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
        for swarm in self.swarms.values():
            for key, peer in list(swarm.peers.items()):
                if now - peer.seen > self.peer_ttl:
                    del swarm.peers[key]
                    swarm.retire(peer)
                    removed += 1
        return removed

    def refresh_switches(self) -> None:
        """Re-map every peer's switch (after the inventory changed)."""
        for swarm in self.swarms.values():
            for peer in swarm.peers.values():
                peer.switch = self.switch_of(peer.ip)

    def stats(self) -> dict[str, dict[str, Any]]:
        out = {}
        for info_hash, swarm in self.swarms.items():
            peers = list(swarm.peers.values())
            out[info_hash.hex()] = {
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
                    }
                    for p in peers
                ],
            }
        return out
