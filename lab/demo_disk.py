"""`make demo-disk` (`python -m lab.demo_disk`): one node installed to its disk, then booted from it.

1. builds and packs the demo image (the same home as `make demo`: it is reused);
2. starts the server in a private network namespace, with a group whose root mode is `disk` and
   whose layout (printed) keeps /data;
3. powers on one virtual node (BIOS) with a blank 4 GiB virtual disk: PXE, the agent plans the
   layout, partitions, formats, writes the image, installs GRUB, and the node comes up from it;
4. power-cycles it: iPXE is told the installed version is current and hands over to the disk
   (`sanboot`); the node reports that / came from its disk;
5. stops the server and power-cycles it once more: the firmware falls through to the disk and
   the node reaches its login prompt without any server.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ground.errors import SwarmbootError
from lab.demo import (
    DEFAULT_HOME,
    IMAGE,
    StatusView,
    _terminate,
    build_image,
    check_host,
    fresh_inventory,
    say,
    step,
)
from lab.lab import LAB_CONSOLE, Lab, LabSpec
from lab.vm import mac_for, tcg_note

GROUP = "stateful"
NODE = "disk1"
LAYOUT = """\
disks: [{name: main, min_size: 3GiB}]          # the smallest disk of at least 3 GiB
partitions:
  - {label: bios, size: 1MiB, kind: bios_grub}  # GRUB's core image (BIOS)
  - {label: esp, size: 64MiB, kind: esp, mountpoint: /boot/efi}
  - {label: cache, size: 640MiB, kind: image-cache}   # the verified image: a reinstall reuses it
  - {label: root, size: 2560MiB, mountpoint: /}
  - {label: data, size: rest, mountpoint: /data, keep: true}   # survives reinstalls
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.demo_disk", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME,
                        help=f"the demo's SWARMBOOT_HOME (default {DEFAULT_HOME}); its image is reused")
    parser.add_argument("--timeout", type=float, default=1500, help="seconds to wait for each boot")
    return parser.parse_args(argv)


def wait_report(lab: Lab, want: str, timeout: float, view: StatusView) -> dict:
    """Wait for the node's next booted report whose `boot` detail is `want` (agent or disk)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (row,) = lab.status([NODE])
        view.show([row])
        if row["state"] == "booted" and row["details"].get("boot") == want:
            return row
        if row["state"] == "failed":
            break
        time.sleep(2)
    raise SwarmbootError(f"{NODE} did not report a boot from {want} within {timeout:.0f} s\n"
                         + lab.evidence([NODE]))


def run_demo(args: argparse.Namespace) -> int:
    check_host()
    home: Path = args.home
    home.mkdir(parents=True, exist_ok=True)
    step(1, f"Build and pack the demo image (home {home})")
    build_image(home)
    fresh_inventory(home)
    workdir = home / "lab-disk-logs"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    layout = workdir / "layout.yaml"
    layout.write_text(LAYOUT)
    disk = workdir / f"{NODE}.img"
    with disk.open("wb") as handle:
        handle.truncate(4 << 30)
    spec = LabSpec(home=home, workdir=workdir, server_rate="")
    step(2, "Start the server with a disk-mode group; its layout:")
    say(LAYOUT.rstrip())
    with Lab(spec) as lab:
        lab.add_network("demo")
        lab.cli("group", "add", GROUP, "--image", IMAGE, "--root", "disk", "--layout", str(layout),
                "--console", LAB_CONSOLE)
        lab.cli("node", "add", NODE, "--mac", mac_for(1), "--group", GROUP)
        say(f"server: {lab.start_server()}")
        step(3, f"Power on {NODE} with a blank 4 GiB disk ({tcg_note()}; the install takes 3-6 minutes)")
        vm = lab.start_vm(NODE, mac_for(1), "bios", disks=(disk,), deadline_s=5400)
        view = StatusView(time.monotonic(), sys.stdout.isatty())
        row = wait_report(lab, "agent", args.timeout, view)
        install = row["details"].get("install", {})
        say(f"installed {install.get('image')} version {install.get('version')} on "
            f"{', '.join(install.get('disks', {}).values())}; kept: "
            + ", ".join(k["label"] for k in install.get("kept", [])))
        split = install.get("timings", {})
        say("install time split: " + ", ".join(f"{k} {v:.1f} s" for k, v in split.items()))
        step(4, f"Power-cycle {NODE}: the server says 'boot your disk' (iPXE sanboot)")
        lab.power_cycle(NODE)
        vm = lab.vms[NODE]
        vm.wait_for(r"booting from the local disk", timeout=300)
        row = wait_report(lab, "disk", args.timeout, view)
        details = row["details"]
        say(f"{NODE} booted from its disk: / is {details['root_fstype']}, up {details['uptime']} s")
        step(5, f"Stop the server, power-cycle {NODE}: it boots from its disk on its own")
        lab.stop_server()
        vm = lab.power_cycle(NODE)
        line = vm.wait_for(r"Command line: (.*)", timeout=600)
        vm.wait_for(r"login: ", timeout=600, start_at=line.end())
        say(f"{NODE} reached its login prompt with no server; kernel command line: {line.group(1)}")
        step(6, "Clean up: the virtual node, server, dnsmasq, network namespace")
    say(f"done. Console logs and the virtual disk: {workdir}")
    return 0


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
