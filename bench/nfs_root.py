"""NFS root against BitTorrent: how long N nodes take to get their root, and how many bytes the
server sends, side by side in one run, in network namespaces with tbf-shaped links (needs root).

    flock /tmp/swarmboot-heavy.lock .venv/bin/python bench/nfs_root.py --nodes 4,8,16 \
        [--link 100mbit] [--server-link 100mbit] [--scale 0.25] [--list bench/data/nfs-boot-read.txt]

Both sides run what the product runs on the server: `swarmboot serve` in the server namespace
(bench/swarm_lab.py's topology), with its nfs-ganesha export of the version for a group in nfs
mode, and its tracker, seeder and web seed.
- NFS: each node reads the files a real boot read from the export (the list, recorded by the
  NFS e2e: tests/e2e/test_nfs.py's n5 listed its page cache of the export's files), with libnfs
  (bench/nfs_reader.c, built here: the host kernel has no NFS client; a node's kernel client
  also reads ahead, which the list's sizes include, being what the kernel had fetched).
- BitTorrent: the same nodes download the whole squashfs with the agent's download module
  (bench/swarm_node.py), as in bench/swarm.py.
The version is made of random bytes (incompressible, as the squashfs is): the listed files at
their read size, and one file filling the squashfs to the real image's size; `--scale` scales
every size (file count kept) to keep the run short and the emulated traffic under what two
cores can shape (FACTS.md: ~0.8 Gbit/s in all).

The list (bench/data/nfs-boot-read.txt) is the e2e's: its n5 writes it to the console after its
boot, tests/e2e/test_nfs.py saves it as the lab's nfs-boot-read.txt; copy that here to refresh it.
`--list` takes another ("BYTES PATH" lines; a line "# image_size=BYTES" gives the squashfs size).
Results and the crossover: docs/server.md, "NFS or BitTorrent".

Printed per N: `nfs N=… last=…s server_bytes=… | bittorrent last=…s server_bytes=… | ratio …`,
and which one costs the server less. Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))  # before bench/: its server.py is not the server package

from server.nfs import GRACE_SECONDS, unmount_all  # noqa: E402  (before swarm: it puts bench/ first again)

# isort: split

import swarm  # noqa: E402
import swarm_lab  # noqa: E402
import swarm_report as rep  # noqa: E402

from ground import run as runmod  # noqa: E402
from ground.errors import SwarmbootError  # noqa: E402
from lab.netns import NetLab, parse_rate  # noqa: E402

MiB = 2**20
IMAGE = "bench"
DEFAULT_LIST = ROOT / "bench" / "data" / "nfs-boot-read.txt"


def read_list(path: Path) -> tuple[list[tuple[int, str]], int]:
    """The boot's reads ("BYTES PATH" lines) and the real image's size ("# image_size=BYTES")."""
    reads, image_size = [], 0
    for line in path.read_text().splitlines():
        if line.startswith("# image_size="):
            image_size = int(line.split("=", 1)[1])
        elif line and not line.startswith("#"):
            size, _, name = line.partition(" ")
            reads.append((int(size), name))
    if not reads or not image_size:
        raise SwarmbootError(f"{path}: no reads or no '# image_size=' line")
    return reads, image_size


def build_reader(work: Path) -> Path:
    binary = work / "nfs_reader"
    runmod.run(["gcc", "-O2", "-o", str(binary), str(ROOT / "bench" / "nfs_reader.c"), "-lnfs"], timeout=120)
    return binary


def prepare(home: Path, reads: list[tuple[int, str]], image_size: int, scale: float) -> tuple[dict, Path]:
    """The version (the listed files at their scaled read size, filled to the scaled image size)
    and the list the readers replay (scaled sizes)."""
    from lab.packed import make_version

    scaled = [(max(1, int(size * scale)), name) for size, name in reads]
    rng = random.Random(11)

    def tree(root: Path) -> None:
        for size, name in scaled:
            path = root / "boot-set" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(size))

    read_bytes = sum(size for size, _ in scaled)
    filler = max(MiB, int(image_size * scale) - read_bytes)
    manifest = make_version(home / "images", IMAGE, 1, size=filler, tree_hook=tree)
    listing = home / "boot-read.txt"
    listing.write_text("".join(f"{size} /boot-set/{name}\n" for size, name in scaled))
    image = {
        "name": IMAGE, "version": 1, "file": manifest.image_file.name, "size": manifest.image_file.size,
        "sha256": manifest.image_file.sha256, "info_hash": manifest.info_hash,
        "piece_size": manifest.piece_size, "read_bytes": read_bytes, "files": len(scaled),
    }
    return image, listing


def wait_exported(server: swarm_lab.ServerProcess, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        nfs = server.admin("stats").get("nfs", {})
        if nfs.get("running") and nfs.get("exports"):
            return
        time.sleep(0.3)
    raise SwarmbootError(f"the server did not export the version within {timeout} s: {nfs}")


def wait_grace_over(topo: swarm_lab.Topology, reader: Path, listing: Path) -> None:
    """nfs-ganesha restarted with clients on record (the previous N's) is in its grace period: opens
    fail with NFS4ERR_GRACE (a kernel client waits it out). One file read until that is over."""
    probe = listing.with_name("probe.txt")
    probe.write_text(listing.read_text().splitlines()[0] + "\n")
    url = f"nfs://{swarm_lab.SERVER_IP}/swarmboot/{IMAGE}/1?version=4"
    end = time.monotonic() + GRACE_SECONDS + 30
    while True:
        done = subprocess.run(topo.node_ns[0].argv([reader, url, probe]), capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode == 0:
            return
        if "GRACE" not in done.stderr or time.monotonic() > end:
            raise SwarmbootError(f"the NFS export cannot be read: {done.stderr.strip()}")
        time.sleep(1)


def nfs_phase(topo: swarm_lab.Topology, reader: Path, listing: Path, timeout: float) -> dict[str, Any]:
    """Every node reads the boot's files at once; the last one's time and the server's bytes."""
    url = f"nfs://{swarm_lab.SERVER_IP}/swarmboot/{IMAGE}/1?version=4"
    tx0 = topo.server_counters()["tx_bytes"]
    t0 = time.monotonic()
    procs = [subprocess.Popen(ns.argv([reader, url, listing]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for ns in topo.node_ns]
    times, errors = [], []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            errors.append("timed out")
            continue
        if proc.returncode != 0:
            errors.append(err.strip())
        times.append(time.monotonic() - t0)
        _ = out
    tx = topo.server_counters()["tx_bytes"] - tx0
    if errors:
        raise SwarmbootError(f"NFS readers failed: {errors[:3]}")
    return {"last": max(times), "p50": rep.percentile(times, 50), "server_tx_bytes": tx}


def bench(  # noqa: PLR0917
    args: argparse.Namespace, n: int, work: Path, home: Path, image: dict, listing: Path, reader: Path
) -> dict[str, Any]:
    doc = swarm_lab.inventory(n, IMAGE)
    doc["groups"][0]["root"] = {"mode": "nfs"}
    swarm_lab.import_inventory(home, doc)
    tmin = rep.t_min(image["size"], n, args.link_bit, args.server_link_bit)
    with NetLab() as lab:
        topo = swarm_lab.Topology(lab, n, args.link_bit, args.server_link_bit, args.queue_ms / 1000)
        topo.build()
        server = swarm_lab.start_server(topo.server, home)
        try:
            wait_exported(server)
            wait_grace_over(topo, reader, listing)
            swarm_lab.wait_seeding(server, image["info_hash"])
            nfs = nfs_phase(topo, reader, listing, timeout=max(120.0, 4 * n * image["read_bytes"] /
                                                              rep.payload_rate(args.server_link_bit)))
            rwork = work / f"n{n}"
            rwork.mkdir(parents=True)
            torrent, _ = swarm.run_phase("swarm", topo=topo, server=server, work=rwork, image=image,
                                         tmin=tmin, extra=[], timeout=max(60.0, 8 * tmin + 60))
        finally:
            server.stop()
    return {"nodes": n, "nfs": nfs, "bittorrent": {k: torrent[k] for k in ("last", "p50", "server_tx_bytes")},
            "t_min": tmin}


def line(row: dict[str, Any]) -> str:
    nfs, bt = row["nfs"], row["bittorrent"]
    cheaper = "nfs" if nfs["server_tx_bytes"] < bt["server_tx_bytes"] else "bittorrent"
    return (f"nfs N={row['nodes']} last={nfs['last']:.1f}s server_bytes={nfs['server_tx_bytes'] / MiB:.1f}MiB"
            f" | bittorrent last={bt['last']:.1f}s server_bytes={bt['server_tx_bytes'] / MiB:.1f}MiB"
            f" | time nfs/bt={nfs['last'] / bt['last']:.2f} bytes nfs/bt="
            f"{nfs['server_tx_bytes'] / bt['server_tx_bytes']:.2f} | server sends less: {cheaper}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", default="4,8,16")
    p.add_argument("--link", default="100mbit", help="each node's link")
    p.add_argument("--server-link", default="100mbit", help="the server's link")
    p.add_argument("--queue-ms", type=float, default=50.0)
    p.add_argument("--scale", type=float, default=0.25, help="scale every size by this (file count kept)")
    p.add_argument("--list", type=Path, default=DEFAULT_LIST, help="the boot's reads (BYTES PATH lines)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("nfs_root: needs root (network namespaces)", file=sys.stderr)
        return 2
    args.link_bit, args.server_link_bit = parse_rate(args.link), parse_rate(args.server_link)
    reads, image_size = read_list(args.list)
    work = Path(tempfile.mkdtemp(prefix="swarmboot-nfs-bench-"))
    rows = []
    try:
        home = work / "home"
        image, listing = prepare(home, reads, image_size, args.scale)
        reader = build_reader(work)
        print(f"image {image['size'] / MiB:.1f} MiB (scale {args.scale}); a boot reads {image['files']} "
              f"files, {image['read_bytes'] / MiB:.1f} MiB; links {args.link}, server {args.server_link}",
              flush=True)
        for n in [int(x) for x in args.nodes.split(",")]:
            row = bench(args, n, work, home, image, listing, reader)
            rows.append(row)
            print(line(row), flush=True)
    finally:
        unmount_all(work / "home")
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"image": image, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
