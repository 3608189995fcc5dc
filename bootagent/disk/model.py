"""The values the disk mode's parts pass to each other: what is on a disk now (discovery), and
what the install will make (the plan). Pure data, no side effects."""

from __future__ import annotations

from dataclasses import dataclass, field

from ground.contract.layout import Filesystem, PartKind

SECTOR = 512
MiB = 1 << 20
ALIGN = MiB  # every partition starts and ends on a MiB boundary
GPT_BACKUP = MiB  # what the end of the disk keeps free for the backup GPT (33 sectors, rounded)


@dataclass(frozen=True)
class ExistingPartition:
    number: int
    start: int  # bytes from the disk's start
    size: int  # bytes
    label: str = ""  # the GPT partition name
    fs: str = ""  # the filesystem type blkid sees ("" none)
    uuid: str = ""  # the filesystem UUID
    path: str = ""  # /dev/vda3

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class Disk:
    path: str  # the kernel's node: /dev/vda
    size: int  # bytes
    links: tuple[str, ...] = ()  # /dev/disk/by-id/…, /dev/disk/by-path/…
    model: str = ""
    serial: str = ""
    table: str = ""  # "gpt", "msdos", "" (none)
    partitions: tuple[ExistingPartition, ...] = ()

    def names(self) -> tuple[str, ...]:
        return (self.path, *self.links)

    def partition(self, label: str) -> ExistingPartition | None:
        return next((p for p in self.partitions if p.label == label), None)

    def describe(self) -> str:
        what = " ".join(x for x in (self.model, self.serial) if x)
        return f"{self.path} ({self.size / 2**30:.1f} GiB{', ' + what if what else ''})"


@dataclass(frozen=True)
class PlannedPartition:
    disk: str  # the disk rule's name
    device: str  # the disk's kernel path
    number: int
    start: int
    size: int
    label: str
    kind: PartKind
    fs: Filesystem
    mountpoint: str = ""
    options: str = ""
    keep: bool = False  # exists and stays untouched (not moved, resized or formatted)
    format: bool = True  # mkfs (a new partition; False for kept ones and RAID members)
    raid: str = ""
    uuid: str = ""  # the existing filesystem's UUID (kept partitions)

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def path(self) -> str:
        """The partition's device node (/dev/vda3, /dev/nvme0n1p3, /dev/loop0p3)."""
        sep = "p" if self.device[-1].isdigit() else ""
        return f"{self.device}{sep}{self.number}"


@dataclass(frozen=True)
class PlannedArray:
    name: str
    members: tuple[str, ...]  # partition device nodes
    fs: Filesystem
    size: int
    mountpoint: str = ""
    options: str = ""
    label: str = ""

    @property
    def path(self) -> str:
        return f"/dev/md/{self.name}"


@dataclass(frozen=True)
class DiskPlan:
    """Everything the install will do to the disks, computed before anything is written."""

    firmware: str  # "bios" or "uefi"
    disks: dict[str, Disk]  # rule name -> the disk it matched
    partitions: tuple[PlannedPartition, ...]
    arrays: tuple[PlannedArray, ...] = ()
    fresh: dict[str, bool] = field(default_factory=dict)  # rule name -> a new, empty table
    # a partition's kernel name -> the node to use (tests on hosts without partition scanning map
    # each partition to a loop device at its offset); empty: the kernel's nodes
    nodes: dict[str, str] = field(default_factory=dict)

    def dev(self, path: str) -> str:
        return self.nodes.get(path, path)

    def on(self, disk: str) -> tuple[PlannedPartition, ...]:
        return tuple(p for p in self.partitions if p.disk == disk)

    def kept(self) -> tuple[PlannedPartition, ...]:
        return tuple(p for p in self.partitions if p.keep)

    def filesystems(self) -> list[tuple[str, PlannedPartition | PlannedArray]]:
        """(device, what) of everything that has a mountpoint, shallowest first."""
        items: list[tuple[str, PlannedPartition | PlannedArray]] = [
            (p.path, p) for p in self.partitions if p.mountpoint and not p.raid
        ]
        items += [(a.path, a) for a in self.arrays if a.mountpoint]
        seen: set[str] = set()
        unique = []
        for device, what in items:  # an ESP on two disks is mounted once (the first disk's)
            if what.mountpoint in seen:
                continue
            seen.add(what.mountpoint)
            unique.append((device, what))
        return sorted(unique, key=lambda item: item[1].mountpoint.count("/") - (item[1].mountpoint == "/"))

    def find(self, label: str, disk: str | None = None) -> PlannedPartition | None:
        return next(
            (p for p in self.partitions if p.label == label and (disk is None or p.disk == disk)), None
        )

    def lines(self) -> list[str]:
        """The plan as a person reads it on the console."""
        out = [f"disk plan ({self.firmware} firmware):"]
        for name, disk in self.disks.items():
            table = "new GPT" if self.fresh.get(name) else "existing GPT, kept partitions untouched"
            out.append(f"  disk {name}: {disk.describe()}: {table}")
            for p in self.on(name):
                action = "keep" if p.keep else ("mkfs " + p.fs.value if p.format else p.kind.value)
                if p.raid:
                    action = f"RAID1 member of {p.raid}"
                where = f" -> {p.mountpoint}" if p.mountpoint else ""
                out.append(
                    f"    {p.path:<16} {p.label:<12} {p.start / MiB:>9.0f} MiB +{p.size / MiB:>9.0f} MiB"
                    f"  {action}{where}"
                )
        for a in self.arrays:
            out.append(
                f"  RAID1 {a.path}: {' + '.join(a.members)}, mkfs {a.fs.value}"
                + (f" -> {a.mountpoint}" if a.mountpoint else "")
            )
        return out
