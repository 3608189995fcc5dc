"""Safe operations on whole image trees: remove, copy, measure."""

from __future__ import annotations

import os
from pathlib import Path

from ground.errors import SwarmbootError
from ground.run import run

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


RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100


def exchange_trees(a: Path, b: Path) -> None:
    """Swap two directories in one step (renameat2 RENAME_EXCHANGE): at every moment each path
    holds one whole tree, so a crash never leaves an image without one."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise SwarmbootError(
            f"cannot exchange {a} with {b}: {os.strerror(err)}",
            hint="both must be directories on one file system that supports RENAME_EXCHANGE "
            "(ext4, xfs, btrfs, tmpfs); nothing was changed",
        )


def staging_path(staging_dir: Path, name: str, what: str) -> Path:
    """A work directory named so that `clean_stale_staging` knows its owner: NAME.PID.WHAT."""
    return staging_dir / f"{name}.{os.getpid()}.{what}"


def clean_stale_staging(staging_dir: Path) -> list[str]:
    """Remove work directories left by swarmboot processes that died (e.g. killed with SIGKILL)."""
    removed = []
    if not staging_dir.is_dir():
        return removed
    for path in staging_dir.iterdir():
        parts = path.name.split(".")
        if len(parts) < 3 or not (parts[-2].isascii() and parts[-2].isdigit()):
            continue
        pid = int(parts[-2])
        if pid == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        remove_tree(path)
        removed.append(path.name)
    return removed


def copy_tree(source: Path, target: Path) -> None:
    """Copy an image tree keeping owners, modes, hard links, xattrs, ACLs (reflinks when possible)."""
    run(["cp", "-a", "--reflink=auto", "--", str(source), str(target)], timeout=TREE_TIMEOUT)
