"""Safe operations on whole image trees: remove, copy, measure."""

from __future__ import annotations

from pathlib import Path

from swarmboot.errors import SwarmbootError
from swarmboot.run import run

TREE_TIMEOUT = 3600.0


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this process's mount namespace."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def remove_tree(path: Path) -> None:
    """Delete `path` recursively, never crossing into a mounted file system."""
    if not path.exists() and not path.is_symlink():
        return
    mounted = mounts_under(path)
    if mounted:
        raise SwarmbootError(
            f"not removing {path}: something is mounted inside it ({mounted[0]})",
            hint=f"unmount it first: umount -R {mounted[0]}",
        )
    run(["rm", "-rf", "--one-file-system", "--", str(path)], timeout=TREE_TIMEOUT)


def copy_tree(source: Path, target: Path) -> None:
    """Copy an image tree keeping owners, modes, hard links, xattrs, ACLs (reflinks when possible)."""
    run(["cp", "-a", "--reflink=auto", "--", str(source), str(target)], timeout=TREE_TIMEOUT)
