"""The side effects of a DiskPlan, in order: release the disks (old md arrays, stale signatures of
what will be replaced), write the partition tables (pyparted: a kept partition's table entry is
left exactly as it is), build the RAID1 arrays (mdadm), make the filesystems (only where the plan
formats). Each failure is a DiskWriteError that says which step and which device."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from bootagent.disk.model import DiskPlan, PlannedArray
from bootagent.errors import AgentError
from ground.contract.layout import Filesystem, PartKind
from ground.errors import CommandError
from ground.run import output, run

ESP_GUID = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"


class DiskWriteError(AgentError):
    """A partitioning, mdadm or mkfs step failed (kept partitions were not touched)."""


def _run(argv: list[str], what: str, timeout: float = 600) -> str:
    try:
        return run(argv, timeout=timeout).stdout
    except CommandError as exc:
        raise DiskWriteError(
            f"{what} failed: {exc.stderr.strip() or exc}",
            hint="the disk may be failing or in use; kept partitions were not touched: check "
            "`dmesg` in the rescue shell, then reboot to try again",
        ) from exc


def settle() -> None:
    try:
        run(["udevadm", "settle", "--timeout=30"], timeout=60)
    except (CommandError, OSError):
        time.sleep(1)  # no udev (a test on a host without it): give the kernel a moment


# -- releasing the disks ----------------------------------------------------------------------------


def stop_arrays(plan: DiskPlan) -> list[str]:
    """Stop every md array that uses a partition of the plan's disks (udev assembles old installs'
    arrays at boot); return the arrays stopped."""
    devices = {os.path.basename(d.path) for d in plan.disks.values()}
    stopped = []
    for md in sorted(Path("/sys/block").glob("md*")):
        slaves = [s.name for s in (md / "slaves").glob("*")] if (md / "slaves").is_dir() else []
        if any(any(s.startswith(dev) for dev in devices) for s in slaves):
            _run(["mdadm", "--stop", f"/dev/{md.name}"], f"stopping the old RAID array /dev/{md.name}", 120)
            stopped.append(f"/dev/{md.name}")
    return stopped


def wipe_replaced(plan: DiskPlan) -> None:
    """Remove the signatures of the partitions that will be replaced (an old filesystem or md
    superblock found again at the same offset would confuse blkid and mdadm)."""
    kept = {(p.device, p.number) for p in plan.kept()}
    for disk in plan.disks.values():
        for old in disk.partitions:
            if (disk.path, old.number) not in kept and old.path and os.path.exists(old.path):
                _run(["wipefs", "--all", "--quiet", old.path], f"wiping {old.path}", 120)


# -- the partition table (pyparted) ------------------------------------------------------------------


def write_tables(plan: DiskPlan, expose: Callable[[DiskPlan], dict[str, str]] | None = None) -> None:
    """One commit per disk: a fresh GPT, or the existing one with every partition but the kept
    ones removed and the new ones added. Then the kernel is told (partx), or `expose` maps the
    partitions to nodes itself (tests)."""
    import parted

    for name, disk in plan.disks.items():
        device = parted.getDevice(disk.path)
        sector = device.sectorSize
        if plan.fresh.get(name):
            _run(["wipefs", "--all", "--quiet", disk.path], f"wiping the old table of {disk.path}", 120)
            table = parted.freshDisk(device, "gpt")
        else:
            table = parted.newDisk(device)
            keep = {p.number for p in plan.on(name) if p.keep}
            for part in list(table.partitions):
                if part.number not in keep:
                    table.deletePartition(part)
            for part in table.partitions:  # the kept entries, checked once more against the plan
                mine = next(p for p in plan.on(name) if p.number == part.number)
                if part.geometry.start * sector != mine.start or part.geometry.length * sector != mine.size:
                    raise DiskWriteError(
                        f"kept partition {mine.label} of {disk.path} is not where the plan "
                        "says: nothing written",
                        hint="reboot to plan again",
                    )
        for p in plan.on(name):
            if p.keep:
                continue
            geometry = parted.Geometry(device=device, start=p.start // sector, length=p.size // sector)
            part = parted.Partition(disk=table, type=parted.PARTITION_NORMAL, geometry=geometry)
            table.addPartition(part, constraint=parted.Constraint(exactGeom=geometry))
            part.set_name(p.label)
            if p.kind is PartKind.BIOS_GRUB:
                part.setFlag(parted.PARTITION_BIOS_GRUB)
            elif p.kind is PartKind.ESP:
                part.setFlag(parted.PARTITION_BOOT)  # on GPT: the EFI system partition's type
            elif p.raid:
                part.setFlag(parted.PARTITION_RAID)
            elif p.fs is Filesystem.SWAP:
                part.setFlag(parted.PARTITION_SWAP)
            if part.number != p.number:
                raise DiskWriteError(
                    f"{disk.path}: libparted numbered {p.label} {part.number}, the plan {p.number}",
                    hint="this is a bug in the swarmboot agent; nothing was written",
                )
        try:
            table.commitToDevice()
        except parted.IOException as exc:
            raise DiskWriteError(
                f"writing the partition table of {disk.path} failed: {exc}",
                hint="is a partition of it still mounted or in a RAID array?",
            ) from exc
        if expose is None:
            tell_kernel(disk.path)
    if expose is not None:
        plan.nodes.update(expose(plan))
        return
    settle()
    for p in plan.partitions:
        _wait_node(p.path)


def tell_kernel(device: str) -> None:
    """Make the kernel read the new table: partx (works with partitions of other disks mounted),
    else a re-read of the whole table."""
    try:
        run(["partx", "--update", device], timeout=60)
    except CommandError:
        _run(["blockdev", "--rereadpt", device], f"telling the kernel about {device}'s partitions", 60)


def _wait_node(path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise DiskWriteError(f"{path} did not appear after partitioning", hint="check `dmesg`")
        time.sleep(0.2)


# -- RAID1 and filesystems -----------------------------------------------------------------------------


def build_arrays(plan: DiskPlan) -> None:
    for array in plan.arrays:
        for member in array.members:
            _run(["mdadm", "--zero-superblock", "--force", plan.dev(member)], f"clearing {member}", 60)
        # --assume-clean: both halves are new; the filesystem writes every block it uses to both
        _run(
            [
                "mdadm",
                "--create",
                array.path,
                "--run",
                "--level=1",
                "--raid-devices=2",
                "--metadata=1.2",
                "--assume-clean",
                "--homehost=any",
                f"--name={array.name}",
                *array.members,
            ],
            f"creating RAID1 {array.path}",
            300,
        )
    if plan.arrays:
        settle()
        for array in plan.arrays:
            _wait_node(array.path)


def fs_label(label: str, fs: Filesystem) -> str:
    limit = {Filesystem.XFS: 12, Filesystem.VFAT: 11, Filesystem.EXT4: 16, Filesystem.SWAP: 15}.get(fs, 16)
    text = label[:limit]
    return text.upper() if fs is Filesystem.VFAT else text


def mkfs_argv(device: str, fs: Filesystem, label: str) -> list[str] | None:
    name = fs_label(label, fs)
    if fs is Filesystem.EXT4:
        return ["mkfs.ext4", "-F", "-q", "-L", name, device]
    if fs is Filesystem.XFS:
        return ["mkfs.xfs", "-f", "-q", "-L", name, device]
    if fs is Filesystem.VFAT:
        return ["mkfs.vfat", "-F", "32", "-n", name, device]
    if fs is Filesystem.SWAP:
        return ["mkswap", "-L", name, device]
    return None


def make_filesystems(plan: DiskPlan) -> dict[str, str]:
    """mkfs every partition and array the plan formats; return device -> new filesystem UUID."""
    targets: list[tuple[str, Filesystem, str]] = [
        (p.path, Filesystem.EXT4 if p.kind is PartKind.IMAGE_CACHE else p.fs, p.label)
        for p in plan.partitions
        if p.format and not p.keep
    ]
    targets += [(a.path, a.fs, a.label) for a in plan.arrays]
    uuids: dict[str, str] = {}
    for device, fs, label in targets:
        node = plan.dev(device)
        argv = mkfs_argv(node, fs, label)
        if argv is None:
            continue
        _run(["wipefs", "--all", "--quiet", node], f"wiping {device}", 60)
        _run(argv, f"{argv[0]} on {device}", 900)
        uuids[device] = uuid_of(node)
    return uuids


def uuid_of(device: str) -> str:
    try:
        return output(["blkid", "-p", "-s", "UUID", "-o", "value", device], timeout=30).strip()
    except CommandError:
        return ""


def array_uuid(array: PlannedArray) -> str:
    """The md array's UUID (what rd.md.uuid= names), as mdadm prints it."""
    text = _run(["mdadm", "--detail", "--export", array.path], f"reading {array.path}", 60)
    for line in text.splitlines():
        if line.startswith("MD_UUID="):
            return line.split("=", 1)[1]
    return ""
