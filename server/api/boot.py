"""iPXE-facing endpoints: the start script, per-node scripts, the unknown-machine menu, rescue.

Every answer is an iPXE script (HTTP 200) so a machine never hangs on an error page: problems are
printed on its console and it asks again later. The one write is the menu's binding of a MAC to
a node that has none.
"""

from __future__ import annotations

import datetime as dt
import logging
import random

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ground.errors import SwarmbootError
from server import events, install, ipxe, tokens
from server.api.deps import client_ip, state_of
from server.boot_peers import HOLD_BACK_SECONDS
from server.inventory import validate
from server.inventory.models import Group, Mac, Node
from server.inventory.nodes import bind_mac, node_by_mac
from server.plan import image_version
from server.state import ServerState
from server.switches import binding
from server.switches.ports import lldp_sightings

router = APIRouter()
log = logging.getLogger(__name__)
MENU_NODES = 40


class IpxeScript(PlainTextResponse):
    media_type = "text/plain"


def _mac_or_message(state: ServerState, mac: str | None) -> tuple[str | None, str | None]:
    try:
        return validate.mac(mac or ""), None
    except SwarmbootError:
        return None, ipxe.render_message(
            "no usable MAC",
            [f"the boot script got mac={mac!r}, not a MAC address"],
            "${netX/mac}",
            state.server_url,
        )


def _node_script(
    state: ServerState, node: Node, mac: str, *, platform: str, service: bool, address: str,
    named_now: bool = False,
) -> str:
    """`named_now`: this request gave the machine its name (tokens.may_issue)."""
    try:
        version = image_version(node.group, state.catalog)
    except SwarmbootError as exc:
        return ipxe.render_message(
            f"node {node.name} cannot boot", [exc.message, exc.hint], mac, state.server_url
        )
    with state.db.read() as session:
        local = not service and install.boots_from_disk(session, node, version)
    state.boot_peers.drop(node.name)  # it reboots: whatever it served is gone
    peer = None
    if not local and state.settings.boot_files_from_peers:  # a booted node holding this version's files
        m = version.manifest
        peer = state.boot_peers.for_ipxe((m.image, m.version), node.name, state.ip_switch.get(address, ""),
                                         (m.kernel.name, m.initramfs.name), address)
        if peer is None and state.boot_peers.hold_back(state.settings.boot_files_server_streams, address):
            busy = state.boot_peers.pending()
            return ipxe.render_message(
                f"node {node.name} waits for its kernel and initramfs",
                [f"the server is sending them to {busy} nodes now, and no booted node is free to",
                 "serve them: the first nodes up will (boot_files_server_streams)"],
                mac, state.server_url, retry=random.randint(*HOLD_BACK_SECONDS),
            )
        if peer is None:
            state.boot_peers.from_server(address)
    event = {
        "stage": "ipxe",
        "status": "done",
        "progress": None,
        "duration": None,
        "message": "booting from its disk" if local else "",
        "image": version.image,
        "version": version.number,
        "details": {"platform": platform, "boot": "disk" if local else "network",
                    "boot_files_from": "" if local else peer.node if peer else "server"},
    }
    now = dt.datetime.now(dt.UTC)
    with state.db.write_state() as session:
        if local:  # the disk boots without the network: no token (no plan is fetched)
            token = ""
        else:  # this boot's token (server/tokens.py): on the kernel command line, for this node only
            allowed = tokens.may_issue(node, address, named_now=named_now)
            token = tokens.issue(session, node, address, now) if allowed else ""
            if not token:
                log.warning("node %s: iPXE script asked for from %s, not its address %s: no token "
                            "(no secrets)", node.name, address, node.address)
        events.apply(session, node, event, address, now, server=state.server_url)
    if local:  # installed, and the installed version is the one to run: the firmware boots the disk
        return ipxe.render_local(node, version, platform=platform)
    try:
        return ipxe.render_node(
            node, version, state.catalog, mac, platform=platform, service=service or node.service,
            token=token, lldp_wait=state.settings.lldp_wait, peer=peer,
            initramfs_dhcp=state.settings.initramfs_dhcp,
        )
    except SwarmbootError as exc:
        lines = [exc.message, exc.hint]
        return ipxe.render_message(f"node {node.name} cannot boot", lines, mac, state.server_url)


