"""`swarmboot node add|set|show|list|rm|status`: the machines, and what they are doing now."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ground.config import Settings
from ground.errors import UsageError
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
    ("root", "ROOT"),
    ("installed", "ON DISK"),
    ("seeded", "SEEDED"),
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
    parser.add_argument("--power", choices=("ipmi", "redfish", "wol", ""),
                        help="how `swarmboot power` reaches it (default: the group's; '' the group's)")
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
        parser.add_argument("--reinstall", action="store_true",
                            help="disk mode: install again at the next boot (kept partitions stay)")
        parser.add_argument("--forget-install", action="store_true",
                            help="disk mode: forget the kept partitions' record too (after a disk swap)")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for key in ("group", "address", "network", "switch", "port", "power", "service", "kernel_args"):
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
    p.set_defaults(handler=cmd_add, remote=True)
    p = verbs.add_parser("set", help="change nodes (NAME may be a range)")
    p.add_argument("names", nargs="+", metavar="NAME")
    _options(p, adding=False)
    p.set_defaults(handler=cmd_set, remote=True)
    p = verbs.add_parser("show", help="show a node and its state")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_show, remote=True)
    p = verbs.add_parser("list", help="list nodes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_list, remote=True)
    p = verbs.add_parser("rm", help="remove nodes (NAME may be a range)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(handler=cmd_rm, remote=True)
    p = verbs.add_parser("console", help="the node's serial console over IPMI Serial-over-LAN (~. ends it)")
    p.add_argument("name")
    p.set_defaults(handler=cmd_console)
    p = verbs.add_parser("status", help="every node's state, stage, download %%, image, last seen, failure")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--watch", action="store_true", help="redraw until Ctrl-C (a live table on a terminal)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between redraws (--watch)")
    p.add_argument("--count", type=int, default=0, help="with --watch: stop after this many redraws")
    p.set_defaults(handler=cmd_status, remote=True)
    p = verbs.add_parser("wait", help="wait until nodes reach a state (a progress bar on a terminal)")
    p.add_argument("names", nargs="*", metavar="NAME", help="nodes or ranges (default: every node)")
    p.add_argument("--state", default="booted", help="the state to wait for (default: booted)")
    p.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between checks")
    p.add_argument("--json", action="store_true", help="print the nodes' status as JSON at the end")
    p.set_defaults(handler=cmd_wait, remote=True)
    p = verbs.add_parser("plan", help="the node's boot plan as the server renders it (JSON, no secrets)")
    p.add_argument("name")
    p.set_defaults(handler=cmd_plan, remote=True)
    p = verbs.add_parser("targets", help="booted nodes as a Prometheus file_sd target list (JSON)")
    p.add_argument("--port", type=int, default=9100, help="port to scrape on each node (default 9100)")
    p.add_argument("--output", metavar="FILE", help="write FILE atomically instead of printing")
    p.add_argument("--json", action="store_true", help="print JSON (the default; for symmetry)")
    p.set_defaults(handler=cmd_targets, remote=True)


def cmd_add(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from swarmboot.cli.backend import inventory

    rows = inventory(args, settings).add_nodes(args.names, _spec(args))
    if len(rows) == 1:
        cliutil.show(rows[0], False)
    else:
        print(f"added {len(rows)} nodes: {rows[0]['name']} … {rows[-1]['name']}")


def cmd_set(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from swarmboot.cli.backend import inventory

    inv = inventory(args, settings)
    spec = _spec(args)
    if args.reinstall or args.forget_install:
        names = inv.reinstall(args.names, args.forget_install)
        print(f"{len(names)} node(s) install again at their next boot: {', '.join(names)}")
        if not (spec or args.add_mac or args.remove_mac):
            return
    rows = inv.update_nodes(args.names, spec, args.add_mac, args.remove_mac)
    if len(rows) == 1:
        cliutil.show(rows[0], False)
    else:
        print(f"changed {len(rows)} nodes")


def cmd_show(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from swarmboot.cli.backend import inventory

    cliutil.show(inventory(args, settings).show_node(args.name), args.json)


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    from server import cliutil
    from server.power.console import console
    from server.power.targets import targets

    (target,) = targets(cliutil.database(settings), [args.name])
    print(f"swarmboot: console of {args.name} (IPMI SOL at {target.address}); ~. ends it", flush=True)
    return console(target, settings.ipmi_cipher_suite)


def cmd_list(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from swarmboot.cli.backend import inventory

    rows = inventory(args, settings).list_nodes()
    cliutil.emit_json(rows) if args.json else print(cliutil.table(rows, COLUMNS))


def cmd_rm(args: argparse.Namespace, settings: Settings) -> None:
    from swarmboot.cli.backend import inventory

    names = inventory(args, settings).remove_nodes(args.names)
    print(f"removed {len(names)} node(s)")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def disk_column(install: dict[str, Any] | None) -> str:
    """What `node status` says of a disk-mode node's disk: its installed version, and whether it
    reinstalls ("reinstall needed")."""
    if install is None:
        return "-"
    if install["state"] != "installed":
        return f"{install['state']}, reinstall needed"
    text = f"{install['image']}:{install['version']}"
    if install["reinstall_needed"]:
        waiting = install["policy"] == "manual" and not install["reinstall"]
        text += " reinstall needed" + (" (manual)" if waiting else "")
    return text


def seeded_column(details: dict[str, Any] | None) -> str:
    """What the booted node's seeding service sent to other nodes ("seeding" while it runs; its
    round when it seeded again on demand: the counters are that round's)."""
    seeding = (details or {}).get("seeding") or {}
    if "uploaded" not in seeding:
        return "-"
    text = f"{int(seeding['uploaded']) >> 20} MiB to {len(seeding.get('served') or {})}"
    again = seeding.get("round")
    notes = ([] if seeding.get("stopped") else ["seeding"]) + (
        [f"round {again}"] if isinstance(again, int) and again > 1 else [])
    return text + (f" ({', '.join(notes)})" if notes else "")


