"""The disk install, read as its steps (what the part and root stages call):

    part stage   discover → plan (printed; refused before anything is written) → partition →
                 RAID1 → mkfs → mount the image cache (the download goes there)
    root stage   mount the filesystems → write the image → mount kept partitions → fstab →
                 kernel + initramfs → grub.cfg → GRUB (BIOS and/or UEFI)
    post stage   the group's post script inside the installed root
    handover     the install record (image, version, sha256, layout, kept partitions' UUIDs) for
                 the server, which then boots this node from its disk

The group's part script, when given, replaces the declarative layout: it partitions, formats and
mounts the target root at $SYSROOT (the disks in $SWARMBOOT_DISKS); the root stage writes the
image into what it mounted and installs GRUB on those disks.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bootagent.disk import bootloader, discovery, image, planner, writers
from bootagent.disk.model import DiskPlan, PlannedArray, PlannedPartition
from bootagent.errors import RootError
from bootagent.mounts import MountStack
from ground.contract.layout import DiskLayout, Filesystem, KeptPartition, PartKind, to_mapping
from ground.contract.plan import BootPlan
from ground.run import output, run

CACHE_DIR = "image-cache"  # where the cache partition is mounted under the agent's run dir


@dataclass
class DiskInstall:
    """The install's state, from the part stage to the handover."""

    boot_plan: BootPlan
    layout: DiskLayout | None
    firmware: str
    run_dir: Path
    fetch: Any = None  # fetch(url, what) -> bytes: the packed kernel and initramfs
    agent_cmdline: str = ""
    plan: DiskPlan | None = None
    uuids: dict[str, str] = field(default_factory=dict)  # device -> filesystem UUID
    timings: dict[str, float] = field(default_factory=dict)
    cache_dir: Path | None = None
    cache_stack: MountStack = field(default_factory=MountStack)
    script_disks: tuple[str, ...] = ()  # part-script installs: the disks GRUB goes on
    bootloader: dict[str, object] = field(default_factory=dict)
    console: Any = None

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.info(text)

    def timed(self, step: str, started: float) -> None:
        self.timings[step] = round(self.timings.get(step, 0.0) + time.monotonic() - started, 3)

    def uuid(self, what: PlannedPartition | PlannedArray) -> str:
        if isinstance(what, PlannedPartition) and what.keep:
            return what.uuid
        return self.uuids.get(what.path, "")


def firmware() -> str:
    return "uefi" if Path("/sys/firmware/efi").is_dir() else "bios"


# -- the part stage ------------------------------------------------------------------------------


def make_plan(state: DiskInstall, candidates: list | None = None) -> DiskPlan:
    """Discover and plan; nothing is written. PlanRefused says what to change."""
    if state.layout is None:
        raise planner.PlanRefused(
            "the group's root mode is disk but it has no layout",
            hint="swarmboot group set GROUP --layout FILE (or --disk/--partition)",
        )
    started = time.monotonic()
    if candidates is None:
        explicit = [d.path for d in state.layout.disks if d.path]
        candidates = discovery.list_disks(explicit)
    disk_plan = planner.plan(state.layout, candidates, state.boot_plan.root.kept, state.firmware)
    state.timed("plan", started)
    return disk_plan


def commit(state: DiskInstall, disk_plan: DiskPlan, expose: Any = None) -> None:
    """Write the plan: partitions, RAID1, filesystems; then mount the image cache."""
    state.plan = disk_plan
    started = time.monotonic()
    stopped = writers.stop_arrays(disk_plan)
    if stopped:
        state.say(f"stopped old RAID arrays: {', '.join(stopped)}")
    writers.wipe_replaced(disk_plan)
    writers.write_tables(disk_plan, expose)
    state.timed("partition", started)
    started = time.monotonic()
    writers.build_arrays(disk_plan)
    if disk_plan.arrays:
        state.timed("raid", started)
    started = time.monotonic()
    state.uuids = writers.make_filesystems(disk_plan)
    state.timed("mkfs", started)
    mount_cache(state)


def mount_cache(state: DiskInstall) -> None:
    plan = state.plan
    cache = next((p for p in plan.partitions if p.kind is PartKind.IMAGE_CACHE), None) if plan else None
    if cache is None:
        return
    target = state.run_dir / CACHE_DIR
    state.cache_stack.mount(plan.dev(cache.path), target, "ext4")
    state.cache_dir = target / "images"
    state.cache_dir.mkdir(exist_ok=True)
    # only this image's file is kept: older versions go, so the cache never fills up
    keep = Path(state.boot_plan.image.http_url).name
    for old in state.cache_dir.iterdir():
        if old.name != keep:
            old.unlink()
    have = state.cache_dir / keep
    state.say(
        f"image cache {cache.path} mounted"
        + (
            f": holds {keep} ({have.stat().st_size >> 20} MiB), checked by sha256 before use"
            if have.exists()
            else ": empty"
        )
    )


