"""`swarmboot switch add|set|show|list|rm`: switches (the tracker prefers peers on the same one)."""

from __future__ import annotations

import argparse
from typing import Any

from swarmboot.cli import add_object
from swarmboot.cli.inventory_verbs import add_read_verbs, add_save_verbs

COLUMNS = [("name", "NAME"), ("address", "ADDRESS"), ("description", "DESCRIPTION")]


def _options(parser: argparse.ArgumentParser, adding: bool) -> None:
    parser.add_argument("--address", help="management address")
    parser.add_argument("--description", help="free text (location, model)")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("address", "description") if getattr(args, k) is not None}


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_object(subparsers, "switch", "network switches nodes are plugged into")
    add_save_verbs(verbs, "switch", _options, _spec)
    add_read_verbs(verbs, "switch", "switches", COLUMNS)
