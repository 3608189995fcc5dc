"""Which nodes a power command means (names, ranges like node[001-128], --group) and how to reach
each one: its own power method, else its group's, else IPMI when it has a BMC address and
Wake-on-LAN when it has only MACs."""

from __future__ import annotations

import ipaddress

from sqlalchemy import select

from ground.errors import NotFoundError, UsageError
from server.inventory import validate
from server.inventory.db import Database
from server.inventory.models import Group, Node
from server.inventory.objects import by_name
from server.power.base import Method, Target


def method_of(node: Node) -> str:
    if node.power_method:
        return node.power_method
    if node.group is not None and node.group.power_method:
        return node.group.power_method
    return Method.IPMI if node.bmc_address or not node.macs else Method.WOL


def target_of(node: Node) -> Target:
    broadcast = ""
    if node.network is not None:
        broadcast = str(ipaddress.IPv4Network(node.network.cidr).broadcast_address)
    return Target(
        node=node.name,
        method=method_of(node),
        address=node.bmc_address,
        user=node.bmc_user,
        password=node.bmc_password,
        macs=tuple(m.mac for m in node.macs),
        broadcast=broadcast,
    )


def targets(db: Database, patterns: list[str], group: str = "") -> list[Target]:
    """The nodes named by `patterns` and/or in `group`, in name order, without repeats."""
    if not patterns and not group:
        raise UsageError(
            "name the nodes", hint="e.g. swarmboot power status 'node[001-128]' or --group compute"
        )
    names = validate.expand_all(patterns)
    with db.read() as session:
        rows: dict[str, Node] = {}
        if names:
            found = session.execute(select(Node).where(Node.name.in_(names))).unique().scalars().all()
            rows.update({n.name: n for n in found})
            missing = [n for n in names if n not in rows]
            if missing:
                shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
                raise NotFoundError(f"no node named {shown}", hint="list them with: swarmboot node list")
        if group:
            row = by_name(session, Group, group, "group")
            for node in session.execute(select(Node).where(Node.group_id == row.id)).unique().scalars():
                rows[node.name] = node
        return [target_of(rows[name]) for name in sorted(rows)]
