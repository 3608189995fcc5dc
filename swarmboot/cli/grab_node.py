"""The node `image grab` takes a tree from, as the inventory describes it: its address, the kept
partitions of its group's layout, the group's per-node and secret files (left on the node)."""

from __future__ import annotations

import argparse
from typing import Any

from builder.grab import GrabFrom, check_exclude_file
from ground.config import Settings
from ground.errors import UsageError
from swarmboot.cli.backend import inventory


def kept_mountpoints(plan: dict[str, Any]) -> tuple[str, ...]:
    layout = (plan.get("root") or {}).get("layout") or {}
    parts = [*layout.get("partitions", []), *layout.get("raid", []), *layout.get("arrays", [])]
    return tuple(p["mountpoint"] for p in parts
                 if isinstance(p, dict) and p.get("keep") and p.get("mountpoint"))


def own_files(plan: dict[str, Any], group: dict[str, Any]) -> tuple[str, ...]:
    files = [f.get("path", "") for f in plan.get("files", [])]
    files += [f.get("path", "") for f in group.get("secret_files", [])]
    return tuple(p for p in files if p)


def grab_source(args: argparse.Namespace, settings: Settings) -> GrabFrom:
    check_exclude_file(args.exclude_file)
    if args.identity is not None and not args.identity.is_file():
        raise UsageError(f"the SSH key {args.identity} does not exist", hint="give the private key's file")
    inv = inventory(args, settings)
    node = inv.show_node(args.node)
    address = args.address or node.get("address") or ""
    if not address:
        raise UsageError(f"node {args.node} has no address in the inventory (its network gives it by DHCP?)",
                         hint="give the address it has now with --address (swarmboot node status shows it)")
    plan = inv.plan(args.node)
    group = inv.show("group", node["group"])
    known_hosts = settings.home / "ssh" / "known_hosts"
    known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return GrabFrom(name=args.node, address=address, kept=kept_mountpoints(plan),
                    own_files=own_files(plan, group), identity=args.identity, known_hosts=known_hosts,
                    exclude_file=args.exclude_file)
