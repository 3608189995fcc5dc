"""`swarmboot node add|set|show|list|rm|status`: the machines, and what they are doing now."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ground.config import Settings
from swarmboot.cli import add_object

COLUMNS = [
    ("name", "NAME"),
    ("group", "GROUP"),
    ("macs", "MACS"),
    ("address", "ADDRESS"),
    ("switch", "SWITCH"),
    ("port", "PORT"),
    ("service", "SERVICE"),
]
STATUS_COLUMNS = [
    ("name", "NODE"),
    ("state", "STATE"),
    ("stage", "STAGE"),
    ("download", "DOWNLOAD"),
    ("image", "IMAGE"),
    ("seen", "LAST SEEN"),
    ("alerts", "ALERTS"),
    ("message", "FAILURE / MESSAGE"),
]


def _options(parser: argparse.ArgumentParser, adding: bool) -> None:
    parser.add_argument("--group", required=adding, help="the node's group")
    parser.add_argument(
        "--mac",
        action="append",
        help="MAC address (repeat for several interfaces)"
        + ("" if adding else "; replaces the node's MACs, '' removes them all"),
    )
    parser.add_argument(
        "--address",
        help="IPv4 address (default: the next free one of the network's range;"
        " with a range of nodes, the first of consecutive addresses)",
    )
    parser.add_argument("--network", help="network (default: the group's, or the only one)")
    parser.add_argument("--switch", help="switch the node is plugged into")
    parser.add_argument("--port", help="switch port")
    parser.add_argument("--bmc-address", help="BMC address")
    parser.add_argument("--bmc-user", help="BMC user")
    parser.add_argument("--bmc-password", help="BMC password")
    parser.add_argument("--kernel-args", help="extra kernel arguments for this node")
    parser.add_argument(
        "--service",
        action="store_true",
        default=None,
        help="boot into service mode (rescue shell + SSH in the initramfs)",
    )
    if not adding:
        parser.add_argument("--no-service", dest="service", action="store_false", help="boot normally")
        parser.add_argument("--add-mac", action="append", default=[], help="add a MAC address")
        parser.add_argument("--remove-mac", action="append", default=[], help="remove a MAC address")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for key in ("group", "address", "network", "switch", "port", "service", "kernel_args"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    if args.mac is not None:
        spec["macs"] = [m for m in args.mac if m]
    bmc = {
        k: getattr(args, f"bmc_{k}")
        for k in ("address", "user", "password")
        if getattr(args, f"bmc_{k}") is not None
    }
    if bmc:
        spec["bmc"] = bmc
    return spec


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_object(subparsers, "node", "cluster nodes: add, change, list, and watch them boot")
    p = verbs.add_parser("add", help="add nodes (NAME may be a range: node[001-128])")
    p.add_argument("names", nargs="+", metavar="NAME")
    _options(p, adding=True)
    p.set_defaults(handler=cmd_add)
    p = verbs.add_parser("set", help="change nodes (NAME may be a range)")
    p.add_argument("names", nargs="+", metavar="NAME")
    _options(p, adding=False)
    p.set_defaults(handler=cmd_set)
    p = verbs.add_parser("show", help="show a node and its state")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_show)
    p = verbs.add_parser("list", help="list nodes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_list)
    p = verbs.add_parser("rm", help="remove nodes (NAME may be a range)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(handler=cmd_rm)
    p = verbs.add_parser("status", help="every node's state, stage, download %%, image, last seen, failure")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between redraws (--watch)")
    p.add_argument("--count", type=int, default=0, help="with --watch: stop after this many redraws")
    p.set_defaults(handler=cmd_status)


def cmd_add(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    rows = crud.add_nodes(cliutil.database(settings), args.names, _spec(args))
    if len(rows) == 1:
        cliutil.show(rows[0], False)
    else:
        print(f"added {len(rows)} nodes: {rows[0]['name']} … {rows[-1]['name']}")


def cmd_set(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    rows = crud.update_nodes(
        cliutil.database(settings), args.names, _spec(args), args.add_mac, args.remove_mac
    )
    if len(rows) == 1:
        cliutil.show(rows[0], False)
    else:
        print(f"changed {len(rows)} nodes")


def cmd_show(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil, events
    from server.inventory import crud

    db = cliutil.database(settings)
    data = crud.show_node(db, args.name)
    data["state"] = events.status(db, [args.name])[0]
    data["alerts"] = events.alerts(db, args.name)
    cliutil.show(data, args.json)


def cmd_list(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    rows = crud.list_nodes(cliutil.database(settings))
    cliutil.emit_json(rows) if args.json else print(cliutil.table(rows, COLUMNS))


def cmd_rm(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.inventory import crud

    names = crud.remove_nodes(cliutil.database(settings), args.names)
    print(f"removed {len(names)} node(s)")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def render_status(rows: list[dict[str, Any]]) -> str:
    from server import cliutil

    shown = []
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
        shown.append(
            {
                **row,
                "download": "-" if row["progress"] is None else f"{row['progress'] * 100:.0f}%",
                "image": f"{row['image']}:{row['version']}" if row["image"] else "-",
                "seen": _ago(row["seen_seconds_ago"]),
                "alerts": str(row.get("alerts") or "") or "-",
                "stage": f"{row['stage']} {row['status']}".strip(),
            }
        )
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return cliutil.table(shown, STATUS_COLUMNS) + f"\n{len(rows)} node(s): {summary or 'none'}"


def cmd_status(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil, events

    db = cliutil.database(settings)
    if not args.watch:
        rows = events.status(db, args.names or None)
        cliutil.emit_json(rows) if args.json else print(render_status(rows))
        return
    shown = 0
    while args.count <= 0 or shown < args.count:
        rows = events.status(db, args.names or None)
        if args.json:
            cliutil.emit_json(rows)
        else:
            print("\033[H\033[2J" + time.strftime("%H:%M:%S ") + render_status(rows), flush=True)
        shown += 1
        if args.count <= 0 or shown < args.count:
            time.sleep(max(0.2, args.interval))
