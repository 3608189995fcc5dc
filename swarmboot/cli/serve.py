"""`swarmboot serve [--listen HOST:PORT] [--dhcp-interface IFACE]`: run the provisioning server."""

from __future__ import annotations

import argparse

from ground.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the provisioning server (HTTP API, iPXE, tracker, seeder, optional DHCP/TFTP)",
        description="Run the provisioning server: iPXE scripts, boot plans, image files, the BitTorrent "
        "tracker and seeder, node events; with --dhcp-interface also dnsmasq (DHCP + TFTP for PXE).",
    )
    p.add_argument("--listen", help="HOST:PORT to listen on (default: the 'listen' setting; port 0: any)")
    p.add_argument("--dhcp-interface", help="run dnsmasq for DHCP/TFTP on this interface")
    p.add_argument("--no-seeder", action="store_true", help="do not seed images (HTTP web seed only)")
    p.add_argument("--no-nfs", action="store_true",
                   help="do not export NFS roots (nodes of groups in nfs mode cannot boot from this server)")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from server.serve import serve

    serve(
        settings,
        args.listen or settings.listen,
        args.dhcp_interface or settings.dhcp_interface,
        seeder=not args.no_seeder,
        nfs=not args.no_nfs,
    )
