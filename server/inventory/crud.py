"""Add, change, show, list and remove inventory objects; export and import the whole inventory.

The CLI and the server call these; each runs in one transaction (all or nothing, so a bulk add
of 128 nodes with one bad MAC adds none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ground.errors import ConflictError, UsageError
from ground.inputs import bad_text, depth
from server.inventory import objects, validate
from server.inventory.db import Database
from server.inventory.models import Group, Network, Node, NodeState, Switch
from server.inventory.nodes import Allocator, apply_node, node_dict

EXPORT_FORMAT = 1


@dataclass(frozen=True)
class Kind:
    name: str
    model: Any
    apply: Callable[[Session, Any, dict[str, Any]], None]
    to_dict: Callable[[Any], dict[str, Any]]
    in_use: Callable[[Session, Any], list[str]]
    defaults: dict[str, Any]


KINDS: dict[str, Kind] = {
    "network": Kind(
        "network",
        Network,
        objects.apply_network,
        objects.network_dict,
        objects.network_in_use,
        {"gateway": "", "dns": [], "domain": "", "range": "", "dhcp_range": "", "mtu": 0},
    ),
    "switch": Kind(
        "switch",
        Switch,
        objects.apply_switch,
        objects.switch_dict,
        objects.switch_in_use,
        {"address": "", "description": "", "chassis_id": "", "snmp": {}},
    ),
    "group": Kind(
        "group",
        Group,
        objects.apply_group,
        objects.group_dict,
        objects.group_in_use,
        {
            "image_version": None,
            "network": "",
            "root": {"mode": "overlay"},
            "scripts": {"pre": "", "part": "", "post": ""},
            "kernel_args": "",
            "console": "ttyS0,115200 tty0",
            "files": [],
            "ssh_keys": [],
            "power": "",
        },
    ),
}
NODE_DEFAULTS: dict[str, Any] = {
    "macs": [],
    "switch": "",
    "port": "",
    "bmc": {"address": "", "user": "", "password": ""},
    "power": "",
    "service": False,
    "kernel_args": "",
}


def _fill_defaults(row: Any) -> None:
    for column in type(row).__table__.columns:
        if column.default is not None and getattr(row, column.key) is None:
            arg = column.default.arg
            setattr(row, column.key, arg(None) if callable(arg) else arg)


def add(db: Database, kind_name: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    kind = KINDS[kind_name]
    with db.write() as session:
        objects.ensure_new(session, kind.model, validate.name(name, kind.name), kind.name)
        row = kind.model(name=name)
        _fill_defaults(row)
        session.add(row)
        kind.apply(session, row, {**kind.defaults, **spec})
        session.flush()
        return kind.to_dict(row)


def update(db: Database, kind_name: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    kind = KINDS[kind_name]
    with db.write() as session:
        row = objects.by_name(session, kind.model, name, kind.name)
        kind.apply(session, row, spec)
        session.flush()
        return kind.to_dict(row)


def show(db: Database, kind_name: str, name: str) -> dict[str, Any]:
    kind = KINDS[kind_name]
    with db.read() as session:
        return kind.to_dict(objects.by_name(session, kind.model, name, kind.name))


def list_all(db: Database, kind_name: str) -> list[dict[str, Any]]:
    kind = KINDS[kind_name]
    with db.read() as session:
        rows = session.execute(select(kind.model).order_by(kind.model.name)).unique().scalars()
        return [kind.to_dict(r) for r in rows]


def remove(db: Database, kind_name: str, names: list[str], force: bool = False) -> list[str]:
    kind = KINDS[kind_name]
    with db.write() as session:
        for name in names:
            row = objects.by_name(session, kind.model, name, kind.name)
            used = kind.in_use(session, row)
            if used:
                raise ConflictError(
                    f"{kind.name} {name} is in use by {', '.join(used)}",
                    hint="move or remove those first (swarmboot node set … / node rm …)",
                )
            session.delete(row)
    return names


# --- nodes ----------------------------------------------------------------------------------


def add_nodes(db: Database, patterns: list[str], spec: dict[str, Any]) -> list[dict[str, Any]]:
    names = validate.expand_all(patterns)
    if len(names) > 1 and spec.get("macs"):
        raise UsageError(
            "--mac names one machine: it cannot be given with several nodes",
            hint="add the MACs one node at a time, or let the boot menu bind them",
        )
    start = spec.get("address", "")
    with db.write() as session:
        alloc = Allocator(session)
        rows = []
        for i, name in enumerate(names):
            validate.name(name, "node")
            objects.ensure_new(session, Node, name, "node")
            row = Node(name=name)
            _fill_defaults(row)
            session.add(row)
            node_spec = {**NODE_DEFAULTS, **spec}
            if start and len(names) > 1:
                node_spec["address"] = _offset(start, i)
            if not start:
                node_spec.pop("address", None)
            apply_node(session, row, node_spec, alloc, new=True)
            rows.append(row)
        session.flush()
        return [node_dict(r) for r in rows]


def _offset(address: str, i: int) -> str:
    import ipaddress

    return str(ipaddress.IPv4Address(validate.address(address)) + i)


def update_nodes(
    db: Database,
    patterns: list[str],
    spec: dict[str, Any],
    add_macs: list[str] = (),
    remove_macs: list[str] = (),
) -> list[dict[str, Any]]:  # type: ignore[assignment]
    names = validate.expand_all(patterns)
    with db.write() as session:
        alloc = Allocator(session)
        rows = []
        for name in names:
            row = objects.by_name(session, Node, name, "node")
            node_spec = dict(spec)
            if add_macs or remove_macs:
                gone = {validate.mac(m) for m in remove_macs}
                current = [m.mac for m in row.macs]
                missing = gone - set(current)
                if missing:
                    raise UsageError(f"node {name} has no MAC {', '.join(sorted(missing))}")
                node_spec["macs"] = [m for m in current if m not in gone] + list(add_macs)
            apply_node(session, row, node_spec, alloc, new=False)
            rows.append(row)
        session.flush()
        return [node_dict(r) for r in rows]


def remove_nodes(db: Database, patterns: list[str]) -> list[str]:
    names = validate.expand_all(patterns)
    with db.write() as session:
        for name in names:
            row = objects.by_name(session, Node, name, "node")
            session.execute(delete(NodeState).where(NodeState.node_id == row.id))
            session.delete(row)
    return names


def show_node(db: Database, name: str) -> dict[str, Any]:
    with db.read() as session:
        return node_dict(objects.by_name(session, Node, name, "node"))


def node_log(db: Database, name: str) -> list[dict[str, Any]]:
    from server.switches.binding import node_log as entries

    with db.read() as session:
        return entries(session, objects.by_name(session, Node, name, "node"))


def list_nodes(db: Database) -> list[dict[str, Any]]:
    with db.read() as session:
        return [node_dict(r) for r in session.execute(select(Node).order_by(Node.name)).unique().scalars()]


# --- export / import ---------------------------------------------------------------------------


def export(db: Database, secrets: bool = False) -> dict[str, Any]:
    """The whole inventory. Secrets (BMC passwords, the groups' secret files) only when asked
    for: an import of a file without them keeps the ones the database has."""
    nodes = list_nodes(db)
    if not secrets:
        for node in nodes:
            node["bmc"].pop("password", None)
    with db.read() as session:
        rows = session.execute(select(Group).order_by(Group.name)).unique().scalars()
        groups = [objects.group_dict(row, secrets=secrets) for row in rows]
    for group in groups:
        if not secrets or not group["secret_files"]:
            del group["secret_files"]  # left out: an import keeps what the inventory has
    return {
        "swarmboot_inventory": EXPORT_FORMAT,
        "networks": list_all(db, "network"),
        "switches": list_all(db, "switch"),
        "groups": groups,
        "nodes": nodes,
    }


def group_secret_files(db: Database, name: str) -> list[dict[str, Any]]:
    """A group's secret files with their content (for the CLI to add or drop one)."""
    with db.read() as session:
        row = objects.by_name(session, Group, name, "group")
        return list(objects.group_dict(row, secrets=True)["secret_files"])


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


MAX_IMPORT_DEPTH = 16  # an inventory file is nested 5 levels deep (nodes, a node, bmc, …)


def load_yaml(text: str, source: str) -> dict[str, Any]:
    problem = bad_text(text, multiline=True)
    if problem:
        raise UsageError(f"{source}: not an inventory file: {problem}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{source}: nested too deeply (more than {MAX_IMPORT_DEPTH} levels)") from None
    return check_document(data, source)


def check_document(data: Any, source: str) -> dict[str, Any]:
    """An inventory document (YAML file, or JSON sent to the API) of our format and keys."""
    if depth(data) > MAX_IMPORT_DEPTH:
        raise UsageError(f"{source}: nested too deeply (more than {MAX_IMPORT_DEPTH} levels)")
    if not isinstance(data, dict) or data.get("swarmboot_inventory") != EXPORT_FORMAT:
        raise UsageError(
            f"{source}: not a swarmboot inventory file (format {EXPORT_FORMAT})",
            hint="make one with: swarmboot inventory export FILE.yaml",
        )
    objects.check_keys(data, ("swarmboot_inventory", "networks", "switches", "groups", "nodes"), source)
    return data


def import_(db: Database, data: dict[str, Any], replace: bool = False) -> dict[str, int]:
    """Create or update every object in `data` (all or nothing). `replace` also removes the rest."""
    counts: dict[str, int] = {}
    with db.write() as session:
        alloc = Allocator(session)
        for kind_name, key in (("network", "networks"), ("switch", "switches"), ("group", "groups")):
            kind = KINDS[kind_name]
            items = data.get(key) or []
            for i, spec in enumerate(items):
                if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                    raise UsageError(f"{key}[{i}]: each entry needs a name")
                row = (
                    session.execute(select(kind.model).where(kind.model.name == spec["name"]))
                    .unique()
                    .scalar()
                )
                if row is None:
                    row = kind.model(name=validate.name(spec["name"], kind_name))
                    _fill_defaults(row)
                    session.add(row)
                body = {k: v for k, v in spec.items() if k != "name"}
                kind.apply(session, row, {**kind.defaults, **body})
            counts[key] = len(items)
            session.flush()  # groups look their network up by name: networks must be in the DB
        items = data.get("nodes") or []
        for i, spec in enumerate(items):
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise UsageError(f"nodes[{i}]: each entry needs a name")
            row = session.execute(select(Node).where(Node.name == spec["name"])).unique().scalar()
            new = row is None
            if row is None:
                row = Node(name=validate.name(spec["name"], "node"))
                _fill_defaults(row)
                session.add(row)
            body = {k: v for k, v in spec.items() if k != "name"}
            apply_node(session, row, {**NODE_DEFAULTS, "network": "", "address": "", **body}, alloc, new=new)
            session.flush()
        counts["nodes"] = len(items)
        if replace:
            _remove_others(session, data)
    return counts


def _remove_others(session: Session, data: dict[str, Any]) -> None:
    keep = {
        key: {s["name"] for s in data.get(key) or []} for key in ("networks", "switches", "groups", "nodes")
    }
    for row in session.execute(select(Node)).unique().scalars():
        if row.name not in keep["nodes"]:
            session.execute(delete(NodeState).where(NodeState.node_id == row.id))
            session.delete(row)
    session.flush()
    for model, key in ((Group, "groups"), (Switch, "switches"), (Network, "networks")):
        for row in session.execute(select(model)).unique().scalars():
            if row.name not in keep[key]:
                session.delete(row)
        session.flush()
