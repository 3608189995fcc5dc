"""What the server knows of switch ports: each SNMP switch's forwarding table (read on demand,
kept for a few seconds, and on a schedule by `serve`), and the sightings it keeps in the inventory
database (`port_sightings`: MAC -> switch, port, source, when), from SNMP and from the LLDP frames
agents report with their plan request.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.inventory.db import Database
from server.inventory.models import PortSighting, Switch
from server.switches.snmp import FdbEntry, SnmpError, forwarding_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sighting:
    switch_id: int
    switch: str
    port: str
    names: tuple[str, ...]
    source: str  # snmp | lldp
    others: tuple[str, ...] = ()  # other MACs the switch learned on that port (SNMP)


@dataclass(frozen=True)
class SwitchTable:
    switch_id: int
    switch: str
    entries: tuple[FdbEntry, ...]
    read_at: float
    error: str = ""

    def sightings_of(self, mac: str) -> list[Sighting]:
        found = []
        for entry in self.entries:
            if entry.mac == mac:
                others = tuple(e.mac for e in self.entries if e.port == entry.port and e.mac != mac)
                found.append(Sighting(self.switch_id, self.switch, entry.port, entry.names, "snmp", others))
        return found


@dataclass
class PortMap:
    db: Database
    timeout: float = 5.0
    tables: dict[int, SwitchTable] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _switches(self) -> list[tuple[int, str, str, dict[str, Any]]]:
        with self.db.read() as session:
            rows = session.execute(select(Switch).order_by(Switch.name)).scalars().all()
            return [(r.id, r.name, r.address, dict(r.snmp)) for r in rows if (r.snmp or {}).get("version")]

    def read(self, max_age: float = 0.0) -> list[SwitchTable]:
        """Every SNMP switch's table, read again when older than `max_age` seconds (in parallel;
        one reader at a time, so a boot storm asks each switch once)."""
        with self._lock:
            now = time.monotonic()
            switches = self._switches()
            stale = [
                s for s in switches if s[0] not in self.tables or now - self.tables[s[0]].read_at > max_age
            ]
            if stale:
                with cf.ThreadPoolExecutor(max_workers=min(16, len(stale))) as pool:
                    for table in pool.map(self._read_one, stale):
                        self.tables[table.switch_id] = table
                self._store([self.tables[s[0]] for s in stale])
            known = {s[0] for s in switches}
            for gone in set(self.tables) - known:
                del self.tables[gone]
            return [self.tables[s[0]] for s in switches]

    def read_switch(self, switch_id: int) -> SwitchTable | None:
        """Read one switch now (and record what it has)."""
        for switch in self._switches():
            if switch[0] == switch_id:
                table = self._read_one(switch)
                self.tables[switch_id] = table
                self._store([table])
                return table
        return None

    def _read_one(self, switch: tuple[int, str, str, dict[str, Any]]) -> SwitchTable:
        switch_id, name, address, snmp = switch
        try:
            entries = forwarding_table(snmp, address, timeout=self.timeout)
        except SnmpError as exc:
            log.warning("switch %s: %s", name, exc.message)
            return SwitchTable(switch_id, name, (), time.monotonic(), exc.message)
        return SwitchTable(switch_id, name, tuple(entries), time.monotonic())

    def _store(self, tables: list[SwitchTable]) -> None:
        now = dt.datetime.now(dt.UTC)
        with self.db.write_state() as session:
            for table in tables:
                if not table.error:  # what the switch no longer has is forgotten
                    current = {e.mac for e in table.entries}
                    for row in session.execute(
                        select(PortSighting).where(
                            PortSighting.switch_id == table.switch_id, PortSighting.source == "snmp"
                        )
                    ).scalars():
                        if row.mac not in current:
                            session.delete(row)
                for entry in table.entries:
                    remember(
                        session,
                        entry.mac,
                        Sighting(table.switch_id, table.switch, entry.port, entry.names, "snmp"),
                        now,
                    )

    def locate(self, mac: str, max_age: float = 2.0) -> list[Sighting]:
        """Where the switches see `mac` now (tables at most `max_age` seconds old)."""
        found: list[Sighting] = []
        for table in self.read(max_age):
            found.extend(table.sightings_of(mac))
        return found


def remember(session: Session, mac: str, sighting: Sighting, now: dt.datetime) -> None:
    """Record (or move) the sighting of `mac`."""
    row = session.execute(select(PortSighting).where(PortSighting.mac == mac)).scalar_one_or_none()
    if row is None:
        row = PortSighting(mac=mac)
        session.add(row)
    row.switch_id, row.port, row.names = sighting.switch_id, sighting.port, list(sighting.names)
    row.source, row.seen = sighting.source, now


def lldp_sightings(session: Session, mac: str) -> list[Sighting]:
    """What agents reported by LLDP for `mac` (the SNMP ones are read fresh instead)."""
    row = session.execute(
        select(PortSighting, Switch.name)
        .join(Switch, Switch.id == PortSighting.switch_id)
        .where(PortSighting.mac == mac, PortSighting.source == "lldp")
    ).first()
    if row is None:
        return []
    sighting, switch = row
    return [Sighting(sighting.switch_id, switch, sighting.port, tuple(sighting.names), "lldp")]


def sightings_on(db: Database, switch_id: int) -> list[PortSighting]:
    with db.read() as session:
        query = select(PortSighting).where(PortSighting.switch_id == switch_id).order_by(PortSighting.port)
        return list(session.execute(query).scalars())


def port_report(db: Database, name: str, *, read: bool = True, timeout: float = 5.0) -> dict[str, Any]:
    """`swarmboot switch ports`: every MAC the switch has on its ports (read now over SNMP unless
    `read` is false, and what agents reported by LLDP), the node that has it, the node that claims
    the port."""
    from server.inventory.models import Mac, Node
    from server.inventory.objects import by_name

    with db.read() as session:
        switch = by_name(session, Switch, name, "switch")
        switch_id, snmp = switch.id, dict(switch.snmp or {})
    error = ""
    if read and snmp.get("version"):
        table = PortMap(db, timeout=timeout).read_switch(switch_id)
        error = table.error if table is not None else ""
    now = dt.datetime.now(dt.UTC)
    rows = []
    with db.read() as session:
        owners = dict(session.execute(select(Mac.mac, Node.name).join(Node, Node.id == Mac.node_id)).all())
        claims: dict[str, list[str]] = {}
        for node_name, port in session.execute(
            select(Node.name, Node.switch_port).where(Node.switch_id == switch_id, Node.switch_port != "")
        ).all():
            claims.setdefault(port, []).append(node_name)
        for row in session.execute(select(PortSighting).where(PortSighting.switch_id == switch_id)).scalars():
            seen = row.seen if row.seen.tzinfo else row.seen.replace(tzinfo=dt.UTC)
            claimed = sorted({n for port in {row.port, *row.names} for n in claims.get(port, [])})
            rows.append(
                {
                    "port": row.port,
                    "names": list(row.names),
                    "mac": row.mac,
                    "node": owners.get(row.mac, ""),
                    "claimed_by": claimed,
                    "source": row.source,
                    "seen": seen.isoformat(timespec="seconds"),
                    "seen_seconds_ago": round((now - seen).total_seconds(), 1),
                }
            )
    rows.sort(key=lambda r: (_port_key(r["port"]), r["mac"]))
    return {"switch": name, "snmp": bool(snmp.get("version")), "error": error, "ports": rows}


def _port_key(port: str) -> tuple[Any, ...]:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", port))