def run_part(state: DiskInstall) -> dict[str, object]:
    disk_plan = make_plan(state)
    for line in disk_plan.lines():
        state.say(line)
    commit(state, disk_plan)
    return {"plan": disk_plan.lines(), "timings": dict(state.timings)}


# -- the root stage ------------------------------------------------------------------------------


def _relative(mountpoint: str) -> str:
    return mountpoint.strip("/")


def build_disk_root(
    state: DiskInstall, stack: MountStack, image_file: Path, image_format: str, sysroot: Path
) -> None:
    if state.plan is None:
        build_script_root(state, stack, image_file, image_format, sysroot)
        return
    disk_plan = state.plan
    mounts = disk_plan.filesystems()
    kept_points = [what.mountpoint for _d, what in mounts if isinstance(what, PlannedPartition) and what.keep]
    # Kept partitions hold the node's files, not the image's: mounted after the write, their
    # mount points left out of it. The ESP (vfat: no owners) too; GRUB fills it afterwards.
    later = set(kept_points) | {what.mountpoint for _d, what in mounts if what.fs is Filesystem.VFAT}
    for device, what in mounts:  # the new filesystems first: the image's files belong on them
        if what.mountpoint not in later:
            stack.mount(disk_plan.dev(device), sysroot / _relative(what.mountpoint), what.fs.value,
                        what.options or "")
    started = time.monotonic()
    image.write_image(image_file, image_format, sysroot, [_relative(m) for m in kept_points])
    _sync()
    state.timed("write", started)
    for device, what in mounts:
        if what.mountpoint in later:
            stack.mount(disk_plan.dev(device), sysroot / _relative(what.mountpoint), what.fs.value,
                        what.options or "")
    entries: list[tuple[str, PlannedPartition | PlannedArray]] = [
        (state.uuid(what), what) for _d, what in mounts
    ]
    entries += [(state.uuid(p), p) for p in disk_plan.partitions if image.is_swap(p)]
    (sysroot / "etc").mkdir(exist_ok=True)
    (sysroot / "etc/fstab").write_text(image.render_fstab(entries))
    if disk_plan.arrays:
        write_mdadm_conf(sysroot, disk_plan)
    started = time.monotonic()
    root = next(what for _d, what in mounts if what.mountpoint == "/")
    boot_what = next((what for _d, what in mounts if what.mountpoint == "/boot"), root)
    md_uuids = [writers.array_uuid(a) for a in disk_plan.arrays]
    install_bootloader(
        state,
        sysroot,
        state.uuid(root),
        state.uuid(boot_what),
        boot_what.fs,
        bool(disk_plan.arrays),
        md_uuids,
        boot_prefix="/swarmboot" if boot_what is not root else "/" + image.BOOT_DIR,
    )
    state.timed("bootloader", started)


def _sync() -> None:
    run(["sync"], timeout=600)


def write_mdadm_conf(sysroot: Path, disk_plan: DiskPlan) -> None:
    text = output(["mdadm", "--detail", "--scan"], timeout=60)
    conf = sysroot / "etc/mdadm/mdadm.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("# written by the swarmboot agent at install\nHOMEHOST <ignore>\n" + text)


def install_bootloader(  # noqa: PLR0917
    state: DiskInstall,
    sysroot: Path,
    root_uuid: str,
    boot_uuid: str,
    boot_fs: Filesystem,
    raid: bool,
    md_uuids: list[str],
    boot_prefix: str,
    disks: list[str] | None = None,
) -> None:
    plan = state.boot_plan
    if state.fetch is not None:
        kernel = state.fetch(plan.image.kernel_url, "the packed kernel")
        initramfs = state.fetch(plan.image.initramfs_url, "the packed initramfs")
        image.install_boot_files(sysroot, kernel, initramfs)
    cmdline = bootloader.kernel_arguments(root_uuid, md_uuids, state.agent_cmdline, plan.kernel_args)
    title = f"swarmboot: {plan.image.name} version {plan.image.version}"
    grub_dir = sysroot / "boot/grub"
    grub_dir.mkdir(parents=True, exist_ok=True)
    (grub_dir / "grub.cfg").write_text(
        bootloader.render_grub_cfg(title, boot_uuid, boot_fs, raid, cmdline, boot_prefix)
    )
    binds = MountStack()
    with binds.guard():
        bootloader.bind_system(binds, sysroot, state.firmware == "uefi")
        if state.firmware == "uefi":
            state.bootloader = (
                bootloader.install_uefi(state.plan, sysroot, f"swarmboot {plan.image.name}")
                if state.plan
                else {}
            )
            copy_second_esps(state, sysroot)
        else:
            targets = (
                disks
                if disks is not None
                else [d.path for d in state.plan.disks.values()]
                if state.plan
                else []
            )
            state.bootloader = {"bios": bootloader.install_bios(targets, sysroot)}
    for problem in binds.unwind():
        state.say(f"warning: could not undo a bind mount: {problem}")
    state.bootloader["cmdline"] = cmdline
    settle(sysroot)


