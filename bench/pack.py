"""Pack time against plain mksquashfs of the same tree at the same level, run side by side.

    .venv/bin/python bench/pack.py [--image NAME] [--runs 3]

Without --image it makes a bench image in a temporary home (restored from
$SWARMBOOT_TEST_CACHE when a cached base tree is there, bootstrapped otherwise). Each round runs
plain `mksquashfs TREE OUT -comp zstd -Xcompression-level L -processors N`, a full pack with its
stages one after the other (`overlap=False`, to time the image stage alone) and a default pack
(dracut and mksquashfs at the same time), rotating the order; the previous bench version is
removed before each pack. Everything uses every core. Ratios against plain mksquashfs (medians):

  squashfs stage   pack's mksquashfs stage          (goal <= 1.1)
  pack w/o dracut  everything except the initramfs  (kernel copy, image, torrent + sha256, manifest)
  whole pack       everything, dracut included, in sequence and as pack runs by default
                   (dracut builds the initramfs: that is not in the baseline)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.formats import cores, parse_compression
from builder.pack import pack
from builder.treeops import remove_tree
from ground.config import Settings, load_settings
from ground.run import run
from ground.store import ImageStore

RESULTS = Path(__file__).resolve().parent / "results"


def bench_image(home: Path) -> tuple[Settings, str]:
    """A base image in `home`: from the test cache when present, else bootstrapped."""
    settings = Settings(home=home, hooks_dir=home / "site-hooks")
    image_dir = ImageStore(settings).image_dir("bench")
    cache = os.environ.get("SWARMBOOT_TEST_CACHE")
    cached = sorted(Path(cache).glob("base-*.tar.zst")) if cache else []
    if cached:
        image_dir.mkdir(parents=True)
        run(["tar", "--extract", "--zstd", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
             "--same-permissions", "--same-owner", f"--file={cached[-1]}", "-C", str(image_dir)], timeout=900)
    else:
        from builder.create import create_image

        create_image(settings, "bench", release=settings.release)
    return settings, "bench"


def plain_mksquashfs(tree: Path, out: Path, level: int | None) -> float:
    argv = ["mksquashfs", str(tree), str(out), "-noappend", "-comp", "zstd", "-processors", str(cores()),
            "-no-progress", "-quiet"]
    if level is not None:
        argv[6:6] = ["-Xcompression-level", str(level)]
    started = time.monotonic()
    run(argv, timeout=3600)
    elapsed = time.monotonic() - started
    out.unlink()
    return elapsed


def full_pack(settings: Settings, name: str, compression: str, overlap: bool) -> dict[str, float]:
    store = ImageStore(settings)
    remove_tree(store.versions_dir(name))  # so every round packs for real
    (store.image_dir(name) / "current").unlink(missing_ok=True)
    started = time.monotonic()
    result = pack(settings, name, fmt="squashfs", compression=compression, overlap=overlap)
    total = time.monotonic() - started
    assert result.created
    stages = dict(result.timings)
    return {"total": total, "image": stages["image"], "initramfs": stages["initramfs"],
            "without_dracut": total - stages["initramfs"]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", help="an existing image (in $SWARMBOOT_HOME); it gets bench versions")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compression", default="zstd:3")
    args = parser.parse_args()
    level = parse_compression(args.compression).level
    with tempfile.TemporaryDirectory(prefix="swarmboot-bench-", dir="/var/tmp") as tmp:
        if args.image:
            settings, name = load_settings(), args.image
        else:
            settings, name = bench_image(Path(tmp) / "home")
        tree = ImageStore(settings).rootfs(name)
        out = Path(tmp) / "plain.squashfs"
        print(f"bench: tree {tree}, {args.compression}, {cores()} cores, {args.runs} rounds",
              file=sys.stderr)
        plain_mksquashfs(tree, out, level)  # warm the page cache for both
        plains: list[float] = []
        packs: list[dict[str, float]] = []  # stages one after the other: the image stage alone
        overlapped: list[dict[str, float]] = []  # as pack runs by default
        kinds = ["plain", "sequential", "overlapped"]
        for round_number in range(args.runs):
            for which in kinds[round_number % 3:] + kinds[: round_number % 3]:  # rotate the order
                if which == "plain":
                    plains.append(plain_mksquashfs(tree, out, level))
                elif which == "sequential":
                    packs.append(full_pack(settings, name, args.compression, overlap=False))
                else:
                    overlapped.append(full_pack(settings, name, args.compression, overlap=True))
            last = packs[-1]
            print(f"round {round_number + 1}: plain mksquashfs {plains[-1]:.2f} s, "
                  f"pack {last['total']:.2f} s (squashfs stage {last['image']:.2f} s, "
                  f"initramfs {last['initramfs']:.2f} s), default pack {overlapped[-1]['total']:.2f} s",
                  file=sys.stderr)
        if args.image:
            remove_tree(ImageStore(settings).versions_dir(name))
    plain = statistics.median(plains)
    medians = {key: statistics.median(p[key] for p in packs) for key in packs[0]}
    # Each round's pack and plain run are neighbours in time: their ratio cancels slow drifts of
    # a shared machine's load; the fastest runs show the cost without contention.
    paired = statistics.median(p["image"] / q for p, q in zip(packs, plains, strict=True))
    fastest = min(p["image"] for p in packs) / min(plains)
    report = {
        "cores": cores(), "compression": args.compression, "runs": args.runs,
        "plain_mksquashfs_s": plains, "pack_s": packs,
        "ratio_squashfs_stage": medians["image"] / plain,
        "ratio_pack_without_dracut": medians["without_dracut"] / plain,
        "ratio_whole_pack": medians["total"] / plain,
        "ratio_squashfs_stage_paired": paired,
        "ratio_squashfs_stage_fastest": fastest,
        "default_pack_s": overlapped,
        "ratio_default_pack": statistics.median(p["total"] for p in overlapped) / plain,
    }
    print(f"plain mksquashfs (median)        {plain:7.2f} s")
    print(f"pack: squashfs stage (median)    {medians['image']:7.2f} s   "
          f"ratio {report['ratio_squashfs_stage']:.2f}  (goal <= 1.1)")
    print(f"  same, median of per-round ratios {paired:.2f}; fastest against fastest {fastest:.2f}")
    print(f"pack without dracut (median)     {medians['without_dracut']:7.2f} s   ratio "
          f"{report['ratio_pack_without_dracut']:.2f}")
    print(f"whole pack, stages in sequence   {medians['total']:7.2f} s   "
          f"ratio {report['ratio_whole_pack']:.2f}  (initramfs {medians['initramfs']:.2f} s)")
    print(f"whole pack, default (dracut and mksquashfs at the same time) "
          f"{statistics.median(p['total'] for p in overlapped):.2f} s   "
          f"ratio {report['ratio_default_pack']:.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pack.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