def _unassigned(state: ServerState) -> tuple[list[str], int]:
    with state.db.read() as session:
        query = (
            select(Node.name)
            .where(~select(Mac.id).where(Mac.node_id == Node.id).exists())
            .order_by(Node.name)
        )
        names = list(session.execute(query).scalars())
    return names[:MENU_NODES], len(names)


def script_for(
    state: ServerState, mac_param: str | None, platform_param: str | None, address: str, rescue: bool = False
) -> str:
    mac, message = _mac_or_message(state, mac_param)
    if mac is None:
        return message or ""
    platform = ipxe.platform_of(platform_param)
    with state.db.read() as session:
        node = node_by_mac(session, mac)
    if node is not None:
        return _node_script(state, node, mac, platform=platform, service=rescue, address=address)
    if rescue:
        return _rescue_unknown(state, mac, platform)
    outcome = _by_port(state, mac)
    if outcome.node:
        with state.db.read() as session:
            node = node_by_mac(session, mac)
        if node is not None:
            return _node_script(
                state, node, mac, platform=platform, service=False, address=address, named_now=True
            )
    names, total = _unassigned(state)
    return ipxe.render_menu(
        mac,
        platform,
        state.server_url,
        unassigned=names,
        unassigned_total=total,
        timeout=state.settings.boot_menu_timeout,
        notices=outcome.notices,
    )


def _by_port(state: ServerState, mac: str) -> binding.Outcome:
    """Name an unknown machine by its switch port: where the switches (SNMP, read now unless
    read in the last 2 s) or an agent's LLDP report saw its MAC, and which node claims that port."""
    sightings = state.ports.locate(mac) if state.ports is not None else []
    with state.db.read() as session:
        sightings += lldp_sightings(session, mac)
    if not sightings:
        return binding.Outcome()
    with state.db.write() as session:
        return binding.bind_by_port(session, mac, sightings, dt.datetime.now(dt.UTC))


def _rescue_unknown(state: ServerState, mac: str, platform: str) -> str:
    """Service mode for a machine the inventory does not know: the rescue group's image, no node."""
    wanted = state.settings.rescue_group
    with state.db.read() as session:
        groups = list(session.execute(select(Group).order_by(Group.name)).unique().scalars())
    if wanted:
        groups = [g for g in groups if g.name == wanted]
    for group in groups:
        version = state.catalog.get(group.image, group.image_version)
        if version is not None:
            return ipxe.render_node(
                None, version, state.catalog, mac, platform=platform, service=True, group_name=group.name,
                lldp_wait=state.settings.lldp_wait, initramfs_dhcp=state.settings.initramfs_dhcp,
            )
    return ipxe.render_message(
        "no rescue image", ["no group has a packed image to start a rescue shell from"], mac, state.server_url
    )


def choose(
    state: ServerState, mac_param: str | None, name: str | None, platform_param: str | None, address: str
) -> str:
    mac, message = _mac_or_message(state, mac_param)
    if mac is None:
        return message or ""
    platform = ipxe.platform_of(platform_param)
    try:
        with state.db.write() as session:
            node = bind_mac(session, (name or "").strip().lower(), mac)
            log.info("boot menu: bound %s to node %s", mac, node.name)
    except SwarmbootError as exc:
        return ipxe.render_message(
            f"cannot give {mac} the name {name!r}", [exc.message, exc.hint], mac, state.server_url, retry=5
        )
    with state.db.read() as session:
        bound = node_by_mac(session, mac)
    assert bound is not None
    return _node_script(state, bound, mac, platform=platform, service=False, address=address, named_now=True)


@router.get("/boot/start.ipxe", response_class=IpxeScript)
async def start(request: Request) -> str:
    return ipxe.render_start(state_of(request).server_url)


@router.get("/boot/ipxe", response_class=IpxeScript)
async def node_script(
    request: Request, mac: str | None = None, platform: str | None = None, buildarch: str | None = None
) -> str:
    return await run_in_threadpool(script_for, state_of(request), mac, platform, client_ip(request))


@router.get("/boot/ipxe/rescue", response_class=IpxeScript)
async def rescue_script(request: Request, mac: str | None = None, platform: str | None = None) -> str:
    return await run_in_threadpool(script_for, state_of(request), mac, platform, client_ip(request), True)


@router.get("/boot/ipxe/choose", response_class=IpxeScript)
async def choose_script(
    request: Request, mac: str | None = None, node: str | None = None, platform: str | None = None
) -> str:
    return await run_in_threadpool(choose, state_of(request), mac, node, platform, client_ip(request))
