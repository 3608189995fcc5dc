"""The image into the installed root: unpacked with owners, modes, xattrs (ACLs are xattrs),
hard links and device nodes kept (squashfs: unsquashfs; tar.zst: tar), kept partitions' mount
points left out (their content is the node's, not the image's); then /etc/fstab by UUID and the
packed kernel and initramfs into /boot/swarmboot/."""

from __future__ import annotations

from pathlib import Path

from bootagent.disk.model import PlannedArray, PlannedPartition
from bootagent.errors import RootError
from ground.contract.layout import Filesystem, PartKind
from ground.errors import CommandError
from ground.run import run

WRITE_TIMEOUT = 3600.0
BOOT_DIR = "boot/swarmboot"  # the installed kernel and initramfs, what grub.cfg boots


def write_argv(image_file: Path, image_format: str, target: Path, exclude: list[str]) -> list[str]:
    """The command that unpacks the image at `target` (exclude: paths relative to /)."""
    if image_format == "squashfs":
        argv = ["unsquashfs", "-force", "-no-progress", "-quiet", "-dest", str(target)]
        return argv + (["-excludes", str(image_file), *exclude] if exclude else [str(image_file)])
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
        str(target),
    ]
    for path in exclude:
        argv += ["--anchored", f"--exclude=./{path}", f"--exclude={path}"]
    return argv


def write_image(image_file: Path, image_format: str, target: Path, exclude: list[str]) -> None:
    try:
        run(write_argv(image_file, image_format, target, exclude), timeout=WRITE_TIMEOUT)
    except CommandError as exc:
        tail = "\n".join((exc.stderr or "").strip().splitlines()[-5:])
        full = "No space left" in (exc.stderr or "") or "Wrote only" in (exc.stderr or "")
        raise RootError(
            f"cannot write {image_file.name} onto the root filesystem at {target}: {tail}",
            hint="the root partition is too small for the image: make it bigger in the layout"
            if full
            else "the image file may be damaged: re-pack it",
        ) from exc
    for path in exclude:  # the mount points of kept partitions
        (target / path).mkdir(parents=True, exist_ok=True)


def fstab_line(uuid: str, what: PlannedPartition | PlannedArray) -> str:
    fs = what.fs
    if fs is Filesystem.SWAP:
        return f"UUID={uuid}\tnone\tswap\tsw\t0\t0"
    options = what.options or ("umask=0077" if fs is Filesystem.VFAT else "defaults")
    passno = 1 if what.mountpoint == "/" else 2
    if fs is Filesystem.XFS:
        passno = 0  # xfs_repair is not an fsck
    return f"UUID={uuid}\t{what.mountpoint}\t{fs.value}\t{options}\t0\t{passno}"


def render_fstab(entries: list[tuple[str, PlannedPartition | PlannedArray]]) -> str:
    lines = ["# written by the swarmboot agent at install (the group's layout): filesystems by UUID"]
    lines += [fstab_line(uuid, what) for uuid, what in entries]
    return "\n".join(lines) + "\n"


def is_swap(p: PlannedPartition) -> bool:
    return p.fs is Filesystem.SWAP and not p.raid and p.kind is PartKind.DATA


def install_boot_files(sysroot: Path, kernel: bytes, initramfs: bytes) -> tuple[Path, Path]:
    boot = sysroot / BOOT_DIR
    boot.mkdir(parents=True, exist_ok=True)
    vmlinuz, initrd = boot / "vmlinuz", boot / "initramfs.img"
    for path, data in ((vmlinuz, kernel), (initrd, initramfs)):
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.chmod(0o600 if path is initrd else 0o644)
        partial.rename(path)
    return vmlinuz, initrd
