"""Root modes: how the agent builds the booted system's root at the sysroot.

One builder per member of the contract's closed set (ground.contract.sets.RootMode), registered
by `__init_subclass__` (no entry points: the agent is frozen). tests/unit/test_contract.py fails
when a member has no builder here, or a builder no member. Each builder mounts through a
MountStack (bootagent/mounts.py): what it made is undone, newest first, if a later step fails.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from bootagent.errors import RootError
from bootagent.mounts import MountStack
from ground.contract.plan import RootSpec
from ground.contract.sets import ROOT_MODE_FORMATS, ImageFormat, RootMode
from ground.errors import CommandError, MissingToolError
from ground.run import Child, run, spawn


class RootBuilder:
    """Build the root at `sysroot` from the downloaded image file."""

    mode: ClassVar[RootMode]
    registry: ClassVar[dict[RootMode, type[RootBuilder]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        RootBuilder.registry[cls.mode] = cls

    def __init__(self, spec: RootSpec, mounts_dir: Path, stack: MountStack, install: Any = None) -> None:
        self.spec = spec
        self.mounts_dir = mounts_dir
        self.stack = stack
        self.install = install  # the disk mode's state from the part stage (bootagent/disk/install.py)
        self.say: Any = print  # the console (the nfs mode's retries)

    @classmethod
    def formats(cls) -> tuple[ImageFormat, ...]:
        return ROOT_MODE_FORMATS[cls.mode]

    def build(self, image_file: Path, image_format: str, sysroot: Path) -> None:
        raise NotImplementedError

    def fstype(self) -> str:
        raise NotImplementedError

    def overlay_over(self, lower: Path, rw: Path, sysroot: Path) -> None:
        """A tmpfs of the plan's size at `rw` and the overlay of `lower` with its upper at
        `sysroot` (the overlay and nfs modes: what the node writes stays in its RAM)."""
        self.stack.mount("tmpfs", rw, "tmpfs", f"size={self.spec.tmpfs_size},mode=0755")
        (rw / "upper").mkdir(mode=0o755, exist_ok=True)
        (rw / "work").mkdir(mode=0o755, exist_ok=True)
        self.stack.mount(
            "overlay", sysroot, "overlay", f"lowerdir={lower},upperdir={rw / 'upper'},workdir={rw / 'work'}"
        )


# The kernel modules a root mode mounts with, loaded ahead while the image downloads (a mount
# loads them itself otherwise, then: ~0.5 s of the root stage in a TCG guest, measured in the e2e)
PRELOAD_MODULES: dict[str, tuple[str, ...]] = {
    RootMode.OVERLAY: ("loop", "squashfs", "overlay"),
    RootMode.NFS: ("nfs", "nfsv4", "overlay"),
}


def preload_modules(mode: str) -> Child | None:
    """`modprobe` the root mode's modules in the background (None: none to load, or no modprobe);
    `finish_preload` before the root is built."""
    modules = PRELOAD_MODULES.get(mode, ())
    if not modules:
        return None
    try:
        return spawn(["modprobe", "-a", "-q", *modules], stderr=subprocess.DEVNULL)
    except (OSError, MissingToolError):  # no modprobe (a kernel with them built in): the mount's business
        return None


def finish_preload(child: Child | None, timeout: float = 60.0) -> None:
    """Wait for the preload (a mount would load the same modules anyway: its outcome is not ours)."""
    if child is None:
        return
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.stop()


def builder_for(spec: RootSpec, image_format: str) -> type[RootBuilder]:
    cls = RootBuilder.registry.get(spec.mode)  # type: ignore[call-overload]
    if cls is None:
        raise RootError(
            f"root mode {spec.mode!r} is not in this agent "
            f"(it has: {', '.join(sorted(RootBuilder.registry))})",
            hint="set the group's root mode to one of those, or re-pack the image with a newer swarmboot",
        )
    if image_format not in cls.formats():
        raise RootError(
            f"root mode {spec.mode!r} needs an image in format {' or '.join(cls.formats())}, "
            f"the image is {image_format}",
            hint="re-pack the image in the right format, or change the group's root mode",
        )
    return cls


def build_root(  # noqa: PLR0917
    spec: RootSpec, image_file: Path, image_format: str, sysroot: Path, mounts_dir: Path, install: Any = None,
    say: Any = None,
) -> MountStack:
    """Build the root; on failure undo every mount made so far (errors of the undo become notes
    of the exception) and re-raise. On success the caller owns the stack."""
    cls = builder_for(spec, image_format)
    stack = MountStack()
    with stack.guard():
        builder = cls(spec, mounts_dir, stack, install)
        if say is not None:
            builder.say = say
        builder.build(image_file, image_format, sysroot)
        check_root(sysroot)
    return stack


def _full(path: Path) -> bool:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize < 1 << 20


def check_root(sysroot: Path) -> None:
    for init in ("sbin/init", "usr/lib/systemd/systemd", "lib/systemd/systemd"):
        if os.path.lexists(sysroot / init):
            return
    raise RootError(
        f"the root built at {sysroot} has no /sbin/init",
        hint="the image is not a bootable system: install systemd-sysv (or an init) in it and re-pack",
    )


class OverlayRoot(RootBuilder):
    """squashfs on a loop device (read-only lower) + overlayfs with a tmpfs upper."""

    mode = RootMode.OVERLAY

    def fstype(self) -> str:
        return "overlay"

    def build(self, image_file: Path, image_format: str, sysroot: Path) -> None:
        lower, rw = self.mounts_dir / "lower", self.mounts_dir / "rw"
        device = self.stack.loop(image_file)
        self.stack.mount(device, lower, "squashfs", "ro")
        self.overlay_over(lower, rw, sysroot)


class TmpfsRoot(RootBuilder):
    """The tar.zst unpacked into a tmpfs of the plan's size, owners, modes and xattrs kept."""

    mode = RootMode.TMPFS

    def fstype(self) -> str:
        return "tmpfs"

    def build(self, image_file: Path, image_format: str, sysroot: Path) -> None:
        self.stack.mount("tmpfs", sysroot, "tmpfs", f"size={self.spec.tmpfs_size},mode=0755")
        argv = [
            "tar",
            "--zstd",
            "-x",
            "-p",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "-f",
            str(image_file),
            "-C",
            str(sysroot),
        ]
        try:
            run(argv, timeout=1800)
        except CommandError as exc:
            full = "No space left on device" in exc.stderr or "Wrote only" in exc.stderr or _full(sysroot)
            raise RootError(
                f"cannot unpack {image_file.name} into the tmpfs at {sysroot}: "
                + "\n".join(exc.stderr.strip().splitlines()[-5:]),
                hint="the tmpfs is too small: raise the group's root tmpfs_size (now "
                f"{self.spec.tmpfs_size}) or give the node more RAM"
                if full
                else "the image file may be damaged: re-pack it",
            ) from exc


