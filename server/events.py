"""Node events (agent → server) and node status (server → admin).

The event format is docs/design.md's: stage, status, progress, duration, message, image, version,
details. `record()` validates one event and folds it into the node's persisted state; `status()`
lists every node's state for `swarmboot node status`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ground.contract.sets import EventStage, EventStatus, names
from ground.errors import NotFoundError, UsageError
from ground.inputs import InputError, clean, depth, loads_json
from server.inventory.db import Database
from server.inventory.models import Group, Node, NodeAlert, NodeEvent, NodeInstall, NodeState

if TYPE_CHECKING:
    from server.catalog import Catalog

# the contract's closed sets (ground/contract/sets.py): the agent's stages and what happens around them
STAGES = names(EventStage)
STATUSES = names(EventStatus)
EVENT_KEYS = ("stage", "status", "progress", "duration", "message", "image", "version", "details")
MAX_MESSAGE = 4000
# Limits of what a node may send (nodes are not trusted): the body, the nesting of `details`, the
# number of values in it, and what the merged details of a node may grow to.
MAX_EVENT_BYTES = 64 * 1024
MAX_EVENT_DEPTH = 8  # the event object, details, and six levels below
MAX_DETAIL_VALUES = 500
MAX_DETAILS_BYTES = 64 * 1024
MAX_DURATION = 10**7  # seconds (about 4 months)
MAX_VERSION = 2**31 - 1
# A node that is provisioning and silent for this long is shown as "silent".
SILENT_AFTER = dt.timedelta(seconds=60)


class EventError(UsageError):
    """An event that does not follow the format (HTTP 422)."""


class EventTooLarge(EventError):
    """An event body over MAX_EVENT_BYTES (HTTP 413)."""

    status = 413


def decode(body: bytes) -> Any:
    """The event's JSON, within the limits (size, depth, valid Unicode): EventError otherwise."""
    if len(body) > MAX_EVENT_BYTES:
        raise EventTooLarge(f"the event is larger than {MAX_EVENT_BYTES} bytes")
    try:
        return loads_json(body, max_bytes=MAX_EVENT_BYTES, max_depth=MAX_EVENT_DEPTH, what="the event")
    except InputError as exc:
        raise EventError(str(exc)) from None


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
            if key == "duration" and not 0 <= value <= MAX_DURATION:
                raise EventError(f"event duration must be between 0 and {MAX_DURATION} s, not {value}")
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
    if len(image) > 63 or (version is not None and not 0 <= version <= MAX_VERSION):
        raise EventError(f"event image must be a name (at most 63 characters) and version 0-{MAX_VERSION}")
    event["image"], event["version"] = image, version
    details = data.get("details") or {}
    if not isinstance(details, dict):
        raise EventError("event details must be an object")
    if depth(details) > MAX_EVENT_DEPTH - 1:
        raise EventError(f"event details are nested deeper than {MAX_EVENT_DEPTH - 1} levels")
    if _values(details) > MAX_DETAIL_VALUES:
        raise EventError(f"event details hold more than {MAX_DETAIL_VALUES} values")
    problem = _bad_numbers(details)
    if problem:
        raise EventError(f"event details: {problem}")
    event["details"] = details
    return event


