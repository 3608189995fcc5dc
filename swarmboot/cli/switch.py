"""`swarmboot switch add|set|show|list|rm|ports`: switches (the tracker prefers peers on the same
one; nodes defined by `--switch S --port P` are named by the port they are plugged into)."""

from __future__ import annotations

import argparse
from typing import Any

from ground.config import Settings
from swarmboot.cli import add_object
from swarmboot.cli.inventory_verbs import add_read_verbs, add_save_verbs

COLUMNS = [("name", "NAME"), ("address", "ADDRESS"), ("snmp_version", "SNMP"), ("description", "DESCRIPTION")]
PORT_COLUMNS = [
    ("port", "PORT"),
    ("mac", "MAC"),
    ("node", "NODE"),
    ("claimed_by", "CLAIMED BY"),
    ("source", "SEEN BY"),
    ("seen", "SEEN"),
]
SNMP_OPTIONS = ("version", "address", "community", "user", "context")


def _options(parser: argparse.ArgumentParser, adding: bool) -> None:
    parser.add_argument("--address", help="management address")
    parser.add_argument("--description", help="free text (location, model)")
    parser.add_argument("--chassis-id", help="the chassis ID its LLDP frames carry (often its MAC)")
    parser.add_argument(
        "--snmp-version", choices=("2c", "3", ""), help="read its forwarding table over SNMP ('' off)"
    )
    parser.add_argument("--snmp-address", help="SNMP agent HOST[:PORT] (default: --address, port 161)")
    parser.add_argument("--snmp-community", help="v2c community")
    parser.add_argument("--snmp-user", help="v3 user")
    parser.add_argument("--snmp-context", help="v3 context name (default: none)")
    parser.add_argument(
        "--snmp-auth", metavar="PROTOCOL:KEY", help="v3 authentication, e.g. sha:KEY (md5, sha, sha256…)"
    )
    parser.add_argument(
        "--snmp-priv", metavar="PROTOCOL:KEY", help="v3 privacy, e.g. aes:KEY (des, aes, aes256…)"
    )


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec = {
        k: getattr(args, k) for k in ("address", "description", "chassis_id") if getattr(args, k) is not None
    }
    snmp = {k: getattr(args, f"snmp_{k}") for k in SNMP_OPTIONS if getattr(args, f"snmp_{k}") is not None}
    for kind in ("auth", "priv"):
        value = getattr(args, f"snmp_{kind}")
        if value is not None:
            protocol, _, key = value.partition(":")
            snmp[f"{kind}_protocol"], snmp[f"{kind}_key"] = protocol.lower(), key
    if snmp:
        spec["snmp"] = snmp
    return spec


def _table_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        row["snmp_version"] = (row.get("snmp") or {}).get("version", "")


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_object(subparsers, "switch", "network switches nodes are plugged into")
    add_save_verbs(verbs, "switch", _options, _spec)
    add_read_verbs(verbs, "switch", "switches", COLUMNS, table_rows=_table_rows)
    p = verbs.add_parser(
        "ports", help="what the switch sees on its ports now (SNMP) and what agents reported (LLDP)"
    )
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-read", action="store_true", help="do not read the switch now: what is recorded")
    p.set_defaults(handler=cmd_ports)


def cmd_ports(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil
    from server.switches.ports import port_report

    report = port_report(
        cliutil.database(settings), args.name, read=not args.no_read, timeout=float(settings.snmp_timeout)
    )
    if args.json:
        cliutil.emit_json(report)
        return
    print(cliutil.table(report["ports"], PORT_COLUMNS))
    summary = f"{len(report['ports'])} MAC(s) on switch {report['switch']}"
    if report["error"]:
        summary += f"; reading it failed: {report['error']}"
    print(summary)
