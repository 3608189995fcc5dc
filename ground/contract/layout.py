"""The disk layout of the `disk` root mode: declarative data, defined once, as typed values.

The server validates a layout when it is set (`validate`: overlaps, two `rest` on one disk, an
unknown filesystem, `keep` on a partition that is also formatted, a RAID member missing, no root)
and puts it into the plan (RootSpec.layout); the agent plans it against the real disks
(bootagent/disk/planner.py) and only then writes. Stdlib only: it is frozen into the initramfs.

    disks:                                   # one, or two for RAID1
      - name: main
        path: /dev/disk/by-path/pci-0000:00:04.0    # a path, a by-id/by-path name …
      - name: second
        min_size: 20GiB                      # … or a rule: the smallest (or largest) disk of at least
        pick: smallest
    partitions:
      - {label: bios, size: 1MiB, kind: bios_grub}      # on every disk (BIOS firmware)
      - {label: esp, size: 256MiB, kind: esp}            # on every disk (UEFI firmware), vfat
      - {label: cache, size: 4GiB, kind: image-cache}    # the verified image, kept across installs
      - {label: root, size: 20GiB, fs: ext4, mountpoint: /, raid: md-root}
      - {label: data, size: rest, fs: xfs, mountpoint: /data, keep: true, options: noatime}
    raid:
      - {name: md-root, disks: [main, second]}           # RAID1 (mdadm)

A partition without `disk` lives on the first disk; bios_grub and esp partitions are made on every
disk (each disk can boot on its own); a `raid` partition on each of its array's disks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

MiB = 1 << 20
REST = "rest"


class LayoutError(ValueError):
    """A layout that cannot be (the message says which field and why)."""


class Filesystem(StrEnum):
    EXT4 = "ext4"
    XFS = "xfs"
    VFAT = "vfat"
    SWAP = "swap"
    NONE = "none"  # a partition left unformatted


class PartKind(StrEnum):
    DATA = "data"  # a filesystem (or none) of the installed system
    ESP = "esp"  # EFI system partition (vfat), on every disk
    BIOS_GRUB = "bios_grub"  # GRUB's core image on GPT under BIOS, on every disk, no filesystem
    IMAGE_CACHE = "image-cache"  # the verified image file, kept across installs (ext4)


@dataclass(frozen=True)
class DiskRule:
    """Which disk: by `path` (/dev/sda, /dev/disk/by-id/…, /dev/disk/by-path/…), or by rule: the
    smallest (or largest) disk of at least `min_size` that no other rule took."""

    name: str = "main"
    path: str = ""
    min_size: str = ""
    pick: Literal["smallest", "largest"] = "smallest"


@dataclass(frozen=True)
class PartitionSpec:
    label: str  # the GPT partition name (also the filesystem label, shortened where needed)
    size: str  # "512MiB", "20GiB", "1T", bytes, or "rest"
    fs: Filesystem = Filesystem.EXT4
    mountpoint: str = ""
    options: str = ""  # mount options ("" = defaults)
    keep: bool = False  # never moved, resized or formatted once it exists
    kind: PartKind = PartKind.DATA
    disk: str = ""  # the disk rule's name ("" = the first disk)
    raid: str = ""  # the RAID1 array this partition is a member of ("" = a plain partition)
    start: str = ""  # an explicit start ("" = right after the previous partition)


@dataclass(frozen=True)
class RaidSpec:
    name: str  # the array: /dev/md/NAME
    disks: tuple[str, ...] = ()  # the disk rules' names of its two members
    level: int = 1


@dataclass(frozen=True)
class DiskLayout:
    disks: tuple[DiskRule, ...] = (DiskRule(),)
    partitions: tuple[PartitionSpec, ...] = ()
    raid: tuple[RaidSpec, ...] = ()
    table: Literal["gpt"] = "gpt"

    def disk_of(self, part: PartitionSpec) -> str:
        return part.disk or self.disks[0].name

    def array(self, name: str) -> RaidSpec | None:
        return next((r for r in self.raid if r.name == name), None)

    def placements(self, part: PartitionSpec) -> tuple[str, ...]:
        """The disks (rule names) this partition is made on."""
        if part.kind in (PartKind.ESP, PartKind.BIOS_GRUB) and not part.disk:
            return tuple(d.name for d in self.disks)
        if part.raid:
            array = self.array(part.raid)
            return array.disks if array else ()
        return (self.disk_of(part),)

    def kept(self, part: PartitionSpec) -> bool:
        """Kept across installs: `keep`, and the image cache (its point is to survive)."""
        return part.keep or part.kind is PartKind.IMAGE_CACHE

    def root(self) -> PartitionSpec:
        return next(p for p in self.partitions if p.mountpoint == "/")


@dataclass(frozen=True)
class KeptPartition:
    """A kept partition as the node found or made it at its last install (reported to the server,
    sent back in the next plan): the next install refuses to go on if it changed."""

    label: str
    disk: str  # the disk rule's name
    size: int  # bytes
    uuid: str  # the filesystem UUID ("" for none)
    fs: str = ""


# -- sizes ---------------------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int, what: str = "size") -> int:
    """'512MiB', '20G', '1.5TiB', '4096' -> bytes (binary units: G = GiB). LayoutError otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise LayoutError(f"{what}: {text} is not a positive size")
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise LayoutError(f"{what}: {text!r} is not a size (e.g. 512MiB, 20GiB, rest)")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise LayoutError(f"{what}: {text!r} is not a positive size")
    return size


