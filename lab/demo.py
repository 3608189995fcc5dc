"""`make demo` (`python -m lab.demo`): the whole job on one machine, as root.

1. builds a small Debian image with `swarmboot image create` and packs it (`swarmboot image pack`:
   the frozen boot agent goes into the initramfs), in a home of its own (default
   /var/lib/swarmboot-demo; kept between runs, so the next demo reuses the image);
2. starts the real server (`swarmboot serve`, with dnsmasq for DHCP/PXE) in a private network
   namespace, on a bridge whose server side is limited to 100 Mbit/s like a real uplink;
3. boots three virtual nodes (QEMU, software emulation) from it: PXE, iPXE, kernel + initramfs,
   the image by BitTorrent from the server and from each other;
4. shows their live status (what `swarmboot node status --watch` shows) until all report booted,
   prints a summary, and removes the network, the processes and the virtual machines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from ground import run as runmod
from ground.errors import SwarmbootError
from lab.lab import LAB_CONSOLE, Lab, LabSpec
from lab.server_process import swarmboot_command
from lab.timeline import BootSummary
from lab.vm import OVMF_CODE, Firmware, mac_for, tcg_note

DEFAULT_HOME = Path("/var/lib/swarmboot-demo")
IMAGE = "demo"
GROUP = "compute"
MiB = 2**20


class DemoError(SwarmbootError):
    """The demo could not run (what is missing is in the message)."""


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, text: str) -> None:
    say(f"\n== {number}. {text}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME,
                        help=f"the demo's SWARMBOOT_HOME (default {DEFAULT_HOME}); its image is reused")
    parser.add_argument("--nodes", type=int, default=3, help="virtual nodes to boot (1-8, default 3)")
    parser.add_argument("--server-rate", default="100mbit",
                        help="limit on what the server sends into the lab ('' for none; default 100mbit)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds to wait for every node to boot")
    parser.add_argument("--remove", action="store_true",
                        help="also delete the demo's home (image, agent) at the end")
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 8:
        parser.error("--nodes must be between 1 and 8")
    return args


def check_host() -> None:
    if os.geteuid() != 0:
        raise DemoError("the demo needs root (network namespaces, QEMU, image building)",
                        hint="run it as root: sudo make demo")
    for tool in ("qemu-system-x86_64", "dnsmasq", "mmdebstrap", "mksquashfs", "ip", "tc"):
        runmod.require_tool(tool)
    if not OVMF_CODE.is_file():
        raise DemoError(f"{OVMF_CODE} is missing", hint="make setup (it installs ovmf)")


def cli(home: Path, *args: str, timeout: float = 3600) -> None:
    """Run a swarmboot command against the demo's home, its output shown as it comes."""
    env = runmod.base_env({"SWARMBOOT_HOME": str(home),
                           "SWARMBOOT_CONFIG": str(home / "demo-uses-no-config-file.toml"),
                           "SWARMBOOT_HOOKS_DIR": str(home / "demo-site-hooks")})
    say("$ swarmboot " + " ".join(args))
    runmod.run([*swarmboot_command(), *args], env=env, capture=False, timeout=timeout)


def build_image(home: Path) -> None:
    if (home / "images" / IMAGE / "rootfs").is_dir():
        say(f"image {IMAGE!r} already built in {home}/images (delete that directory to rebuild it)")
    else:
        cli(home, "image", "create", IMAGE, "--release", "bookworm")
    cli(home, "image", "pack", IMAGE)  # nothing is redone when nothing changed


def fresh_inventory(home: Path) -> None:
    """The demo's inventory is made anew each run (images and the agent are kept)."""
    for path in home.glob("swarmboot.db*"):
        path.unlink()
    shutil.rmtree(home / "dnsmasq", ignore_errors=True)


def firmware_of(index: int) -> Firmware:
    return "uefi" if index == 2 else "bios"  # one node through OVMF, to show both


class StatusView:
    """The nodes' live status: on a terminal, the `swarmboot node status` table redrawn in place;
    otherwise (a log, CI) one line per node whenever its state, stage or download step changes."""

    def __init__(self, started: float, tty: bool) -> None:
        self.started = started
        self.tty = tty
        self.last: dict[str, tuple[Any, ...]] = {}

    def show(self, rows: list[dict[str, Any]]) -> None:
        from swarmboot.cli.node import render_status

        elapsed = time.monotonic() - self.started
        if self.tty:
            print(f"\033[H\033[2J{time.strftime('%H:%M:%S')}  {elapsed:5.0f} s since the nodes powered "
                  f"on\n{render_status(rows)}", flush=True)
            return
        for row in rows:
            progress = row["progress"]
            step_of_download = None if progress is None else int(progress * 4)  # every 25 %
            key = (row["state"], row["stage"], row["status"], step_of_download)
            if self.last.get(row["name"]) == key:
                continue
            self.last[row["name"]] = key
            download = "" if progress is None or row["stage"] != "download" else f" {progress:.0%}"
            say(f"  {elapsed:4.0f} s  {row['name']:<8} {row['state']:<13} {row['stage']} "
                f"{row['status']}{download}".rstrip())


