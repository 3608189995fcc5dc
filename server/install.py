"""Disk installs as the server sees them (root mode disk): what each node installed, whether its
next boot goes to its disk or installs again, and what `node status` says about it.

- A `part` start event of a disk-mode node marks its install record `installing`; a failed event
  while installing marks it `failed`; the handover's `install` details (image, version, sha256,
  layout, kept partitions' UUIDs) mark it `installed`. Only an `installed` node is ever sent to
  its disk: a failed or unfinished install boots from the network again.
- The group's reinstall policy (root option `reinstall`): `on-new-version` (the default) installs
  again when the group's current version is not the installed one; `manual` boots the disk until
  told (`swarmboot node set NODE --reinstall`). Service mode always boots from the network.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from ground.contract.layout import KeptPartition
from ground.contract.sets import ReinstallPolicy
from server.catalog import Version
from server.inventory.models import Node, NodeInstall

DEFAULT_POLICY = ReinstallPolicy.ON_NEW_VERSION


def disk_mode(node: Node) -> bool:
    return (node.group.root_options or {}).get("mode") == "disk"


def policy(node: Node) -> ReinstallPolicy:
    return ReinstallPolicy((node.group.root_options or {}).get("reinstall", DEFAULT_POLICY))


def record_of(session: Session, node: Node, create: bool = False) -> NodeInstall | None:
    row = session.get(NodeInstall, node.id)
    if row is None and create:
        row = NodeInstall(
            node_id=node.id,
            state="installing",
            image="",
            sha256="",
            layout={},
            kept=[],
            details={},
            reinstall=False,
        )
        session.add(row)
    return row


def on_event(session: Session, node: Node, event: dict[str, Any], now: dt.datetime) -> None:
    """Fold one agent event into the node's install record (disk mode only)."""
    if not disk_mode(node):
        return
    stage, status = event["stage"], event["status"]
    install = (event.get("details") or {}).get("install")
    if stage == "part" and status == "start":
        row = record_of(session, node, create=True)
        row.state = "installing"  # kept partitions stay recorded: the agent checks them
    elif status == "failed":
        row = record_of(session, node)
        if row is not None and row.state == "installing":
            row.state = "failed"
    elif stage == "handover" and status == "done" and isinstance(install, dict):
        row = record_of(session, node, create=True)
        row.state = "installed"
        row.image = str(install.get("image", ""))
        version = install.get("version")
        row.version = version if isinstance(version, int) and not isinstance(version, bool) else None
        row.sha256 = str(install.get("sha256", ""))
        row.layout = install.get("layout") or {}
        row.kept = [k for k in install.get("kept") or [] if isinstance(k, dict)]
        row.details = {k: v for k, v in install.items() if k not in ("layout", "kept")}
        row.installed_at = now
        row.reinstall = False


def is_current(row: NodeInstall, version: Version) -> bool:
    m = version.manifest
    return (row.image, row.version, row.sha256) == (m.image, m.version, m.image_file.sha256)


def boots_from_disk(session: Session, node: Node, version: Version) -> bool:
    """Send this node to its disk instead of installing (iPXE's local boot script)?"""
    if not disk_mode(node) or node.service:
        return False
    row = record_of(session, node)
    if row is None or row.state != "installed" or row.reinstall:
        return False
    return policy(node) is ReinstallPolicy.MANUAL or is_current(row, version)


def kept_partitions(session: Session | None, node: Node) -> tuple[KeptPartition, ...]:
    """The kept partitions the node reported after its last install (sent back in its plan)."""
    row = record_of(session, node) if session is not None else None
    if row is None:
        return ()
    out = []
    for k in row.kept or []:
        try:
            out.append(
                KeptPartition(
                    label=str(k["label"]),
                    disk=str(k["disk"]),
                    size=int(k["size"]),
                    uuid=str(k.get("uuid", "")),
                    fs=str(k.get("fs", "")),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(out)


def status(row: NodeInstall | None, node: Node, version: Version | None) -> dict[str, Any] | None:
    """The install part of `node status` (None: not a disk-mode node)."""
    if not disk_mode(node):
        return None
    if row is None:
        return {
            "state": "not installed",
            "image": "",
            "version": None,
            "reinstall_needed": True,
            "reinstall": False,
            "policy": policy(node).value,
        }
    outdated = version is not None and not is_current(row, version)
    return {
        "state": row.state,
        "image": row.image,
        "version": row.version,
        "installed_at": row.installed_at.isoformat(timespec="seconds") if row.installed_at else "",
        "reinstall_needed": row.state != "installed" or row.reinstall or outdated,
        "reinstall": row.reinstall,
        "policy": policy(node).value,
        "kept": [k.get("label") for k in row.kept or []],
    }


def request_reinstall(session: Session, node: Node, forget: bool = False) -> NodeInstall:
    """`node set NODE --reinstall` (and `--forget-install`: drop the kept partitions' record too)."""
    row = record_of(session, node, create=True)
    if forget:
        row.kept = []
    row.reinstall = True
    return row


def request_reinstalls(db: Any, patterns: list[str], forget: bool = False) -> list[str]:
    """Ask these nodes (names or ranges) to install again at their next boot."""
    from sqlalchemy import select

    from ground.errors import NotFoundError, UsageError
    from server.inventory import validate

    names = validate.expand_all(patterns)
    with db.write() as session:  # an inventory write: the server drops its cached plans
        for name in names:
            node = session.execute(select(Node).where(Node.name == name)).unique().scalar_one_or_none()
            if node is None:
                raise NotFoundError(f"no node named {name!r}")
            if not disk_mode(node):
                raise UsageError(
                    f"node {name} is in group {node.group.name}, whose root mode is not disk",
                    hint="--reinstall is for nodes installed to their disk",
                )
            request_reinstall(session, node, forget)
    return names
