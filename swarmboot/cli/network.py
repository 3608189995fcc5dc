"""`swarmboot network add|set|show|list|rm`: networks nodes get addresses from."""

from __future__ import annotations

import argparse
from typing import Any

from swarmboot.cli import add_object
from swarmboot.cli.inventory_verbs import add_read_verbs, add_save_verbs

COLUMNS = [
    ("name", "NAME"),
    ("cidr", "CIDR"),
    ("gateway", "GATEWAY"),
    ("range", "NODE RANGE"),
    ("dhcp_range", "DHCP POOL"),
    ("dns", "DNS"),
    ("domain", "DOMAIN"),
]


def _options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--cidr", required=required, help="the network, e.g. 10.0.0.0/24")
    parser.add_argument("--gateway", help="default gateway of the nodes")
    parser.add_argument("--dns", action="append", help="DNS server (repeat for several)")
    parser.add_argument("--domain", help="DNS domain of the nodes")
    parser.add_argument("--range", help="node addresses are allocated from START-END")
    parser.add_argument("--dhcp-range", help="dynamic pool START-END for unknown machines (boot menu)")
    parser.add_argument("--mtu", type=int, help="MTU of the nodes' interfaces (0: default)")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec = {
        key: getattr(args, key) for key in ("cidr", "gateway", "dns", "domain", "range", "dhcp_range", "mtu")
    }
    return {k: v for k, v in spec.items() if v is not None}


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_object(subparsers, "network", "networks nodes are addressed in")
    add_save_verbs(verbs, "network", _options, _spec)
    add_read_verbs(verbs, "network", "networks", COLUMNS)
