"""`swarmboot inventory export FILE.yaml | import FILE.yaml`: the whole inventory as one file."""

from __future__ import annotations

import argparse
import sys

from ground.config import Settings
from swarmboot.cli import add_object


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_object(subparsers, "inventory", "export or import the whole inventory (YAML)")
    p = verbs.add_parser("export", help="write networks, switches, groups and nodes to FILE ('-': stdout)")
    p.add_argument("file")
    p.add_argument("--secrets", action="store_true",
                   help="include secrets (BMC passwords); the file is readable by you only either way")
    p.set_defaults(handler=cmd_export, remote=True)
    p = verbs.add_parser("import", help="create or update everything in FILE ('-': stdin), all or nothing")
    p.add_argument("file")
    p.add_argument("--replace", action="store_true", help="also remove objects that are not in FILE")
    p.set_defaults(handler=cmd_import, remote=True)


def cmd_export(args: argparse.Namespace, settings: Settings) -> None:
    from server.inventory import crud
    from swarmboot.cli.backend import inventory

    text = crud.dump_yaml(inventory(args, settings).export(secrets=args.secrets))
    if args.file == "-":
        sys.stdout.write(text)
        return
    from pathlib import Path

    from ground.store import write_atomic

    write_atomic(Path(args.file), text, mode=0o600)
    print(f"wrote {args.file}" + ("" if args.secrets else " (without secrets: add --secrets for them)"))


def cmd_import(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud
    from swarmboot.cli.backend import inventory

    data = crud.load_yaml(cliutil.read_text(args.file, "the inventory"), args.file)
    counts = inventory(args, settings).import_(data, args.replace)
    print("imported " + ", ".join(f"{n} {key}" for key, n in counts.items()))
