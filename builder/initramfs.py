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

from pathlib import Path

from builder.chroot import ChrootSpec, run_in_image
from builder.dracut_module import tree_hash

AGENT_INSIDE = "/usr/lib/swarmboot/agent"
OUT_INSIDE = "/run/lchroot/out"
DRACUT_TIMEOUT = 1800.0

DRACUT_OPTIONS: tuple[str, ...] = (
    "--no-hostonly",
    "--no-hostonly-cmdline",
    "--force",
    "--add", "network-legacy",
    "--omit", "ifcfg",
    "--compress", "zstd -T0 -3 -q",
    "--tmpdir", "/run/lchroot",
)


def dracut_argv(kernel_version: str, output_inside: str, modules: list[str]) -> list[str]:
    argv = ["dracut", *DRACUT_OPTIONS]
    for module in modules:
        argv += ["--add", module]
    return [*argv, "--kver", kernel_version, output_inside]


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
    run_in_image(
        spec,
        dracut_argv(kernel_version, f"{OUT_INSIDE}/{output.name}", list(modules)),
        timeout=DRACUT_TIMEOUT,
        stderr=-2,
    )
