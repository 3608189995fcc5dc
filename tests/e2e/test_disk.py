"""The disk root mode end to end: QEMU nodes with raw virtual disks PXE-boot from the lab's server,
the agent plans the group's layout against the blank disk, partitions, formats, writes the image,
installs GRUB and switches into the installed root; after that the nodes boot from their disks
(through iPXE's local boot, or on their own when the server is down), reinstall a newer version
keeping /data, and take an unchanged image from the disk's cache.

What is checked comes from the booted system's own report (`boot`: agent or disk) and from the
virtual disks read on the host (tests/helpers/disk.py: sfdisk, a read-only mount at the
partition's offset), never from the agent's word alone. One BIOS node goes through most steps in
sequence; the UEFI node, RAID1 and the cache variant too, all `full` (make test-full): the agent
crashed in libtorrent (SIGSEGV at checking_resume_data, on the kept cache partition) in 1 of 2
runs of the reinstall in an earlier stop (not seen since, not explained), and a crash reboots the
node, which ends the lab's QEMU."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.disk import mounted, partitions, sha256_of, sparse_disk
from tests.helpers.e2e import FIGURES, MARKER, E2ELab, next_boot, wait_row

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(2400)]
GiB = 1 << 30
BOOT_TIMEOUT = 900  # an install under TCG: PXE, the download, mkfs, the image write, GRUB
DISK_BOOT_TIMEOUT = 420


def new_boot(lab: E2ELab, name: str, timeout: float = BOOT_TIMEOUT, **want: Any) -> dict[str, Any]:
    """After a power cycle: the node's next booted report, with these details."""
    next_boot(lab, name, timeout)
    return booted(lab, name, timeout, **want)


def booted(lab: E2ELab, name: str, timeout: float = BOOT_TIMEOUT, **want: Any) -> dict[str, Any]:
    rows = lab.lab.wait_booted([name], timeout=timeout)
    row = rows[name]
    evidence = lab.lab.evidence([name], rows)
    for key, value in want.items():
        got = row["version"] if key == "version" else row["details"].get(key)
        assert got == value, f"{name}: {key} is {got!r}, not {value!r}\n{evidence}"
    return row


def precious(disk: Path) -> tuple[str, str, str]:
    """(sha256 of /data/precious, what the post script left on /, the version marker on /)."""
    with mounted(disk, "data") as data:
        digest = hashlib.sha256((data / "precious").read_bytes()).hexdigest()
    with mounted(disk, "root") as root:
        post = (root / "etc/swarmboot-post-ran").read_text().strip()
        marker = (root / MARKER).read_text().strip() if (root / MARKER).exists() else ""
    return digest, post, marker


def figure_install(name: str, row: dict[str, Any]) -> dict[str, Any]:
    install = row["details"].get("install") or {}
    timings = install.get("timings", {})
    stages = (row["details"].get("agent") or {}).get("stages", {})
    FIGURES.append(
        f"{name} disk install ({install.get('firmware')}): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        + f"; agent stages {stages}; image from cache: {install.get('image_from_cache')}"
    )
    return install


