"""Node-facing API: the boot plan (read-only) and events (the one node-facing write)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ground.contract.cmdline import TOKEN_HEADER
from ground.errors import NotFoundError, SwarmbootError, UsageError
from server import events, plan, tokens
from server.api.deps import client_ip, state_of
from server.inventory import validate
from server.inventory.models import Node
from server.inventory.nodes import node_by_mac
from server.state import ServerState
from server.switches import binding
from server.switches.ports import Sighting, remember

router = APIRouter()
log = logging.getLogger(__name__)


def _node_of(session: Session, mac: str | None, node: str | None) -> tuple[Node, str | None]:
    boot_mac = validate.mac(mac) if mac else None
    if node:
        row = session.execute(select(Node).where(Node.name == node)).unique().scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"no node named {node!r}")
    elif boot_mac:
        row = node_by_mac(session, boot_mac)
        if row is None:
            raise NotFoundError(
                f"no node has MAC {boot_mac}",
                hint=f"bind it: swarmboot node set NAME --mac {boot_mac} (or pick one in the boot menu)",
            )
    else:
        raise UsageError("the plan needs ?mac=MAC or ?node=NAME")
    return row, boot_mac


LLDP_MAX = 255


def _lldp(state: ServerState, mac: str, lldp: dict[str, str]) -> None:
    """Record where the agent's LLDP frame says the node is plugged in; log a move for a known
    node, bind an unknown MAC to the node that claims that port (binding.py's rules)."""
    now = dt.datetime.now(dt.UTC)
    with state.db.write_state() as session:
        switch = binding.switch_for_lldp(session, lldp.get("chassis", ""), lldp.get("system", ""))
        if switch is None:
            log.debug(
                "LLDP from %s: switch %r / %r is not in the inventory",
                mac,
                lldp.get("chassis"),
                lldp.get("system"),
            )
            return
        names = tuple(dict.fromkeys(n for n in (lldp.get("port", ""), lldp.get("port_desc", "")) if n))
        sighting = Sighting(switch.id, switch.name, names[0], names, "lldp")
        remember(session, mac, sighting, now)
        node = node_by_mac(session, mac)
        if node is not None:
            binding.check_move(session, node, sighting, now)
            return
    with state.db.write() as session:
        outcome = binding.bind_by_port(session, mac, [sighting], now)
    if outcome.node:
        raise NotFoundError(
            f"MAC {mac} was bound to node {outcome.node} by its switch port (LLDP)",
            hint=f"reboot: the next network boot boots node {outcome.node}",
        )


def _lldp_from_event(state: ServerState, name: str, said: dict[str, Any]) -> None:
    """An LLDP frame a named node's agent heard after its plan request (it does not wait for one:
    its plan does not depend on its port), in an event's details: `lldp_*` as in the plan
    request, and `mac`, the boot NIC's, which must be one of the node's. Recorded as the plan
    request's would be; a report that does not fit is logged and dropped (the event stands)."""
    lldp = {k.removeprefix("lldp_"): v for k, v in said.items()
            if k.startswith("lldp_") and isinstance(v, str)}
    if not lldp.get("port") or any(len(v) > LLDP_MAX for v in lldp.values()):
        log.warning("node %s: an LLDP report without a port or with a field over %d characters: dropped",
                    name, LLDP_MAX)
        return
    try:
        mac = validate.mac(str(said.get("mac", "")))
    except SwarmbootError:
        log.warning("node %s: an LLDP report without a valid MAC: dropped", name)
        return
    with state.db.read() as session:
        row = node_by_mac(session, mac)
    if row is None or row.name != name:
        log.warning("node %s: an LLDP report for MAC %s, which is not the node's: dropped", name, mac)
        return
    _lldp(state, mac, lldp)


def _plan_body(
    state: ServerState,
    mac: str | None,
    node: str | None,
    plan_version: str | None,
    *,
    token: str = "",
    address: str = "",
    lldp: dict[str, str] | None = None,
    key: bytes | None = None,
) -> tuple[bytes, str]:
    """The plan as JSON, and the node's name: the public part, or with the token the node's
    secrets too (which uses the token up: server/tokens.py); with the token, the public part
    comes from the cache when it is there (`key`: server/plan_ahead.py). `lldp`: what the agent
    heard of its switch port."""
    minor = plan.negotiate(plan_version)
    if lldp and mac and lldp.get("port"):
        for name, value in lldp.items():
            if len(value) > LLDP_MAX:
                raise UsageError(f"lldp_{name} is longer than {LLDP_MAX} characters")
        _lldp(state, validate.mac(mac), lldp)
    options = {
        "seeder_port": state.seeder_port(), "nfs_port": state.nfs_port(), "after_boot": state.after_boot(),
    }
    if not token:
        with state.db.read() as session:
            row, boot_mac = _node_of(session, mac, node)
            result = plan.build(row, state.catalog, state.server_url, boot_mac, minor=minor, **options)
            return json.dumps(result.to_dict(minor), separators=(",", ":")).encode(), row.name
    refused = None
    with state.db.write_state() as session:
        row, boot_mac = _node_of(session, mac, node)
        refused = tokens.use_for_secrets(session, row, token, address, dt.datetime.now(dt.UTC))
        if refused is None:
            secrets = tokens.secret_files(session, row)
            public = state.plan_cache.get(key) if key is not None else None
            if public is not None:
                return plan.with_secrets(public, secrets, minor), row.name
            result = plan.build(
                row, state.catalog, state.server_url, boot_mac, minor=minor, secret_files=secrets, **options
            )
            return json.dumps(result.to_dict(minor), separators=(",", ":")).encode(), row.name
    state.counters.token_refusals += 1  # the alert is committed; now the refusal
    raise refused


def plan_key(query: bytes) -> bytes | None:
    """The plan cache's key for a query: what the plan depends on (the MAC in canonical form or
    the node, and the minor rendered), so other parameters (junk included) never force a new
    render nor fill the cache. None: not cacheable (a bad parameter: the route says why)."""
    params = parse_qs(query.decode("latin-1"), keep_blank_values=True)
    try:
        mac = validate.mac(params["mac"][-1]) if params.get("mac") else ""
        node = params["node"][-1] if params.get("node") else ""
        minor = plan.negotiate(params["plan_version"][-1] if "plan_version" in params else None)
    except SwarmbootError:
        return None
    if node and not validate.NAME_RE.fullmatch(node):
        return None
    return plan.cache_key(mac, node, minor)


@router.get("/api/v1/plan")
async def get_plan(
    request: Request,
    *,
    mac: str | None = None,
    node: str | None = None,
    plan_version: str | None = None,
    lldp_chassis: str = "",
    lldp_port: str = "",
    lldp_port_desc: str = "",
    lldp_system: str = "",
) -> Response:
    """The node's boot plan, rendered for the plan version its agent speaks (`plan_version=1.0`;
    none: an agent from before negotiation, 1.0). `lldp_*`: what the LLDP frame the agent heard
    on its boot NIC says (chassis ID, port ID, port description, system name)."""
    state = state_of(request)
    stamp = state.plan_stamp()
    token = request.headers.get(TOKEN_HEADER, "")
    lldp = {"chassis": lldp_chassis, "port": lldp_port, "port_desc": lldp_port_desc, "system": lldp_system}
    key = plan_key(request.scope["query_string"])
    body, name = await run_in_threadpool(
        # with an LLDP report the node's switch port may change: its plan is built afresh
        functools.partial(
            _plan_body, token=token, address=client_ip(request), lldp=lldp, key=None if lldp_port else key
        ),
        state, mac, node, plan_version,
    )
    state.counters.plans += 1
    # a plan with secrets is never cached, nor one with an LLDP report (recorded each time)
    if key is not None and not token and not lldp_port:
        state.cache_plan(key, body, stamp, name)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is larger than `limit` bytes."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > limit:
        raise events.EventTooLarge(f"the event is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise events.EventTooLarge(f"the event is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _boot_files(state: ServerState, name: str, event: dict[str, Any], address: str) -> None:
    """A booted node's boot-file service says it serves (or stopped serving) its version's kernel
    and initramfs (server/boot_peers.py)."""
    said = event["details"]["boot_files"]
    port, files = said.get("port"), said.get("files")
    image = said.get("image") or event.get("image") or ""
    version = (str(image), said.get("version") or event.get("version"))
    ok = (
        event["status"] in ("start", "progress") and isinstance(port, int) and 0 < port < 65536
        and isinstance(files, dict) and isinstance(version[1], int) and address
    )
    if not ok:
        state.boot_peers.drop(name)
        return
    found = state.catalog.get(version[0], version[1])
    if found is None:
        return
    m = found.manifest
    wanted = {m.kernel.name: m.kernel.sha256, m.initramfs.name: m.initramfs.sha256}
    if any(files.get(n) != sha for n, sha in wanted.items()):  # not this version's files: not served
        log.warning("node %s: says it serves boot files that are not %s/%s's", name, *version)
        return
    state.boot_peers.hold(version, name, address, port, wanted, switch=state.ip_switch.get(address, ""))
    served_to = said.get("served_to")
    if isinstance(served_to, str) and served_to:  # it sent a node both files: that node's slot is free
        state.boot_peers.served(name, served_to)


@router.post("/api/v1/nodes/{name}/events")
async def post_event(request: Request, name: str) -> dict[str, object]:
    state = state_of(request)
    event = events.parse(events.decode(await _body(request, events.MAX_EVENT_BYTES)))
    token = request.headers.get(TOKEN_HEADER, "")
    result = await run_in_threadpool(
        events.record, state.db, name, event, client_ip(request), token, server=state.server_url
    )
    state.counters.events += 1
    state.notify_event(event, result)
    if "install" in event["details"]:  # a disk install finished: the next plan carries its record
        state.forget_plans(name)
    said = event["details"].get("lldp")
    if isinstance(said, dict) and "mac" in said and event["status"] == "done":  # no mac: sent with its plan
        try:
            await run_in_threadpool(_lldp_from_event, state, name, said)
        except Exception:  # the event is stored: an answer other than 200 would have it sent again
            log.exception("node %s: its LLDP report could not be recorded", name)
    if event["stage"] == "seed" and isinstance(event["details"].get("boot_files"), dict):
        _boot_files(state, name, event, client_ip(request))
    if event["status"] == "failed":
        log.warning("node %s: %s failed: %s", name, event["stage"], event["message"])
    return {"ok": True, "state": result["state"]}
