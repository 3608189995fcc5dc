"""Root modes: how the agent builds the booted system's root at the sysroot.

A registry by `__init_subclass__` (no entry points: the agent is frozen). Each mode mounts through
a MountStack that registers the undo step right after each side effect and, on failure, unwinds in
reverse order. `nfs` and `disk` are added next by subclassing RootMode in their own modules.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from bootagent.errors import RootError
from bootagent.plan import RootSpec
from swarmboot.errors import CommandError
from swarmboot.run import output, run


class MountStack:
    """Mounts and loop devices made so far, undone in reverse order."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], None]]] = []

    def __len__(self) -> int:
        return len(self._undo)

    def push(self, what: str, undo: Callable[[], None]) -> None:
        self._undo.append((what, undo))

    def mount(self, source: str, target: Path, fstype: str, options: str = "") -> None:
        target.mkdir(parents=True, exist_ok=True)
        argv = ["mount", "-t", fstype] + (["-o", options] if options else []) + [source, str(target)]
        try:
            run(argv, timeout=120)
        except CommandError as exc:
            raise RootError(
                f"cannot mount {fstype} at {target}: {exc.stderr.strip() or exc}",
                hint=f"the initramfs may lack the {fstype} kernel module, or the image file is damaged",
            ) from exc
        self.push(f"mount {target}", lambda: run(["umount", str(target)], timeout=60))

    def loop(self, file: Path) -> str:
        try:
            device = output(["losetup", "--find", "--show", "--read-only", str(file)], timeout=60)
        except CommandError as exc:
            raise RootError(
                f"cannot attach {file} to a loop device: {exc.stderr.strip()}",
                hint="the initramfs may lack the loop kernel module",
            ) from exc
        self.push(f"loop {device}", lambda: run(["losetup", "-d", device], timeout=60))
        return device

    def unwind(self) -> list[str]:
        """Undo everything, newest first; return the errors (every step is tried)."""
        errors = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except CommandError as exc:
                errors.append(f"{what}: {exc.stderr.strip() or exc}")
        return errors


class RootMode:
    """Build the root at `sysroot` from the downloaded image file."""

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    registry: ClassVar[dict[str, type[RootMode]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        RootMode.registry[cls.name] = cls

    def __init__(self, spec: RootSpec, mounts_dir: Path, stack: MountStack) -> None:
        self.spec = spec
        self.mounts_dir = mounts_dir
        self.stack = stack

    def build(self, image_file: Path, image_format: str, sysroot: Path) -> None:
        raise NotImplementedError

    def fstype(self) -> str:
        raise NotImplementedError


def mode_for(spec: RootSpec, image_format: str) -> type[RootMode]:
    cls = RootMode.registry.get(spec.mode)
    if cls is None:
        raise RootError(
            f"root mode {spec.mode!r} is not in this agent (it has: {', '.join(sorted(RootMode.registry))})",
            hint="set the group's root mode to one of those, or re-pack the image with a newer swarmboot",
        )
    if image_format not in cls.formats:
        raise RootError(
            f"root mode {spec.mode!r} needs an image in format {' or '.join(cls.formats)}, "
            f"the image is {image_format}",
            hint="re-pack the image in the right format, or change the group's root mode",
        )
    return cls


def build_root(
    spec: RootSpec, image_file: Path, image_format: str, sysroot: Path, mounts_dir: Path
) -> MountStack:
    """Build the root; on failure undo every mount made so far and re-raise."""
    cls = mode_for(spec, image_format)
    stack = MountStack()
    try:
        cls(spec, mounts_dir, stack).build(image_file, image_format, sysroot)
        check_root(sysroot)
    except BaseException:
        stack.unwind()
        raise
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


class OverlayRoot(RootMode):
    """squashfs on a loop device (read-only lower) + overlayfs with a tmpfs upper."""

    name = "overlay"
    formats = ("squashfs",)

    def fstype(self) -> str:
        return "overlay"

    def build(self, image_file: Path, image_format: str, sysroot: Path) -> None:
        lower, rw = self.mounts_dir / "lower", self.mounts_dir / "rw"
        device = self.stack.loop(image_file)
        self.stack.mount(device, lower, "squashfs", "ro")
        self.stack.mount("tmpfs", rw, "tmpfs", f"size={self.spec.tmpfs_size},mode=0755")
        (rw / "upper").mkdir(mode=0o755, exist_ok=True)
        (rw / "work").mkdir(mode=0o755, exist_ok=True)
        self.stack.mount(
            "overlay", sysroot, "overlay", f"lowerdir={lower},upperdir={rw / 'upper'},workdir={rw / 'work'}"
        )


class TmpfsRoot(RootMode):
    """The tar.zst unpacked into a tmpfs of the plan's size, owners, modes and xattrs kept."""

    name = "tmpfs"
    formats = ("tar.zst",)

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