def summary(lab: Lab, names: list[str], rows: dict[str, dict[str, Any]]) -> None:
    from lab.timeline import kernel_clock

    say(f"{'NODE':<9} {'FIRMWARE':<8} {'BOOTED':>8} {'IMAGE':>9} {'DOWNLOAD':>9} {'SWARM':>9} "
        f"{'WEB SEED':>9} {'SEEDED':>8} {'AGENT':>7} {'OWN':>6}")
    for name in names:
        details = rows[name]["details"]
        s = BootSummary.from_report(details)
        booted = lab.timelines[name].seen.get("booted", 0.0)
        say(f"{name:<9} {lab.vms[name].spec.firmware:<8} {booted:>7.0f}s {s.image_bytes / MiB:>6.0f}MiB "
            f"{s.download_seconds:>8.1f}s {s.from_peers / MiB:>6.0f}MiB {s.from_web_seed / MiB:>6.0f}MiB "
            f"{s.seeder_uploaded / MiB:>5.0f}MiB {s.agent_seconds:>6.1f}s {s.agent_own_seconds:>5.1f}s")
        guest = kernel_clock(lab.vms[name].console_text())
        if guest:
            say("          kernel clock: " + ", ".join(f"{k} {v:.1f} s" for k, v in guest.items())
                + f", booted report {s.uptime:.1f} s; root is {s.root_fstype}")
    say("BOOTED: power-on to the node's own `booted` report (firmware, iPXE and TCG emulation included).")
    say("SWARM: BitTorrent bytes (from the server's seeder and from other nodes); WEB SEED: HTTP from the")
    say("server; SEEDED: what the node served others after its download; OWN: the agent minus the transfer.")
    stats = lab.admin("stats")
    for swarm in stats["tracker"]["swarms"].values():
        by_server = sum(p["uploaded"] for p in swarm["peers"] if p["ip"] == lab.spec.server_ip)
        between = swarm["uploaded"] - by_server
        sent = sum(t["uploaded"] for t in stats["seeder"]["torrents"])
        say(f"Swarm: the nodes sent each other {between / MiB:.0f} MiB while downloading (tracker's count); "
            f"the server's seeder sent {sent / MiB:.0f} MiB.")


def run_demo(args: argparse.Namespace) -> int:
    check_host()
    home: Path = args.home
    home.mkdir(parents=True, exist_ok=True)
    step(1, f"Build and pack a small Debian image (home {home})")
    build_image(home)
    fresh_inventory(home)
    workdir = home / "lab-logs"
    shutil.rmtree(workdir, ignore_errors=True)
    spec = LabSpec(home=home, workdir=workdir, server_rate=args.server_rate)
    names = [f"node{i}" for i in range(1, args.nodes + 1)]
    step(2, f"Start the server in a private network namespace ({spec.subnet}, bridge br0)")
    with Lab(spec) as lab:
        lab.add_network("demo")
        lab.cli("group", "add", GROUP, "--image", IMAGE, "--console", LAB_CONSOLE)
        for i, name in enumerate(names, start=1):
            lab.cli("node", "add", name, "--mac", mac_for(i), "--group", GROUP)
        say(f"inventory: network demo {spec.subnet}; group {GROUP} (image {IMAGE}); nodes {', '.join(names)}")
        say(f"server: {lab.start_server()} (HTTP, tracker, seeder, DHCP/PXE on br0"
            + (f"; its link limited to {args.server_rate}" if args.server_rate else "") + ")")
        step(3, f"Power on {len(names)} virtual nodes ({tcg_note()}; a boot takes 2-4 minutes)")
        for i, name in enumerate(names, start=1):
            vm = lab.start_vm(name, mac_for(i), firmware_of(i))
            say(f"{name}: {vm.spec.firmware.upper()}, MAC {vm.spec.mac}, console log {vm.log_path}")
        started = time.monotonic()
        view = StatusView(started, sys.stdout.isatty())
        rows = lab.wait_booted(names, timeout=args.timeout, tick_seconds=2, on_tick=view.show)
        view.show(list(rows.values()))
        step(4, f"All {len(names)} nodes booted in {time.monotonic() - started:.0f} s")
        summary(lab, names, rows)
        step(5, "Clean up: virtual nodes, server, dnsmasq, network namespace")
    say(f"done. Console logs of this run: {workdir}")
    if args.remove:
        shutil.rmtree(home)
        say(f"removed {home}")
    else:
        say(f"The image and the agent stay in {home} for the next demo (remove it with: rm -rf {home}).")
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_demo(args)
    except KeyboardInterrupt:
        say("\ndemo: interrupted; everything it started has been stopped and removed")
        return 130
    except SwarmbootError as error:
        say(f"\ndemo: error: {error}")
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
