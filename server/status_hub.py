"""The live status of every node, in memory, for the status page and /metrics.

The hub keeps one row per node and follows the database, not this process's events: with two
head nodes on one PostgreSQL, the events the other one received show up here too. Each `tick()`
(once a second, off the event loop) reads the node states seen since the last read (an indexed
`last_seen` range with a few seconds of overlap, so a transaction that committed late is not
missed), compares them with the rows it has and bumps a sequence number on each row that changed.
The page's event streams send only what changed on the page they show (server/api/status_page.py).

A full reload happens at start and whenever the inventory changes (nodes added, moved, removed).
A provisioning node quiet for SILENT_AFTER is shown "silent", as `swarmboot node status` does.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from server.events import SILENT_AFTER
from server.inventory.db import Database
from server.inventory.models import Group, Node, NodeState

# what one row of the page holds, in this order (the page's JavaScript reads rows as arrays)
COLUMNS = (
    "name",
    "group",
    "state",
    "stage",
    "status",
    "progress",
    "image",
    "version",
    "installed",
    "last_seen",
    "message",
)
STATES = ("new", "provisioning", "handover", "booted", "service", "rescue", "failed", "silent")
LOOKBACK = dt.timedelta(seconds=5)  # overlap between reads: commits that land late are still seen
MAX_MESSAGE = 300  # a row carries the first line of a failure, the timeline has it all


@dataclass
class Row:
    values: list[Any]
    seq: int = 0
    peers_bytes: int = 0  # what the node's download took from peers (its download report)
    web_seed_bytes: int = 0
    last_seen_dt: dt.datetime | None = None
    raw_state: str = "new"

    @property
    def state(self) -> str:
        return str(self.values[2])

    @property
    def group(self) -> str:
        return str(self.values[1])


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _shown_state(raw: str, last_seen: dt.datetime | None, now: dt.datetime) -> str:
    if raw == "provisioning" and last_seen is not None and now - last_seen > SILENT_AFTER:
        return "silent"
    return raw


def _installed(details: dict[str, Any]) -> str:
    """The version installed on the node's disk, once an agent reports one (disk mode)."""
    installed = details.get("installed")
    if isinstance(installed, dict) and installed.get("image"):
        return f"{installed['image']}:{installed.get('version', '')}"
    return ""


def _first_line(text: str) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line[:MAX_MESSAGE]


