"""The initramfs: dracut run inside the image, with the image's kernel version.

    build_initramfs(rootfs, kver, out_dir / "initramfs.img", modules=["swarmboot"],
                    agent_bundle=Path("/var/lib/swarmboot/agent/<id>"))

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
from swarmboot.errors import SwarmbootError

AGENT_INSIDE = "/usr/lib/swarmboot/agent"
OUT_INSIDE = "/run/lchroot/out"
DRACUT_TIMEOUT = 1800.0

# Added with the swarmboot module (dracut-module/90swarmboot/module-setup.sh): the agent runs
# under dracut's classic shell init, whose hooks own the console.
SWARMBOOT_MODULE_OPTIONS: tuple[str, ...] = ("--omit", "systemd systemd-initrd dracut-systemd")


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


def dracut_argv(kernel_version: str, output_inside: str, modules: list[str] | tuple[str, ...]) -> list[str]:
    return ["dracut", *dracut_options(modules), "--kver", kernel_version, output_inside]


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
    argv = dracut_argv(kernel_version, f"{OUT_INSIDE}/{output.name}", list(modules))
    result = run_in_image(spec, argv, timeout=DRACUT_TIMEOUT, stderr=-2, check=False)
    if result.returncode != 0:
        tail = "\n".join("  | " + line for line in result.stdout.strip().splitlines()[-30:])
        raise InitramfsError(
            f"dracut failed with exit code {result.returncode} inside the image\n{tail}",
            hint=f"try it by hand: lchroot {label or 'IMAGE'} {shlex.join(argv[:-1])} /tmp/initramfs.img",
        )