def settle(sysroot: Path) -> None:
    """What GRUB reads must be on the disk, not only in the page cache or a journal: the kernel,
    grub.cfg and GRUB's modules had not reached a RAID1 member minutes after the install (a
    0-byte grub.cfg and /boot/grub in ext4's journal only), so the member booted alone stopped at
    `grub rescue>`. Sync, then checkpoint the root and /boot (bootloader.checkpoint); again at the
    handover, after the node's files and the post script."""
    os.sync()
    for mountpoint in (sysroot, sysroot / "boot"):
        if mountpoint.is_mount():  # never a directory of another filesystem (a test's, the host's)
            bootloader.checkpoint(mountpoint)


def copy_second_esps(state: DiskInstall, sysroot: Path) -> None:
    if state.plan is None:
        return
    esps = [p for p in state.plan.partitions if p.kind is PartKind.ESP]
    for extra in esps[1:]:
        stack = MountStack()
        target = state.run_dir / "mnt" / f"esp-{extra.disk}"
        with stack.guard():
            stack.mount(extra.path, target, "vfat")
            bootloader.copy_esp(sysroot / "boot/efi", target)
        stack.unwind()


def build_script_root(
    state: DiskInstall, stack: MountStack, image_file: Path, image_format: str, sysroot: Path
) -> None:
    """A part-script install: the script mounted the target root at $SYSROOT."""
    if not os.path.ismount(sysroot):
        raise RootError(
            f"the group's part script did not mount the target root at {sysroot}",
            hint="the part script must partition, format and mount the root at $SYSROOT",
        )
    started = time.monotonic()
    image.write_image(image_file, image_format, sysroot, [])
    _sync()
    state.timed("write", started)
    lines = ["# written by the swarmboot agent after the group's part script: what it mounted"]
    root_uuid, root_fs = "", Filesystem.EXT4
    for line in output(
        ["findmnt", "-R", "-n", "-r", "-o", "TARGET,UUID,FSTYPE", str(sysroot)], timeout=60
    ).splitlines():
        target, uuid, fstype = [*line.split(" "), "", "", ""][:3]
        inside = "/" + os.path.relpath(target, sysroot).lstrip(".")
        inside = "/" if inside in ("/", "/.") else inside.rstrip("/")
        if inside == "/":
            root_uuid = uuid
            root_fs = Filesystem(fstype) if fstype in {f.value for f in Filesystem} else Filesystem.EXT4
        lines.append(f"UUID={uuid}\t{inside}\t{fstype}\tdefaults\t0\t{1 if inside == '/' else 2}")
    (sysroot / "etc/fstab").write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    install_bootloader(
        state,
        sysroot,
        root_uuid,
        root_uuid,
        root_fs,
        False,
        [],
        "/" + image.BOOT_DIR,
        disks=list(state.script_disks),
    )
    state.timed("bootloader", started)


# -- the handover: what the server keeps --------------------------------------------------------


def kept_records(state: DiskInstall) -> list[KeptPartition]:
    if state.plan is None or state.layout is None:
        return []
    out = []
    for spec in state.layout.partitions:
        if not state.layout.kept(spec):
            continue
        for p in state.plan.partitions:
            if p.label == spec.label:
                fs = "ext4" if spec.kind is PartKind.IMAGE_CACHE else spec.fs.value
                out.append(KeptPartition(label=p.label, disk=p.disk, size=p.size, uuid=state.uuid(p), fs=fs))
    return out


def install_record(state: DiskInstall, reused: bool) -> dict[str, object]:
    plan = state.boot_plan
    return {
        "image": plan.image.name,
        "version": plan.image.version,
        "sha256": plan.image.sha256,
        "layout": to_mapping(state.layout) if state.layout else {},
        "kept": [asdict(k) for k in kept_records(state)],
        "firmware": state.firmware,
        "disks": {name: d.path for name, d in state.plan.disks.items()} if state.plan else {},
        "bootloader": state.bootloader,
        "timings": dict(state.timings),
        "image_from_cache": reused,
    }


def unwind(state: DiskInstall) -> list[str]:
    return state.cache_stack.unwind()


def agent_cmdline(path: Path = Path("/proc/cmdline")) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
