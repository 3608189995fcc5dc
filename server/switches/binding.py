"""Naming a node by its switch port: a node defined with a switch and a port and no MAC is bound
to the MAC seen on that port when the machine first boots (from the switch's forwarding table or
the LLDP frame its agent heard). The rules, in order:

- no node claims the port: nothing happens (the machine gets the boot menu);
- several nodes claim it: a conflict, nothing is bound;
- the node has a MAC already: a conflict (a second NIC, or another machine on its port), never a
  silent rebinding;
- the switch sees other unknown MACs on that port: a conflict (which one is the node?);
- otherwise the MAC is bound, and the node's log says when, where and how.

Conflicts go to the node's log (not repeated while unchanged) and the server's log; the boot
menu shows them. An LLDP report from a node whose inventory names another switch or port is
logged as a move; the inventory is not changed.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.inventory import validate
from server.inventory.models import Mac, Node, NodeLog, Switch
from server.switches.ports import Sighting

log = logging.getLogger(__name__)
REPEAT_AFTER = dt.timedelta(minutes=10)


@dataclass
class Outcome:
    node: str = ""  # the node the MAC was bound to
    notices: list[str] = field(default_factory=list)  # conflicts, for the boot menu


def note(
    session: Session, node: Node, *, kind: str, message: str, details: dict[str, Any], now: dt.datetime
) -> None:
    """Add to the node's log, unless its last entry says the same and is recent."""
    last = session.execute(
        select(NodeLog).where(NodeLog.node_id == node.id).order_by(NodeLog.id.desc()).limit(1)
    ).scalar_one_or_none()
    if last is not None and last.kind == kind and last.message == message:
        at = last.at if last.at.tzinfo else last.at.replace(tzinfo=dt.UTC)
        if now - at < REPEAT_AFTER:
            return
    session.add(NodeLog(node_id=node.id, at=now, kind=kind, message=message, details=details))
    (log.info if kind == "bound" else log.warning)("node %s: %s", node.name, message)


def claimants(session: Session, sighting: Sighting) -> list[Node]:
    names = set(sighting.names) | {sighting.port}
    query = select(Node).where(Node.switch_id == sighting.switch_id, Node.switch_port.in_(names))
    return list(session.execute(query).unique().scalars())


def _owned(session: Session, macs: tuple[str, ...]) -> set[str]:
    if not macs:
        return set()
    return set(session.execute(select(Mac.mac).where(Mac.mac.in_(macs))).scalars())


def bind_by_port(session: Session, mac: str, sightings: list[Sighting], now: dt.datetime) -> Outcome:
    """Bind `mac` (which no node has) to the node that claims the port it was seen on, if the
    rules above allow; say why not otherwise."""
    mac = validate.mac(mac)
    outcome = Outcome()
    for sighting in sightings:
        where = f"switch {sighting.switch} port {sighting.port}"
        details = {"mac": mac, "switch": sighting.switch, "port": sighting.port, "source": sighting.source}
        nodes = claimants(session, sighting)
        if not nodes:
            continue
        if len(nodes) > 1:
            message = f"nodes {', '.join(n.name for n in nodes)} all claim {where}: {mac} is not bound"
            for node in nodes:
                note(session, node, kind="conflict", message=message, details=details, now=now)
            outcome.notices.append(message)
            continue
        node = nodes[0]
        if node.macs:
            message = (
                f"{mac} was seen on its port ({where}, {sighting.source}) but the node has MAC "
                f"{', '.join(m.mac for m in node.macs)}: not rebound"
            )
            note(session, node, kind="conflict", message=message, details=details, now=now)
            outcome.notices.append(f"node {node.name}: {message}")
            continue
        strangers = sorted(set(sighting.others) - _owned(session, sighting.others))
        if strangers:
            message = (
                f"{where} shows several unknown MACs ({', '.join([mac, *strangers])}): "
                "not bound; bind one with swarmboot node set"
            )
            note(
                session,
                node,
                kind="conflict",
                message=message,
                details={**details, "others": strangers},
                now=now,
            )
            outcome.notices.append(f"node {node.name}: {message}")
            continue
        node.macs.append(Mac(mac=mac, position=0))
        session.flush()
        note(
            session,
            node,
            kind="bound",
            message=f"MAC {mac} bound: seen on {where} ({sighting.source})",
            details=details,
            now=now,
        )
        outcome.node = node.name
        return outcome
    return outcome


def switch_for_lldp(session: Session, chassis: str, system: str) -> Switch | None:
    """The inventory's switch an LLDP frame came from: by chassis ID, else by system name."""
    switches = session.execute(select(Switch)).scalars().all()
    wanted = chassis.strip().lower()
    for switch in switches:
        if switch.chassis_id and switch.chassis_id.strip().lower() == wanted:
            return switch
    for switch in switches:
        if system and switch.name == system.strip().lower():
            return switch
    return None


def check_move(session: Session, node: Node, sighting: Sighting, now: dt.datetime) -> None:
    """Log a move when the node reports (LLDP) another switch or port than its inventory's."""
    if node.switch is None or not node.switch_port:
        return
    names = set(sighting.names) | {sighting.port}
    if node.switch_id == sighting.switch_id and node.switch_port in names:
        return
    message = (
        f"LLDP says switch {sighting.switch} port {sighting.port}; the inventory says switch "
        f"{node.switch.name} port {node.switch_port}: not changed"
    )
    note(
        session,
        node,
        kind="moved",
        message=message,
        details={"switch": sighting.switch, "port": sighting.port, "source": sighting.source},
        now=now,
    )


def node_log(session: Session, node: Node, limit: int = 10) -> list[dict[str, Any]]:
    rows = (
        session.execute(
            select(NodeLog).where(NodeLog.node_id == node.id).order_by(NodeLog.id.desc()).limit(limit)
        )
        .scalars()
        .all()
    )
    return [
        {
            "at": (r.at if r.at.tzinfo else r.at.replace(tzinfo=dt.UTC)).isoformat(timespec="seconds"),
            "kind": r.kind,
            "message": r.message,
        }
        for r in reversed(rows)
    ]
