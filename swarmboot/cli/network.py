"""`swarmboot network add|set|show|list|rm`: networks nodes get addresses from."""

from __future__ import annotations

import argparse
from typing import Any

from swarmboot.cli import add_object
from swarmboot.config import Settings

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
    p = verbs.add_parser("add", help="add a network")
    p.add_argument("name")
    _options(p, required=True)
    p.set_defaults(handler=cmd_add)
    p = verbs.add_parser("set", help="change a network")
    p.add_argument("name")
    _options(p, required=False)
    p.set_defaults(handler=cmd_set)
    p = verbs.add_parser("show", help="show a network")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_show)
    p = verbs.add_parser("list", help="list networks")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_list)
    p = verbs.add_parser("rm", help="remove networks")
    p.add_argument("names", nargs="+")
    p.set_defaults(handler=cmd_rm)


def cmd_add(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    cliutil.show(crud.add(cliutil.database(settings), "network", args.name, _spec(args)), False)


def cmd_set(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    cliutil.show(crud.update(cliutil.database(settings), "network", args.name, _spec(args)), False)


def cmd_show(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    cliutil.show(crud.show(cliutil.database(settings), "network", args.name), args.json)


def cmd_list(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    rows = crud.list_all(cliutil.database(settings), "network")
    cliutil.emit_json(rows) if args.json else print(cliutil.table(rows, COLUMNS))


def cmd_rm(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    for name in crud.remove(cliutil.database(settings), "network", args.names):
        print(f"removed network {name}")
