"""Node events (agent → server) and node status (server → admin).

The event format is docs/design.md's: stage, status, progress, duration, message, image, version,
details. `record()` validates one event and folds it into the node's persisted state; `status()`
lists every node's state for `swarmboot node status`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ground.contract.sets import EventStage, EventStatus, names
from ground.errors import NotFoundError, UsageError
from server.inventory.db import Database
from server.inventory.models import Group, Node, NodeEvent, NodeInstall, NodeState

if TYPE_CHECKING:
    from server.catalog import Catalog

# the contract's closed sets (ground/contract/sets.py): the agent's stages and what happens around them
STAGES = names(EventStage)
STATUSES = names(EventStatus)
EVENT_KEYS = ("stage", "status", "progress", "duration", "message", "image", "version", "details")
MAX_MESSAGE = 4000
# A node that is provisioning and silent for this long is shown as "silent".
SILENT_AFTER = dt.timedelta(seconds=60)


class EventError(UsageError):
    """An event that does not follow the format (HTTP 422)."""


def parse(data: Any) -> dict[str, Any]:
    """Validate one event; return it with defaults filled."""
    if not isinstance(data, dict):
        raise EventError("an event must be a JSON object")
    unknown = sorted(set(data) - set(EVENT_KEYS))
    if unknown:
        raise EventError(
            f"unknown event field(s): {', '.join(unknown)}", hint="fields: " + ", ".join(EVENT_KEYS)
        )
    stage, status = data.get("stage"), data.get("status")
    if stage not in STAGES:
        raise EventError(f"event stage {stage!r} is not one of: {', '.join(STAGES)}")
    if status not in STATUSES:
        raise EventError(f"event status {status!r} is not one of: {', '.join(STATUSES)}")
    event: dict[str, Any] = {"stage": stage, "status": status}
    for key in ("progress", "duration"):
        value = data.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise EventError(f"event {key} must be a number, not {value!r}")
            if key == "progress" and not 0 <= value <= 1:
                raise EventError(f"event progress must be between 0 and 1, not {value}")
            if key == "duration" and value < 0:
                raise EventError(f"event duration must not be negative, not {value}")
        event[key] = value
    message = data.get("message") or ""
    if not isinstance(message, str):
        raise EventError("event message must be a string")
    event["message"] = message[:MAX_MESSAGE]
    image = data.get("image") or ""
    version = data.get("version")
    if not isinstance(image, str) or (
        version is not None and (not isinstance(version, int) or isinstance(version, bool))
    ):
        raise EventError("event image must be a string and version an integer")
    event["image"], event["version"] = image, version
    details = data.get("details") or {}
    if not isinstance(details, dict):
        raise EventError("event details must be an object")
    event["details"] = details
    return event


def _state_for(event: dict[str, Any], previous: str) -> str:
    stage, status = event["stage"], event["status"]
    if status == "failed":
        return "failed"
    if stage == "booted":
        return "booted"
    if stage in ("rescue", "service"):
        return stage
    if stage == "heartbeat" or status == "heartbeat":
        return previous if previous not in ("new",) else "booted"
    if stage == "handover" and status == "done":
        return "handover"
    return "provisioning"


def _timeline(session: Session, node: Node, event: dict[str, Any], now: dt.datetime, server: str) -> None:
    """Note the event in the node's timeline (heartbeats and download progress are not kept)."""
    if event["status"] in ("heartbeat", "progress") or event["stage"] == "heartbeat":
        return
    session.add(
        NodeEvent(
            node_id=node.id,
            time=now,
            stage=event["stage"],
            status=event["status"],
            duration=event["duration"],
            message=(event["message"] or "")[:MAX_MESSAGE],
            server=server,
        )
    )


def apply(
    session: Session, node: Node, event: dict[str, Any], address: str, now: dt.datetime, *, server: str = ""
) -> NodeState:
    state = session.get(NodeState, node.id)
    if state is None:
        state = NodeState(
            node_id=node.id, state="new", stage="", status="", image="", message="", address="", details={}
        )
        session.add(state)
    stage, status = event["stage"], event["status"]
    state.last_seen = now
    if address:
        state.address = address
    if stage in ("heartbeat",) or status == "heartbeat":
        state.state = _state_for(event, state.state)
        return state
    if stage == "ipxe" or (stage == "cmdline" and status == "start"):  # a new boot begins
        after_ipxe = stage == "cmdline" and state.stage == "ipxe"  # the same boot: it started at iPXE
        if state.boot_started is not None and not after_ipxe:
            # the timeline keeps this boot and the one before it
            session.execute(
                delete(NodeEvent).where(NodeEvent.node_id == node.id, NodeEvent.time < state.boot_started)
            )
        if not after_ipxe:
            state.boot_started = now
        state.progress = None
        state.message = ""
    _timeline(session, node, event, now, server)
    state.state = _state_for(event, state.state)
    state.stage, state.status = stage, status
    if event["image"]:
        state.image = event["image"]
    if event["version"] is not None:
        state.version = event["version"]
    if stage == "download" and event["progress"] is not None:
        state.progress = float(event["progress"])
    elif stage == "download" and status == "done":
        state.progress = 1.0
    if status == "failed":
        state.message = event["message"] or f"{stage} failed"
    elif event["message"]:
        state.message = event["message"]
    elif state.state != "failed":
        state.message = ""
    if event["details"]:
        state.details = {**(state.details or {}), **event["details"]}
    from server import install

    install.on_event(session, node, event, now)
    return state


