"""The disk mode's writers for real, on sparse files attached to loop devices: the partition table
pyparted wrote is read back independently (`sfdisk --json`), filesystems are what blkid says, a
kept partition's bytes are unchanged after a reinstall, a refused plan writes nothing (the whole
disk's sha256), and the image write keeps owners, modes, xattrs, hard links and (tar.zst: the
squashfs format has no place for them) ACLs.

This host's kernel does not scan partitions of loop devices (and has no md driver): each planned
partition is attached as a loop device of its own at its offset (DiskPlan.nodes). RAID1 is built
for real in the QEMU test (tests/e2e/test_disk.py)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootagent.disk import discovery, install, planner
from bootagent.disk.image import render_fstab, write_image
from bootagent.disk.model import DiskPlan
from bootagent.mounts import MountStack
from ground.contract.layout import KeptPartition, from_mapping
from ground.contract.plan import BootPlan
from ground.run import output, run

pytestmark = pytest.mark.root
MiB = 1 << 20
BIOS_GRUB = "21686148-6449-6E6F-744E-656564454649"
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

LAYOUT = {
    "disks": [{"name": "main", "path": "PLACEHOLDER"}],
    "partitions": [
        {"label": "bios", "size": "1MiB", "kind": "bios_grub"},
        {"label": "esp", "size": "40MiB", "kind": "esp"},
        {"label": "cache", "size": "32MiB", "kind": "image-cache"},
        {"label": "root", "size": "96MiB", "fs": "ext4", "mountpoint": "/"},
        {"label": "swap", "size": "8MiB", "fs": "swap"},
        {"label": "data", "size": "rest", "fs": "xfs", "mountpoint": "/data", "keep": True},
    ],
}


@pytest.fixture(autouse=True)
def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices, mounts)")
    for tool in ("sfdisk", "mkfs.xfs", "mkfs.vfat", "wipefs", "blkid", "setfacl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: make setup (scripts/host-packages.txt)")


class Loops:
    """Loop devices made by a test, detached at its end."""

    def __init__(self) -> None:
        self.devices: list[str] = []

    def attach(self, file: Path, offset: int = 0, size: int = 0) -> str:
        argv = ["losetup", "--find", "--show"]
        if offset or size:
            argv += ["--offset", str(offset), "--sizelimit", str(size)]
        device = output([*argv, str(file)], timeout=60)
        self.devices.append(device)
        return device

    def expose(self, file: Path) -> object:
        def expose(plan: DiskPlan) -> dict[str, str]:
            return {p.path: self.attach(file, p.start, p.size) for p in plan.partitions}

        return expose

    def close(self) -> None:
        for device in reversed(self.devices):
            run(["losetup", "-d", device], timeout=60, check=False)


@pytest.fixture
def loops() -> Iterator[Loops]:
    made = Loops()
    yield made
    made.close()


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def sha256(path: Path | str, offset: int = 0, size: int | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(offset)
        left = size if size is not None else os.path.getsize(path) - offset
        while left > 0:
            block = handle.read(min(left, 4 * MiB))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def boot_plan(layout: dict, kept: list[KeptPartition] = ()) -> BootPlan:  # type: ignore[assignment]
    doc = json.loads((Path(__file__).resolve().parent.parent / "data" / "plan-v1.0-minimal.json").read_text())
    plan = BootPlan.from_dict(doc)
    from dataclasses import replace

    return replace(plan, root=replace(plan.root, mode="disk", layout=from_mapping(layout), kept=tuple(kept)))


def install_once(
    file: Path, loops: Loops, layout: dict, kept: list[KeptPartition] = ()
) -> install.DiskInstall:
    disk = loops.attach(file)
    spec = json.loads(json.dumps(layout).replace("PLACEHOLDER", disk))
    state = install.DiskInstall(
        boot_plan=boot_plan(spec, kept),
        layout=from_mapping(spec),
        firmware="bios",
        run_dir=file.parent / "run",
    )
    disk_plan = install.make_plan(state, [discovery.disk_at(disk)])
    install.commit(state, disk_plan, expose=loops.expose(file))
    install.unwind(state)
    return state


def sfdisk_table(file: Path) -> dict:
    return json.loads(output(["sfdisk", "--json", str(file)], timeout=60))["partitiontable"]


def test_a_blank_disk_gets_the_layout_checked_with_sfdisk_and_blkid(tmp_path: Path, loops: Loops) -> None:
    file = sparse(tmp_path / "disk.img", 800 * MiB)
    state = install_once(file, loops, LAYOUT)
    table = sfdisk_table(file)
    assert table["label"] == "gpt"
    parts = table["partitions"]
    assert [p["name"] for p in parts] == ["bios", "esp", "cache", "root", "swap", "data"]
    sector = table.get("sectorsize", 512)
    assert parts[0]["start"] * sector == MiB and parts[0]["type"] == BIOS_GRUB
    assert parts[1]["type"] == ESP and parts[1]["size"] * sector == 40 * MiB
    assert parts[3]["size"] * sector == 96 * MiB
    for before, after in itertools.pairwise(parts):  # contiguous, aligned, no overlap
        assert before["start"] + before["size"] == after["start"]
        assert after["start"] * sector % MiB == 0
    last = parts[-1]
    assert (last["start"] + last["size"]) * sector <= 800 * MiB - MiB  # room for the backup GPT
    fs = {p.label: discovery.probe(state.plan.dev(p.path)).get("TYPE") for p in state.plan.partitions}
    assert fs == {"bios": None, "esp": "vfat", "cache": "ext4", "root": "ext4", "swap": "swap", "data": "xfs"}
    assert install.kept_records(state)[0].label == "cache"
    assert {k.label for k in install.kept_records(state)} == {"cache", "data"}


def test_a_reinstall_keeps_the_data_partition_byte_for_byte_and_formats_the_rest(
    tmp_path: Path, loops: Loops
) -> None:
    file = sparse(tmp_path / "disk.img", 800 * MiB)
    first = install_once(file, loops, LAYOUT)
    data = first.plan.find("data")
    root = first.plan.find("root")
    mnt = tmp_path / "mnt"
    stack = MountStack()
    with stack.guard():
        stack.mount(first.plan.dev(data.path), mnt, "xfs")
        (mnt / "precious").write_bytes(os.urandom(3 * MiB))
    stack.unwind()
    kept = install.kept_records(first)
    loops.close()  # detached first: what the loop devices still buffered is in the file now
    loops.devices.clear()
    before = sha256(file, data.start, data.size)
    second = install_once(file, loops, LAYOUT, kept)
    data2 = second.plan.find("data")
    assert (data2.start, data2.size, data2.number, data2.keep) == (data.start, data.size, data.number, True)
    assert sha256(file, data.start, data.size) == before, "the kept partition's bytes changed"
    assert second.uuids[second.plan.find("root").path] != first.uuids[root.path], "root was not formatted"
    assert [p["name"] for p in sfdisk_table(file)["partitions"]] == [
        "bios",
        "esp",
        "cache",
        "root",
        "swap",
        "data",
    ]


def test_a_changed_kept_partition_or_a_too_small_disk_writes_nothing(tmp_path: Path, loops: Loops) -> None:
    file = sparse(tmp_path / "disk.img", 800 * MiB)
    first = install_once(file, loops, LAYOUT)
    kept = install.kept_records(first)
    whole = sha256(file)
    loops.close()
    loops.devices.clear()
    changed = [
        KeptPartition(k.label, k.disk, k.size, "0" * 8 + k.uuid[8:] if k.label == "data" else k.uuid, k.fs)
        for k in kept
    ]
    with pytest.raises(planner.PlanRefused, match=r"kept partition data .* changed since the last install"):
        install_once(file, loops, LAYOUT, changed)
    # the layout grew: root cannot get bigger without moving the kept cache/data partitions
    bigger = {
        **LAYOUT,
        "partitions": [dict(p, size="200MiB") if p["label"] == "root" else p for p in LAYOUT["partitions"]],
    }
    with pytest.raises(planner.PlanRefused, match=r"cannot be reached without touching a kept partition"):
        install_once(file, loops, bigger, kept)
    assert sha256(file) == whole, "a refused plan wrote to the disk"
    small = sparse(tmp_path / "small.img", 64 * MiB)
    blank = sha256(small)
    with pytest.raises(planner.PlanRefused, match=r"is too small"):
        install_once(small, loops, LAYOUT)
    assert sha256(small) == blank


def test_the_image_write_keeps_owners_modes_xattrs_acls_and_hard_links(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "data").mkdir()
    (tree / "data" / "from-image").write_text("must not land on a kept partition\n")
    secret = tree / "etc" / "secret"
    secret.write_text("s3cret\n")
    os.chown(secret, 1234, 2345)
    os.chmod(secret, 0o4750)
    os.link(secret, tree / "etc" / "secret-link")
    run(["setfattr", "-n", "user.swarmboot", "-v", "kept", str(secret)], timeout=30)
    run(["setfacl", "-m", "u:4321:r", str(secret)], timeout=30)
    squash = tmp_path / "image.squashfs"
    run(["mksquashfs", str(tree), str(squash), "-noappend", "-quiet", "-comp", "zstd"], timeout=120)
    tarball = tmp_path / "image.tar.zst"
    run(
        [
            "tar",
            "--zstd",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--numeric-owner",
            "-cf",
            str(tarball),
            "-C",
            str(tree),
            ".",
        ],
        timeout=120,
    )
    for image_file, fmt in ((squash, "squashfs"), (tarball, "tar.zst")):
        target = tmp_path / f"root-{fmt}"
        target.mkdir()
        write_image(image_file, fmt, target, ["data"])
        got = target / "etc" / "secret"
        st = got.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 2345, 0o4750), fmt
        assert st.st_ino == (target / "etc" / "secret-link").stat().st_ino and st.st_nlink == 2, fmt
        assert output(["getfattr", "--only-values", "-n", "user.swarmboot", str(got)], timeout=30) == "kept"
        if fmt == "tar.zst":  # squashfs stores user/trusted/security xattrs only: no POSIX ACLs
            assert "user:4321:r--" in output(["getfacl", "-p", str(got)], timeout=30), fmt
        assert (target / "data").is_dir() and not (target / "data" / "from-image").exists(), fmt


def test_fstab_names_filesystems_by_uuid(tmp_path: Path) -> None:
    layout = from_mapping(json.loads(json.dumps(LAYOUT).replace("PLACEHOLDER", "/dev/vda")))
    from bootagent.disk.model import Disk

    disk_plan = planner.plan(layout, [Disk(path="/dev/vda", size=800 * MiB)])
    entries = [(f"uuid-{p.label}", p) for p in disk_plan.partitions if p.mountpoint or p.fs.value == "swap"]
    text = render_fstab(entries)
    assert "UUID=uuid-root\t/\text4\tdefaults\t0\t1" in text
    assert "UUID=uuid-data\t/data\txfs\tdefaults\t0\t0" in text
    assert "UUID=uuid-swap\tnone\tswap\tsw\t0\t0" in text


@pytest.mark.parametrize("fs", ["ext4", "xfs"])
def test_a_checkpoint_puts_what_grub_reads_on_the_disk_and_leaves_it_writable(
    tmp_path: Path, loops: Loops, fs: str
) -> None:
    """GRUB reads the disk without replaying the journal: after bootloader.checkpoint (freeze and
    thaw) a reader that ignores the journal (debugfs; xfs_db on xfs) finds the new file, and the
    filesystem takes writes again (it is not left frozen)."""
    from bootagent.disk import bootloader

    disk = tmp_path / "fs.img"
    with disk.open("wb") as handle:
        handle.truncate(320 * MiB)
    device = loops.attach(disk)
    run([f"mkfs.{fs}", "-q", *(["-F"] if fs == "ext4" else ["-f"]), device], timeout=120)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    stack = MountStack()
    try:
        stack.mount(device, mnt, fs)
        (mnt / "boot/grub/i386-pc").mkdir(parents=True)
        (mnt / "boot/grub/i386-pc/normal.mod").write_bytes(b"grub module\n")
        assert bootloader.checkpoint(mnt) is True
        if fs == "ext4":
            listing = output(["debugfs", "-R", "ls -l /boot/grub/i386-pc", device], timeout=60)
        else:
            listing = output(["xfs_db", "-r", "-c", "path /boot/grub/i386-pc", "-c", "ls", device],
                             timeout=60)
        assert "normal.mod" in listing, listing
        (mnt / "after").write_text("still writable\n")  # a frozen filesystem would block here
        os.sync()
    finally:
        assert stack.unwind() == []
