"""Make real packed image versions in an image store, without the image builder (tests, benchmarks).

A small directory tree → real `mksquashfs` → `builder.torrent.make_torrent` (v1, single file) →
small real vmlinuz/initramfs.img files → `Manifest` written last to
images/<name>/versions/<N>/manifest.json, then `current`. Nothing here boots; everything else is
what a packed version really is, so the server, tracker, seeder and agent can be tested on it.

    from lab.packed import make_version
    manifest = make_version(settings.images_dir, "compute", 1, size=8 * 2**20)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

from builder.torrent import make_torrent
from ground import run as runmod
from ground.store import FileEntry, Manifest, write_atomic

MiB = 1024 * 1024


def _entry(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MiB), b""):
            digest.update(block)
    return FileEntry(name=path.name, size=path.stat().st_size, sha256=digest.hexdigest())


def _random_file(path: Path, size: int, rng: random.Random) -> None:
    with path.open("wb") as handle:
        left = size
        while left > 0:
            n = min(left, MiB)
            handle.write(rng.randbytes(n))
            left -= n


def make_version(
    images_dir: Path,
    name: str = "testimg",
    version: int = 1,
    *,
    size: int = 4 * MiB,
    seed: int | None = None,
    set_current: bool = True,
    piece_size: int | None = None,
    tree_hook: Callable[[Path], None] | None = None,
    kernel_size: int = 64 * 1024,
    initramfs_size: int = 128 * 1024,
) -> Manifest:
    """Pack a version of image `name` holding `size` bytes of random (incompressible) data;
    `tree_hook(tree)` may add to the tree before it is packed (owners, modes, links)."""
    rng = random.Random(f"{name}/{version}" if seed is None else seed)
    image_dir = images_dir / name
    (image_dir / "rootfs").mkdir(parents=True, exist_ok=True)
    vdir = image_dir / "versions" / str(version)
    vdir.mkdir(parents=True, exist_ok=False)
    tree = vdir.parent / f".tree-{version}"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text(f"{name}\n")
    (tree / "etc" / "os-release").write_text(f'NAME="swarmboot test image {name}"\nVERSION_ID="{version}"\n')
    _random_file(tree / "payload.bin", size, rng)
    if tree_hook is not None:
        tree_hook(tree)
    squash = vdir / "image.squashfs"
    runmod.run(
        ["mksquashfs", tree, squash, "-noappend", "-no-progress", "-quiet", "-comp", "zstd"], timeout=300
    )
    runmod.run(["rm", "-rf", "--one-file-system", tree], timeout=60)
    torrent = make_torrent(squash, piece_size=piece_size)
    (vdir / "image.torrent").write_bytes(torrent.data)
    _random_file(vdir / "vmlinuz", kernel_size, rng)
    _random_file(vdir / "initramfs.img", initramfs_size, rng)
    manifest = Manifest(
        image=name,
        version=version,
        format="squashfs",
        compression="zstd",
        kernel_version="6.1.0-test-amd64",
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        tool_version="tests",
        inputs_hash=hashlib.sha256(f"{name}/{version}/{size}".encode()).hexdigest(),
        info_hash=torrent.info_hash,
        piece_size=torrent.piece_size,
        kernel=_entry(vdir / "vmlinuz"),
        initramfs=_entry(vdir / "initramfs.img"),
        image_file=_entry(squash),
        torrent=_entry(vdir / "image.torrent"),
        inputs={"test": True},
    )
    write_atomic(vdir / "manifest.json", json.dumps(manifest.to_dict(), indent=2) + "\n")
    if set_current:
        write_atomic(image_dir / "current", f"{version}\n")
    return manifest
