"""Boot-files benchmark: what the head node sends of the kernel and initramfs when N nodes reboot
beside booted peers (a rolling reboot), against N copies, in network namespaces (needs root).

The real pieces run: `swarmboot serve` in the server namespace (its iPXE scripts, its holder list,
server/boot_peers.py) and in each node namespace bench/boot_files_node.py, which does what iPXE
does with the server's script (`kernel PEER || kernel SERVER`) and then what the booted seeding
service does (bootagent/boot_files.py: fetch from a peer the server names, check, serve, report).
The links are those of bench/swarm_lab.py (veth through a bridge, tbf both ways).

Three phases, on the same namespaces:
1. `direct`: N nodes fetch the pair from the server only (what every node does without peers:
   N copies), timed;
2. `booted`: B other nodes boot cold (nobody holds the files: each iPXE fetches from the server)
   and their services get the files (the first from the server, the others from it) and serve;
3. `peers`: the N reboot with the server's scripts naming the booted peers, and then their own
   services fetch the files too; timed, with the head node's bytes for boot files.

    flock /tmp/swarmboot-heavy.lock .venv/bin/python bench/boot_files.py --rebooting 16,32 \
        [--booted 8] [--link 200mbit] [--server-link 200mbit] [--kernel 8.2MB] [--initramfs 39.4MB]

`--cold N [--server-streams K] [--boot-seconds S] [--kernel-seconds E --gap G]`: a cold start
instead. N nodes power on at once and their booted services serve S seconds after their files.
It runs three times: without the hold-back; with the server sending at most K boot-file
transfers at once, telling the others to wait for the first nodes up; and the same with the
nodes serving from their initramfs too (the agent's `boot-files` process, E seconds after their
files, until the handover G seconds before the booted service).

The last line per N: `boot-files N=… booted=… head_peers=…MB head_direct=…MB copies=… last_peers=…s
last_direct=…s`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import swarm_lab  # noqa: E402

from ground import run as runmod  # noqa: E402
from ground.errors import SwarmbootError  # noqa: E402
from lab.netns import NetLab, parse_rate  # noqa: E402
from lab.packed import make_version  # noqa: E402

IMAGE = "bench"
MB = 10**6


def parse_bytes(text: str) -> int:
    value = text.strip().lower()
    for suffix, factor in (("mib", 2**20), ("kib", 2**10), ("mb", MB), ("kb", 1000), ("b", 1)):
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


def head_bytes(server: Any, manifest: Any) -> int:
    sent = server.admin("stats")["http_bytes"]
    files = (manifest.kernel, manifest.initramfs)
    return sum(sent.get(f"{IMAGE}/{manifest.version}/{e.name}", 0) for e in files)


def holders(server: Any) -> int:
    return int(server.admin("stats")["boot_peers"]["holders"].get(f"{IMAGE}/1", 0))


class Phase:
    """Drivers (bench/boot_files_node.py) in the namespaces `indices` (1-based), started together."""

    def __init__(  # noqa: PLR0917
        self, topo: swarm_lab.Topology, server: Any, work: Path, name: str, indices: list[int],
        flags: list[str],
    ) -> None:
        self.name, self.work, self.indices = name, work, indices
        self.procs: dict[int, runmod.Child] = {}
        for i in indices:
            stem = work / f"{name}-n{i}"
            (work / f"{name}-n{i}.d").mkdir()
            os.mkfifo(f"{stem}.go")
            argv = [sys.executable, str(ROOT / "bench" / "boot_files_node.py"), "--server", server.url,
                    "--node", swarm_lab.node_name(i), "--mac", swarm_lab.node_mac(i),
                    "--dir", f"{stem}.d", "--go", f"{stem}.go", "--stop", str(work / f"{name}.stop"),
                    "--result", f"{stem}.json", *flags]
            with open(f"{stem}.log", "wb") as log:
                self.procs[i] = topo.node_ns[i - 1].spawn(argv, stdout=log, stderr=subprocess.STDOUT,
                                                          env=runmod.base_env())

    def drivers(self) -> list[swarm_lab.Driver]:
        return [swarm_lab.Driver(i, p, self.work / f"{self.name}-n{i}.json") for i, p in self.procs.items()]

    def go(self, timeout: float = 60.0) -> float:
        swarm_lab.wait_ready(self.drivers(), timeout)
        return swarm_lab.go(self.drivers(), self.work, self.name)

    def results(self, timeout: float) -> dict[int, dict[str, Any]]:
        return swarm_lab.wait_results(self.drivers(), timeout)

    def stop(self) -> dict[int, dict[str, Any]]:
        return swarm_lab.finish_drivers(self.drivers(), self.work / f"{self.name}.stop", timeout=60.0)

    def kill(self) -> None:
        for p in self.procs.values():
            with contextlib.suppress(SwarmbootError):
                runmod.stop(p, grace=3)


def wait_holders(server: Any, want: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if holders(server) >= want:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SwarmbootError(f"{holders(server)} of {want} nodes serve the boot files after {timeout:.0f} s")


@contextlib.contextmanager
def served_lab(
    args: argparse.Namespace, nodes: int, work: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[swarm_lab.Topology, Any, Any]]:
    """The namespaces for `nodes` nodes, a packed version with boot files of the sizes asked for,
    the inventory, and `swarmboot serve` (stopped at the end): (topology, server, manifest)."""
    with NetLab() as lab:
        rates = parse_rate(args.link), parse_rate(args.server_link)
        topo = swarm_lab.Topology(lab, nodes, *rates)
        topo.build()
        home = work / "home"
        manifest = make_version(home / "images", IMAGE, 1, size=1 << 20, kernel_size=args.kernel,
                                initramfs_size=args.initramfs)
        swarm_lab.import_inventory(home, swarm_lab.inventory(nodes, IMAGE))
        server = swarm_lab.start_server(topo.server, home, env)
        try:
            yield topo, server, manifest
        finally:
            server.stop()


def run_one(args: argparse.Namespace, rebooting: int, work: Path) -> dict[str, Any]:
    booted = args.booted
    with served_lab(args, booted + rebooting, work) as (topo, server, manifest):
        pair = manifest.kernel.size + manifest.initramfs.size
        phases: list[Phase] = []
        try:
            rest = list(range(booted + 1, booted + rebooting + 1))
            direct = Phase(topo, server, work, "direct", rest, ["--direct"])  # nobody holds the files yet
            phases.append(direct)
            direct.go()
            got = direct.results(1200)
            last_direct = max(r["files_at"] for r in got.values())
            direct.stop()
            h_direct = head_bytes(server, manifest)
            first = Phase(topo, server, work, "booted", list(range(1, booted + 1)), ["--serve"])
            phases.append(first)
            first.go()
            first.results(600)
            warm = wait_holders(server, booted, 600)
            h0 = head_bytes(server, manifest)
            peers = Phase(topo, server, work, "peers", rest, ["--serve"])
            phases.append(peers)
            t0 = peers.go()
            got = peers.results(1200)
            last_peers = max(r["files_at"] for r in got.values())
            h_ipxe = head_bytes(server, manifest) - h0
            wait_holders(server, booted + rebooting, 900)
            all_hold = time.monotonic() - t0
            h2 = head_bytes(server, manifest)
            final = peers.stop()
            named = sum(1 for r in got.values() if r["peer_named"])
            from_peer = sum(r["bytes"]["peer"] for r in got.values())
            fetched = [r.get("service", {}).get("fetched", {}) for r in final.values()]
            svc_server = sum(f.get("from_server", 0) for f in fetched)
            first.stop()
        finally:
            for p in phases:
                p.kill()
    return {
        "rebooting": rebooting, "booted": booted, "pair_bytes": pair,
        "head_booted_phase": h0 - h_direct, "booted_ready_s": round(warm, 1),
        "head_direct": h_direct, "last_direct_s": round(last_direct, 2),
        "head_peers_ipxe": h_ipxe, "head_peers_total": h2 - h0, "last_peers_s": round(last_peers, 2),
        "all_serving_s": round(all_hold, 1), "scripts_naming_a_peer": named,
        "ipxe_bytes_from_peers": from_peer, "service_bytes_from_server": svc_server,
    }


def run_cold(args: argparse.Namespace, nodes: int, work: Path, streams: int, early: bool) -> dict[str, Any]:
    """A cold start: `nodes` power on at once; each serves `--boot-seconds` after its files (and
    from `--kernel-seconds` on when `early`). `streams` 0: no hold-back (all share the head link)."""
    env = {"SWARMBOOT_BOOT_FILES_SERVER_STREAMS": str(streams)}
    flags = ["--serve", "--boot-seconds", str(args.boot_seconds)]
    if early:
        flags += ["--kernel-seconds", str(args.kernel_seconds), "--gap", str(args.gap)]
    with served_lab(args, nodes, work, env) as (topo, server, manifest):
        phase = Phase(topo, server, work, "cold", list(range(1, nodes + 1)), flags)
        try:
            phase.go()
            got = phase.results(1800)
            head = head_bytes(server, manifest)
            stats = server.admin("stats")["boot_peers"]
            phase.stop()
        finally:
            phase.kill()
    times = sorted(r["files_at"] for r in got.values())
    return {"nodes": nodes, "streams": streams, "early": early,
            "pair_bytes": manifest.kernel.size + manifest.initramfs.size,
            "head": head, "p50_s": round(times[len(times) // 2], 1), "last_s": round(times[-1], 1),
            "held_back": stats["held_back"], "from_peers": sum(1 for r in got.values() if r["bytes"]["peer"])}


def write_rows(args: argparse.Namespace, rows: list[dict[str, Any]]) -> int:
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def cold_main(args: argparse.Namespace) -> int:
    rows = []
    for streams, early in ((0, False), (args.server_streams, False), (args.server_streams, True)):
        with tempfile.TemporaryDirectory(prefix="sb-bootfiles-") as tmp:
            row = run_cold(args, args.cold, Path(tmp), streams, early)
        rows.append(row)
        serving = f"initramfs from {args.kernel_seconds:.0f} s and " if early else ""
        print(f"cold start of {row['nodes']}, server streams {streams or 'unlimited'}, serving from "
              f"{serving}boot {args.boot_seconds:.0f} s: head node {row['head'] / MB:.1f} MB "
              f"({row['head'] / row['pair_bytes']:.1f} copies), {row['from_peers']} nodes' files from peers, "
              f"files p50 {row['p50_s']:.1f} s, last {row['last_s']:.1f} s; "
              f"{row['held_back']} scripts said wait", flush=True)
    base, held, early = rows
    copies = held["head"] / held["pair_bytes"]
    print(f"boot-files-cold N={args.cold} streams={args.server_streams} copies={copies:.2f} "
          f"copies_unlimited={base['head'] / base['pair_bytes']:.2f} "
          f"copies_early={early['head'] / early['pair_bytes']:.2f} last={held['last_s']:.1f}s "
          f"last_unlimited={base['last_s']:.1f}s last_early={early['last_s']:.1f}s", flush=True)
    return write_rows(args, rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rebooting", default="16,32", help="N, or a list: 16,32")
    ap.add_argument("--booted", type=int, default=8, help="booted nodes serving the files (default 8)")
    ap.add_argument("--link", default="200mbit", help="each node's link (default 200mbit)")
    ap.add_argument("--server-link", default="200mbit", help="the head node's link (default 200mbit)")
    ap.add_argument("--kernel", type=parse_bytes, default=parse_bytes("8.2MB"))
    ap.add_argument("--initramfs", type=parse_bytes, default=parse_bytes("39.4MB"))
    ap.add_argument("--cold", type=int, default=0,
                    help="a cold start of this many nodes instead (with and without the hold-back)")
    ap.add_argument("--server-streams", type=int, default=4, help="--cold: boot_files_server_streams")
    ap.add_argument("--boot-seconds", type=float, default=30.0, help="--cold: from the files to serving")
    ap.add_argument("--kernel-seconds", type=float, default=5.0,
                    help="--cold: from the files to the agent's boot-files process (its third run)")
    ap.add_argument("--gap", type=float, default=3.0, help="--cold: from the handover to the booted service")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the namespaces are removed
    if args.cold:
        return cold_main(args)
    rows = []
    for n in [int(x) for x in args.rebooting.split(",")]:
        with tempfile.TemporaryDirectory(prefix="sb-bootfiles-") as tmp:
            row = run_one(args, n, Path(tmp))
        rows.append(row)
        pair, total = row["pair_bytes"], row["head_peers_total"]
        print(f"N={n} rebooting beside {row['booted']} booted: the head node sent {total / MB:.1f} MB of "
              f"boot files ({row['head_peers_ipxe'] / MB:.1f} MB to iPXE; {row['scripts_naming_a_peer']}/{n} "
              f"scripts named a peer), against {row['head_direct'] / MB:.1f} MB = "
              f"{row['head_direct'] / pair:.1f} copies of the {pair / MB:.1f} MB pair without peers; the "
              f"last node had its files at {row['last_peers_s']:.1f} s against {row['last_direct_s']:.1f} s "
              f"(ratio {row['last_peers_s'] / row['last_direct_s']:.2f}); all {n + row['booted']} serving "
              f"{row['all_serving_s']:.0f} s after the reboot began")
        print(f"boot-files N={n} booted={row['booted']} head_peers={total / MB:.1f}MB "
              f"head_direct={row['head_direct'] / MB:.1f}MB copies={total / pair:.2f} "
              f"last_peers={row['last_peers_s']:.1f}s last_direct={row['last_direct_s']:.1f}s", flush=True)
    return write_rows(args, rows)


if __name__ == "__main__":
    sys.exit(main())
