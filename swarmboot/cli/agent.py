"""`swarmboot agent …`: the frozen boot agent that goes into every initramfs."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from ground.config import Settings
from swarmboot.cli import add_object


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_object(subparsers, "agent", "freeze the boot agent for the initramfs")
    build = verbs.add_parser(
        "build",
        help="make the agent bundle (PyInstaller onedir) if its sources changed",
        description="Freeze the boot agent with libtorrent, requests and pyudev into "
        "$SWARMBOOT_HOME/agent/bundle; nothing is rebuilt when the sources did not change.",
    )
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.set_defaults(handler=cmd_build)
    show = verbs.add_parser("show", help="print the current bundle's bundle.json")
    show.set_defaults(handler=cmd_show)
    check = verbs.add_parser("check-glibc", help="check that an image tree's glibc can run the bundle")
    check.add_argument("rootfs", type=Path, help="the image's root directory")
    check.set_defaults(handler=cmd_check)


def cmd_build(args: argparse.Namespace, settings: Settings) -> int:
    from builder.agent_bundle import ensure_bundle, read_info

    bundle = ensure_bundle(settings, force=args.force)
    info = read_info(settings.agent_dir)
    size = f"{info.size / 1e6:.1f} MB in {info.files} files, needs glibc >= {info.glibc}" if info else ""
    print(f"agent bundle: {bundle} ({size})")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from builder.agent_bundle import read_info

    info = read_info(settings.agent_dir)
    if info is None:
        print("no agent bundle yet: swarmboot agent build")
        return 1
    print(json.dumps(asdict(info), indent=2))
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from builder.agent_bundle import check_image, ensure_bundle

    print(check_image(ensure_bundle(settings), args.rootfs))
    return 0