def record(
    db: Database, name: str, event: dict[str, Any], address: str = "", *, server: str = ""
) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    with db.write_state() as session:
        node = session.execute(select(Node).where(Node.name == name)).unique().scalar_one_or_none()
        if node is None:
            raise NotFoundError(f"no node named {name!r}")
        state = apply(session, node, event, address, now, server=server)
        return state_dict(node, state, now)


def _iso(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:  # SQLite drops the zone; we store UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="seconds")


def state_dict(node: Node, state: NodeState | None, now: dt.datetime) -> dict[str, Any]:
    if state is None:
        return {
            "name": node.name,
            "group": node.group.name,
            "state": "new",
            "stage": "",
            "status": "",
            "progress": None,
            "image": "",
            "version": None,
            "last_seen": "",
            "seen_seconds_ago": None,
            "boot_started": "",
            "message": "",
            "address": "",
            "details": {},
        }
    last = (
        state.last_seen.replace(tzinfo=dt.UTC)
        if state.last_seen and state.last_seen.tzinfo is None
        else state.last_seen
    )
    ago = (now - last).total_seconds() if last else None
    shown = state.state
    if shown == "provisioning" and last is not None and now - last > SILENT_AFTER:
        shown = "silent"
    return {
        "name": node.name,
        "group": node.group.name,
        "state": shown,
        "stage": state.stage,
        "status": state.status,
        "progress": state.progress,
        "image": state.image,
        "version": state.version,
        "last_seen": _iso(last),
        "seen_seconds_ago": None if ago is None else round(ago, 1),
        "boot_started": _iso(state.boot_started),
        "message": state.message,
        "address": state.address,
        "details": state.details or {},
    }


def status(
    db: Database, names: list[str] | None = None, catalog: Catalog | None = None
) -> list[dict[str, Any]]:
    """Every node's state; disk-mode nodes also get `install` (what is on their disk, and whether
    a reinstall is needed: that takes the catalog, for the group's current version)."""
    from server import install

    now = dt.datetime.now(dt.UTC)
    with db.read() as session:
        query = (
            select(Node, NodeState, NodeInstall)
            .outerjoin(NodeState, NodeState.node_id == Node.id)
            .outerjoin(NodeInstall, NodeInstall.node_id == Node.id)
            .order_by(Node.name)
        )
        if names:
            query = query.where(Node.name.in_(names))
        rows = []
        for node, state, record in session.execute(query).unique().all():
            row = state_dict(node, state, now)
            version = catalog.get(node.group.image, node.group.image_version) if catalog else None
            disk = install.status(record, node, version)
            if disk is not None:
                row["install"] = disk
            rows.append(row)
        return rows


def timeline(db: Database, name: str, limit: int = 200) -> list[dict[str, Any]]:
    """The node's latest events (its current boot and the one before), oldest first."""
    with db.read() as session:
        node = session.execute(select(Node.id).where(Node.name == name)).scalar_one_or_none()
        if node is None:
            raise NotFoundError(f"no node named {name!r}")
        rows = session.execute(
            select(NodeEvent).where(NodeEvent.node_id == node).order_by(NodeEvent.id.desc()).limit(limit)
        ).scalars()
        return [
            {
                "time": _iso_ms(e.time),
                "stage": e.stage,
                "status": e.status,
                "duration": e.duration,
                "message": e.message,
                "server": e.server,
            }
            for e in reversed(list(rows))
        ]


def _iso_ms(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="milliseconds")


def running_versions(db: Database) -> set[tuple[str, int]]:
    """(image, version) pairs that nodes run or are fetching now: the seeder keeps them."""
    with db.read() as session:
        rows = session.execute(
            select(NodeState.image, NodeState.version).where(
                NodeState.state.in_(("provisioning", "handover", "booted", "service", "rescue")),
                NodeState.version.is_not(None),
            )
        ).all()
    return {(image, version) for image, version in rows if image}


def booted_targets(db: Database, port: int) -> list[dict[str, Any]]:
    """Prometheus file_sd / http_sd: one target group per booted node (its address and `port`)."""
    with db.read() as session:
        rows = session.execute(
            select(Node.name, Node.address, NodeState.address, Group.name)
            .join(Group, Node.group_id == Group.id)
            .join(NodeState, NodeState.node_id == Node.id)
            .where(NodeState.state == "booted")
            .order_by(Node.name)
        ).all()
    targets = []
    for name, address, seen, group in rows:
        ip = address or seen
        if ip:
            host = f"[{ip}]" if ":" in ip else ip
            targets.append({"targets": [f"{host}:{port}"], "labels": {"node": name, "group": group}})
    return targets
