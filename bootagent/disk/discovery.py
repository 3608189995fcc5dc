"""The node's disks as they are now: pyudev lists the whole disks (with their /dev/disk/by-id and
by-path names), pyparted reads their partition tables, blkid (low-level probe, no cache) says what
filesystem each partition holds. The result is plain values (model.Disk) for the planner."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from bootagent.disk.model import SECTOR, Disk, ExistingPartition
from ground.errors import CommandError
from ground.run import run

# Block devices that are never an install target: RAM disks, loop devices, CD drives, device
# mapper and md arrays (they are what we make), zram, network block devices.
SKIP_PREFIXES = ("ram", "loop", "sr", "dm-", "md", "zram", "nbd", "fd")


def probe(path: str, offset: int = 0, size: int = 0) -> dict[str, str]:
    """blkid's low-level probe of a device (or of the bytes at offset/size of a whole disk: no
    partition node needed): TYPE, UUID, LABEL… ({} if nothing is there)."""
    where = ["--offset", str(offset), "--size", str(size)] if size else []
    try:
        text = run(["blkid", "-p", "-o", "export", *where, path], timeout=30).stdout
    except CommandError:
        return {}  # exit code 2: nothing found
    facts = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key] = value
    return facts


def read_table(path: str) -> tuple[str, tuple[ExistingPartition, ...]]:
    """The disk's partition table type and partitions (pyparted); ('', ()) for a blank disk."""
    import parted

    try:
        device = parted.getDevice(path)
        disk = parted.newDisk(device)
    except (parted.DiskException, parted.IOException, parted.DeviceException):
        return "", ()
    sector = device.sectorSize
    parts = []
    for part in disk.partitions:
        if part.type not in (parted.PARTITION_NORMAL, parted.PARTITION_LOGICAL):
            continue
        node = part.path
        facts = probe(path, part.geometry.start * sector, part.geometry.length * sector)
        try:
            label = part.name or ""
        except parted.PartitionException:
            label = ""
        parts.append(
            ExistingPartition(
                number=part.number,
                start=part.geometry.start * sector,
                size=part.geometry.length * sector,
                label=label,
                fs=_fs_name(facts.get("TYPE", "")),
                uuid=facts.get("UUID", ""),
                path=node,
            )
        )
    return disk.type, tuple(parts)


def _fs_name(blkid_type: str) -> str:
    return {"linux_raid_member": "raid"}.get(blkid_type, blkid_type)


def disk_at(path: str, links: Sequence[str] = ()) -> Disk:
    """One disk by its device node (also how tests read a loop device)."""
    real = os.path.realpath(path)
    name = Path(real).name
    sys_block = Path("/sys/class/block") / name
    size = int((sys_block / "size").read_text()) * SECTOR
    table, parts = read_table(real)
    model = _read(sys_block / "device" / "model")
    serial = _read(sys_block / "device" / "serial")
    return Disk(
        path=real, size=size, links=tuple(links), model=model, serial=serial, table=table, partitions=parts
    )


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def list_disks(extra: Sequence[str] = ()) -> list[Disk]:
    """Every whole disk udev knows (and `extra` device nodes: a layout's explicit paths, which may
    name loop devices in tests), with their persistent names."""
    import pyudev

    from bootagent.libs import ensure_find_library

    ensure_find_library()
    context = pyudev.Context()
    disks: dict[str, Disk] = {}
    for device in context.list_devices(subsystem="block", DEVTYPE="disk"):
        name = device.sys_name
        if name.startswith(SKIP_PREFIXES) or device.attributes.get("size") in (None, b"0"):
            continue
        if _read(Path(device.sys_path) / "removable") == "1" and not name.startswith(("vd", "sd", "nvme")):
            continue
        links = tuple(
            sorted(str(link) for link in device.device_links if "/by-id/" in link or "/by-path/" in link)
        )
        disks[device.device_node] = disk_at(device.device_node, links)
    for path in extra:
        real = os.path.realpath(path)
        if real not in disks and os.path.exists(real):
            disks[real] = disk_at(real, (path,) if path != real else ())
    return sorted(disks.values(), key=lambda d: d.path)
