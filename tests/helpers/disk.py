"""A virtual node's disk seen from the host, independently of the agent: the partition table by
`sfdisk --json`, one partition mounted read-only through a loop device at its offset (this host's
kernel does not scan partitions of loop devices), whole-disk sha256s."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ground.run import output, run

MiB = 1 << 20


def sparse_disk(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(8 * MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def partitions(disk: Path) -> dict[str, dict]:
    """name -> sfdisk's entry (start and size in bytes added)."""
    table = json.loads(output(["sfdisk", "--json", str(disk)], timeout=60))["partitiontable"]
    sector = table.get("sectorsize", 512)
    return {
        p.get("name", ""): {**p, "offset": p["start"] * sector, "bytes": p["size"] * sector}
        for p in table["partitions"]
    }


@contextlib.contextmanager
def mounted(disk: Path, name: str, fstype: str = "ext4") -> Iterator[Path]:
    """The partition called `name` of a (stopped) node's disk, mounted read-only (its journal
    replayed first, if the node was powered off hard: the kernel replays it on a read-only mount
    only when the device is writable, so the loop device is; "cannot mount /dev/loop0 read-only"
    otherwise, seen after a QEMU node was stopped)."""
    part = partitions(disk)[name]
    device = output(
        [
            "losetup",
            "--find",
            "--show",
            "--offset",
            str(part["offset"]),
            "--sizelimit",
            str(part["bytes"]),
            str(disk),
        ],
        timeout=60,
    )
    target = Path(tempfile.mkdtemp(prefix=f"disk-{name}-"))
    try:
        run(["mount", "-t", fstype, "-o", "ro", device, str(target)], timeout=60)
        try:
            yield target
        finally:
            run(["umount", str(target)], timeout=60)
    finally:
        run(["losetup", "-d", device], timeout=60, check=False)
        target.rmdir()
