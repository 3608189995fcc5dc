"""`swarmboot switch add|set|show|list|rm`: switches (the tracker prefers peers on the same one)."""

from __future__ import annotations

import argparse
from typing import Any

from swarmboot.cli import add_object
from swarmboot.config import Settings

COLUMNS = [("name", "NAME"), ("address", "ADDRESS"), ("description", "DESCRIPTION")]


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="management address")
    parser.add_argument("--description", help="free text (location, model)")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("address", "description") if getattr(args, k) is not None}


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_object(subparsers, "switch", "network switches nodes are plugged into")
    for verb, handler, help_text in (("add", cmd_add, "add a switch"), ("set", cmd_set, "change a switch")):
        p = verbs.add_parser(verb, help=help_text)
        p.add_argument("name")
        _options(p)
        p.set_defaults(handler=handler)
    p = verbs.add_parser("show", help="show a switch")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_show)
    p = verbs.add_parser("list", help="list switches")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_list)
    p = verbs.add_parser("rm", help="remove switches")
    p.add_argument("names", nargs="+")
    p.set_defaults(handler=cmd_rm)


def cmd_add(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    cliutil.show(crud.add(cliutil.database(settings), "switch", args.name, _spec(args)), False)


def cmd_set(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    cliutil.show(crud.update(cliutil.database(settings), "switch", args.name, _spec(args)), False)


def cmd_show(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    cliutil.show(crud.show(cliutil.database(settings), "switch", args.name), args.json)


def cmd_list(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    rows = crud.list_all(cliutil.database(settings), "switch")
    cliutil.emit_json(rows) if args.json else print(cliutil.table(rows, COLUMNS))


def cmd_rm(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    for name in crud.remove(cliutil.database(settings), "switch", args.names):
        print(f"removed switch {name}")
