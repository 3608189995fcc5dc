"""The frozen agent's command line (`swarmboot-agent`), also `python -m bootagent`.

swarmboot-agent [boot]            boot this node (the dracut pre-mount hook runs this)
swarmboot-agent seed …            keep seeding the verified image (started by the agent)
swarmboot-agent boot-files …      serve the boot files while the node boots (started by the agent)
swarmboot-agent self-test         import libtorrent, http.client, pyudev, pyparted; print versions, timings
swarmboot-agent disks             the disks the disk mode sees, with their partitions (JSON)
swarmboot-agent cmdline [FILE]    parse a kernel command line (default /proc/cmdline), print it
swarmboot-agent --version
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ground import __version__
from ground.errors import SwarmbootError


def self_test() -> dict[str, object]:
    """Import what the agent needs and open a libtorrent session; return versions and timings."""
    from bootagent.libs import ensure_find_library

    ensure_find_library()
    timings: dict[str, float] = {}
    versions: dict[str, str] = {}
    for name in ("http.client", "pyudev", "libtorrent", "ssl"):
        start = time.perf_counter()
        module = importlib.import_module(name)
        timings[name] = round(time.perf_counter() - start, 4)
        version = getattr(module, "__version__", getattr(module, "OPENSSL_VERSION", ""))
        versions[name] = str(version or sys.version.split()[0])  # the stdlib's: Python's
    import libtorrent as lt
    import pyudev

    from bootagent import lan_tuning
    from bootagent.network import list_nics

    start = time.perf_counter()
    nics = [f"{n.name} {n.mac}" for n in list_nics()]  # from sysfs
    timings["nics"] = round(time.perf_counter() - start, 4)
    start = time.perf_counter()
    list(pyudev.Context().list_devices(subsystem="block"))  # libudev (the disk mode's discovery)
    timings["pyudev_block"] = round(time.perf_counter() - start, 4)

    start = time.perf_counter()
    session = lt.session(lan_tuning.session_settings("node", "127.0.0.1:0"))
    del session
    timings["libtorrent_session"] = round(time.perf_counter() - start, 4)
    start = time.perf_counter()
    versions["parted"] = parted_round_trip()
    timings["parted_gpt"] = round(time.perf_counter() - start, 4)
    return {
        "agent": __version__,
        "python": sys.version.split()[0],
        "versions": versions,
        "nics": nics,
        "seconds": timings,
    }


def parted_round_trip() -> str:
    """Write a GPT with one partition into a sparse file with pyparted and read it back (what the
    disk mode does to a disk); return libparted's version."""
    import tempfile

    import parted

    with tempfile.NamedTemporaryFile(suffix=".img") as handle:
        handle.truncate(8 << 20)
        device = parted.getDevice(handle.name)
        disk = parted.freshDisk(device, "gpt")
        geometry = parted.Geometry(device=device, start=2048, length=4096)
        part = parted.Partition(disk=disk, type=parted.PARTITION_NORMAL, geometry=geometry)
        disk.addPartition(part, constraint=parted.Constraint(exactGeom=geometry))
        part.set_name("self-test")
        disk.commitToDevice()
        again = parted.newDisk(parted.getDevice(handle.name))
        if [p.name for p in again.partitions] != ["self-test"]:
            raise RuntimeError("pyparted did not read back the partition it wrote")
    return str(parted.version()["libparted"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swarmboot-agent", description="the swarmboot boot agent")
    parser.add_argument("--version", action="version", version=f"swarmboot-agent {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("boot", help="boot this node (default)")
    seed = sub.add_parser("seed", help="seed a verified image until stopped")
    seed.add_argument("--handover", type=Path, help="seed after boot: the agent's seed-handover.json")
    seed.add_argument("--torrent", type=Path)
    seed.add_argument("--dir", type=Path)
    seed.add_argument("--sha256")
    seed.add_argument("--listen", default="0.0.0.0:6881")
    seed.add_argument("--status", type=Path)
    seed.add_argument("--max-seconds", type=float, default=4 * 3600)
    files = sub.add_parser("boot-files", help="serve the boot files while the node boots (by the agent)")
    files.add_argument("--servers", required=True, help="the server URLs, comma-separated")
    files.add_argument("--node", required=True)
    files.add_argument("--dir", type=Path, required=True)
    files.add_argument("--events-url", default="", help="the plan's events URL (the token: SWARMBOOT_TOKEN)")
    files.add_argument("--image", default="")
    files.add_argument("--version", type=int, default=0)
    sub.add_parser("self-test", help="import the agent's libraries and print versions")
    sub.add_parser("disks", help="the disks the disk mode sees (JSON)")
    parse = sub.add_parser("cmdline", help="parse a kernel command line and print the agent's arguments")
    parse.add_argument("file", type=Path, nargs="?", default=Path("/proc/cmdline"))
    return parser


def end_now(code: int) -> None:
    """Exit without the interpreter's teardown (every module and object freed, libtorrent's
    among them: ~0.5 s of a TCG guest before dracut goes on). What must be written is: the
    console and the log are opened per message, the reporter is closed, the seeder is its own
    process."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "boot"
    if command == "boot":
        from bootagent.main import main as boot_main

        code = boot_main()
        if getattr(sys, "frozen", False):  # the initramfs: dracut waits for this process to end
            end_now(code)
        return code
    if command == "seed":
        from bootagent.seeder import seed_after_boot, seed_main

        if args.handover is not None:
            return seed_after_boot(args.handover)
        missing = [f"--{n}" for n in ("torrent", "dir", "sha256", "status") if getattr(args, n) is None]
        if missing:
            build_parser().error(f"seed needs --handover, or {', '.join(missing)}")
        return seed_main(
            args.torrent, args.dir, args.sha256, args.listen, args.status, max_seconds=args.max_seconds
        )
    if command == "boot-files":
        from bootagent.boot_files import serve_while_booting_main

        return serve_while_booting_main(
            tuple(u for u in args.servers.split(",") if u), args.node, args.dir, args.events_url,
            image=args.image, version=args.version,
        )
    if command == "self-test":
        print(json.dumps(self_test(), indent=2))
        return 0
    if command == "disks":
        from bootagent.disk.discovery import list_disks

        print(json.dumps([asdict(d) for d in list_disks()], indent=2))
        return 0
    from ground.contract.cmdline import read_cmdline

    try:
        print(json.dumps(asdict(read_cmdline(args.file)), indent=2))
    except SwarmbootError as exc:
        print(f"swarmboot-agent: {exc}", file=sys.stderr)
        return 2
    return 0