class NfsRoot(RootBuilder):
    """The server's read-only NFS export of the packed version (lower) + overlayfs with a tmpfs
    upper: nothing is downloaded; what the node writes stays in its RAM."""

    mode = RootMode.NFS

    def fstype(self) -> str:
        return "overlay"

    def build(self, image_file: Path, image_format: str, sysroot: Path) -> None:
        from bootagent import nfs

        export = self.spec.nfs
        if export is None:
            raise RootError("the plan's root mode is nfs but it names no export (root.nfs)",
                            hint="the server renders it: upgrade the server to this swarmboot")
        lower, rw = self.mounts_dir / "lower", self.mounts_dir / "rw"
        nfs.mount_export(export, lower, say=self.say)
        self.stack.mounted(lower)
        self.overlay_over(lower, rw, sysroot)


class DiskRoot(RootBuilder):
    """The layout's root filesystem on the local disk(s), the image written onto it, GRUB
    installed (bootagent/disk/: the part stage planned and partitioned, this writes)."""

    mode = RootMode.DISK

    def fstype(self) -> str:
        return "disk"

    def build(self, image_file: Path, image_format: str, sysroot: Path) -> None:
        from bootagent.disk.install import build_disk_root

        if self.install is None:
            raise RootError("the disk root needs the part stage's plan, but the part stage did not run",
                            hint="this is a bug in the swarmboot agent")
        build_disk_root(self.install, self.stack, image_file, image_format, sysroot)