@pytest.mark.full  # the frozen agent crashed in libtorrent (SIGSEGV) in 1 of 2 runs of the reinstall
def test_a_bios_node_installs_boots_from_disk_without_the_server_and_reinstalls_keeping_data(
    lab: E2ELab,
) -> None:
    the_lab, v1, v2 = lab.lab, lab.images.squashfs.version, lab.images.tar.version
    disk = sparse_disk(lab.workdir / "d1.img", 4 * GiB)
    small = sparse_disk(lab.workdir / "d3.img", 3 * GiB + 100 * (1 << 20))
    small_before = sha256_of(small)
    vm = the_lab.start_vm("d1", lab.mac("d1"), "bios", disks=(disk,), deadline_s=3000)
    small_vm = the_lab.start_vm("d3", lab.mac("d3"), "bios", disks=(small,), deadline_s=1200)

    # d3: its disk is too small for the layout: the plan is refused, nothing is written, rescue shell
    failed = small_vm.wait_for(r"stage 'part' failed \(attempt 1 of 3\): (.*)", timeout=BOOT_TIMEOUT)
    assert "is too small" in failed.group(1), failed.group(0)
    hint = small_vm.wait_for(r"what to check: (.*)", timeout=30, start_at=failed.end())
    assert "bigger disk" in hint.group(1)
    small_vm.wait_for(r"swarmboot# ", timeout=120, start_at=failed.end())
    (row3,) = the_lab.status(["d3"])
    assert row3["state"] in ("rescue", "failed") and row3["install"]["reinstall_needed"], row3
    the_lab.stop_vm("d3")
    assert sha256_of(small) == small_before, "the refused install wrote to the disk"

    # d1: a blank disk installed; the agent switches straight into the installed root
    row = booted(lab, "d1", root_fstype="ext4", boot="agent", version=v1)
    install = figure_install("d1", row)
    assert row["install"]["state"] == "installed" and row["install"]["version"] == v1, row["install"]
    assert {k["label"] for k in install["kept"]} == {"cache", "data"}
    table = partitions(disk)
    assert list(table) == ["bios", "esp", "cache", "root", "data"], table
    the_lab.stop_vm("d1")
    data_sha, post, marker = precious(disk)
    assert post == f"d1 {v1}" and marker == "", (post, marker)  # the post script ran in the installed root

    # the server is down: the firmware falls through from PXE to the disk, GRUB boots the install
    the_lab.stop_server()
    try:
        vm = the_lab.power_cycle("d1")
        line = vm.wait_for(r"Command line: (.*)", timeout=DISK_BOOT_TIMEOUT)
        assert "root=UUID=" in line.group(1) and "root=swarmboot" not in line.group(1), line.group(0)
        vm.wait_for(r"login: ", timeout=DISK_BOOT_TIMEOUT, start_at=line.end())
    finally:
        the_lab.start_server()
    # its report, retried until the server is back, says so (/ from the disk, not from the agent)
    row = wait_row(lab, "d1", lambda r: r["details"].get("boot") == "disk", 120, "the disk boot's report")
    assert row["details"]["root_fstype"] == "ext4" and row["version"] == v1
    FIGURES.append(
        f"d1 booted from its disk with the server down: report at uptime {row['details']['uptime']} s"
    )

    # a newer version: the node reinstalls (iPXE sends it to the agent), /data is kept
    the_lab.cli("group", "set", "disk", "--image-version", str(v2))
    (status,) = the_lab.status(["d1"])
    assert status["install"]["reinstall_needed"], status
    the_lab.power_cycle("d1")
    row = new_boot(lab, "d1", root_fstype="ext4", boot="agent", version=v2)
    install = figure_install("d1", row)
    assert install["version"] == v2 and not install["image_from_cache"]
    the_lab.stop_vm("d1")
    data_sha2, post2, marker2 = precious(disk)
    assert data_sha2 == data_sha, "the kept /data changed across the reinstall"
    assert (post2, marker2) == (f"d1 {v2}", "2"), "version 2's content is not on /"
    assert partitions(disk)["data"]["offset"] == table["data"]["offset"]


@pytest.mark.full
def test_a_uefi_node_boots_its_disk_through_ipxe_exit_and_reinstalls_from_its_cache(lab: E2ELab) -> None:
    the_lab, v1 = lab.lab, lab.images.squashfs.version
    disk = sparse_disk(lab.workdir / "d2.img", 4 * GiB)
    the_lab.start_vm("d2", lab.mac("d2"), "uefi", disks=(disk,), deadline_s=3000)
    row = booted(lab, "d2", root_fstype="ext4", boot="agent", version=v1)
    install = figure_install("d2", row)
    assert install["firmware"] == "uefi" and install["bootloader"].get("removable")
    the_lab.power_cycle("d2")  # the server is up: its script says `exit`, the firmware boots the disk
    row = new_boot(lab, "d2", DISK_BOOT_TIMEOUT, boot="disk", version=v1)
    console = the_lab.vms["d2"].console_text()
    assert "leaving iPXE for the next boot device" in console, the_lab.evidence(["d2"])
    the_lab.cli("node", "set", "d2", "--reinstall")
    the_lab.power_cycle("d2")
    row = new_boot(lab, "d2", boot="agent", version=v1)
    install = figure_install("d2", row)
    assert install["image_from_cache"] and row["details"]["download"]["reused"], row["details"]["download"]
    the_lab.stop_vm("d2")


@pytest.mark.full
def test_raid1_on_two_disks_boots_with_one_disk_removed(lab: E2ELab) -> None:
    the_lab = lab.lab
    a = sparse_disk(lab.workdir / "d4a.img", 3 * GiB)
    b = sparse_disk(lab.workdir / "d4b.img", 3 * GiB)
    the_lab.start_vm("d4", lab.mac("d4"), "bios", disks=(a, b), deadline_s=3000)
    row = booted(lab, "d4", root_fstype="ext4", boot="agent")
    figure_install("d4", row)
    assert [p["type"] for p in partitions(a).values()] == [p["type"] for p in partitions(b).values()]
    the_lab.power_cycle("d4", disks=(b,))  # the first disk pulled: the second boots alone
    row = new_boot(lab, "d4", DISK_BOOT_TIMEOUT, boot="disk")
    console = the_lab.vms["d4"].console_text()
    assert "raid1" in console and "1 out of 2 mirrors" in console, the_lab.evidence(["d4"])
    the_lab.stop_vm("d4")
