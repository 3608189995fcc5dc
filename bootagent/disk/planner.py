"""The partition planner: pure. The layout, the disks as found, the kept partitions as reported
after the last install and the firmware in, a DiskPlan (or a refusal that says what to change)
out. Nothing here touches a disk: the writers commit the plan afterwards (ironic-python-agent's
disk_partitioner, diskimage-builder's block_device; curtin's `preserve` and Ignition's "reuse
unless wipe" for kept partitions).

Rules:
- Sizes are resolved (binary units, MiB-aligned), `rest` takes what its stretch of the disk has
  left; the disk must be big enough for all of it.
- A kept partition (keep: true, and the image cache) that exists on the disk stays exactly where
  and as it is: same label, same size, same filesystem UUID as the node reported last time. It
  is never moved, resized or formatted. If it was reported and is gone or changed, or the layout
  cannot be laid out around it, the plan is refused. One that does not exist yet (a first
  install) is made and formatted like any other.
- Every other partition of the disks is replaced; a disk without kept partitions gets a new GPT.
- BIOS firmware needs a bios_grub partition, UEFI an EFI system partition.
"""

from __future__ import annotations

from collections.abc import Sequence

from bootagent.disk.model import (
    ALIGN,
    GPT_BACKUP,
    Disk,
    DiskPlan,
    ExistingPartition,
    PlannedArray,
    PlannedPartition,
)
from bootagent.errors import AgentError
from ground.contract.layout import (
    REST,
    DiskLayout,
    DiskRule,
    KeptPartition,
    PartitionSpec,
    PartKind,
    format_size,
    parse_size,
    validate,
)

MIN_REST = ALIGN


class PlanRefused(AgentError):
    """The layout cannot be installed on these disks without losing something: nothing was written."""


