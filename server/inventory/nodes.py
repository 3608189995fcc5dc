"""Nodes: spec dicts (CLI, import, export), address allocation, MAC binding."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ground.errors import ConflictError, UsageError
from server.inventory import validate
from server.inventory.models import Group, Mac, Network, Node, Switch
from server.inventory.objects import _str, by_name, check_keys, power_method

NODE_KEYS = (
    "name", "group", "macs", "network", "address", "switch", "port", "bmc", "power", "service", "kernel_args",
)
BMC_KEYS = ("address", "user", "password")


class Allocator:
    """Hands out the lowest free address of a network's node range (one transaction's view)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.taken: set[str] | None = None

    def _load(self) -> set[str]:
        if self.taken is None:
            self.taken = set(self.session.execute(select(Node.address).where(Node.address != "")).scalars())
        return self.taken

    def take(self, address: str) -> None:
        self._load().add(address)

    def release(self, address: str) -> None:
        self._load().discard(address)

    def in_use(self, address: str) -> bool:
        return address in self._load()

    def allocate(self, net: Network) -> str:
        taken = self._load()
        reserved = {net.gateway, *net.dns}
        start = int(ipaddress.IPv4Address(net.range_start))
        end = int(ipaddress.IPv4Address(net.range_end))
        for value in range(start, end + 1):
            candidate = str(ipaddress.IPv4Address(value))
            if candidate not in taken and candidate not in reserved:
                taken.add(candidate)
                return candidate
        raise ConflictError(
            f"network {net.name}: no free address left in {net.range_start}-{net.range_end}",
            hint=f"widen it: swarmboot network set {net.name} --range START-END",
        )


def _default_network(session: Session, group: Group) -> Network | None:
    if group.network is not None:
        return group.network
    nets = session.execute(select(Network).limit(2)).scalars().all()
    return nets[0] if len(nets) == 1 else None


def apply_node(session: Session, row: Node, spec: dict[str, Any], alloc: Allocator, new: bool) -> None:
    what = f"node {row.name}"
    check_keys(spec, NODE_KEYS, what)
    if "group" in spec:
        row.group = by_name(session, Group, _str(spec["group"], f"{what}.group"), "group")
    if row.group is None:
        raise UsageError(f"{what}: a group is required", hint="e.g. --group compute")
    if "network" in spec:
        net_name = _str(spec["network"], f"{what}.network")
        row.network = by_name(session, Network, net_name, "network") if net_name else None
    elif new:
        row.network = _default_network(session, row.group)
    if "switch" in spec:
        sw_name = _str(spec["switch"], f"{what}.switch")
        row.switch = by_name(session, Switch, sw_name, "switch") if sw_name else None
    if "port" in spec:
        row.switch_port = _str(spec["port"], f"{what}.port")
    if "bmc" in spec:
        bmc = spec["bmc"] or {}
        check_keys(bmc, BMC_KEYS, f"{what}.bmc")
        if "address" in bmc:
            row.bmc_address = _str(bmc["address"], f"{what}.bmc.address")
        if "user" in bmc:
            row.bmc_user = _str(bmc["user"], f"{what}.bmc.user")
        if "password" in bmc:
            row.bmc_password = _str(bmc["password"], f"{what}.bmc.password")
    if "power" in spec:
        row.power_method = power_method(spec["power"], f"{what}.power")
    if "service" in spec:
        if not isinstance(spec["service"], bool):
            raise UsageError(f"{what}.service: must be true or false")
        row.service = spec["service"]
    if "kernel_args" in spec:
        row.kernel_args = _str(spec["kernel_args"], f"{what}.kernel_args").strip()
    if "macs" in spec:
        set_macs(session, row, spec["macs"] or [])
    _apply_address(row, spec, alloc, new)


