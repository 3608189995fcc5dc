"""`swarmboot dnsmasq config [--interface IFACE] [--output FILE] [--check]`: DHCP/TFTP configuration."""

from __future__ import annotations

import argparse
import sys

from ground.config import Settings
from swarmboot.cli import add_object


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_object(
        subparsers, "dnsmasq", "dnsmasq (DHCP + TFTP for PXE) configuration from the inventory"
    )
    p = verbs.add_parser("config", help="write the configuration and hosts file (print it with --output -)")
    p.add_argument("--interface", help="interface to serve (default: the dhcp_interface setting)")
    p.add_argument("--listen-address", default="", help="also bind this address (listen-address=)")
    p.add_argument("--server-url", help="URL iPXE chains to (default: the server_url setting)")
    p.add_argument("--output", help="'-' prints the configuration instead of writing it")
    p.add_argument("--check", action="store_true", help="run `dnsmasq --test` on the result")
    p.set_defaults(handler=cmd_config)


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    from server import cliutil, dnsmasq

    db = cliutil.database(settings)
    interface = args.interface or settings.dhcp_interface
    url = (args.server_url or settings.effective_server_url).rstrip("/")
    if args.output == "-":
        sys.stdout.write(dnsmasq.render_conf(settings, db, url, interface, args.listen_address))
        return 0
    paths = dnsmasq.write(settings, db, url, interface, args.listen_address)
    print(f"wrote {paths.conf} and {paths.hosts}")
    if args.check:
        print(dnsmasq.check(paths.conf))
    print(f"run it with: dnsmasq --keep-in-foreground --conf-file={paths.conf}")
    return 0
