"""Node-facing API: the boot plan (read-only) and events (the one node-facing write)."""

from __future__ import annotations

import datetime as dt
import json
import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ground.errors import NotFoundError, UsageError
from server import events, plan
from server.api.deps import client_ip, state_of
from server.inventory import validate
from server.inventory.models import Node
from server.inventory.nodes import node_by_mac
from server.state import ServerState
from server.switches import binding
from server.switches.ports import Sighting, remember

router = APIRouter()
log = logging.getLogger(__name__)


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
        remember(session, mac, Sighting(switch.id, switch.name, names[0], names, "lldp"), now)
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


def _plan_body(
    state: ServerState,
    mac: str | None,
    node: str | None,
    plan_version: str | None,
    lldp: dict[str, str] | None = None,
) -> bytes:
    minor = plan.negotiate(plan_version)
    if lldp and mac and lldp.get("port"):
        for key, value in lldp.items():
            if len(value) > LLDP_MAX:
                raise UsageError(f"lldp_{key} is longer than {LLDP_MAX} characters")
        _lldp(state, validate.mac(mac), lldp)
    with state.db.read() as session:
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
        result = plan.build(row, state.catalog, state.server_url, boot_mac, minor=minor)
    return json.dumps(result.to_dict(minor), separators=(",", ":")).encode()


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
    epoch = state.cache_epoch
    lldp = {"chassis": lldp_chassis, "port": lldp_port, "port_desc": lldp_port_desc, "system": lldp_system}
    body = await run_in_threadpool(_plan_body, state, mac, node, plan_version, lldp)
    state.counters.plans += 1
    if not lldp_port:  # a report to record each time: not cached
        state.cache_plan(request.scope["query_string"], body, epoch)
    return Response(body, media_type="application/json")


@router.post("/api/v1/nodes/{name}/events")
async def post_event(request: Request, name: str) -> dict[str, object]:
    state = state_of(request)
    try:
        data = json.loads(await request.body())
    except ValueError:
        raise events.EventError("the event is not valid JSON") from None
    event = events.parse(data)
    result = await run_in_threadpool(
        events.record, state.db, name, event, client_ip(request), server=state.server_url
    )
    state.counters.events += 1
    state.notify_event(event, result)
    if "install" in event["details"]:  # a disk install finished: the next plan carries its record
        state.forget_plans()
    if event["status"] == "failed":
        log.warning("node %s: %s failed: %s", name, event["stage"], event["message"])
    return {"ok": True, "state": result["state"]}
