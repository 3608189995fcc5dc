"""The tree fingerprint notices every change that matters and nothing that does not."""

from __future__ import annotations

import os
from pathlib import Path

from builder.fingerprint import fingerprint


def make_tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "var/lib/apt/lists").mkdir(parents=True)
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    (root / "etc/link").symlink_to("hosts")
    for path in [*root.rglob("*"), root]:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000), follow_symlinks=False)
    return root


def test_same_tree_same_fingerprint_anywhere(tmp_path: Path) -> None:
    first = fingerprint(make_tree(tmp_path / "a"))
    second = fingerprint(make_tree(tmp_path / "b"))  # another place, same content and times
    assert first.digest == second.digest
    assert first.size == len("127.0.0.1 localhost\n")
    assert first.files == 8  # etc tmp var, etc/hosts etc/link, var/lib var/lib/apt var/lib/apt/lists


def test_each_kind_of_change_is_seen(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    seen = {fingerprint(root).digest}
    hosts = root / "etc/hosts"

    def changed() -> bool:
        digest = fingerprint(root).digest
        new = digest not in seen
        seen.add(digest)
        return new

    hosts.chmod(0o600)
    assert changed()
    os.utime(hosts, ns=(2_000_000_000, 2_000_000_000))
    assert changed()
    with open(hosts, "a") as handle:
        handle.write("::1 localhost\n")
    os.utime(hosts, ns=(2_000_000_000, 2_000_000_000))  # same mtime, other size
    assert changed()
    (root / "etc/link").unlink()
    (root / "etc/link").symlink_to("hostname")
    assert changed()
    (root / "etc/new").write_text("")
    assert changed()
    if os.geteuid() == 0:
        os.chown(hosts, 1000, 1000)
        assert changed()


def test_excluded_content_does_not_count(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    before = fingerprint(root)
    (root / "tmp/scratch").write_text("x" * 100)
    (root / "var/lib/apt/lists/deb.debian.org_Packages").write_text("y")
    assert fingerprint(root) == before
    assert fingerprint(root, excludes=()).digest != before.digest
