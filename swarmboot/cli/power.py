"""`swarmboot power on|off|cycle|reset|status NODES… [--group G] [--json]`: power control over
IPMI (lanplus), Redfish or Wake-on-LAN (on only), many nodes at once, with a live progress bar and
a summary of what failed and why. BMC credentials come from the inventory and are never shown."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ground.config import Settings

ACTIONS = ("on", "off", "cycle", "reset", "status")
COLUMNS = [("node", "NODE"), ("method", "METHOD"), ("power", "POWER"), ("result", "RESULT")]
BAR = 30


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "power",
        help="power nodes on, off, cycle, reset them or ask their state",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("names", nargs="*", metavar="NODE", help="node names or ranges (node[001-128])")
    p.add_argument("--group", default="", help="every node of this group")
    p.add_argument("--json", action="store_true", help="print JSON (no progress bar)")
    p.add_argument("--concurrency", type=int, help="nodes at once (default: setting power_concurrency)")
    p.add_argument("--timeout", type=float, help="seconds per node (default: setting power_timeout)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_power)


class ProgressBar:
    """One line on stderr, redrawn in place on a terminal; elsewhere a line every second."""

    def __init__(self, action: str, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.action = action
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, failed: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < (0.1 if self.tty else 1.0):
            return
        self.last = now
        filled = BAR * done // max(1, total)
        line = (
            f"power {self.action} [{'#' * filled}{'.' * (BAR - filled)}] {done}/{total} "
            f"({failed} failed) {now - self.started:.1f} s"
        )
        self.stream.write(("\r" + line + ("\n" if done == total else "")) if self.tty else line + "\n")
        self.stream.flush()


def summary(results: list[dict[str, Any]], seconds: float) -> str:
    from server import cliutil

    rows = [
        {**r, "power": r["power"] or "-", "result": "ok" if r["ok"] else f"FAILED: {r['message']}"}
        for r in results
    ]
    failed = [r for r in results if not r["ok"]]
    lines = [
        cliutil.table(rows, COLUMNS),
        f"{len(results)} node(s) in {seconds:.1f} s: {len(results) - len(failed)} ok, {len(failed)} failed",
    ]
    if failed:
        reasons: dict[str, list[str]] = {}
        for r in failed:
            reasons.setdefault(r["message"], []).append(r["node"])
        lines.append("failures:")
        for message, nodes in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(nodes[:8]) + (f" and {len(nodes) - 8} more" if len(nodes) > 8 else "")
            lines.append(f"  {len(nodes)} x {message}: {shown}")
    on = sum(1 for r in results if r["power"] == "on")
    off = sum(1 for r in results if r["power"] == "off")
    if on or off:
        lines.append(f"power: {on} on, {off} off")
    return "\n".join(lines)


def cmd_power(args: argparse.Namespace, settings: Settings) -> int:
    from server import cliutil
    from server.power.base import Action
    from server.power.runner import RunOptions, run_all
    from server.power.targets import targets

    chosen = targets(cliutil.database(settings), args.names, args.group)
    options = RunOptions(
        concurrency=args.concurrency or settings.power_concurrency,
        timeout=args.timeout or float(settings.power_timeout),
        ipmi_client=settings.ipmi_client,
        ipmi_cipher_suite=settings.ipmi_cipher_suite,
        redfish_verify_tls=settings.redfish_verify_tls,
    )
    bar = None if args.json or args.quiet else ProgressBar(args.action)
    start = time.monotonic()
    results = [r.to_dict() for r in run_all(chosen, Action(args.action), options, bar)]
    seconds = time.monotonic() - start
    if args.json:
        cliutil.emit_json(
            {
                "action": args.action,
                "seconds": round(seconds, 3),
                "concurrency": options.concurrency,
                "results": results,
            }
        )
    else:
        print(summary(results, seconds))
    return 0 if all(r["ok"] for r in results) else 1