def _values(data: Any) -> int:
    count, stack = 0, [data]
    while stack:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _bad_numbers(data: Any) -> str:
    """Numbers a database column or a JSON encoder cannot take (> 64 bits, NaN, infinity)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not -(2**63) <= item < 2**63:
            return f"the number {str(item)[:30]}… is larger than 64 bits"
        if isinstance(item, float) and not math.isfinite(item):
            return f"{item} is not a finite number"
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return ""


def _state_for(event: dict[str, Any], previous: str) -> str:
    stage, status = event["stage"], event["status"]
    if status == "failed":
        return "failed"
    if stage == "booted":
        return "booted"
    if stage in ("rescue", "service"):
        return stage
    # a heartbeat, or the booted system seeding its image (stage seed): the state it was in
    if stage in ("heartbeat", "seed") or status == "heartbeat":
        return previous if previous not in ("new",) else "booted"
    if stage == "handover" and status == "done":
        return "handover"
    return "provisioning"


def _merge_details(state: NodeState, details: dict[str, Any]) -> None:
    merged = {**(state.details or {}), **details}
    if len(json.dumps(merged)) > MAX_DETAILS_BYTES:  # keep the newest, not an ever-growing blob
        merged = dict(details)
    state.details = merged


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
    if stage == "seed" and "boot_files" in event["details"] and "seeding" not in event["details"]:
        # the booted service serving boot files (server/boot_peers.py): a detail of the node, kept
        # beside its seeding; the stage, status and message stay what the seeding last said
        _merge_details(state, event["details"])
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
        _merge_details(state, event["details"])
    from server import install

    install.on_event(session, node, event, now)
    return state


def record(
    db: Database,
    name: str,
    event: dict[str, Any],
    address: str = "",
    token: str | None = None,
    *,
    server: str = "",
) -> dict[str, Any]:
    """Fold one event into the node's state. `token`: the one the request carried (the HTTP
    route always passes it, "" for none; it must be the node's current token); None: an event
    the server itself records. `server`: the head node that received it."""
    now = dt.datetime.now(dt.UTC)
    with db.write_state() as session:
        node = session.execute(select(Node).where(Node.name == name)).unique().scalar_one_or_none()
        if node is None:
            raise NotFoundError(f"no node named {name!r}")
        if token is not None:
            from server import tokens

            tokens.check_for_events(session, node, token)
        state = apply(session, node, event, address, now, server=server)
        return state_dict(node, state, now)


def _iso(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:  # SQLite drops the zone; we store UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="seconds")


def root_source(node: Node, details: dict[str, Any]) -> str:
    """The root mode of the node's group, and for nfs where the root is mounted from, as the
    booted system reported it ("nfs 10.0.0.1:/swarmboot/IMAGE/VERSION")."""
    mode = str((node.group.root_options or {}).get("mode", "overlay"))
    lower = str(details.get("root_lower") or "")
    if mode == "nfs" and lower.startswith("nfs"):
        return f"nfs {lower.rsplit(maxsplit=1)[-1]}"
    return mode


def state_dict(node: Node, state: NodeState | None, now: dt.datetime) -> dict[str, Any]:
    if state is None:
        return {
            "name": node.name,
            "group": node.group.name,
            "root": root_source(node, {}),
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
    # What nodes sent, with anything that cannot be encoded replaced (rows from before the checks)
    details = clean(state.details or {})
    return {
        "name": node.name,
        "group": node.group.name,
        "root": root_source(node, details),
        "state": shown,
        "stage": state.stage,
        "status": state.status,
        "progress": state.progress,
        "image": clean(state.image),
        "version": state.version,
        "last_seen": _iso(last),
        "seen_seconds_ago": None if ago is None else round(ago, 1),
        "boot_started": _iso(state.boot_started),
        "message": clean(state.message),
        "address": state.address,
        "details": details,
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
        counts = dict(
            session.execute(select(NodeAlert.node_id, func.count()).group_by(NodeAlert.node_id)).all()
        )
        rows = []
        for node, state, record in session.execute(query).unique().all():
            row = state_dict(node, state, now)
            row["alerts"] = int(counts.get(node.id, 0))
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


def alerts(db: Database, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The node's newest alerts (a replayed token, another node's token: server/tokens.py)."""
    with db.read() as session:
        query = (
            select(NodeAlert)
            .join(Node, Node.id == NodeAlert.node_id)
            .where(Node.name == name)
            .order_by(NodeAlert.id.desc())
            .limit(limit)
        )
        return [
            {"at": _iso(a.at), "kind": a.kind, "message": clean(a.message), "address": a.address}
            for a in session.execute(query).scalars()
        ]


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
