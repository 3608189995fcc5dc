"""What the end-to-end tests share (tests/e2e/): the inventory of the virtual cluster, the
images and lab the fixtures give, and the measured figures printed at the end of the run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ground.config import Settings
from ground.store import Manifest
from lab.lab import Lab, LabError
from lab.vm import Firmware, mac_for

FIGURES: list[str] = []
IMAGE = "e2e"
GRAB_PACKAGES = ("openssh-server", "rsync")  # the e2e image's additions: a node `image grab` can take
GRAB_DEADLINE = 3600.0  # n1's VM: booted in test_boot.py, grabbed in test_grab.py
# Every wait in the initramfs is bounded; a failed boot must not sit in a rescue shell for an hour.
GROUP_ARGS = "swarmboot.rescue_timeout=300"
DEAD_SERVER_ARGS = "swarmboot.server=http://{ip}:9 swarmboot.plan_timeout=15 swarmboot.rescue_timeout=120"
NODES: dict[str, tuple[int, str, Firmware]] = {  # name: (index for the MAC, group, firmware)
    "n1": (1, "overlay", "bios"),
    "n2": (2, "overlay", "uefi"),
    "n3": (3, "tmpfs", "bios"),
    "n4": (4, "overlay", "bios"),
    "n7": (7, "overlay", "bios"),  # boots after n1 and n2: pieces from their seeding after boot
    # the nfs root mode (tests/e2e/test_nfs.py)
    "n5": (5, "nfs", "bios"),
    "n6": (6, "nfs", "uefi"),
    # the disk mode (tests/e2e/test_disk.py)
    "d1": (11, "disk", "bios"),
    "d2": (12, "disk-uefi", "uefi"),
    "d3": (13, "disk", "bios"),  # a disk too small for the layout
    "d4": (14, "raid", "bios"),
}
MARKER = "etc/swarmboot-e2e-version"  # in version 2 (tar.zst) only: a newer version's content on /
# The disk layout of the e2e groups: a BIOS boot and an EFI system partition (either firmware), the
# image cache, the root, and a kept /data that takes the rest.
DISK_LAYOUT = """\
disks: [{name: main, min_size: 3GiB}]
partitions:
  - {label: bios, size: 1MiB, kind: bios_grub}
  - {label: esp, size: 64MiB, kind: esp, mountpoint: /boot/efi}
  - {label: cache, size: 640MiB, kind: image-cache}
  - {label: root, size: 2560MiB, mountpoint: /}
  - {label: data, size: rest, mountpoint: /data, keep: true}
"""
RAID_LAYOUT = """\
disks: [{name: a, path: /dev/vda}, {name: b, path: /dev/vdb}]
partitions:
  - {label: bios, size: 1MiB, kind: bios_grub}
  - {label: root, size: rest, mountpoint: /, raid: md-root}
raid: [{name: md-root, disks: [a, b]}]
"""
# The post script runs inside the installed root: it writes the node's precious file on /data once
# (kept partitions survive reinstalls) and says which version it ran for.
DISK_POST = """\
#!/bin/sh
set -e
if [ -d /data ] && ! [ -s /data/precious ]; then  # the RAID1 layout has no /data
  head -c 1048576 /dev/urandom > /data/precious
