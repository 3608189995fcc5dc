"""The disk layout (ground/contract/layout.py) and the partition planner (bootagent/disk/planner.py)
as pure values: many layouts against many disks, refusals included. No disk is touched."""

from __future__ import annotations

import itertools

import pytest

from bootagent.disk.model import Disk, ExistingPartition
from bootagent.disk.planner import PlanRefused, plan, select_disks
from ground.contract.layout import (
    DiskRule,
    KeptPartition,
    LayoutError,
    PartKind,
    from_mapping,
    parse_size,
    shorthand,
    to_mapping,
)

MiB, GiB = 1 << 20, 1 << 30

BASIC = {
    "disk": "/dev/vda",
    "partitions": [
        {"label": "bios", "size": "1MiB", "kind": "bios_grub"},
        {"label": "esp", "size": "256MiB", "kind": "esp"},
        {"label": "root", "size": "8GiB", "mountpoint": "/"},
        {"label": "data", "size": "rest", "fs": "xfs", "mountpoint": "/data", "keep": True},
    ],
}


def disk(path: str = "/dev/vda", size: int = 20 * GiB, *parts: ExistingPartition, links: tuple = ()) -> Disk:
    return Disk(path=path, size=size, links=links, table="gpt" if parts else "", partitions=parts)


# -- sizes and the layout's own checks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512MiB", 512 * MiB),
        ("20G", 20 * GiB),
        ("1.5GiB", 3 * GiB // 2),
        ("4096", 4096),
        ("1T", 1 << 40),
        ("64 mb", 64 * MiB),
    ],
)
def test_sizes_are_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "-1G", "0", "12 parsecs"])
def test_a_bad_size_is_refused(text: str) -> None:
    with pytest.raises(LayoutError, match="size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "partitions": [
                    {"label": "a", "size": "rest", "mountpoint": "/"},
                    {"label": "b", "size": "rest"},
                ]
            },
            r"two partitions take the rest \(a, b\)",
        ),
        (
            {"partitions": [{"label": "root", "size": "1G", "fs": "btrfs", "mountpoint": "/"}]},
            r"'btrfs' is not one of ext4, xfs, vfat, swap, none",
        ),
        (
            {"partitions": [{"label": "root", "size": "1G", "mountpoint": "/", "keep": True}]},
            r"root filesystem is written by every install: it cannot be kept",
        ),
        (
            {
                "partitions": [
                    {"label": "esp", "size": "100M", "kind": "esp", "keep": True},
                    {"label": "root", "size": "1G", "mountpoint": "/"},
                ]
            },
            r"bootloader's partitions are rewritten",
        ),
        (
            {
                "partitions": [
                    {"label": "root", "size": "1G", "mountpoint": "/"},
                    {"label": "data", "size": "1G", "fs": "none", "mountpoint": "/data"},
                ]
            },
            r"a none partition cannot be mounted",
        ),
        ({"partitions": [{"label": "data", "size": "1G", "mountpoint": "/data"}]}, r"none is mounted at /"),
        (
            {
                "partitions": [
                    {"label": "root", "size": "1G", "mountpoint": "/"},
                    {"label": "root", "size": "1G", "mountpoint": "/x"},
                ]
            },
            r"label 'root' is given twice",
        ),
        (
            {
                "partitions": [
                    {"label": "a", "size": "2G", "start": "1MiB", "mountpoint": "/"},
                    {"label": "b", "size": "1G", "start": "1GiB"},
                ]
            },
            r"b starts at 1GiB, inside a",
        ),
        (
            {
                "partitions": [{"label": "root", "size": "1G", "mountpoint": "/", "raid": "md0"}],
                "raid": [{"name": "md0", "disks": ["main", "second"]}],
            },
            r"member disk 'second' is not one of",
        ),
        (
            {"partitions": [{"label": "root", "size": "1G", "mountpoint": "/", "raid": "md9"}]},
            r"RAID array 'md9' is not in the layout",
        ),
        (
            {"partitions": [{"label": "root", "size": "1G", "mountpoint": "/", "color": "blue"}]},
            r"unknown field\(s\) color",
        ),
        (
            {
                "partitions": [
                    {"label": "root", "size": "1G", "mountpoint": "/"},
                    {"label": "c", "size": "1G", "kind": "image-cache", "fs": "xfs"},
                ]
            },
            r"the image cache is ext4",
        ),
    ],
)
def test_the_server_refuses_a_bad_layout_with_a_message(change: dict, message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        from_mapping({"disk": "/dev/sda", **change})


def test_a_layout_round_trips_through_its_yaml_form_and_the_shorthand_adds_boot_partitions() -> None:
    layout = from_mapping(BASIC)
    assert from_mapping(to_mapping(layout)) == layout
    assert layout.partitions[1].fs.value == "vfat" and layout.partitions[0].fs.value == "none"
    short = shorthand(
        "/dev/sda",
        [
            {"label": "root", "size": "20GiB", "fs": "ext4", "mountpoint": "/"},
            {"label": "scratch", "size": "rest", "fs": "xfs", "mountpoint": "/scratch", "keep": True},
        ],
    )
    assert [p.kind for p in short.partitions][:2] == [PartKind.BIOS_GRUB, PartKind.ESP]
    assert short.disks == (DiskRule(name="main", path="/dev/sda"),)
    assert (
        shorthand(">=100GiB", [{"label": "r", "size": "rest", "mountpoint": "/"}]).disks[0].min_size
        == "100GiB"
    )


# -- choosing disks ---------------------------------------------------------------------------------


def test_disks_are_chosen_by_path_by_link_or_by_size_rule() -> None:
    a = disk("/dev/sda", 500 * GiB, links=("/dev/disk/by-id/ata-BIG",))
    b = disk("/dev/sdb", 30 * GiB)
    c = disk("/dev/nvme0n1", 25 * GiB, links=("/dev/disk/by-path/pci-0000:01:00.0-nvme-1",))
    d = disk("/dev/sdc", 10 * GiB)
    assert select_disks([DiskRule(path="/dev/disk/by-id/ata-BIG")], [a, b, c])["main"] is a
    assert select_disks([DiskRule(min_size="20GiB")], [a, b, c, d])["main"] is c  # smallest of >= 20 GiB
    assert select_disks([DiskRule(min_size="20GiB", pick="largest")], [a, b, c])["main"] is a
    two = select_disks([DiskRule(name="x", min_size="20G"), DiskRule(name="y", min_size="20G")], [a, b, c, d])
    assert (two["x"], two["y"]) == (c, b)
    with pytest.raises(PlanRefused, match=r"no disk of at least 1TiB .* this node has: /dev/sda"):
        select_disks([DiskRule(min_size="1TiB")], [a, b])
    with pytest.raises(PlanRefused, match=r"no disk /dev/disk/by-id/gone"):
        select_disks([DiskRule(path="/dev/disk/by-id/gone")], [a])


# -- placing partitions -----------------------------------------------------------------------------


def test_a_blank_disk_gets_every_partition_aligned_with_rest_filling_up_to_the_backup_gpt() -> None:
    result = plan(from_mapping(BASIC), [disk(size=20 * GiB)])
    parts = result.partitions
    assert [(p.label, p.number) for p in parts] == [("bios", 1), ("esp", 2), ("root", 3), ("data", 4)]
    assert parts[0].start == MiB and all(p.start % MiB == 0 and p.size % MiB == 0 for p in parts)
    assert all(x.end == y.start for x, y in itertools.pairwise(parts))
    assert parts[-1].end == 20 * GiB - MiB
    assert parts[2].size == 8 * GiB and parts[2].format and not parts[3].keep  # kept, but new: made
    assert result.fresh == {"main": True}
    assert not parts[0].format  # bios_grub: no filesystem
    assert [p.path for p in parts] == ["/dev/vda1", "/dev/vda2", "/dev/vda3", "/dev/vda4"]
    assert (
        plan(from_mapping({**BASIC, "disk": "/dev/nvme0n1"}), [disk("/dev/nvme0n1")]).partitions[0].path
        == "/dev/nvme0n1p1"
    )


def test_sizes_that_do_not_fit_refuse_with_the_disk_and_what_it_needs() -> None:
    with pytest.raises(
        PlanRefused,
        match=r"disk /dev/vda \(layout disk main\) is too small: the layout "
        r"needs 8451MiB of it, the disk has 4GiB",
    ):
        plan(from_mapping(BASIC), [disk(size=4 * GiB)])


def test_firmware_needs_its_boot_partition() -> None:
    no_esp = {**BASIC, "partitions": [p for p in BASIC["partitions"] if p["label"] != "esp"]}
    with pytest.raises(PlanRefused, match="UEFI firmware, but the layout has no EFI system partition"):
        plan(from_mapping(no_esp), [disk()], firmware="uefi")
    assert plan(from_mapping(no_esp), [disk()], firmware="bios")
    no_bios = {**BASIC, "partitions": [p for p in BASIC["partitions"] if p["label"] != "bios"]}
    with pytest.raises(PlanRefused, match="BIOS firmware and a GPT disk"):
        plan(from_mapping(no_bios), [disk()], firmware="bios")


def installed(size: int = 20 * GiB, data_uuid: str = "d-1") -> Disk:
    """The disk as the basic layout left it, with something else than the layout in front."""
    return disk(
        "/dev/vda",
        size,
        ExistingPartition(1, MiB, MiB, "bios"),
        ExistingPartition(2, 2 * MiB, 256 * MiB, "esp", "vfat", "E-1"),
        ExistingPartition(3, 258 * MiB, 8 * GiB, "root", "ext4", "r-1"),
        ExistingPartition(4, 258 * MiB + 8 * GiB, size - MiB - 258 * MiB - 8 * GiB, "data", "xfs", data_uuid),
    )


def test_a_reinstall_keeps_the_kept_partition_exactly_and_replaces_the_rest() -> None:
    before = installed()
    data = before.partitions[3]
    kept = [KeptPartition("data", "main", data.size, "d-1", "xfs")]
    result = plan(from_mapping(BASIC), [before], kept)
    again = result.find("data")
    assert (again.number, again.start, again.size, again.keep, again.format, again.uuid) == (
        4,
        data.start,
        data.size,
        True,
        False,
        "d-1",
    )
    assert result.fresh == {"main": False}
    assert all(p.format for p in result.partitions if p.label in ("esp", "root"))
    # a smaller root in front of the kept partition: fine, the rest of the stretch stays free
    smaller = {
        **BASIC,
        "partitions": [dict(p, size="4GiB") if p["label"] == "root" else p for p in BASIC["partitions"]],
    }
    assert plan(from_mapping(smaller), [before], kept).find("root").size == 4 * GiB
    # rest in front of a kept partition fills up to it
    rest_root = {
        **BASIC,
        "partitions": [
            dict(p, size="rest")
            if p["label"] == "root"
            else dict(p, size="11.74GiB")
            if p["label"] == "data"
            else p
            for p in BASIC["partitions"]
        ],
    }
    with pytest.raises(PlanRefused, match="cannot be kept without resizing"):
        plan(from_mapping(rest_root), [before], kept)


@pytest.mark.parametrize(
    ("existing", "message"),
    [
        (disk("/dev/vda", 20 * GiB), r"kept partition data .* is gone"),
        (installed(data_uuid="other"), r"changed since the last install: filesystem UUID other, was d-1"),
        (installed(size=30 * GiB), r"changed since the last install: size"),
    ],
)
def test_a_reported_kept_partition_that_is_gone_or_changed_is_refused(existing: Disk, message: str) -> None:
    data = installed().partitions[3]
    with pytest.raises(PlanRefused, match=message):
        plan(from_mapping(BASIC), [existing], [KeptPartition("data", "main", data.size, "d-1", "xfs")])


def test_a_layout_that_cannot_be_laid_out_around_the_kept_partition_is_refused() -> None:
    before = installed()
    kept = [KeptPartition("data", "main", before.partitions[3].size, "d-1", "xfs")]
    bigger = {
        **BASIC,
        "partitions": [dict(p, size="9GiB") if p["label"] == "root" else p for p in BASIC["partitions"]],
    }
    with pytest.raises(PlanRefused, match="cannot be reached without touching a kept partition"):
        plan(from_mapping(bigger), [before], kept)
    other_fs = {
        **BASIC,
        "partitions": [dict(p, fs="ext4") if p["label"] == "data" else p for p in BASIC["partitions"]],
    }
    with pytest.raises(PlanRefused, match="holds xfs, the layout says ext4"):
        plan(from_mapping(other_fs), [before], kept)
    swapped = {
        **BASIC,
        "partitions": [
            BASIC["partitions"][0],
            BASIC["partitions"][1],
            {"label": "data", "size": "rest", "fs": "xfs", "mountpoint": "/data", "keep": True},
            {"label": "cache", "size": "1GiB", "kind": "image-cache"},
            {"label": "root", "size": "1GiB", "mountpoint": "/"},
        ],
    }
    moved = disk(
        "/dev/vda",
        20 * GiB,
        *before.partitions[:3],
        ExistingPartition(5, 9 * GiB, GiB, "cache", "ext4", "c-1"),
        ExistingPartition(4, 10 * GiB, 9 * GiB, "data", "xfs", "d-1"),
    )
    with pytest.raises(PlanRefused, match="in another order on the disk than in the layout"):
        plan(from_mapping(swapped), [moved], [])


def test_an_existing_unreported_partition_of_the_same_label_and_size_is_reused_ignition_style() -> None:
    before = installed()
    result = plan(from_mapping(BASIC), [before], [])  # the server lost its record: reuse unless wipe
    assert result.find("data").keep and result.find("data").uuid == "d-1"


def test_the_image_cache_is_kept_like_keep_and_new_partitions_take_free_numbers() -> None:
    layout = {
        "disk": "/dev/vda",
        "partitions": [
            {"label": "bios", "size": "1MiB", "kind": "bios_grub"},
            {"label": "cache", "size": "2GiB", "kind": "image-cache"},
            {"label": "root", "size": "rest", "mountpoint": "/"},
        ],
    }
    before = disk("/dev/vda", 20 * GiB, ExistingPartition(7, 2 * MiB, 2 * GiB, "cache", "ext4", "c-1"))
    result = plan(from_mapping(layout), [before], [KeptPartition("cache", "main", 2 * GiB, "c-1", "ext4")])
    assert [(p.label, p.number, p.keep) for p in result.partitions] == [
        ("bios", 1, False),
        ("cache", 7, True),
        ("root", 2, False),
    ]


def test_raid1_across_two_disks_puts_members_of_equal_size_and_boot_partitions_on_both() -> None:
    layout = from_mapping(
        {
            "disks": [{"name": "a", "path": "/dev/vda"}, {"name": "b", "path": "/dev/vdb"}],
            "partitions": [
                {"label": "bios", "size": "1MiB", "kind": "bios_grub"},
                {"label": "root", "size": "rest", "mountpoint": "/", "raid": "md-root"},
            ],
            "raid": [{"name": "md-root", "disks": ["a", "b"]}],
        }
    )
    result = plan(layout, [disk("/dev/vda", 20 * GiB), disk("/dev/vdb", 24 * GiB)])
    assert [(p.disk, p.label) for p in result.partitions] == [
        ("a", "bios"),
        ("a", "root"),
        ("b", "bios"),
        ("b", "root"),
    ]
    members = [p for p in result.partitions if p.raid]
    assert members[0].size == members[1].size == 20 * GiB - 3 * MiB and not any(p.format for p in members)
    (array,) = result.arrays
    assert (
        array.members == ("/dev/vda2", "/dev/vdb2")
        and array.mountpoint == "/"
        and array.path == "/dev/md/md-root"
    )
    assert result.filesystems() == [("/dev/md/md-root", array)]
    with pytest.raises(PlanRefused, match="no disk /dev/vdb"):
        plan(layout, [disk("/dev/vda")])


def test_the_plan_reads_as_lines_for_the_console() -> None:
    lines = plan(from_mapping(BASIC), [disk()]).lines()
    assert lines[0] == "disk plan (bios firmware):" and "new GPT" in lines[1]
    assert any("/dev/vda3" in line and "mkfs ext4 -> /" in line for line in lines)


# -- what the writers are given (pure parts) ---------------------------------------------------------


def test_the_installed_kernel_command_line_and_grub_cfg() -> None:
    from bootagent.disk.bootloader import kernel_arguments, render_grub_cfg
    from ground.contract.layout import Filesystem

    agent = "root=swarmboot swarmboot.server=http://s ip=dhcp console=tty0 console=ttyS0,115200"
    args = kernel_arguments("r-uuid", ["md-uuid"], agent, "quiet rd.retry=20")
    assert (
        args == "root=UUID=r-uuid ro rd.md.uuid=md-uuid console=tty0 console=ttyS0,115200 quiet rd.retry=20"
    )
    cfg = render_grub_cfg(
        "swarmboot: compute version 3", "b-uuid", Filesystem.XFS, True, args, "/boot/swarmboot"
    )
    assert "search --no-floppy --fs-uuid --set=root b-uuid" in cfg
    assert "insmod xfs" in cfg and "insmod mdraid1x" in cfg
    assert f"linux /boot/swarmboot/vmlinuz {args}" in cfg and "initrd /boot/swarmboot/initramfs.img" in cfg


def test_the_image_write_leaves_kept_mount_points_out() -> None:
    from pathlib import Path

    from bootagent.disk.image import write_argv

    squash = write_argv(Path("/c/image.squashfs"), "squashfs", Path("/sysroot"), ["data", "srv/x"])
    assert squash[-4:] == ["-excludes", "/c/image.squashfs", "data", "srv/x"] and "-force" in squash
    tar = write_argv(Path("/c/image.tar.zst"), "tar.zst", Path("/sysroot"), ["data"])
    assert "--acls" in tar and "--xattrs" in tar and "--exclude=./data" in tar and "--anchored" in tar