def _align_up(value: int) -> int:
    return -(-value // ALIGN) * ALIGN


def _align_down(value: int) -> int:
    return value // ALIGN * ALIGN


# -- which disks ----------------------------------------------------------------------------------


def select_disks(rules: Sequence[DiskRule], candidates: Sequence[Disk]) -> dict[str, Disk]:
    """Match each rule to a disk: by path (any of the disk's names), else by size rule among the
    disks no other rule took (the smallest or largest of at least min_size)."""
    chosen: dict[str, Disk] = {}
    taken: set[str] = set()
    seen = ", ".join(d.describe() for d in candidates) or "none"
    for rule in (r for r in rules if r.path):
        disk = next((d for d in candidates if rule.path in d.names()), None)
        if disk is None:
            raise PlanRefused(
                f"no disk {rule.path} (layout disk {rule.name}); this node has: {seen}",
                hint="fix the layout's disk path (a /dev/disk/by-id or by-path name names the same "
                "disk on every node of a model), or use a size rule (min_size)",
            )
        if disk.path in taken:
            raise PlanRefused(
                f"layout disks name {disk.path} twice", hint="give each disk of the layout its own disk"
            )
        chosen[rule.name] = disk
        taken.add(disk.path)
    for rule in (r for r in rules if not r.path):
        minimum = parse_size(rule.min_size) if rule.min_size else 1
        fits = [d for d in candidates if d.path not in taken and d.size >= minimum]
        if not fits:
            at_least = f" of at least {format_size(minimum)}" if rule.min_size else ""
            raise PlanRefused(
                f"no disk{at_least} is left for layout disk {rule.name}; this node has: {seen}",
                hint="give the node such a disk, or lower the layout's min_size",
            )
        fits.sort(key=lambda d: (d.size, d.path), reverse=rule.pick == "largest")
        chosen[rule.name] = fits[0]
        taken.add(fits[0].path)
    return {r.name: chosen[r.name] for r in rules}


# -- kept partitions --------------------------------------------------------------------------------


def _kept_existing(
    layout: DiskLayout, part: PartitionSpec, disk_name: str, disk: Disk, kept: Sequence[KeptPartition]
) -> ExistingPartition | None:
    """The existing partition a kept layout partition keeps, None when it is made new; refuse when
    the node reported it last time and it is gone or changed, or when it cannot be kept as it is."""
    record = next((k for k in kept if k.label == part.label and k.disk == disk_name), None)
    found = disk.partition(part.label)
    where = f"kept partition {part.label} on {disk.path} (layout disk {disk_name})"
    if record is not None:
        if found is None:
            raise PlanRefused(
                f"{where} is gone: the last install reported it "
                f"({format_size(record.size)}, UUID {record.uuid})",
                hint="put the disk back, or drop keep from the layout (or clear the node's install "
                "record: swarmboot node set NODE --forget-install) to make it anew",
            )
        changed = []
        if found.size != record.size:
            changed.append(f"size {format_size(found.size)}, was {format_size(record.size)}")
        if record.uuid and found.uuid != record.uuid:
            changed.append(f"filesystem UUID {found.uuid or 'none'}, was {record.uuid}")
        if changed:
            raise PlanRefused(
                f"{where} changed since the last install: {'; '.join(changed)}",
                hint="nothing was written; check what changed the disk, then drop keep or clear the "
                "node's install record (swarmboot node set NODE --forget-install)",
            )
    if found is None:
        return None
    if part.size != REST and _align_up(parse_size(part.size)) != found.size:
        raise PlanRefused(
            f"{where} is {format_size(found.size)} on the disk but {part.size} in the layout: "
            "it cannot be kept without resizing it",
            hint=f"set its size in the layout to {format_size(found.size)} (or rest), or drop keep",
        )
    want_fs = part.fs.value if part.kind is not PartKind.IMAGE_CACHE else "ext4"
    if want_fs != "none" and found.fs and found.fs != want_fs:
        raise PlanRefused(
            f"{where} holds {found.fs}, the layout says {want_fs}: it cannot be kept without formatting it",
            hint="fix the layout's fs, or drop keep to format it",
        )
    return found


# -- placing partitions on one disk -------------------------------------------------------------------


def _place_disk(
    layout: DiskLayout, name: str, disk: Disk, kept: Sequence[KeptPartition]
) -> tuple[list[PlannedPartition], bool]:
    items = [p for p in layout.partitions if name in layout.placements(p)]
    fixed: dict[str, ExistingPartition] = {}
    for part in items:
        if layout.kept(part):
            found = _kept_existing(layout, part, name, disk, kept)
            if found is not None:
                fixed[part.label] = found
    first, last = ALIGN, _align_down(disk.size - GPT_BACKUP)
    # Kept partitions must come in the layout's order on the disk.
    order = [fixed[p.label] for p in items if p.label in fixed]
    if order != sorted(order, key=lambda e: e.start):
        raise PlanRefused(
            f"the kept partitions of {disk.path} are in another order on the disk than in the layout",
            hint="order the layout's partitions as they are on the disk",
        )
    # Stretches of free disk between kept partitions, each with the layout's partitions in it.
    stretches: list[tuple[int, int, list[PartitionSpec], str]] = []
    start, pending = first, []
    for part in items:
        if part.label in fixed:
            existing = fixed[part.label]
            stretches.append((start, existing.start, pending, f"kept partition {part.label}"))
            start, pending = existing.end, []
        else:
            pending.append(part)
    stretches.append((start, last, pending, "the end of the disk"))
    planned: list[PlannedPartition] = []
    for begin, end, parts, bound in stretches:
        planned += _place_stretch(layout, name, disk, parts, begin, end, bound, bool(fixed))
    for part in items:
        if part.label in fixed:
            e = fixed[part.label]
            planned.append(
                PlannedPartition(
                    disk=name,
                    device=disk.path,
                    number=e.number,
                    start=e.start,
                    size=e.size,
                    label=part.label,
                    kind=part.kind,
                    fs=part.fs,
                    mountpoint=part.mountpoint,
                    options=part.options,
                    keep=True,
                    format=False,
                    uuid=e.uuid,
                )
            )
    planned.sort(key=lambda p: p.start)
    # Numbers: kept partitions keep theirs, the others take the lowest free ones in disk order.
    used = {p.number for p in planned if p.keep}
    numbered, free = [], (n for n in range(1, 129) if n not in used)
    for p in planned:
        numbered.append(p if p.keep else _with(p, number=next(free)))
    return numbered, not fixed


def _place_stretch(  # noqa: PLR0917
    layout: DiskLayout,
    name: str,
    disk: Disk,
    parts: list[PartitionSpec],
    begin: int,
    end: int,
    bound: str,
    has_kept: bool,
) -> list[PlannedPartition]:
    if not parts:
        return []
    sized = sum(_align_up(parse_size(p.size)) for p in parts if p.size != REST)
    rest_parts = [p for p in parts if p.size == REST]
    room = end - begin
    need = sized + (MIN_REST if rest_parts else 0)
    if need > room:
        what = ", ".join(f"{p.label} {p.size}" for p in parts)
        if has_kept and bound != "the end of the disk":
            raise PlanRefused(
                f"{what} need {format_size(need)} before {bound} on {disk.path}, which leaves "
                f"{format_size(max(room, 0))}: the layout cannot be reached without touching a kept "
                "partition",
                hint="make those partitions smaller (or rest), or drop keep from the partition after them",
            )
        raise PlanRefused(
            f"disk {disk.path} (layout disk {name}) is too small: the layout needs "
            f"{format_size(need + begin)}"
            f" of it, the disk has {format_size(disk.size)} ({format_size(max(room, 0))} free for {what})",
            hint="give the node a bigger disk, or make the layout's partitions smaller",
        )
    rest_size = room - sized
    out: list[PlannedPartition] = []
    cursor = begin
    for part in parts:
        start = max(cursor, _align_up(parse_size(part.start))) if part.start else cursor
        size = rest_size if part.size == REST else _align_up(parse_size(part.size))
        if part.start and start != cursor and part.size == REST:
            size -= start - cursor
        if start + size > end:
            raise PlanRefused(
                f"{part.label} at {format_size(start)} + {format_size(size)} does not fit on {disk.path} "
                f"before {bound}",
                hint="move its start, or make it (or the partitions after it) smaller",
            )
        out.append(
            PlannedPartition(
                disk=name,
                device=disk.path,
                number=0,
                start=start,
                size=size,
                label=part.label,
                kind=part.kind,
                fs=part.fs,
                mountpoint=part.mountpoint,
                options=part.options,
                format=not part.raid and part.kind is not PartKind.BIOS_GRUB,
                raid=part.raid,
            )
        )
        cursor = start + size
    return out


def _with(p: PlannedPartition, **changes: object) -> PlannedPartition:
    from dataclasses import replace

    return replace(p, **changes)  # type: ignore[arg-type]


# -- the whole plan ---------------------------------------------------------------------------------


def plan(
    layout: DiskLayout,
    candidates: Sequence[Disk],
    kept: Sequence[KeptPartition] = (),
    firmware: str = "bios",
) -> DiskPlan:
    """The install's plan against these disks; PlanRefused (nothing written) when it cannot be."""
    validate(layout)
    kinds = {p.kind for p in layout.partitions}
    if firmware == "uefi" and PartKind.ESP not in kinds:
        raise PlanRefused(
            "this node boots with UEFI firmware, but the layout has no EFI system partition",
            hint="add one to the layout: {label: esp, size: 256MiB, kind: esp}",
        )
    if firmware == "bios" and PartKind.BIOS_GRUB not in kinds:
        raise PlanRefused(
            "this node boots with BIOS firmware and a GPT disk, but the layout has no BIOS boot partition",
            hint="add one to the layout: {label: bios, size: 1MiB, kind: bios_grub}",
        )
    disks = select_disks(layout.disks, candidates)
    partitions: list[PlannedPartition] = []
    fresh: dict[str, bool] = {}
    for name, disk in disks.items():
        placed, fresh[name] = _place_disk(layout, name, disk, kept)
        partitions += placed
    arrays = []
    for array in layout.raid:
        members = [p for p in partitions if p.raid == array.name]
        spec = next(p for p in layout.partitions if p.raid == array.name)
        size = min(p.size for p in members)
        partitions = [_with(p, size=size) if p.raid == array.name else p for p in partitions]
        arrays.append(
            PlannedArray(
                name=array.name,
                members=tuple(_with(p, size=size).path for p in members),
                fs=spec.fs,
                size=size,
                mountpoint=spec.mountpoint,
                options=spec.options,
                label=spec.label,
            )
        )
    return DiskPlan(
        firmware=firmware, disks=disks, partitions=tuple(partitions), arrays=tuple(arrays), fresh=fresh
    )
