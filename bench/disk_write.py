"""The disk install's image write step against a plain `unsquashfs` of the same image onto the same
disk, side by side (goal: <= 1.2x).

Each run makes a fresh ext4 on the same backing file (a loop device over a sparse file on this
machine's disk), then either writes the image the way the agent does (bootagent/disk/image.py
`write_image`, its exclusions of kept mount points, then `sync`: what the install's `write` timing
covers) or runs a plain `unsquashfs -d TARGET IMAGE` followed by `sync`. Runs alternate
(baseline, agent, baseline, agent, ...) so drift hits both alike; the ratio is agent / baseline
per pair and of the medians.

    python bench/disk_write.py [--image IMAGE.squashfs] [--source DIR] [--runs 3]

Without --image it packs --source (default /usr/share) with mksquashfs (zstd) first. Needs root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootagent.disk.image import write_image
from ground.run import output, run

GiB = 1 << 30


def fresh_fs(backing: Path, size: int) -> str:
    with backing.open("wb") as handle:
        handle.truncate(size)
    device = output(["losetup", "--find", "--show", str(backing)], timeout=60)
    run(["mkfs.ext4", "-F", "-q", device], timeout=600)
    return device


def timed_write(kind: str, image: Path, backing: Path, size: int, mnt: Path) -> float:
    device = fresh_fs(backing, size)
    try:
        run(["mount", "-t", "ext4", device, str(mnt)], timeout=60)
        try:
            run(["sync"], timeout=600)
            run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], timeout=60, check=False)
            started = time.monotonic()
            if kind == "agent":
                write_image(image, "squashfs", mnt, ["data"])  # a kept /data left out, as in an install
            else:
                run(["unsquashfs", "-d", str(mnt / "root"), str(image)], timeout=3600)
            run(["sync"], timeout=600)
            return time.monotonic() - started
        finally:
            run(["umount", str(mnt)], timeout=120)
    finally:
        run(["losetup", "-d", device], timeout=60, check=False)
        backing.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--image", type=Path, help="a squashfs image (e.g. a packed version's image.squashfs)"
    )
    parser.add_argument(
        "--source", type=Path, default=Path("/usr/share"), help="tree to pack without --image"
    )
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs (default 3)")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"), help="where the disk file lives")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("disk_write: needs root (loop devices, mounts)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-disk-") as tmp:
        work = Path(tmp)
        image = args.image
        if image is None:
            image = work / "image.squashfs"
            started = time.monotonic()
            run(
                ["mksquashfs", str(args.source), str(image), "-comp", "zstd", "-noappend", "-quiet"],
                timeout=3600,
            )
            print(
                f"packed {args.source} into {image.stat().st_size / 2**20:.0f} MiB in "
                f"{time.monotonic() - started:.1f} s"
            )
        size = max(2 * GiB, image.stat().st_size * 6)  # room for the unpacked tree
        mnt = work / "mnt"
        mnt.mkdir()
        times: dict[str, list[float]] = {"unsquashfs": [], "agent": []}
        for i in range(args.runs):
            for kind in ("unsquashfs", "agent"):
                seconds = timed_write(kind, image, work / "disk.img", size, mnt)
                times[kind].append(seconds)
                print(f"run {i + 1}: {kind:<10} {seconds:6.2f} s", flush=True)
        base, ours = statistics.median(times["unsquashfs"]), statistics.median(times["agent"])
        pairs = [a / b for a, b in zip(times["agent"], times["unsquashfs"], strict=True)]
        print(
            f"image {image.stat().st_size / 2**20:.0f} MiB squashfs onto a fresh ext4 (loop over a sparse "
            f"file in {args.workdir}), sync included"
        )
        print(
            f"median: plain unsquashfs {base:.2f} s, the agent's write step {ours:.2f} s: "
            f"{ours / base:.2f}x (pairs: {', '.join(f'{p:.2f}' for p in pairs)}; goal <= 1.2x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
