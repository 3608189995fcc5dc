"""Compression and format options, mksquashfs/tar command lines, torrent piece sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.formats import (
    Compression,
    check_format,
    mksquashfs_argv,
    parse_compression,
    tar_argv,
    tar_zstd_env,
)
from builder.torrent import MiB, piece_size_for
from ground.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("zstd", Compression("zstd")), ("zstd:3", Compression("zstd", 3)), ("zstd:22", Compression("zstd", 22)),
     ("gzip:9", Compression("gzip", 9)), ("xz", Compression("xz")), ("lz4", Compression("lz4"))],
)
def test_parse_compression(text: str, expected: Compression) -> None:
    assert parse_compression(text) == expected
    assert str(parse_compression(text)) == text


@pytest.mark.parametrize("text", ["zstd:0", "zstd:23", "gzip:10", "xz:6", "lz4:1", "brotli", "zstd:x", ""])
def test_bad_compression(text: str) -> None:
    with pytest.raises(UsageError):
        parse_compression(text)


def test_format_and_compression_must_fit() -> None:
    check_format("squashfs", Compression("xz"))
    check_format("tar.zst", Compression("zstd", 19))
    for fmt, compression in [("tar.zst", Compression("xz")), ("tar.zst", Compression("zstd", 20)),
                             ("ext4", Compression("zstd"))]:
        with pytest.raises(UsageError):
            check_format(fmt, compression)


def test_mksquashfs_command_uses_all_cores_and_excludes(tmp_path: Path) -> None:
    argv = mksquashfs_argv(Path("/t"), Path("/o.sqfs"), Compression("zstd", 3), Path("/ex"),
                           progress=False, processors=7)
    assert argv[:3] == ["mksquashfs", "/t", "/o.sqfs"]
    assert argv[argv.index("-comp") + 1] == "zstd"
    assert argv[argv.index("-Xcompression-level") + 1] == "3"
    assert argv[argv.index("-processors") + 1] == "7"
    assert "-one-file-system" in argv and "-noappend" in argv
    assert argv[-3:] == ["-wildcards", "-ef", "/ex"]  # -wildcards must come before the excludes
    assert "-Xcompression-level" not in mksquashfs_argv(Path("/t"), Path("/o"), Compression("xz"), Path("/e"),
                                                         progress=True)


def test_tar_command_keeps_metadata_and_excludes() -> None:
    argv = tar_argv(Path("/t"), Path("/o.tar.zst"), excludes=("proc", "tmp"))
    options = ("--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--one-file-system", "--zstd")
    for option in options:
        assert option in argv
    assert argv.index("--anchored") < argv.index("--exclude=./proc/*") < argv.index(".")
    assert tar_zstd_env(Compression("zstd", 7))["ZSTD_CLEVEL"] == "7"
    assert tar_zstd_env(Compression("zstd"))["ZSTD_CLEVEL"] == "3"
    assert int(tar_zstd_env(Compression("zstd"))["ZSTD_NBTHREADS"]) >= 1


@pytest.mark.parametrize(
    ("size", "piece"),
    [(1, 64 * 1024), (128 * MiB, 64 * 1024), (128 * MiB + 1, 128 * 1024), (235 * MiB, 128 * 1024),
     (1024 * MiB, 512 * 1024), (1024 * MiB + 1, MiB), (4096 * MiB, 2 * MiB), (8192 * MiB + 1, 4 * MiB),
     (64 * 1024 * MiB, 4 * MiB)],
)
def test_piece_size_by_size(size: int, piece: int) -> None:
    assert piece_size_for(size) == piece
    assert 64 * 1024 <= piece <= 4 * MiB
    if 128 * MiB < size <= 8192 * MiB:
        assert 1024 < size / piece <= 2048