def _apply_address(row: Node, spec: dict[str, Any], alloc: Allocator, new: bool) -> None:
    net = validate.cidr(row.network.cidr) if row.network else None
    if "address" in spec:
        value = _str(spec["address"], f"node {row.name}.address")
        if row.address:
            alloc.release(row.address)
        row.address = ""
        if value:
            address = validate.address(value, net, f"node {row.name} address")
            if alloc.in_use(address):
                raise ConflictError(
                    f"node {row.name}: address {address} is used by another node",
                    hint="pick another address, or leave it out to get a free one from the network's range",
                )
            row.address = address
            alloc.take(address)
    if new and not row.address and "address" not in spec and row.network and row.network.range_start:
        row.address = alloc.allocate(row.network)
    if row.address and net is not None and ipaddress.IPv4Address(row.address) not in net:
        raise UsageError(f"node {row.name}: address {row.address} is outside network {row.network.name}")


def set_macs(session: Session, row: Node, values: Any) -> None:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        raise UsageError(f"node {row.name}.macs: must be a list of MAC addresses")
    if any(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise UsageError(
            f"node {row.name}.macs: {values!r} holds a number, not a MAC address",
            hint="quote MAC addresses in YAML (\"52:54:00:00:00:01\"): unquoted, YAML reads them "
            "as base-60 numbers",
        )
    macs = [validate.mac(_str(v, f"node {row.name}.macs")) for v in values]
    if len(set(macs)) != len(macs):
        raise UsageError(f"node {row.name}: a MAC address is given twice")
    for mac in macs:
        owner = session.execute(select(Mac).where(Mac.mac == mac)).scalar_one_or_none()
        if owner is not None and owner.node_id != row.id:
            raise ConflictError(
                f"MAC {mac} belongs to node {owner.node.name} already",
                hint=f"remove it there first: swarmboot node set {owner.node.name} --remove-mac {mac}",
            )
    existing = {m.mac: m for m in row.macs}
    for entry in list(row.macs):
        if entry.mac not in macs:
            row.macs.remove(entry)  # delete-orphan: removed at the flush below
    session.flush()
    entries = []
    for position, mac in enumerate(macs):
        entry = existing.get(mac) or Mac(mac=mac)
        entry.position = position
        entries.append(entry)
    row.macs = entries


def node_dict(row: Node) -> dict[str, Any]:
    return {
        "name": row.name,
        "group": row.group.name,
        "macs": [m.mac for m in row.macs],
        "network": row.network.name if row.network else "",
        "address": row.address,
        "switch": row.switch.name if row.switch else "",
        "port": row.switch_port,
        "bmc": {"address": row.bmc_address, "user": row.bmc_user, "password": row.bmc_password},
        "power": row.power_method,
        "service": row.service,
        "kernel_args": row.kernel_args,
    }


def node_by_mac(session: Session, mac: str) -> Node | None:
    """The node owning `mac`, with its group, network, switch and MACs loaded (2 queries)."""
    query = select(Node).join(Mac, Mac.node_id == Node.id).where(Mac.mac == mac)
    return session.execute(query).unique().scalar_one_or_none()


def bind_mac(session: Session, name: str, mac: str) -> Node:
    """Bind `mac` to node `name` if that node has no MAC yet (the unknown-machine menu)."""
    mac = validate.mac(mac)
    owner = node_by_mac(session, mac)
    if owner is not None:
        if owner.name == name:
            return owner
        raise ConflictError(f"MAC {mac} belongs to node {owner.name} already")
    node = (
        session.execute(select(Node).where(Node.name == validate.name(name)).with_for_update())
        .unique()
        .scalar_one_or_none()
    )
    if node is None:
        raise UsageError(
            f"no node named {name!r}", hint="add it first: swarmboot node add NAME --group GROUP"
        )
    if node.macs:
        raise ConflictError(
            f"node {name} has a MAC already ({node.macs[0].mac})",
            hint="pick an unassigned node, or free this one with: swarmboot node set NAME --mac ''",
        )
    node.macs.append(Mac(mac=mac, position=0))
    return node
