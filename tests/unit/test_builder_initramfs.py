"""dracut's options with the agent: the lean module set, and drivers the image's kernel lacks are
dropped from --add-drivers (dracut fails on them) while the rest stay."""

from __future__ import annotations

from pathlib import Path

from builder.initramfs import NIC_DRIVERS, dracut_argv, dracut_options, kernel_module_names


def add_drivers(argv: list[str]) -> list[str]:
    return argv[argv.index("--add-drivers") + 1].split()


def test_with_the_agent_dracut_gets_the_classic_init_and_the_lean_driver_list() -> None:
    options = dracut_options(["swarmboot"])
    omits = " ".join(options[i + 1] for i, o in enumerate(options) if o == "--omit").split()
    assert {"systemd", "dracut-systemd", "kernel-modules", "ifcfg"} <= set(omits)
    assert "kernel-network-modules" not in omits  # every wired NIC driver stays
    drivers = add_drivers(options)
    assert {"squashfs", "overlay", "loop", "e1000e", "mlx5_core", "ice", "virtio_net"} <= set(drivers)
    # without the agent (swarmboot image pack --no-agent) dracut keeps its own defaults
    plain = dracut_options([])
    assert "--add-drivers" not in plain and "kernel-modules" not in " ".join(plain)


def test_drivers_the_kernel_does_not_have_are_left_out(tmp_path: Path) -> None:
    kdir = tmp_path / "usr/lib/modules/6.1.0-test"
    kdir.mkdir(parents=True)
    (kdir / "modules.dep").write_text(
        "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko: \n"
        "kernel/fs/squashfs/squashfs.ko.xz:\n"
        "kernel/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko.zst: kernel/net/tls/tls.ko\n"
    )
    (kdir / "modules.builtin").write_text("kernel/fs/overlayfs/overlay.ko\nkernel/drivers/block/loop.ko\n")
    present = kernel_module_names(tmp_path, "6.1.0-test")
    assert {"e1000e", "squashfs", "mlx5_core", "overlay", "loop"} <= present
    argv = dracut_argv("6.1.0-test", "/out/initramfs.img", ["swarmboot"], present)
    assert add_drivers(argv) == ["loop", "squashfs", "overlay", "e1000e", "mlx5_core"]
    assert argv[-3:] == ["--kver", "6.1.0-test", "/out/initramfs.img"]
    # no module list (an unusual tree): the options go unfiltered
    unfiltered = dracut_argv("6.1.0-test", "/o", ["swarmboot"])
    assert add_drivers(unfiltered) == add_drivers(dracut_options(["swarmboot"]))
    assert set(NIC_DRIVERS.split()) <= set(add_drivers(dracut_options(["swarmboot"])))
