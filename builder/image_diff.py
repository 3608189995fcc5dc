"""`swarmboot image diff IMAGE [OLD [NEW]]`: the packages added, removed and upgraded, and the
files added, removed and changed, between two packed versions, or between a version (default:
the current one) and the tree as it is now (what the next pack would hold).

A version is read from its image file itself, so every version ever packed can be compared: a
squashfs is loop-mounted read-only, a tar.zst is read as a stream. A file counts as changed when
its type, mode, owner, size, symlink target or mtime differ (the mtime by more than a second:
formats round or truncate it), what rsync looks at: the contents are not read. A directory
counts only when its mode or owner differ. The content of PACK_EXCLUDES (/tmp, apt's lists, …)
is never packed and never compared.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from builder.fingerprint import PACK_EXCLUDES
from builder.layer_check import member_kind
from ground.config import Settings
from ground.errors import NotFoundError, SwarmbootError
from ground.run import run
from ground.store import ImageStore

DPKG_STATUS = "var/lib/dpkg/status"
MOUNT_TIMEOUT = 120.0
MTIME_SLACK = 1  # seconds: squashfs truncates sub-second mtimes, tar writers (umoci) may round them


@dataclass(frozen=True)
class Entry:
    kind: str  # "file", "dir", "symlink", "other"
    mode: int  # permission bits (07777)
    uid: int
    gid: int
    size: int
    mtime: int
    target: str = ""

    def differs(self, other: Entry) -> bool:
        if self.kind == "dir" and other.kind == "dir":
            return (self.mode, self.uid, self.gid) != (other.mode, other.uid, other.gid)
        if abs(self.mtime - other.mtime) > MTIME_SLACK:
            return True
        return (self.kind, self.mode, self.uid, self.gid, self.size, self.target) != (
            other.kind, other.mode, other.uid, other.gid, other.size, other.target)


@dataclass
class Snapshot:
    label: str  # "version 3", "the tree"
    entries: dict[str, Entry] = field(default_factory=dict)  # "/usr/bin/htop" → Entry
    packages: dict[str, str] = field(default_factory=dict)  # name[:arch] → version


@dataclass
class ImageDiff:
    image: str
    old: str
    new: str
    packages_added: dict[str, str] = field(default_factory=dict)
    packages_removed: dict[str, str] = field(default_factory=dict)
    packages_upgraded: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (old, new)
    files_added: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["packages_upgraded"] = {k: {"old": a, "new": b} for k, (a, b) in self.packages_upgraded.items()}
        return data


def parse_dpkg_status(text: str) -> dict[str, str]:
    """Installed packages of a dpkg status file: {name (":arch" when Multi-Arch: same): version}."""
    packages: dict[str, str] = {}
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if not fields.get("Package") or not fields.get("Status", "").endswith(" installed"):
            continue
        name = fields["Package"]
        if fields.get("Multi-Arch") == "same" and fields.get("Architecture") not in (None, "all"):
            name += ":" + fields["Architecture"]
        packages[name] = fields.get("Version", "")
    return packages


def _excluded(path: str) -> bool:
    """/tmp/x → True; /tmp itself → False (the directories are packed, not their content)."""
    rel = path.lstrip("/")
    return any(rel.startswith(e + "/") for e in PACK_EXCLUDES)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def walk_tree(root: Path, label: str) -> Snapshot:
    """A directory's entries (the image tree, or a mounted squashfs)."""
    snap = Snapshot(label)
    root_dev = root.stat().st_dev
    for top, dirs, files in os.walk(root):
        rel_top = "/" + os.path.relpath(top, root) if top != str(root) else ""
        mounted: set[str] = set()  # directories of another file system: listed, not entered
        for name in [*dirs, *files]:
            full = os.path.join(top, name)
            path = f"{rel_top}/{name}"
            if _excluded(path):
                continue
            st = os.lstat(full)
            kind = _kind(st.st_mode)
            if kind == "dir" and st.st_dev != root_dev:
                mounted.add(name)
            snap.entries[path] = Entry(
                kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size if kind == "file" else 0,
                int(st.st_mtime), os.readlink(full) if kind == "symlink" else "",
            )
        dirs[:] = [d for d in dirs if d not in mounted]
    status = root / DPKG_STATUS
    if status.is_file():
        snap.packages = parse_dpkg_status(status.read_text(errors="replace"))
    return snap


def _tar_path(name: str) -> str:
    """./usr/bin/ → /usr/bin; . → /"""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