fi
echo "$SWARMBOOT_NODE $SWARMBOOT_IMAGE_VERSION" > /etc/swarmboot-post-ran
"""
DISK_ARGS = GROUP_ARGS + " rd.retry=20"  # a degraded RAID1 is started after rd.retry*2/3 s
# The nfs group's post script (in the initramfs, before switch_root): a unit of the booted system
# that writes a file on / (it must land in the overlay's RAM layer), lists (n5 only) what the boot
# read from the export (the page cache of its files: bench/nfs_root.py replays it), then every 2 s
# drops the page cache and reads two files from the NFS root again, and says so on the console.
NFS_POST = """\
#!/bin/sh
set -e
cat > "$SYSROOT/etc/systemd/system/nfs-probe.service" <<'UNIT'
[Unit]
Description=swarmboot e2e: read the NFS root every 2 s, say so on the console
After=multi-user.target serial-getty@ttyS0.service
[Service]
ExecStart=/usr/local/sbin/nfs-probe
[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$SYSROOT/etc/systemd/system/multi-user.target.wants" "$SYSROOT/usr/local/sbin"
ln -sf ../nfs-probe.service "$SYSROOT/etc/systemd/system/multi-user.target.wants/nfs-probe.service"
cat > "$SYSROOT/usr/local/sbin/nfs-probe" <<'PROBE'
#!/bin/sh
echo "written on $(hostname)" > /root/written-on-node
where=$(stat -f -c %T /run/swarmboot/mnt/rw/upper/root/written-on-node 2>/dev/null || echo missing)
echo "nfs-probe written: upper=$where su=$(stat -c %a /usr/bin/su)" > /dev/ttyS0
if [ "$(hostname)" = n5 ]; then  # what the boot read from NFS: the page cache of the export's files
  # Into a file first, then line by line to the console: a pipeline writing to ttyS0 lost the whole
  # list (fincore: write error), most likely serial-getty's vhangup() of the tty (EIO on an fd
  # opened before it); each line opening the console anew got all of it.
  lower=/run/swarmboot/mnt/lower
  mountpoint -q "$lower" || lower=/
  cd "$lower"
  find . -xdev -type f -size +0 -not -path './usr/share/doc/*' -not -path './usr/share/man/*' \
      -not -path './usr/share/locale/*' -print0 \
      | xargs -0 fincore --bytes --noheadings --raw --output RES,FILE \
      > /run/boot-read.txt 2>/run/fincore.err || true
  cd /
  n=0
  while read -r res path; do
    [ "$res" -gt 0 ] 2>/dev/null || continue
    echo "nfs-boot-read: $res ${path#./}" > /dev/ttyS0
    n=$((n + 1))
  done < /run/boot-read.txt
  echo "nfs-boot-read done: files=$n lower=$lower errors=$(wc -l < /run/fincore.err)" \
       "$(head -c 200 /run/fincore.err | tr -s '\\n' ' ')" > /dev/ttyS0
fi
i=0
while [ $i -lt 900 ]; do
  echo 3 > /proc/sys/vm/drop_caches
  sum=$(cat /usr/lib/x86_64-linux-gnu/libc.so.6 /usr/bin/bash | sha256sum | cut -c1-12)
  read -r up _ < /proc/uptime
  echo "nfs-probe $i up=$up sum=$sum" > /dev/ttyS0
  i=$((i + 1))
  sleep 2
done
PROBE
chmod 755 "$SYSROOT/usr/local/sbin/nfs-probe"
"""
PORT_NAMED = "n1"  # defined by its switch port only (no MAC): named by the port at its first boot


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
    workdir: Path = Path()

    def mac(self, node: str) -> str:
        return mac_for(NODES[node][0])

    def firmware(self, node: str) -> Firmware:
        return NODES[node][2]


def wait_row(
    lab: E2ELab, name: str, want: Callable[[dict[str, Any]], bool], timeout: float, what: str
) -> dict[str, Any]:
    """Poll `node status` until the node's row satisfies `want`; a reported failure ends it early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (row,) = lab.lab.status([name])
        if want(row):
            return row
        if row["state"] == "failed":
            break
        time.sleep(1)
    raise LabError(f"node {name}: {what} did not happen within {timeout:.0f} s\n" + lab.lab.evidence([name]))


def next_boot(lab: E2ELab, name: str, timeout: float) -> dict[str, Any]:
    """After a power cycle: wait until the node left `booted` (its iPXE event), then for its next
    booted report."""
    wait_row(lab, name, lambda r: r["state"] != "booted", 180, "a new boot (the iPXE request)")
    return lab.lab.wait_booted([name], timeout=timeout)[name]


# The side-by-side baseline of the initramfs's own time (issue 12, part 6): the same dracut as
# pack's (builder/initramfs.py DRACUT_OPTIONS: no-hostonly, network-legacy, zstd -3) plus its
# `network` module (net-lib and the NIC drivers, which our module pulls in), with dracut's stock
# module set, none of ours and none of our omits, except dracut's systemd initrd: the classic
# shell init, like ours (the systemd initrd's console lines carry no kernel-clock stamps).
STOCK_DRACUT_OMIT = "systemd systemd-initrd dracut-systemd"


def stock_dracut_initramfs(rootfs: Path, kernel_version: str, output: Path) -> None:
    """Build the baseline initramfs with dracut inside the image tree."""
    from builder.chroot import ChrootSpec, run_in_image
    from builder.initramfs import DRACUT_OPTIONS, OUT_INSIDE

    binds = ((output.parent.resolve(), OUT_INSIDE),)
    spec = ChrootSpec(root=rootfs, kernel_version=kernel_version, binds=binds)
    argv = ["dracut", *DRACUT_OPTIONS, "--add", "network", "--omit", STOCK_DRACUT_OMIT,
            "--kver", kernel_version, f"{OUT_INSIDE}/{output.name}"]
    result = run_in_image(spec, argv, timeout=1800, stderr=-2, check=False)
    if result.returncode != 0:
        raise AssertionError(f"the stock dracut failed ({result.returncode}):\n{result.stdout[-3000:]}")


def stock_command_line(ours: str, static: bool = False) -> str:
    """Our node's kernel command line with the root on the local disk (the image's squashfs as a
    virtio disk) instead of root=swarmboot, and the network from dracut: DHCP (`ip=dhcp
    rd.neednet=1`, what ours ran before it took iPXE's address) or, `static`, the address ours
    took from iPXE (`swarmboot.ip`) as dracut's static `ip=` on the kernel's name for the NIC (no
    .link files in the stock initramfs: eth0). The same console and everything else, minus the
    agent's own arguments."""
    ours_only = ("swarmboot.", "root=", "initrd=", "BOOT_IMAGE=", "ip=", "rd.neednet=")
    kept = [a for a in ours.split() if not a.startswith(ours_only)]
    network = "ip=dhcp"
    if static:
        given = next(a for a in ours.split() if a.startswith("swarmboot.ip="))
        ip, mask, gateway = [*given.split("=", 1)[1].split(":"), "", ""][:3]
        network = f"ip={ip}::{gateway}:{mask}::eth0:none"
    return " ".join(["root=/dev/vda", "rootfstype=squashfs", "ro", network, "rd.neednet=1", *kept])
