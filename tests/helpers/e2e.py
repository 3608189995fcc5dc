"""What the end-to-end tests share (tests/e2e/): the inventory of the virtual cluster, the
images and lab the fixtures give, and the measured figures printed at the end of the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ground.config import Settings
from ground.store import Manifest
from lab.lab import Lab
from lab.vm import Firmware, mac_for

FIGURES: list[str] = []
IMAGE = "e2e"
# Every wait in the initramfs is bounded; a failed boot must not sit in a rescue shell for an hour.
GROUP_ARGS = "swarmboot.rescue_timeout=300"
DEAD_SERVER_ARGS = "swarmboot.server=http://{ip}:9 swarmboot.plan_timeout=15 swarmboot.rescue_timeout=120"
NODES: dict[str, tuple[int, str, Firmware]] = {  # name: (index for the MAC, group, firmware)
    "n1": (1, "overlay", "bios"),
    "n2": (2, "overlay", "uefi"),
    "n3": (3, "tmpfs", "bios"),
    "n4": (4, "overlay", "bios"),
}


@dataclass
class E2EImages:
    settings: Settings
    squashfs: Manifest
    tar: Manifest
    bundle_size: int
    bundle_libtorrent: str


@dataclass
class E2ELab:
    lab: Lab
    images: E2EImages
    ssh_key: Path

    def mac(self, node: str) -> str:
        return mac_for(NODES[node][0])

    def firmware(self, node: str) -> Firmware:
        return NODES[node][2]