def read_tar_zst(path: Path, label: str) -> Snapshot:
    snap = Snapshot(label)
    hard_links: list[tuple[str, str]] = []
    with subprocess.Popen(["zstd", "-dcq", "--", str(path)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            for info in archive:
                name = _tar_path(info.name)
                if name == "/" or _excluded(name):
                    continue
                kind = member_kind(info)
                if kind == "hardlink":  # the same file as its target (taken below)
                    hard_links.append((name, _tar_path(info.linkname)))
                    kind = "other"
                snap.entries[name] = Entry(kind, info.mode & 0o7777, info.uid, info.gid,
                                           info.size if kind == "file" else 0, int(info.mtime),
                                           info.linkname if kind == "symlink" else "")
                if name == "/" + DPKG_STATUS and info.isreg():
                    handle = archive.extractfile(info)
                    if handle is not None:
                        snap.packages = parse_dpkg_status(handle.read().decode(errors="replace"))
    for name, target in hard_links:
        if target in snap.entries:
            snap.entries[name] = snap.entries[target]
    return snap


@contextlib.contextmanager
def mounted_squashfs(path: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="swarmboot-diff.") as where:
        run(["mount", "-t", "squashfs", "-o", "loop,ro,nodev,nosuid,noexec", str(path), where],
            timeout=MOUNT_TIMEOUT)
        try:
            yield Path(where)
        finally:
            run(["umount", where], timeout=MOUNT_TIMEOUT)


def read_version(store: ImageStore, name: str, version: int) -> Snapshot:
    manifest = store.manifest(name, version)
    image = store.file_path(manifest, "image")
    label = f"version {version}"
    if manifest.format == "tar.zst":
        return read_tar_zst(image, label)
    with mounted_squashfs(image) as root:
        return walk_tree(root, label)


def compare(image: str, old: Snapshot, new: Snapshot) -> ImageDiff:
    result = ImageDiff(image, old.label, new.label)
    for pkg, version in sorted(new.packages.items()):
        if pkg not in old.packages:
            result.packages_added[pkg] = version
        elif old.packages[pkg] != version:
            result.packages_upgraded[pkg] = (old.packages[pkg], version)
    result.packages_removed = {p: v for p, v in sorted(old.packages.items()) if p not in new.packages}
    for path in sorted(new.entries):
        if path not in old.entries:
            result.files_added.append(path)
        elif new.entries[path].differs(old.entries[path]):
            result.files_changed.append(path)
    result.files_removed = sorted(p for p in old.entries if p not in new.entries)
    return result


def diff_image(settings: Settings, name: str, old: int | None = None, new: int | None = None) -> ImageDiff:
    """OLD (default: the current version) against NEW (default: the tree)."""
    store = ImageStore(settings)
    store.require(name)
    versions = store.versions(name)
    if old is None:
        old = store.current_version(name)
        if old is None:
            raise NotFoundError(f"image {name!r} has no packed version to compare with",
                                hint=f"pack one first: swarmboot image pack {name}")
    for version in (old, new):
        if version is not None and version not in versions:
            raise NotFoundError(f"image {name!r} has no version {version}",
                                hint=f"versions: {', '.join(map(str, versions)) or 'none'}")
    if new is not None and new == old:
        raise SwarmbootError(f"version {old} against itself: nothing to compare",
                             hint="give two different versions, or one to compare with the tree")
    before = read_version(store, name, old)
    if new is None:
        with store.lock(name, f"swarmboot image diff {name}"):
            after = walk_tree(store.rootfs(name), "the tree")
    else:
        after = read_version(store, name, new)
    return compare(name, before, after)


def render(diff: ImageDiff, limit: int = 50) -> str:
    lines = [f"image {diff.image}: {diff.old} → {diff.new}",
             f"packages: {len(diff.packages_added)} added, {len(diff.packages_removed)} removed, "
             f"{len(diff.packages_upgraded)} upgraded"]
    lines += [f"  + {p} {v}" for p, v in diff.packages_added.items()]
    lines += [f"  - {p} {v}" for p, v in diff.packages_removed.items()]
    lines += [f"  ~ {p} {a} → {b}" for p, (a, b) in diff.packages_upgraded.items()]
    lines.append(f"files: {len(diff.files_added)} added, {len(diff.files_removed)} removed, "
                 f"{len(diff.files_changed)} changed")
    for mark, paths in (("+", diff.files_added), ("-", diff.files_removed), ("~", diff.files_changed)):
        lines += [f"  {mark} {p}" for p in paths[:limit]]
        if len(paths) > limit:
            lines.append(f"  {mark} … and {len(paths) - limit} more (--files N, or --json)")
    return "\n".join(lines)
