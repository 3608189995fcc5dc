"""The verbs every named inventory object shares: `show NAME`, `list`, `rm NAME…`, and for objects
whose add/set is a plain spec (network, switch) `add NAME` and `set NAME` too."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

from ground.config import Settings

Columns = list[tuple[str, str]]
Spec = Callable[[argparse.Namespace], dict[str, Any]]
Options = Callable[[argparse.ArgumentParser, bool], None]


def add_save_verbs(verbs: argparse._SubParsersAction, kind: str, options: Options, spec: Spec) -> None:
    """`add NAME` (options required where `options` says so) and `set NAME` (all optional)."""
    for verb, adding, help_text in (("add", True, f"add a {kind}"), ("set", False, f"change a {kind}")):
        p = verbs.add_parser(verb, help=help_text)
        p.add_argument("name")
        options(p, adding)
        p.set_defaults(handler=functools.partial(_save, kind, adding, spec), remote=True)


def add_read_verbs(
    verbs: argparse._SubParsersAction,
    kind: str,
    plural: str,
    columns: Columns,
    *,
    table_rows: Callable[[list[dict[str, Any]]], None] | None = None,
    rm_help: str = "",
) -> None:
    """`show NAME [--json]`, `list [--json]` (a table of `columns`; `table_rows` may reshape the
    rows for it) and `rm NAME…`."""
    p = verbs.add_parser("show", help=f"show a {kind}")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=functools.partial(_show, kind), remote=True)
    p = verbs.add_parser("list", help=f"list {plural}")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=functools.partial(_list, kind, columns, table_rows), remote=True)
    p = verbs.add_parser("rm", help=rm_help or f"remove {plural}")
    p.add_argument("names", nargs="+")
    p.set_defaults(handler=functools.partial(_rm, kind), remote=True)


def _save(kind: str, adding: bool, spec: Spec, args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from swarmboot.cli.backend import inventory

    inv = inventory(args, settings)
    save = inv.add if adding else inv.update
    cliutil.show(save(kind, args.name, spec(args)), False)


def _show(kind: str, args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from swarmboot.cli.backend import inventory

    cliutil.show(inventory(args, settings).show(kind, args.name), args.json)


def _list(
    kind: str,
    columns: Columns,
    table_rows: Callable[[list[dict[str, Any]]], None] | None,
    args: argparse.Namespace,
    settings: Settings,
) -> None:
    from server import cliutil
    from swarmboot.cli.backend import inventory

    rows = inventory(args, settings).list_all(kind)
    if args.json:
        cliutil.emit_json(rows)
        return
    if table_rows is not None:
        table_rows(rows)
    print(cliutil.table(rows, columns))


def _rm(kind: str, args: argparse.Namespace, settings: Settings) -> None:
    from swarmboot.cli.backend import inventory

    for name in inventory(args, settings).remove(kind, args.names):
        print(f"removed {kind} {name}")
