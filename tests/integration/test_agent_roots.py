"""Root modes for real: a squashfs on a loop device under an overlay with a tmpfs upper, and a
tar.zst unpacked into a tmpfs, at a temporary "sysroot"; both undone cleanly."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from bootagent.errors import RootError
from bootagent.mounts import MountStack
from bootagent.roots import RootBuilder, build_root
from ground.contract.plan import RootSpec
from ground.run import output, run

pytestmark = pytest.mark.root


def mounted(path: Path) -> bool:
    return any(line.split()[1] == str(path) for line in Path("/proc/self/mounts").read_text().splitlines())


def loops_of(image: Path) -> list[str]:
    return [line for line in output(["losetup", "-a"], timeout=60).splitlines() if str(image) in line]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for d in ("sbin", "etc", "home/alice"):
        (root / d).mkdir(parents=True)
    (root / "sbin/init").write_text("#!/bin/sh\n")
    os.chmod(root / "sbin/init", 0o755)
    (root / "etc/os-release").write_text("ID=test\n")
    secret = root / "home/alice/secret"
    secret.write_text("s3cret\n")
    os.chown(secret, 1234, 2345)
    os.chmod(secret, 0o640)
    os.chown(root / "home/alice", 1234, 2345)
    return root


@pytest.fixture(autouse=True)
def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices, mounts)")


def test_overlay_mounts_squashfs_under_a_tmpfs_upper_and_unmounts(tree: Path, tmp_path: Path) -> None:
    image = tmp_path / "image.squashfs"
    run(["mksquashfs", str(tree), str(image), "-comp", "zstd", "-noappend", "-quiet"], timeout=120)
    sysroot, mnt = tmp_path / "sysroot", tmp_path / "mnt"
    stack = build_root(RootSpec(mode="overlay", tmpfs_size="64m"), image, "squashfs", sysroot, mnt)
    try:
        assert mounted(sysroot) and mounted(mnt / "lower") and mounted(mnt / "rw")
        assert output(["findmnt", "-n", "-o", "FSTYPE", str(sysroot)], timeout=60) == "overlay"
        assert output(["findmnt", "-n", "-o", "FSTYPE", str(mnt / "lower")], timeout=60) == "squashfs"
        assert len(loops_of(image)) == 1
        st = (sysroot / "home/alice/secret").stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 2345, 0o640)
        (sysroot / "etc/hostname").write_text("node1\n")  # writable: goes to the tmpfs upper
        assert (mnt / "rw/upper/etc/hostname").read_text() == "node1\n"
        assert not (mnt / "lower/etc/hostname").exists()
    finally:
        errors = stack.unwind()
    assert errors == []
    assert not mounted(sysroot) and not mounted(mnt / "lower") and not mounted(mnt / "rw")
    assert loops_of(image) == []


def test_the_loop_device_is_read_only_and_a_damaged_image_says_what_failed(tmp_path: Path) -> None:
    """The root modes' mounts and loop device go to the kernel directly (mount(2), the loop ioctls):
    the loop device is read-only as losetup --read-only made it, and a file that is not a
    squashfs is named in the message, with nothing left attached or mounted."""
    image = tmp_path / "image.squashfs"
    image.write_bytes(os.urandom(1 << 20))
    stack = MountStack(sleep=lambda s: None)
    failed = r"cannot mount squashfs /dev/loop\d+ at .*: Invalid argument"
    with pytest.raises(RootError, match=failed) as caught, stack.guard():
        device = stack.loop(image)
        assert output(["blockdev", "--getro", device], timeout=60) == "1"
        assert len(loops_of(image)) == 1
        stack.mount(device, tmp_path / "lower", "squashfs", "ro")
    assert "the image file is damaged" in caught.value.hint
    assert loops_of(image) == [] and not mounted(tmp_path / "lower")


def test_tmpfs_unpacks_tar_zst_with_owners_and_modes(tree: Path, tmp_path: Path) -> None:
    image = tmp_path / "image.tar.zst"
    run(["tar", "--zstd", "-c", "--numeric-owner", "-f", str(image), "-C", str(tree), "."], timeout=120)
    sysroot = tmp_path / "sysroot"
    stack = build_root(RootSpec(mode="tmpfs", tmpfs_size="64m"), image, "tar.zst", sysroot, tmp_path / "mnt")
    try:
        assert output(["findmnt", "-n", "-o", "FSTYPE,OPTIONS", str(sysroot)], timeout=60).startswith("tmpfs")
        assert "size=65536k" in output(["findmnt", "-n", "-o", "OPTIONS", str(sysroot)], timeout=60)
        st = (sysroot / "home/alice/secret").stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 2345, 0o640)
        assert (sysroot / "sbin/init").stat().st_mode & 0o777 == 0o755
    finally:
        assert stack.unwind() == []
    assert not mounted(sysroot)


def test_a_failure_midway_undoes_the_mounts_already_made(tree: Path, tmp_path: Path) -> None:
    (tree / "sbin/init").unlink()  # not bootable: the check after mounting fails
    image = tmp_path / "image.squashfs"
    run(["mksquashfs", str(tree), str(image), "-noappend", "-quiet"], timeout=120)
    sysroot, mnt = tmp_path / "sysroot", tmp_path / "mnt"
    with pytest.raises(RootError, match="no /sbin/init"):
        build_root(RootSpec(mode="overlay", tmpfs_size="16m"), image, "squashfs", sysroot, mnt)
    assert not mounted(sysroot) and not mounted(mnt / "lower") and not mounted(mnt / "rw")
    assert loops_of(image) == []


def test_tmpfs_too_small_says_so(tree: Path, tmp_path: Path) -> None:
    (tree / "big").write_bytes(os.urandom(3 << 20))
    image = tmp_path / "image.tar.zst"
    run(["tar", "--zstd", "-c", "-f", str(image), "-C", str(tree), "."], timeout=120)
    sysroot = tmp_path / "sysroot"
    with pytest.raises(RootError, match="tmpfs is too small"):
        build_root(RootSpec(mode="tmpfs", tmpfs_size="1m"), image, "tar.zst", sysroot, tmp_path / "mnt")
    assert not mounted(sysroot)


def test_registry_knows_the_modes_and_refuses_a_wrong_format(tmp_path: Path) -> None:
    assert {"overlay", "tmpfs", "disk", "nfs"} <= set(RootBuilder.registry)
    with pytest.raises(RootError, match="needs an image in format squashfs"):
        build_root(
            RootSpec(mode="overlay"), tmp_path / "x.tar.zst", "tar.zst", tmp_path / "s", tmp_path / "m"
        )
    with pytest.raises(RootError, match="needs an image in format squashfs"):
        build_root(RootSpec(mode="nfs"), tmp_path / "x", "tar.zst", tmp_path / "s", tmp_path / "m")
    # nfs joined the set (issue 11): a plan in nfs mode must name the export the server renders
    with pytest.raises(RootError, match="names no export") as failed:
        build_root(RootSpec(mode="nfs"), tmp_path / "x", "squashfs", tmp_path / "s", tmp_path / "m")
    assert "upgrade the server" in failed.value.hint


def test_a_busy_unmount_is_retried_until_it_is_free(tmp_path: Path) -> None:
    target = tmp_path / "busy"
    stack = MountStack(sleep=lambda s: time.sleep(0.05))
    stack.mount("tmpfs", target, "tmpfs", "size=1m")
    holder = open(target / "held", "w")  # noqa: SIM115 - an open file keeps the mount busy
    closer = threading.Timer(0.3, holder.close)
    closer.start()
    try:
        assert stack.unwind() == []  # busy at first, retried, then unmounted for real
    finally:
        closer.cancel()
        holder.close()
    assert not mounted(target)


def test_a_mount_that_stays_busy_is_unmounted_lazily_and_reported(tmp_path: Path) -> None:
    target = tmp_path / "busy"
    stack = MountStack(sleep=lambda s: None)
    stack.mount("tmpfs", target, "tmpfs", "size=1m")
    with open(target / "held", "w"):
        errors = stack.unwind()
    assert len(errors) == 1 and f"mount {target}" in errors[0] and "unmounted lazily" in errors[0]
    assert not mounted(target)


def test_a_failure_inside_the_guard_undoes_the_mounts_and_notes_what_could_not_be_undone(
    tmp_path: Path,
) -> None:
    stack = MountStack(sleep=lambda s: None)
    first, second = tmp_path / "a", tmp_path / "b"
    held = None
    with pytest.raises(RootError, match="cannot mount") as caught, stack.guard():
        stack.mount("tmpfs", first, "tmpfs", "size=1m")
        stack.mount("tmpfs", second, "tmpfs", "size=1m")
        held = open(second / "held", "w")  # noqa: SIM115
        stack.mount("no-such-device", tmp_path / "c", "ext4")
    assert held is not None
    held.close()
    assert not mounted(first) and not mounted(second) and len(stack) == 0
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) == 1 and "could not undo: mount" in notes[0] and str(second) in notes[0]