def status_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The rows as `node status` shows them, and the summary line."""
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
                "stage": f"{row['stage']} {row['status']}".strip() or "-",
                "message": row["message"] or "-",
                "installed": disk_column(row.get("install")),
                "seeded": seeded_column(row.get("details")),
                "root": row.get("root") or "-",
            }
        )
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return shown, f"{len(rows)} node(s): {summary or 'none'}"


def render_status(rows: list[dict[str, Any]]) -> str:
    from server import cliutil

    shown, summary = status_rows(rows)
    return cliutil.table(shown, STATUS_COLUMNS) + f"\n{summary}"


def _names(args: argparse.Namespace) -> list[str] | None:
    from server.inventory.validate import expand_all

    return expand_all(args.names) if args.names else None


def cmd_status(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from swarmboot.cli.backend import inventory
    from swarmboot.cli.progress import on_terminal

    inv = inventory(args, settings)
    names = _names(args)
    if not args.watch:
        rows = inv.status(names)
        cliutil.emit_json(rows) if args.json else print(render_status(rows))
        return
    if not args.json and on_terminal(sys.stdout):
        _watch_live(inv, names, args)
        return
    shown = 0
    while args.count <= 0 or shown < args.count:
        rows = inv.status(names)
        if args.json:
            cliutil.emit_json(rows)
        else:
            print("\033[H\033[2J" + time.strftime("%H:%M:%S ") + render_status(rows), flush=True)
        shown += 1
        if args.count <= 0 or shown < args.count:
            time.sleep(max(0.2, args.interval))


def _watch_live(inv: Any, names: list[str] | None, args: argparse.Namespace) -> None:
    """A live table redrawn in place (rich), until Ctrl-C or --count redraws."""
    from swarmboot.cli.progress import live_table, status_table

    shown = 0
    with live_table() as live:
        while args.count <= 0 or shown < args.count:
            rows, summary = status_rows(inv.status(names))
            title = f"{time.strftime('%H:%M:%S')}  {summary}"
            live.update(status_table(rows, STATUS_COLUMNS, title), refresh=True)
            shown += 1
            if args.count <= 0 or shown < args.count:
                time.sleep(max(0.2, args.interval))


def cmd_wait(args: argparse.Namespace, settings: Settings) -> int:
    """Until every node named is in --state; 1 when one failed or time ran out (the table says which)."""
    from server import cliutil
    from swarmboot.cli.backend import inventory
    from swarmboot.cli.progress import WaitBar

    inv = inventory(args, settings)
    names = _names(args)
    rows = inv.status(names)
    if not rows:
        raise UsageError("no such nodes", hint="check the names with: swarmboot node list")
    deadline = time.monotonic() + args.timeout
    with WaitBar(f"nodes {args.state}", len(rows)) as bar:
        while True:
            done = sum(1 for r in rows if r["state"] == args.state)
            failed = [r["name"] for r in rows if r["state"] == "failed" and args.state != "failed"]
            bar.update(done, f"{len(failed)} failed" if failed else "")
            if done == len(rows) or failed or time.monotonic() > deadline:
                break
            time.sleep(max(0.2, args.interval))
            rows = inv.status(names)
    if args.json:
        cliutil.emit_json(rows)
    if done == len(rows):
        if not args.json:
            print(f"{done} node(s) {args.state}")
        return 0
    late = [r for r in rows if r["state"] != args.state]
    if not args.json:
        print(render_status(late))
    why = f"{len(failed)} failed" if failed else f"not every node was {args.state} after {args.timeout:.0f} s"
    print(f"swarmboot: {why}", file=sys.stderr)
    return 1


def cmd_plan(args: argparse.Namespace, settings: Settings) -> None:
    """The public part of the node's plan: root mode and its source (root.nfs: the export), image,
    files, scripts. Secrets only ever go to the node, with its boot token."""
    from server import cliutil
    from swarmboot.cli.backend import inventory

    cliutil.emit_json(inventory(args, settings).plan(args.name))


def cmd_targets(args: argparse.Namespace, settings: Settings) -> None:
    import json
    from pathlib import Path

    from ground.store import write_atomic
    from swarmboot.cli.backend import inventory

    targets = inventory(args, settings).targets(args.port)
    text = json.dumps(targets, indent=2) + "\n"
    if args.output:
        write_atomic(Path(args.output), text)
        print(f"wrote {len(targets)} target(s) to {args.output}")
    else:
        sys.stdout.write(text)
