"""The tar.zst writer keeps what a root file system needs, checked by a real round trip; pack
refuses to start without the disk space it may need."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from builder.formats import TAR_EXTRACT_OPTIONS, parse_compression, write_squashfs, write_tar_zst
from builder.pack import DiskSpaceError, pack
from ground.config import Settings
from ground.store import ImageStore

pytestmark = pytest.mark.root
XATTRS = {"user.swarmboot": b"kept", "trusted.swarmboot": b"\x00binary\xff",
          "security.capability": bytes.fromhex("0100000200200000000000000000000000000000")}


def make_tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "dev").mkdir()
    (root / "proc").mkdir()
    (root / "proc/junk").write_text("never packed\n")
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    (root / "etc/owned").write_text("owned by 1234:5678\n")
    os.chown(root / "etc/owned", 1234, 5678)
    (root / "etc/secret").write_text("0600\n")
    os.chmod(root / "etc/secret", 0o600)
    (root / "usr/bin/suid").write_bytes(b"\x7fELF fake")
    os.chmod(root / "usr/bin/suid", 0o4755)
    os.link(root / "usr/bin/suid", root / "usr/bin/suid-link")
    (root / "usr/bin/relative").symlink_to("suid")
    (root / "etc/dangling").symlink_to("/does/not/exist")
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(root / "dev/loop9", 0o660 | stat.S_IFBLK, os.makedev(7, 9))
    os.mkfifo(root / "dev/fifo", 0o600)
    for key, value in XATTRS.items():
        os.setxattr(root / "usr/bin/suid", key, value)


def describe(root: Path) -> dict[str, tuple[object, ...]]:
    entries = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        link = os.readlink(path) if path.is_symlink() else ""
        entries[str(path.relative_to(root))] = (info.st_mode, info.st_uid, info.st_gid, info.st_rdev, link,
                                                info.st_size, info.st_nlink)
    return entries


def test_tar_zst_round_trip_keeps_everything(tmp_path: Path) -> None:
    source, target = tmp_path / "tree", tmp_path / "unpacked"
    make_tree(source)
    archive = tmp_path / "image.tar.zst"
    write_tar_zst(source, archive, parse_compression("zstd:3"))
    target.mkdir()
    subprocess.run(["tar", *TAR_EXTRACT_OPTIONS, "-f", str(archive), "-C", str(target)], check=True,
                   timeout=120)
    expected = describe(source)
    del expected["proc/junk"]
    assert describe(target) == expected
    assert (target / "usr/bin/suid").stat().st_ino == (target / "usr/bin/suid-link").stat().st_ino
    for key, value in XATTRS.items():
        assert os.getxattr(target / "usr/bin/suid", key) == value


def test_squashfs_keeps_everything(tmp_path: Path) -> None:
    source, target = tmp_path / "tree", tmp_path / "unpacked"
    make_tree(source)
    image = tmp_path / "image.squashfs"
    write_squashfs(source, image, parse_compression("zstd:3"))
    subprocess.run(["unsquashfs", "-quiet", "-no-progress", "-d", str(target), str(image)], check=True,
                   timeout=120, capture_output=True)
    expected = describe(source)
    del expected["proc/junk"]
    assert describe(target) == expected
    assert os.getxattr(target / "usr/bin/suid", "security.capability") == XATTRS["security.capability"]


def test_pack_refuses_without_disk_space(settings: Settings, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], check=True, timeout=30)
    try:
        tight = Settings(home=small, hooks_dir=settings.hooks_dir)
        rootfs = ImageStore(tight).rootfs("big")
        for directory in ("boot", "usr/lib/modules/6.1.0-test", "etc"):
            (rootfs / directory).mkdir(parents=True)
        (rootfs / "boot/vmlinuz-6.1.0-test").write_bytes(b"kernel")
        with open(rootfs / "etc/huge", "wb") as handle:
            handle.truncate(2 * 1024**3)  # sparse: 2 GiB apparent size in a 64 MiB file system
        with pytest.raises(DiskSpaceError, match="not enough free disk"):
            pack(tight, "big", dracut_modules=tmp_path / "no-modules")
        store = ImageStore(tight)
        assert store.versions("big") == []
        assert not store.staging_dir.exists() or list(store.staging_dir.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True, timeout=30)