@dataclass
class StatusHub:
    db: Database
    rows: dict[str, Row] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # node names, sorted
    seq: int = 0  # bumped once per tick that changed something
    summary_seq: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    group_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    generation: int = -1
    polled: dt.datetime | None = None
    ticks: int = 0
    poll_seconds: float = 0.0  # CPU-side cost of the last tick (wall time of the read and compare)
    _views: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- reading the database -------------------------------------------------------------------
    def _query(self, since: dt.datetime | None) -> Any:
        query = (
            select(
                Node.name,
                Group.name,
                NodeState.state,
                NodeState.stage,
                NodeState.status,
                NodeState.progress,
                NodeState.image,
                NodeState.version,
                NodeState.message,
                NodeState.last_seen,
                NodeState.details,
            )
            .join(Group, Node.group_id == Group.id)
            .outerjoin(NodeState, NodeState.node_id == Node.id)
        )
        if since is not None:
            query = query.where(NodeState.last_seen >= since)
        return query

    def _row_values(self, record: Any, now: dt.datetime) -> Row:
        name, group, raw, stage, status, progress, image, version, message, last_seen, details = record
        last_seen = _utc(last_seen)
        details = details if isinstance(details, dict) else {}
        raw = raw or "new"
        values = [
            name,
            group,
            _shown_state(raw, last_seen, now),
            stage or "",
            status or "",
            None if progress is None else round(float(progress), 3),
            image or "",
            version,
            _installed(details),
            None if last_seen is None else round(last_seen.timestamp(), 1),
            _first_line(message),
        ]
        return Row(
            values,
            peers_bytes=int(details.get("from_peers") or 0),
            web_seed_bytes=int(details.get("from_web_seeds") or 0),
            last_seen_dt=last_seen,
            raw_state=raw,
        )

    def tick(self) -> bool:
        """Follow the database; True when a row or the counts changed. Runs in a worker thread."""
        started = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        generation = self.db.generation()
        with self._lock:
            full = generation != self.generation
            since = None if full or self.polled is None else self.polled - LOOKBACK
        with self.db.read() as session:
            records = session.execute(self._query(since)).all()
        with self._lock:
            changed = self._merge(records, now, full)
            if full:
                self.generation = generation
            self.polled = now
            if not full and self.ticks % 5 == 0:
                changed |= self._silence(now)
            self.ticks += 1
            if changed:
                self.seq += 1
                for name in changed:
                    row = self.rows.get(name)
                    if row is not None:
                        row.seq = self.seq
                self._recount()
                self._views.clear()
            self.poll_seconds = time.perf_counter() - started
            return bool(changed)

    def _merge(self, records: list[Any], now: dt.datetime, full: bool) -> set[str]:
        changed: set[str] = set()
        seen: set[str] = set()
        for record in records:
            row = self._row_values(record, now)
            name = row.values[0]
            seen.add(name)
            old = self.rows.get(name)
            if old is None or old.values != row.values:
                row.seq = old.seq if old else 0
                self.rows[name] = row
                changed.add(name)
        if full:
            gone = set(self.rows) - seen
            for name in gone:
                del self.rows[name]
            if gone or changed:
                self.order = sorted(self.rows)
            changed |= gone
        return changed

    def _silence(self, now: dt.datetime) -> set[str]:
        """Provisioning nodes that fell quiet (nothing new in the database says so)."""
        changed = set()
        for name, row in self.rows.items():
            if row.raw_state == "provisioning":
                shown = _shown_state(row.raw_state, row.last_seen_dt, now)
                if shown != row.values[2]:
                    row.values[2] = shown
                    changed.add(name)
        return changed

    def _recount(self) -> None:
        counts: dict[str, int] = dict.fromkeys(STATES, 0)
        groups: dict[str, dict[str, int]] = {}
        for row in self.rows.values():
            counts[row.state] = counts.get(row.state, 0) + 1
            per = groups.setdefault(row.group, {})
            per[row.state] = per.get(row.state, 0) + 1
        if counts != self.counts or groups != self.group_counts:
            self.summary_seq += 1
        self.counts, self.group_counts = counts, groups

    # -- views for the page -----------------------------------------------------------------------
    def view(self, group: str = "", state: str = "", query: str = "") -> list[str]:
        """The names matching the filters, sorted (cached until the next change)."""
        key = (group, state, query)
        with self._lock:
            names = self._views.get(key)
            if names is None:
                names = [
                    name
                    for name in self.order
                    if (not group or self.rows[name].group == group)
                    and (not state or self.rows[name].state == state)
                    and (not query or query in name)
                ]
                self._views[key] = names
            return names

    def values(self, names: list[str]) -> list[list[Any]]:
        with self._lock:
            return [list(self.rows[n].values) for n in names if n in self.rows]

    def changed_since(self, names: list[str], seq: int) -> list[list[Any]]:
        with self._lock:
            return [list(self.rows[n].values) for n in names if n in self.rows and self.rows[n].seq > seq]

    def groups(self) -> list[str]:
        with self._lock:
            return sorted(self.group_counts)

    def node_bytes(self) -> dict[str, int]:
        """What the nodes' download reports say they took from peers and from web seeds."""
        with self._lock:
            return {
                "from_peers": sum(r.peers_bytes for r in self.rows.values()),
                "from_web_seeds": sum(r.web_seed_bytes for r in self.rows.values()),
            }

    def by_group_and_state(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {g: dict(c) for g, c in self.group_counts.items()}
