"""Image file formats: squashfs (mksquashfs) and tar.zst (GNU tar + zstd), both on every core.

Compression is "ALGO[:LEVEL]". squashfs takes zstd (1-22), xz, lz4 and gzip (1-9); tar.zst takes
zstd (1-19). Both writers leave out the content of PACK_EXCLUDES and never cross into another
file system (a bind mount inside the tree is not walked).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from builder.fingerprint import PACK_EXCLUDES
from ground.errors import UsageError
from ground.run import run

FORMATS: tuple[str, ...] = ("squashfs", "tar.zst")
LEVELS: dict[str, tuple[int, int] | None] = {"zstd": (1, 22), "gzip": (1, 9), "xz": None, "lz4": None}
TAR_ZSTD_MAX = 19
WRITE_TIMEOUT = 3 * 3600.0


@dataclass(frozen=True)
class Compression:
    algorithm: str
    level: int | None = None

    def __str__(self) -> str:
        return self.algorithm if self.level is None else f"{self.algorithm}:{self.level}"


def parse_compression(text: str) -> Compression:
    algorithm, _, level_text = text.strip().partition(":")
    if algorithm not in LEVELS:
        raise UsageError(
            f"unknown compression {text!r}", hint="use zstd, xz, lz4 or gzip, optionally with :LEVEL"
        )
    if not level_text:
        return Compression(algorithm)
    bounds = LEVELS[algorithm]
    if bounds is None:
        raise UsageError(f"compression {algorithm} takes no level (got {text!r})", hint=f"use {algorithm}")
    if not (level_text.isascii() and level_text.isdigit()) or not bounds[0] <= int(level_text) <= bounds[1]:
        raise UsageError(
            f"compression level for {algorithm} must be {bounds[0]}-{bounds[1]}, not {level_text!r}"
        )
    return Compression(algorithm, int(level_text))


def check_format(fmt: str, compression: Compression) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"unknown image format {fmt!r}", hint="use squashfs or tar.zst")
    if fmt == "tar.zst":
        if compression.algorithm != "zstd":
            raise UsageError(f"tar.zst is compressed with zstd, not {compression.algorithm}",
                             hint="use --compression zstd[:LEVEL], or --format squashfs")
        if compression.level is not None and compression.level > TAR_ZSTD_MAX:
            raise UsageError(f"tar.zst takes zstd levels 1-{TAR_ZSTD_MAX}, not {compression.level}")


def cores() -> int:
    return len(os.sched_getaffinity(0)) or 1


def mksquashfs_argv(
    tree: Path, output: Path, compression: Compression, exclude_file: Path, *, progress: bool,
    processors: int | None = None,
) -> list[str]:
    argv = ["mksquashfs", str(tree), str(output), "-noappend", "-comp", compression.algorithm]
    if compression.level is not None:
        argv += ["-Xcompression-level", str(compression.level)]
    argv += ["-processors", str(processors or cores()), "-one-file-system"]
    argv += ["-progress"] if progress else ["-no-progress", "-quiet"]
    return [*argv, "-wildcards", "-ef", str(exclude_file)]


def write_squashfs(tree: Path, output: Path, compression: Compression,
                   excludes: tuple[str, ...] = PACK_EXCLUDES) -> None:
    """mksquashfs on all cores; its progress bar shows when stderr is a terminal."""
    show = sys.stderr.isatty()
    with tempfile.NamedTemporaryFile("w", prefix="swarmboot-excludes.", suffix=".txt") as handle:
        handle.write("".join(f"{path}/*\n" for path in excludes))
        handle.flush()
        run(mksquashfs_argv(tree, output, compression, Path(handle.name), progress=show),
            timeout=WRITE_TIMEOUT, capture=not show)


def tar_argv(tree: Path, output: Path, excludes: tuple[str, ...] = PACK_EXCLUDES) -> list[str]:
    return [
        "tar", "--create", f"--file={output}", "--zstd", "--numeric-owner", "--sort=name",
        "--xattrs", "--xattrs-include=*", "--acls", "--one-file-system",
        "--anchored", *(f"--exclude=./{path}/*" for path in excludes),
        "-C", str(tree), ".",
    ]


def tar_zstd_env(compression: Compression) -> dict[str, str]:
    """zstd reads its level and thread count from the environment when tar runs it."""
    return {"ZSTD_CLEVEL": str(compression.level or 3), "ZSTD_NBTHREADS": str(cores())}


def write_tar_zst(tree: Path, output: Path, compression: Compression,
                  excludes: tuple[str, ...] = PACK_EXCLUDES) -> None:
    """A tar.zst keeping owners (numeric), modes, hard links, symlinks, devices, xattrs, ACLs.

    Unpack with: tar --extract --zstd --numeric-owner --xattrs --xattrs-include='*' --acls
    --same-permissions -f image.tar.zst -C ROOT
    """
    run(tar_argv(tree, output, excludes), extra_env=tar_zstd_env(compression), timeout=WRITE_TIMEOUT)


TAR_EXTRACT_OPTIONS: tuple[str, ...] = (
    "--extract", "--zstd", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
    "--same-permissions", "--same-owner",
)
