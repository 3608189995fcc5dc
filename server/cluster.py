"""Several head nodes on one inventory (PostgreSQL): who they are, and their trackers' peers.

Each `swarmboot serve` registers its URL in `head_nodes` and renews it every SYNC_SECONDS; a row
not renewed for HEAD_TTL is a dead head node, a clean stop deletes its row. The live ones are
listed, this server first, in the kernel command lines it renders (`swarmboot.server=A,B`: the
agent fails over for plans, files and events) and in the torrents it serves (one BEP 12 tier per
tracker, every head node's web seed).

The trackers learn each other's peers through the database (docs/server.md says why): every
SYNC_SECONDS, while another head node is alive, a server writes the peers that announced to it
and changed since the last round (`tracker.dirty`; a stopped or expired peer becomes a
tombstone, left = -1) into `tracker_peers`, and reads the rows the others wrote since its last
read (with LOOKBACK of overlap), merging them into its swarms as remote peers. Announces never
touch the database: they stay in memory on the event loop; the tracker is read and changed only
there, the database work runs in a worker thread in between. When one head node dies, its peers
stay in the others' swarms until they expire (PEER_TTL after their last announce), and the nodes
re-announce to the next tier anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from server.inventory.models import HeadNode, TrackerPeer
from server.tracker import PEER_TTL

log = logging.getLogger(__name__)
SYNC_SECONDS = 2.0
HEAD_TTL = dt.timedelta(seconds=15)
LOOKBACK = dt.timedelta(seconds=10)  # overlap between reads: late commits, small clock differences
CLEANUP_EVERY = 30  # rounds
CHUNK = 500
Key = tuple[bytes, str, int]


@dataclass
class LocalPeer:
    key: Key
    peer_id: bytes
    left: int  # -1: gone
    uploaded: int
    downloaded: int
    age: float


class Cluster:
    def __init__(self, state: Any) -> None:
        self.state = state
        self.url = state.server_url
        self.instance = secrets.token_hex(8)
        self.started = dt.datetime.now(dt.UTC)
        self.others: tuple[str, ...] = ()
        self.read_until: dt.datetime | None = None
        self.rounds = 0
        self.written = 0
        self.merged = 0
        self._write_all = True

    def live_urls(self) -> list[str]:
        return [self.url, *self.others]

    # -- on the event loop --------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.round()
                except SQLAlchemyError as exc:
                    log.warning("head-node sync failed (retrying): %s", exc)
                except Exception:  # keep syncing whatever happens; logged
                    log.exception("head-node sync failed")
                await asyncio.sleep(SYNC_SECONDS)
        finally:
            with contextlib.suppress(SQLAlchemyError):
                self.leave()

    async def round(self) -> None:
        local = self._collect() if self.others else None
        others, rows = await run_in_threadpool(self.sync, local)
        if others != self.others:
            log.info("head nodes sharing the inventory: %s", ", ".join((self.url, *others)))
            if set(others) - set(self.others):
                self._write_all = True  # a new one: it gets all our peers
            self.others = others
            self.state.catalog.set_other_servers(others)
        if not others:
            self.state.tracker.dirty.clear()
        self._apply(rows)
        self.rounds += 1

    def _collect(self) -> list[LocalPeer]:
        tracker = self.state.tracker
        if self._write_all:
            keys: set[Key] = {
                (h, p.ip, p.port) for h, s in tracker.swarms.items() for p in s.peers.values() if not p.remote
            }
            self._write_all = False
        else:
            keys = set()
        keys |= tracker.dirty
        tracker.dirty = set()
        now = tracker.clock()
        out = []
        for key in keys:
            peer = tracker.local_peer(*key)
            if peer is None:
                out.append(LocalPeer(key, b"", -1, 0, 0, 0.0))
            else:
                out.append(
                    LocalPeer(key, peer.peer_id, peer.left, peer.uploaded, peer.downloaded, now - peer.seen)
                )
        return out

    def _apply(self, rows: list[tuple[Any, ...]]) -> None:
        tracker = self.state.tracker
        for info_hash, ip, port, peer_id, left, uploaded, downloaded, age in rows:
            try:
                raw = bytes.fromhex(info_hash)
            except ValueError:
                continue
            if left < 0:
                tracker.drop_remote(raw, ip, port)
            else:
                tracker.merge_remote(
                    raw,
                    ip,
                    port,
                    peer_id=bytes.fromhex(peer_id),
                    left=left,
                    uploaded=uploaded,
                    downloaded=downloaded,
                    age=age,
                )
                self.merged += 1

    # -- in a worker thread ---------------------------------------------------------------------------
    def sync(self, local: list[LocalPeer] | None) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """Renew our row; write our changed peers; read the others'. (other URLs, their rows)"""
        now = dt.datetime.now(dt.UTC)
        db = self.state.db
        with db.write_state() as session:
            row = session.get(HeadNode, self.url)
            if row is None:
                session.add(HeadNode(url=self.url, instance=self.instance, started=self.started, seen=now))
            else:
                if row.instance != self.instance:
                    log.info("head node %s: taking over its row from an earlier run", self.url)
                row.instance, row.seen = self.instance, now
            if local:
                self._write(session, local, now)
        with db.read() as session:
            heads = session.execute(select(HeadNode.url, HeadNode.seen)).all()
            others = tuple(
                sorted(url for url, seen in heads if url != self.url and _utc(seen) > now - HEAD_TTL)
            )
            rows: list[tuple[Any, ...]] = []
            if others:
                query = select(TrackerPeer).where(TrackerPeer.server != self.url)
                if self.read_until is not None:
                    query = query.where(TrackerPeer.updated >= self.read_until - LOOKBACK)
                for p in session.execute(query).scalars():
                    age = (now - _utc(p.seen)).total_seconds()
                    if p.left >= 0 and age > PEER_TTL:
                        continue
                    rows.append((p.info_hash, p.ip, p.port, p.peer_id, p.left, p.uploaded, p.downloaded, age))
                self.read_until = now
            else:
                self.read_until = None  # alone: the next one to come is read in full
        if self.rounds % CLEANUP_EVERY == 0:
            self._cleanup(now)
        return others, rows

    def _write(self, session: Any, local: list[LocalPeer], now: dt.datetime) -> None:
        for start in range(0, len(local), CHUNK):
            chunk = local[start : start + CHUNK]
            keys = [(p.key[0].hex(), p.key[1], p.key[2]) for p in chunk]
            session.execute(
                delete(TrackerPeer).where(
                    TrackerPeer.server == self.url,
                    tuple_(TrackerPeer.info_hash, TrackerPeer.ip, TrackerPeer.port).in_(keys),
                )
            )
            session.add_all(
                TrackerPeer(
                    server=self.url,
                    info_hash=p.key[0].hex(),
                    ip=p.key[1],
                    port=p.key[2],
                    peer_id=p.peer_id.hex(),
                    left=p.left,
                    uploaded=p.uploaded,
                    downloaded=p.downloaded,
                    seen=now - dt.timedelta(seconds=p.age),
                    updated=now,
                )
                for p in chunk
            )
            self.written += len(chunk)

    def _cleanup(self, now: dt.datetime) -> None:
        """Tombstones everybody has read, peers long expired, rows of head nodes long dead."""
        with self.state.db.write_state() as session:
            session.execute(
                delete(TrackerPeer).where(
                    TrackerPeer.server == self.url,
                    TrackerPeer.left < 0,
                    TrackerPeer.updated < now - 10 * LOOKBACK,
                )
            )
            old = now - dt.timedelta(seconds=PEER_TTL)
            session.execute(delete(TrackerPeer).where(TrackerPeer.seen < old))
            session.execute(delete(HeadNode).where(HeadNode.seen < old))

    def leave(self) -> None:
        """A clean stop: the others stop listing us at once; our peers stay for them until they expire."""
        with self.state.db.write_state() as session:
            session.execute(
                delete(HeadNode).where(HeadNode.url == self.url, HeadNode.instance == self.instance)
            )


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