def format_size(size: int) -> str:
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % (factor // 16 or 1) == 0:
            value = size / factor
            return f"{value:g}{unit}" if value == int(value) else f"{value:.2f}{unit}"
    return f"{size}B"


# -- validation (the server, when a layout is set; the agent again, before planning) ------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,35}$")


def validate(layout: DiskLayout) -> DiskLayout:
    """Return the layout, or raise LayoutError with every problem found, one per line."""
    problems: list[str] = []
    names = [d.name for d in layout.disks]
    if not layout.disks:
        problems.append("disks: at least one disk is needed")
    if len(set(names)) != len(names):
        problems.append(f"disks: a name is given twice ({', '.join(names)})")
    for i, disk in enumerate(layout.disks):
        where = f"disks[{i}] ({disk.name})"
        if not _NAME.match(disk.name):
            problems.append(f"{where}: the name must be letters, digits, '-', '_' or '.'")
        if disk.path and disk.min_size:
            problems.append(f"{where}: give a path or a min_size rule, not both")
        if disk.path and not disk.path.startswith("/dev/"):
            problems.append(f"{where}: path {disk.path!r} must be under /dev (e.g. /dev/disk/by-id/…)")
        if disk.min_size:
            _check(problems, lambda d=disk, w=where: parse_size(d.min_size, f"{w}.min_size"))
    if not layout.partitions:
        problems.append("partitions: the layout has none")
    labels = [p.label for p in layout.partitions]
    for label in sorted({x for x in labels if labels.count(x) > 1}):
        problems.append(f"partitions: the label {label!r} is given twice")
    arrays = {r.name: r for r in layout.raid}
    for r in layout.raid:
        if r.level != 1:
            problems.append(f"raid {r.name}: only RAID level 1 is supported, not {r.level}")
        if len(r.disks) != 2 or len(set(r.disks)) != 2:
            problems.append(f"raid {r.name}: RAID1 needs two different disks, not {list(r.disks)}")
        for d in r.disks:
            if d not in names:
                problems.append(
                    f"raid {r.name}: member disk {d!r} is not one of the layout's disks ({', '.join(names)})"
                )
        if not any(p.raid == r.name for p in layout.partitions):
            problems.append(f"raid {r.name}: no partition is a member of it")
    mountpoints: dict[str, str] = {}
    for i, part in enumerate(layout.partitions):
        where = f"partitions[{i}] ({part.label})"
        if not _NAME.match(part.label):
            problems.append(f"{where}: the label must be 1-36 letters, digits, '-', '_' or '.'")
        if part.size != REST:
            _check(problems, lambda p=part, w=where: parse_size(p.size, f"{w}.size"))
        if part.start:
            _check(problems, lambda p=part, w=where: parse_size(p.start, f"{w}.start"))
        if part.disk and part.disk not in names:
            problems.append(
                f"{where}: disk {part.disk!r} is not one of the layout's disks ({', '.join(names)})"
            )
        if part.raid:
            if part.raid not in arrays:
                problems.append(f"{where}: RAID array {part.raid!r} is not in the layout's raid list")
            if part.disk:
                problems.append(f"{where}: a RAID member lives on its array's disks: drop disk")
            if part.keep:
                problems.append(f"{where}: keep on a RAID member is not supported (yet)")
            if part.kind is not PartKind.DATA:
                problems.append(f"{where}: only data partitions can be RAID members")
        if part.kind is PartKind.ESP and part.fs is not Filesystem.VFAT:
            problems.append(f"{where}: an EFI system partition must be vfat, not {part.fs}")
        if part.kind is PartKind.BIOS_GRUB and part.fs is not Filesystem.NONE:
            problems.append(f"{where}: a bios_grub partition has no filesystem (fs: none), not {part.fs}")
        own = part.kind in (PartKind.ESP, PartKind.BIOS_GRUB, PartKind.IMAGE_CACHE) and part.mountpoint
        if own and not (part.kind is PartKind.ESP and part.mountpoint == "/boot/efi"):
            problems.append(f"{where}: a {part.kind} partition has no mountpoint of its own")
        if part.kind is PartKind.IMAGE_CACHE and part.fs is not Filesystem.EXT4:
            problems.append(f"{where}: the image cache is ext4, not {part.fs}")
        if part.mountpoint:
            if part.fs in (Filesystem.SWAP, Filesystem.NONE):
                problems.append(f"{where}: a {part.fs} partition cannot be mounted at {part.mountpoint}")
            elif not part.mountpoint.startswith("/") or ".." in part.mountpoint.split("/"):
                problems.append(f"{where}: mountpoint {part.mountpoint!r} must be absolute, without '..'")
            elif part.mountpoint in mountpoints:
                problems.append(
                    f"{where}: mountpoint {part.mountpoint} is also {mountpoints[part.mountpoint]}'s"
                )
            mountpoints.setdefault(part.mountpoint, part.label)
        if part.keep and part.mountpoint == "/":
            problems.append(f"{where}: the root filesystem is written by every install: it cannot be kept")
        if part.keep and part.kind in (PartKind.ESP, PartKind.BIOS_GRUB):
            problems.append(f"{where}: the bootloader's partitions are rewritten by every install: no keep")
    if "/" not in mountpoints:
        problems.append("partitions: none is mounted at / (the root filesystem)")
    rests: dict[str, list[str]] = {}
    for part in layout.partitions:
        if part.size == REST:
            for disk in layout.placements(part):
                rests.setdefault(disk, []).append(part.label)
    for disk, which in rests.items():
        if len(which) > 1:
            problems.append(f"disk {disk}: two partitions take the rest ({', '.join(which)}): only one can")
    if not problems:
        _check_overlaps(layout, problems)
    if problems:
        raise LayoutError("\n".join(problems))
    return layout


def _check(problems: list[str], fn: Any) -> None:
    try:
        fn()
    except LayoutError as exc:
        problems.append(str(exc))


def _check_overlaps(layout: DiskLayout, problems: list[str]) -> None:
    """Partitions with explicit starts must not overlap the ones before them (sizes known)."""
    for disk in layout.disks:
        cursor, previous = MiB, "the partition table"
        for part in layout.partitions:
            if disk.name not in layout.placements(part):
                continue
            start = parse_size(part.start) if part.start else cursor
            if start < cursor:
                problems.append(
                    f"disk {disk.name}: {part.label} starts at {format_size(start)}, inside "
                    f"{previous} (which ends at {format_size(cursor)})"
                )
            # a rest is at least 1 MiB; what follows it is checked against the disk by the planner
            cursor = start + (MiB if part.size == REST else parse_size(part.size))
            previous = part.label


# -- the YAML / inventory form ------------------------------------------------------------------

DISK_KEYS = ("name", "path", "min_size", "pick")
PART_KEYS = ("label", "size", "fs", "mountpoint", "options", "keep", "kind", "disk", "raid", "start")
RAID_KEYS = ("name", "disks", "level")
LAYOUT_KEYS = ("disks", "disk", "partitions", "raid", "table")


def _keys(spec: Any, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise LayoutError(f"{what}: must be a mapping, not {type(spec).__name__}")
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise LayoutError(f"{what}: unknown field(s) {', '.join(unknown)} (known: {', '.join(allowed)})")
    return spec


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise LayoutError(f"{what}: must be a string, not {value!r}")
    return str(value)


def _choice(enum: type[StrEnum], value: Any, what: str) -> Any:
    try:
        return enum(str(value).replace("_", "-") if enum is PartKind and value == "image_cache" else value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise LayoutError(f"{what}: {value!r} is not one of {allowed}") from None


def from_mapping(spec: Any) -> DiskLayout:
    """The layout from its YAML/JSON form (validated). `disk: PATH` is short for one disk."""
    spec = _keys(spec, LAYOUT_KEYS, "layout")
    disks: list[DiskRule] = []
    if spec.get("disk") and spec.get("disks"):
        raise LayoutError("layout: give disk (one path) or disks (a list), not both")
    if spec.get("disk"):
        disks.append(disk_rule(_text(spec["disk"], "layout.disk")))
    for i, given in enumerate(spec.get("disks") or []):
        item = _keys({"path": given} if isinstance(given, str) else given, DISK_KEYS, f"disks[{i}]")
        pick = _text(item.get("pick", "smallest"), f"disks[{i}].pick")
        if pick not in ("smallest", "largest"):
            raise LayoutError(f"disks[{i}].pick: {pick!r} is not smallest or largest")
        disks.append(
            DiskRule(
                name=_text(item.get("name"), f"disks[{i}].name") or ("main" if i == 0 else f"disk{i}"),
                path=_text(item.get("path"), f"disks[{i}].path"),
                min_size=_text(item.get("min_size"), f"disks[{i}].min_size"),
                pick=pick,
            )
        )  # type: ignore[arg-type]
    parts = spec.get("partitions") or []
    if not isinstance(parts, list):
        raise LayoutError("layout.partitions: must be a list")
    partitions = []
    for i, given in enumerate(parts):
        where = f"partitions[{i}]"
        item = _keys(given, PART_KEYS, where)
        if not item.get("label") or not item.get("size"):
            raise LayoutError(f"{where}: label and size are required (e.g. label: root, size: 20GiB)")
        kind = _choice(PartKind, item.get("kind", "data"), f"{where}.kind")
        default_fs = {PartKind.ESP: "vfat", PartKind.BIOS_GRUB: "none"}.get(kind, "ext4")
        keep = item.get("keep", False)
        if not isinstance(keep, bool):
            raise LayoutError(f"{where}.keep: must be true or false")
        partitions.append(
            PartitionSpec(
                label=_text(item["label"], f"{where}.label"),
                size=_text(item["size"], f"{where}.size"),
                fs=_choice(Filesystem, item.get("fs", default_fs), f"{where}.fs"),
                mountpoint=_text(item.get("mountpoint"), f"{where}.mountpoint"),
                options=_text(item.get("options"), f"{where}.options"),
                keep=keep,
                kind=kind,
                disk=_text(item.get("disk"), f"{where}.disk"),
                raid=_text(item.get("raid"), f"{where}.raid"),
                start=_text(item.get("start"), f"{where}.start"),
            )
        )
    arrays = []
    for i, given in enumerate(spec.get("raid") or []):
        item = _keys(given, RAID_KEYS, f"raid[{i}]")
        members = item.get("disks") or []
        if not isinstance(members, list):
            raise LayoutError(f"raid[{i}].disks: must be a list of disk names")
        level = item.get("level", 1)
        if isinstance(level, bool) or not isinstance(level, int):
            raise LayoutError(f"raid[{i}].level: must be an integer")
        arrays.append(
            RaidSpec(
                name=_text(item.get("name"), f"raid[{i}].name"),
                disks=tuple(_text(m, f"raid[{i}].disks") for m in members),
                level=level,
            )
        )
    table = spec.get("table", "gpt")
    if table != "gpt":
        raise LayoutError(f"layout.table: only gpt is supported, not {table!r}")
    return validate(
        DiskLayout(disks=tuple(disks) or (DiskRule(),), partitions=tuple(partitions), raid=tuple(arrays))
    )


def disk_rule(text: str, name: str = "main") -> DiskRule:
    """The shorthand `--disk`: a path, 'auto' (the smallest disk), or '>=20GiB' (a rule)."""
    text = text.strip()
    if text in ("", "auto"):
        return DiskRule(name=name)
    if text.startswith(">="):
        return DiskRule(name=name, min_size=text[2:].strip())
    return DiskRule(name=name, path=text)


def to_mapping(layout: DiskLayout) -> dict[str, Any]:
    """The YAML/JSON form (what the inventory stores and exports): defaults left out."""

    def part(p: PartitionSpec) -> dict[str, Any]:
        out: dict[str, Any] = {"label": p.label, "size": p.size}
        if p.kind is not PartKind.DATA:
            out["kind"] = p.kind.value
        default_fs = {PartKind.ESP: "vfat", PartKind.BIOS_GRUB: "none"}.get(p.kind, "ext4")
        if p.fs != default_fs:
            out["fs"] = p.fs.value
        for key in ("mountpoint", "options", "disk", "raid", "start"):
            if getattr(p, key):
                out[key] = getattr(p, key)
        if p.keep:
            out["keep"] = True
        return out

    def disk(d: DiskRule) -> dict[str, Any]:
        out: dict[str, Any] = {"name": d.name}
        if d.path:
            out["path"] = d.path
        if d.min_size:
            out["min_size"] = d.min_size
        if d.pick != "smallest":
            out["pick"] = d.pick
        return out

    out: dict[str, Any] = {
        "disks": [disk(d) for d in layout.disks],
        "partitions": [part(p) for p in layout.partitions],
    }
    if layout.raid:
        out["raid"] = [
            {"name": r.name, "disks": list(r.disks), **({"level": r.level} if r.level != 1 else {})}
            for r in layout.raid
        ]
    return out


def shorthand(disk: str, partitions: list[dict[str, Any]]) -> DiskLayout:
    """`--disk` + `--partition LABEL:SIZE[:FS[:MOUNTPOINT[:keep]]]` (today's inventory form): a
    GPT layout on one disk with a BIOS boot and an EFI system partition in front, so it boots
    under either firmware."""
    parts: list[dict[str, Any]] = [
        {"label": "bios", "size": "1MiB", "kind": "bios_grub"},
        {"label": "esp", "size": "64MiB", "kind": "esp"},
    ]
    parts += [{k: v for k, v in p.items() if k in PART_KEYS} for p in partitions]
    return from_mapping({"disk": disk or "auto", "partitions": parts})
