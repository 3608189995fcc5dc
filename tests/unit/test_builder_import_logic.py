"""The logic of `image import` and `image diff`: layers refused before unpacking, sources checked,
Debian trees recognised, dpkg status parsed, snapshots compared."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.image_diff import Entry, Snapshot, compare, parse_dpkg_status, render
from builder.layer_check import LayerChecker, Member, UnsafeLayer, clean_name
from builder.oci import check_source
from builder.origin import debian_release
from ground.errors import SwarmbootError, UsageError


def test_member_names_outside_the_root_are_none() -> None:
    assert clean_name("./etc/passwd") == ["etc", "passwd"]
    assert clean_name("usr/bin/") == ["usr", "bin"]
    assert clean_name("./") == []
    assert clean_name("../../etc/cron.d/x") is None
    assert clean_name("a/../../b") is None
    assert clean_name("/etc/shadow") is None


def test_a_layer_writing_through_an_absolute_or_climbing_symlink_is_refused() -> None:
    checker = LayerChecker()
    checker.check(1, "layer 1", [Member("bin", "symlink", "usr/bin"), Member("usr/bin/", "dir"),
                                 Member("etc/alternatives", "dir"),
                                 Member("usr/bin/editor", "symlink", "/etc/alternatives/editor")])
    checker.check(2, "layer 2", [Member("bin/ls", "file"), Member("bin/", "dir"),
                                 Member("bin/cat", "file")])  # in-tree links are followed
    with pytest.raises(UnsafeLayer, match=r"layer 3 is refused: 'evil/passwd' is written through the "
                       r"symlink evil -> /etc"):
        checker.check(3, "layer 3", [Member("evil", "symlink", "/etc"), Member("evil/passwd", "file")])
    with pytest.raises(UnsafeLayer, match=r"up -> \.\./\.\."):
        checker.check(4, "layer 4", [Member("a/up", "symlink", "../.."), Member("a/up/x", "file")])
    with pytest.raises(UnsafeLayer, match="outside the image's root"):
        checker.check(5, "layer 5", [Member("../../escaped", "file")])
    with pytest.raises(UnsafeLayer, match=r"hard link to '\.\./\.\./etc/shadow'"):
        checker.check(6, "layer 6", [Member("x", "hardlink", "../../etc/shadow")])
    with pytest.raises(UnsafeLayer, match="through the symlink abs -> /, out of"):
        checker.check(7, "layer 7", [Member("abs", "symlink", "/"), Member("chain", "symlink", "abs"),
                                     Member("chain/etc/x", "file")])


def test_whiteouts_and_opaque_directories_remove_lower_symlinks() -> None:
    checker = LayerChecker()
    checker.check(1, "l1", [Member("evil", "symlink", "/etc"), Member("d/link", "symlink", "/tmp")])
    checker.check(2, "l2", [Member(".wh.evil", "file"), Member("evil/", "dir"), Member("evil/x", "file")])
    checker.check(3, "l3", [Member("d/.wh..wh..opq", "file"), Member("d/link/", "dir"),
                            Member("d/link/y", "file")])
    assert checker.links == {} and checker.members == 8


def test_sources_are_checked_before_anything_runs(tmp_path: Path) -> None:
    archive = tmp_path / "img.tar"
    archive.write_bytes(b"")
    assert check_source(f"oci-archive:{archive}") == f"oci-archive:{archive}"
    assert check_source(f"oci:{tmp_path}:v1") == f"oci:{tmp_path}:v1"
    assert check_source("docker://registry.lan/debian:bookworm") == "docker://registry.lan/debian:bookworm"
    with pytest.raises(UsageError, match="unknown source"):
        check_source("/srv/image.tar")
    with pytest.raises(UsageError, match="does not exist"):
        check_source(f"docker-archive:{tmp_path}/missing.tar")


def _tree(tmp_path: Path, os_release: str, tools: bool = True) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc/os-release").write_text(os_release)
    if tools:
        for tool in ("apt-get", "dpkg"):
            (root / "usr/bin" / tool).write_text("")
    return root


def test_only_a_debian_tree_with_apt_is_taken(tmp_path: Path) -> None:
    ok = _tree(tmp_path / "a", 'PRETTY_NAME="Debian 12"\nID=debian\nVERSION_CODENAME=bookworm\n')
    assert debian_release(ok, "x") == "bookworm"
    ubuntu = _tree(tmp_path / "b", "ID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=jammy\n")
    assert debian_release(ubuntu, "x") == "jammy"
    with pytest.raises(SwarmbootError, match=r"not Debian-based .*ID='alpine'"):
        debian_release(_tree(tmp_path / "c", "ID=alpine\n"), "the container image")
    with pytest.raises(SwarmbootError, match="no apt-get or dpkg"):
        debian_release(_tree(tmp_path / "d", "ID=debian\nVERSION_CODENAME=bookworm\n", tools=False), "x")


STATUS = """Package: htop
Status: install ok installed
Architecture: amd64
Version: 3.2.2-2
Description: interactive processes viewer
 a continuation line: Package: not-a-package

Package: libc6
Status: install ok installed
Multi-Arch: same
Architecture: amd64
Version: 2.36-9+deb12u4

Package: gone
Status: deinstall ok config-files
Version: 1.0
"""


def test_dpkg_status_gives_installed_packages_only() -> None:
    assert parse_dpkg_status(STATUS) == {"htop": "3.2.2-2", "libc6:amd64": "2.36-9+deb12u4"}


def test_snapshots_compare_packages_and_files_but_not_directory_times() -> None:
    def file(size: int, mtime: int = 100) -> Entry:
        return Entry("file", 0o644, 0, 0, size, mtime)

    old = Snapshot("version 1", {"/usr": Entry("dir", 0o755, 0, 0, 0, 1), "/etc/a": file(1),
                                 "/etc/b": file(2), "/etc/gone": file(3)},
                   {"libc6:amd64": "2.36-9", "gone": "1"})
    new = Snapshot("version 2", {"/usr": Entry("dir", 0o755, 0, 0, 0, 999), "/etc/a": file(1),
                                 "/etc/b": file(2, mtime=200), "/usr/bin/htop": file(9)},
                   {"libc6:amd64": "2.36-9+deb12u4", "htop": "3.2.2-2"})
    diff = compare("img", old, new)
    assert diff.packages_added == {"htop": "3.2.2-2"} and diff.packages_removed == {"gone": "1"}
    assert diff.packages_upgraded == {"libc6:amd64": ("2.36-9", "2.36-9+deb12u4")}
    assert (diff.files_added, diff.files_removed, diff.files_changed) == (
        ["/usr/bin/htop"], ["/etc/gone"], ["/etc/b"])
    text = render(diff, limit=50)
    assert "packages: 1 added, 1 removed, 1 upgraded" in text and "  + htop 3.2.2-2" in text
    assert "  ~ libc6:amd64 2.36-9 → 2.36-9+deb12u4" in text and "  + /usr/bin/htop" in text
    assert diff.to_dict()["packages_upgraded"] == {"libc6:amd64": {"old": "2.36-9", "new": "2.36-9+deb12u4"}}
