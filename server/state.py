"""The running server's shared state: database, catalog, tracker, plan cache, counters.

`refresh()` (run every second off the event loop) notices inventory changes (the generation
counter) and store changes (new versions, a new current) and drops what depends on them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ground.config import Settings
from server.boot_peers import BootPeers
from server.catalog import Catalog
from server.inventory.db import Database
from server.inventory.models import Node, NodeState, Switch
from server.piece_dispenser import PieceDispenser
from server.plan import AfterBoot
from server.reseed import Reseeding
from server.switches.ports import PortMap
from server.tracker import Tracker

log = logging.getLogger(__name__)
PLAN_CACHE_MAX = 100_000


@dataclass
class Counters:
    http_bytes: dict[str, int] = field(default_factory=dict)  # "image/version/file" -> bytes sent
    handed_out: dict[str, int] = field(default_factory=dict)  # "image/version" -> piece bytes handed out
    plans: int = 0
    plan_cache_hits: int = 0
    events: int = 0
    token_refusals: int = 0

    def add_bytes(self, key: str, n: int) -> None:
        self.http_bytes[key] = self.http_bytes.get(key, 0) + n

    def add_handed_out(self, key: str, n: int) -> None:
        self.handed_out[key] = self.handed_out.get(key, 0) + n


class ServerState:
    def __init__(self, settings: Settings, server_url: str, token: str, db: Database | None = None) -> None:
        self.settings = settings
        self.server_url = server_url.rstrip("/")
        self.token = token
        self.db = db or Database.from_settings(settings, pool_size=20)
        self.catalog = Catalog(settings.images_dir, self.server_url)
        self.ip_switch: dict[str, str] = {}
        self.tracker = Tracker(
            known=self.catalog.knows, switch_of=self.ip_switch.get, peers_per_ip=settings.tracker_peers_per_ip
        )
        self.plan_cache: dict[bytes, bytes] = {}
        self.pieces = PieceDispenser()  # the stripe owners' pieces, handed out one by one
        self.plan_nodes: dict[bytes, str] = {}  # plan cache key -> the node's name
        self.plans_ahead: Any = None  # server/plan_ahead.py's last Pass
        self._forgets = 0
        self._forgotten: dict[str, int] = {}  # node -> _forgets when its plans were last dropped
        self.cache_epoch = 0
        self.db_generation = -1
        self.counters = Counters()
        self.boot_peers = BootPeers()  # booted nodes serving boot files (server/boot_peers.py)
        self.reseeding = Reseeding()  # booted nodes asking to seed their image again (server/reseed.py)
        self.listeners: list[Callable[[], None]] = []  # called after a change (seeder, dnsmasq)
        # called with (event, recorded state) after each node event (metrics)
        self.event_listeners: list[Callable[[dict[str, Any], dict[str, Any]], None]] = []
        self._lock = threading.Lock()
        self.seeder: Any = None
        self.nfs: Any = None  # server/nfs.py's NfsServer (None: serve --no-nfs, or not serving)
        self.cluster: Any = None  # server/cluster.py: the other head nodes on this inventory
        self.reloader: Any = None  # server/reload.py: SIGHUP
        self.ports: PortMap | None = PortMap(self.db, timeout=float(settings.snmp_timeout))

    def refresh(self, force: bool = False) -> bool:
        """Pick up inventory and store changes; return True when something changed."""
        with self._lock:
            store_changed = self.catalog.refresh()
            generation = self.db.generation()
            inventory_changed = generation != self.db_generation
            if not (store_changed or inventory_changed or force):
                return False
            self.db_generation = generation
            self.cache_epoch += 1
            self.plan_cache.clear()
            self.plan_nodes.clear()
            self._forgotten.clear()
            self.ip_switch = self._load_switch_map()
            self.tracker.switch_of = self.ip_switch.get
            self.tracker.refresh_switches()
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # a listener's failure must not stop the refresh loop
                log.exception("refresh listener %r failed", listener)
        return True

    def _load_switch_map(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        with self.db.read() as session:
            rows = session.execute(
                select(Node.address, NodeState.address, Switch.name)
                .join(Switch, Node.switch_id == Switch.id)
                .outerjoin(NodeState, NodeState.node_id == Node.id)
            ).all()
        for address, seen, switch in rows:
            for ip in (address, seen):
                if ip:
                    mapping[ip] = switch
        return mapping

    def notify_event(self, event: dict[str, Any], result: dict[str, Any]) -> None:
        for listener in list(self.event_listeners):
            try:
                listener(event, result)
            except Exception:  # an observer's failure must not fail the node's event
                log.exception("event listener %r failed", listener)

    def plan_stamp(self) -> tuple[int, int]:
        """Taken before a plan is built: cache_plan stores it only if nothing it depends on changed
        since (the whole cache's epoch, or this node's plans forgotten)."""
        return self.cache_epoch, self._forgets

    def forget_plans(self, node: str) -> None:
        """Drop one node's cached plans (its install record changed: its plan carries it)."""
        with self._lock:
            self._forgets += 1
            self._forgotten[node] = self._forgets
            for key in [k for k, name in self.plan_nodes.items() if name == node]:
                self.plan_cache.pop(key, None)
                self.plan_nodes.pop(key, None)

    def cache_plan(self, key: bytes, body: bytes, stamp: tuple[int, int], node: str) -> None:
        epoch, forgets = stamp
        with self._lock:
            if epoch != self.cache_epoch or self._forgotten.get(node, -1) > forgets:
                return
            if len(self.plan_cache) >= PLAN_CACHE_MAX:
                self.plan_cache.clear()
                self.plan_nodes.clear()
            self.plan_cache[key] = body
            self.plan_nodes[key] = node

    # what every plan carries from this server's running parts (defaults without them: tests)
    def seeder_port(self) -> int:
        return int(self.seeder.port) if self.seeder is not None else 0

    def nfs_port(self) -> int:
        """The port of this server's NFS export (0: it exports none, serve --no-nfs)."""
        return int(self.nfs.port) if self.nfs is not None else 0

    def after_boot(self) -> AfterBoot:
        """How long booted nodes seed (the seed_* settings)."""
        return AfterBoot.of(self.settings)
