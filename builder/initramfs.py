"""The initramfs: dracut run inside the image, with the image's kernel version.

    build_initramfs(rootfs, kver, out_dir / "initramfs.img", modules=["swarmboot"],
                    agent_bundle=Path("/var/lib/swarmboot/agent/bundle"))

Options (FACTS): --no-hostonly (boots any node); fast zstd (`zstd -T0 -3`: 16 s instead of
~120 s at gzip -9); network through network-legacy, with ifcfg omitted (the plain `network`
module picks systemd-networkd, which needs dbus, and fails). The agent bundle, when given, is a
host directory bound read-only at /usr/lib/swarmboot/agent inside the image while dracut runs,
so the dracut module can install it; its content hash is part of pack's inputs.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from builder.chroot import ChrootSpec, run_in_image
from builder.dracut_module import tree_hash
from ground.errors import SwarmbootError

AGENT_INSIDE = "/usr/lib/swarmboot/agent"
OUT_INSIDE = "/run/lchroot/out"
DRACUT_TIMEOUT = 1800.0

# Added with the swarmboot module (dracut-module/90swarmboot/module-setup.sh): the agent runs
# under dracut's classic shell init, whose hooks own the console (hence no systemd modules), and a
# network node needs only some of the kernel's drivers (docs/agent.md, "Size"): the whole of
# `kernel-modules` (every storage driver and file system, ~100 MB unpacked) is left out, and so
# are modules for root devices swarmboot does not use (crypt, dm, nvdimm, virtiofs, resume).
SWARMBOOT_OMIT = (
    "systemd systemd-initrd dracut-systemd "
    "crypt dm lunmask nvdimm resume virtiofs usrmount kernel-modules kernel-modules-extra"
)
# What the agent and the rescue shell need: the root modes (loop, squashfs, overlay), local disks
# (for the disk mode, the cache and the rescue shell: SATA/NVMe/SAS/virtio controllers, ext4, xfs,
# vfat with the code pages a mount asks for: Debian's kernel mounts FAT with iocharset=ascii by
# default, and without nls_ascii the ESP does not mount: "IO charset ascii not found", seen in
# QEMU), keyboards on USB.
STORAGE_DRIVERS = (
    "loop squashfs overlay ext4 xfs vfat nls_cp437 nls_iso8859_1 nls_ascii nls_utf8 raid1 md_mod efivarfs "
    "ahci nvme sd_mod sr_mod virtio_blk virtio_scsi virtio_pci megaraid_sas mpt3sas "
    "usbhid hid_generic xhci_pci xhci_hcd ehci_pci ehci_hcd ohci_pci uhci_hcd"
)
# NICs: dracut's kernel-network-modules (pulled in by `network`) already takes every wired
# Ethernet driver; naming the common server NICs makes sure they stay whatever dracut decides.
NIC_DRIVERS = (
    "virtio_net e1000 e1000e igb igc ixgbe i40e ice bnxt_en tg3 bnx2 bnx2x r8169 "
    "mlx4_en mlx5_core vmxnet3 qede be2net"
)
SWARMBOOT_MODULE_OPTIONS: tuple[str, ...] = (
    "--omit", SWARMBOOT_OMIT,
    "--add-drivers", f"{STORAGE_DRIVERS} {NIC_DRIVERS}",
)


class InitramfsError(SwarmbootError):
    """dracut failed inside the image."""

DRACUT_OPTIONS: tuple[str, ...] = (
    "--no-hostonly",
    "--no-hostonly-cmdline",
    "--force",
    "--add", "network-legacy",
    "--omit", "ifcfg",
    "--compress", "zstd -T0 -3 -q",
    "--tmpdir", "/run/lchroot",
)


def dracut_options(modules: list[str] | tuple[str, ...]) -> list[str]:
    """Every dracut option for these extra modules (also what pack hashes into its inputs)."""
    options = list(DRACUT_OPTIONS)
    for module in modules:
        options += ["--add", module]
    if "swarmboot" in modules:
        options += SWARMBOOT_MODULE_OPTIONS
    return options


def dracut_argv(
    kernel_version: str,
    output_inside: str,
    modules: list[str] | tuple[str, ...],
    kernel_modules: set[str] | None = None,
) -> list[str]:
    """dracut's command line. With `kernel_modules` (what the image's kernel has), drivers it does
    not have are dropped from --add-drivers: dracut would otherwise fail on them."""
    options = dracut_options(modules)
    if kernel_modules is not None:
        for i, option in enumerate(options[:-1]):
            if option == "--add-drivers":
                wanted = options[i + 1].split()
                options[i + 1] = " ".join(d for d in wanted if d.replace("-", "_") in kernel_modules)
    return ["dracut", *options, "--kver", kernel_version, output_inside]


def kernel_module_names(rootfs: Path, kernel_version: str) -> set[str]:
    """Names (with '_') of the modules the image's kernel has, loadable or built in."""
    names: set[str] = set()
    for base in ("usr/lib/modules", "lib/modules"):
        kdir = rootfs / base / kernel_version
        for listing in ("modules.dep", "modules.builtin"):
            path = kdir / listing
            if not path.is_file():
                continue
            for line in path.read_text(errors="replace").splitlines():
                module = line.split(":", 1)[0].rsplit("/", 1)[-1]
                names.add(module.split(".ko", 1)[0].replace("-", "_"))
        if names:
            break
    return names


def agent_bundle_hash(agent_bundle: Path | None) -> str:
    """Content hash of a frozen agent bundle directory ('' for none)."""
    return tree_hash(agent_bundle) if agent_bundle is not None else ""


def build_initramfs(
    rootfs: Path,
    kernel_version: str,
    output: Path,
    *,
    modules: list[str] | tuple[str, ...] = (),
    agent_bundle: Path | None = None,
    label: str = "",
) -> None:
    """Write `output` (on the head node) with dracut run inside `rootfs`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    binds_ro = ((agent_bundle.resolve(), AGENT_INSIDE),) if agent_bundle is not None else ()
    spec = ChrootSpec(
        root=rootfs,
        kernel_version=kernel_version,
        label=label,
        binds=((output.parent.resolve(), OUT_INSIDE),),
        binds_ro=binds_ro,
    )
    present = kernel_module_names(rootfs, kernel_version) or None
    argv = dracut_argv(kernel_version, f"{OUT_INSIDE}/{output.name}", list(modules), present)
    result = run_in_image(spec, argv, timeout=DRACUT_TIMEOUT, stderr=-2, check=False)
    if result.returncode != 0:
        tail = "\n".join("  | " + line for line in result.stdout.strip().splitlines()[-30:])
        raise InitramfsError(
            f"dracut failed with exit code {result.returncode} inside the image\n{tail}",
            hint=f"try it by hand: lchroot {label or 'IMAGE'} {shlex.join(argv[:-1])} /tmp/initramfs.img",
        )
