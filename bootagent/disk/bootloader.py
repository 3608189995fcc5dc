"""GRUB on the installed disks, run inside the installed root (the image carries grub-pc-bin and
grub-efi-amd64-bin: builder/packages.py), with /dev, /proc and /sys bound into it:
- BIOS: grub-install --target=i386-pc on every disk of the layout (core image in the bios_grub
  partition), so each disk of a RAID1 boots on its own;
- UEFI: grub-install --target=x86_64-efi into the ESP twice, as EFI/swarmboot (the boot entry,
  made with efibootmgr and appended to BootOrder so the network stays first) and as the removable
  path EFI/BOOT/BOOTX64.EFI (firmware that lost its entries still finds it); a second disk's ESP
  gets a copy.
grub.cfg is ours (no os-prober, nothing probed): the root filesystem by UUID, the packed kernel and
initramfs in /boot/swarmboot, the agent's console arguments and the group's kernel arguments."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from pathlib import Path

from bootagent.disk.model import DiskPlan
from bootagent.disk.writers import DiskWriteError
from bootagent.mounts import MountStack
from ground.contract.layout import Filesystem, PartKind
from ground.errors import CommandError
from ground.run import output, run

EFI_ID = "swarmboot"
GRUB_TIMEOUT = 600.0
FIFREEZE, FITHAW = 0xC0045877, 0xC0045878  # linux/fs.h: _IOWR('X', 119, int), _IOWR('X', 120, int)


def _chroot(sysroot: Path, argv: list[str], what: str) -> str:
    try:
        return run(["chroot", str(sysroot), *argv], timeout=GRUB_TIMEOUT).stdout
    except CommandError as exc:
        raise DiskWriteError(
            f"{what} failed: {(exc.stderr or str(exc)).strip()[-800:]}",
            hint="the image needs grub-pc-bin and grub-efi-amd64-bin (swarmboot image create "
            "installs them; re-create or add them with lchroot and re-pack); kept partitions were "
            "not touched",
        ) from exc


def kernel_arguments(root_uuid: str, md_uuids: list[str], agent_cmdline: str, extra: str) -> str:
    """The installed system's kernel command line: its root by UUID, its RAID arrays, the console
    the agent was booted with, and the group's and node's arguments."""
    consoles = [t for t in agent_cmdline.split() if t.startswith("console=")]
    args = [f"root=UUID={root_uuid}", "ro", *[f"rd.md.uuid={u}" for u in md_uuids], *consoles]
    return " ".join(args + ([extra] if extra else []))


def render_grub_cfg(  # noqa: PLR0917
    title: str, boot_uuid: str, fs: Filesystem, raid: bool, cmdline: str, boot_prefix: str
) -> str:
    modules = ["part_gpt", "ext2" if fs is Filesystem.EXT4 else fs.value]
    if raid:
        modules.append("mdraid1x")
    inserts = "\n".join(f"insmod {m}" for m in modules)
    return f"""# written by the swarmboot agent at install; the next install writes it again
set timeout=2
set default=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
{inserts}
search --no-floppy --fs-uuid --set=root {boot_uuid}
menuentry "{title}" {{
    linux {boot_prefix}/vmlinuz {cmdline}
    initrd {boot_prefix}/initramfs.img
}}
"""


def bind_system(stack: MountStack, sysroot: Path, uefi: bool) -> None:
    for fs in ("dev", "proc", "sys"):
        stack.bind(Path("/") / fs, sysroot / fs)
    efivars = Path("/sys/firmware/efi/efivars")
    if uefi and efivars.is_dir() and not any(efivars.iterdir()):
        stack.mount("efivarfs", efivars, "efivarfs")


def install_bios(disks: list[str], sysroot: Path) -> list[str]:
    for disk in disks:
        _chroot(
            sysroot,
            ["grub-install", "--target=i386-pc", "--boot-directory=/boot", disk],
            f"grub-install (BIOS) on {disk}",
        )
    return list(disks)


def _boot_order() -> list[str]:
    text = output(["efibootmgr"], timeout=60)
    match = re.search(r"^BootOrder:\s*(\S+)", text, re.MULTILINE)
    return match.group(1).split(",") if match else []


def install_uefi(plan: DiskPlan, sysroot: Path, label: str) -> dict[str, object]:
    esps = [p for p in plan.partitions if p.kind is PartKind.ESP]
    first = esps[0]
    _chroot(
        sysroot,
        [
            "grub-install",
            "--target=x86_64-efi",
            "--efi-directory=/boot/efi",
            f"--bootloader-id={EFI_ID}",
            "--no-nvram",
        ],
        "grub-install (UEFI)",
    )
    _chroot(
        sysroot,
        ["grub-install", "--target=x86_64-efi", "--efi-directory=/boot/efi", "--removable", "--no-nvram"],
        "grub-install (UEFI, removable path)",
    )
    result: dict[str, object] = {"esp": first.path, "removable": "EFI/BOOT/BOOTX64.EFI"}
    if Path("/sys/firmware/efi").is_dir():
        try:
            before = _boot_order()
            text = output(
                [
                    "efibootmgr",
                    "--create",
                    "--disk",
                    first.device,
                    "--part",
                    str(first.number),
                    "--label",
                    label,
                    "--loader",
                    f"\\EFI\\{EFI_ID}\\grubx64.efi",
                ],
                timeout=60,
            )
            entry = re.search(r"^Boot([0-9A-Fa-f]{4})\*? " + re.escape(label), text, re.MULTILINE)
            if entry and before:  # keep the network (and whatever was first) first: append ours
                order = [b for b in before if b != entry.group(1)] + [entry.group(1)]
                run(["efibootmgr", "--bootorder", ",".join(order)], timeout=60)
            result["entry"] = entry.group(1) if entry else ""
        except CommandError as exc:  # the removable path still boots; say so
            result["entry_error"] = (exc.stderr or str(exc)).strip()[-300:]
    return result


def copy_esp(source: Path, target: Path) -> None:
    """A second disk's ESP: the same files (each disk of a RAID1 boots on its own)."""
    for item in source.iterdir():
        dest = target / item.name
        if item.is_dir():
            shutil.copytree(item, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(item, dest)


def checkpoint(mountpoint: Path) -> bool:
    """Write a journaled filesystem's journal back to the blocks it stands for, by freezing it and
    thawing it at once (ext4 and xfs flush their journal on freeze). GRUB reads the disk without
    replaying any journal, and a node can be reset before the kernel checkpoints on its own: a RAID1
    member booted alone stopped at `grub rescue>` ("/boot/grub/i386-pc/normal.mod not found"), the
    directory being only in ext4's journal. False: the filesystem cannot be frozen (vfat, no
    journal: a sync is all it needs)."""
    fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.sync()
        try:
            fcntl.ioctl(fd, FIFREEZE, 0)
        except OSError:
            return False
        for attempt in range(3):  # never leave it frozen: every writer would hang
            try:
                fcntl.ioctl(fd, FITHAW, 0)
                break
            except OSError as exc:
                if attempt == 2:
                    raise DiskWriteError(
                        f"cannot thaw {mountpoint} after flushing its journal: {exc}",
                        hint="reboot the node (its writes wait on the frozen filesystem)",
                    ) from exc
        return True
    finally:
        os.close(fd)
