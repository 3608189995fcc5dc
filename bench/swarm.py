"""Swarm benchmark: provisioning time of N nodes against the physical limit and against plain HTTP,
in network namespaces on this machine (needs root).

The real pieces run: `swarmboot serve` (tracker, seeder, web seed) in a server namespace, and in
each of N node namespaces the agent's own download module (bench/swarm_node.py); links are
veth pairs through a bridge, shaped with tbf both ways (node link c, server link u_s). Then plain
HTTP from the same server to the same N nodes. T_min = max(F/u_s, F/c, N·F/(u_s + N·c)) with TCP
payload rates (0.956 x the line rate at MTU 1500).

    flock /tmp/swarmboot-heavy.lock .venv/bin/python bench/swarm.py --nodes 8 \
        [--size 8MiB] [--link 4mbit] [--server-link RATE] [--piece-size 16KiB] [--queue-ms 300] \
        [--runs 1] [--no-http] [--json FILE] [--plot FILE]

`--nodes 4,8,16,32` runs several sizes in one go (a table at the end). What a node does once its
image is verified is the product's lifecycle by default (bench/swarm_node.py `Lifecycle`: the
initramfs seeder until switch_root, a gap, the booted system's seeding service under the plan's
rules); `--seed-forever` and `--no-seed` run the two bounds instead, `--bounds` all three side by
side in each run (`--seeding lifecycle,forever,none`). `--fault KIND` injects a
fault into the swarm runs (bench/swarm_faults.py: server-restart, node-kill, seeder-unreachable,
server-gone, corrupt-peer; `--fault-at`, `--outage`) and prints a `fault …` line per run. The last line reads
`swarm N=… T_min=…s last=…s ratio=… http_ratio=… server_copies=… seeding=…` (medians over --runs,
last N, the first seeding mode).
Everything (namespaces, processes, files) is removed at the end, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import swarm_faults  # noqa: E402
import swarm_lab  # noqa: E402
import swarm_report as rep  # noqa: E402

from ground.errors import SwarmbootError  # noqa: E402
from lab.netns import NetLab, parse_rate  # noqa: E402

MiB = 2**20
IMAGE = "bench"
BUSY_PERCENT = 15.0  # CPU use before a run above which the run is flagged
SEEDING_MODES = ("lifecycle", "forever", "none")  # the product's, and its two bounds


def parse_size(text: str) -> int:
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "k": 2**10, "m": 2**20, "g": 2**30}
    value = text.strip().lower()
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


def prepare_image(home: Path, size: int, piece_size: int | None) -> dict[str, Any]:
    """A real packed version (mksquashfs of random data, v1 torrent) in the server's store."""
    from lab.packed import make_version

    # the squashfs adds a little: aim the payload so the image file is about `size`
    manifest = make_version(home / "images", IMAGE, 1, size=max(size - 64 * 1024, MiB), piece_size=piece_size)
    return {
        "name": IMAGE,
        "version": 1,
        "file": manifest.image_file.name,
        "size": manifest.image_file.size,
        "sha256": manifest.image_file.sha256,
        "info_hash": manifest.info_hash,
        "piece_size": manifest.piece_size,
    }


def wait_idle(cpu: swarm_lab.CpuMeter, seconds: float) -> float:
    """Until the machine is less than BUSY_PERCENT busy over one second (the drivers are idle
    now), at most `seconds`; return the last second's CPU use. Another job on the machine would
    distort the run (and be distorted by it)."""
    end = time.monotonic() + seconds
    while True:
        cpu.start()
        time.sleep(1.0)
        busy = cpu.stop()
        if busy <= BUSY_PERCENT or time.monotonic() >= end:
            return busy


def run_phase(
    kind: str,
    *,
    wait_idle_seconds: float = 0.0,
    topo: swarm_lab.Topology,
    server: swarm_lab.ServerProcess,
    work: Path,
    image: dict[str, Any],
    tmin: float,
    extra: list[str],
    timeout: float,
    injector: swarm_faults.FaultInjector | None = None,
    linger: float = 0.0,
) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """Start N drivers, go, wait for all, measure; return the phase summary and per-node records.
    With an `injector`, its fault happens during the run and its summary is `summary["fault"]`."""
    if injector is not None:
        injector.prepare()
    drivers = swarm_lab.start_drivers(topo, server, work, mode=kind, image=image, extra=extra)
    sampler = swarm_lab.LinkSampler(lambda: topo.server_counters()["tx_bytes"])
    try:
        swarm_lab.wait_ready(drivers, timeout=120)
        cpu = swarm_lab.CpuMeter()
        cpu_before = wait_idle(cpu, wait_idle_seconds)
        if cpu_before > BUSY_PERCENT:
            print(f"  warning: the machine was {cpu_before:.0f} % busy before the {kind} run", flush=True)
        tx0 = topo.server_counters()["tx_bytes"]
        seeded0 = seeder_uploaded(server, image["info_hash"])
        server_cpu0 = swarm_lab.process_cpu(server.child.pid)
        rx0 = [c["rx_bytes"] for c in topo.node_counters()]
        sampler.start()
        cpu.start()
        t0 = swarm_lab.go(drivers, work, kind)
        if injector is not None:
            injector.start(t0, drivers)
        try:
            results = swarm_lab.wait_results(drivers, timeout, injector.killed if injector else None)
        finally:
            if injector is not None:
                injector.stop()
                server = injector.server  # a restarted server is another process
        cpu_percent = cpu.stop()
        sampler.stop()
        rx = [c["rx_bytes"] - r for c, r in zip(topo.node_counters(), rx0, strict=True)]
        cpu_split = {k: round(v, 1) for k, v in cpu.split.items()}
        tx = topo.server_counters()["tx_bytes"] - tx0
        fault = None
        if injector is not None:
            fault = swarm_faults.fault_summary(
                injector, results, image["size"], tmin,
                [r for i, r in enumerate(rx, 1) if i not in injector.killed],
            )
            restarted = injector.fault.kind == "server-restart"
            if injector.fault.kind != "server-gone":
                fault["seeder_after_restart" if restarted else "seeder_payload"] = seeder_uploaded(
                    server, image["info_hash"]
                ) - (0 if restarted else seeded0)
                if restarted:  # what the restarted server handed out to the owners (piece_fetch.py)
                    handed = server.admin("stats")["handed_out_bytes"]
                    fault["handed_out_after_restart"] = sum(handed.values())
            print(swarm_faults.fault_line(fault, tmin), flush=True)
        alive = injector is None or injector.fault.kind not in ("server-restart", "server-gone")
        seeded = seeder_uploaded(server, image["info_hash"]) - seeded0 if alive else 0
        server_cpu = swarm_lab.process_cpu(server.child.pid) - server_cpu0 if alive else 0.0
        errors = {i: r["error"] for i, r in results.items() if "error" in r}
        if errors and (injector is None or injector.fault.kind != "server-gone"):
            raise SwarmbootError(f"{kind}: nodes failed: {errors}")
        time.sleep(max(0.0, linger))  # the nodes go on (their lifecycle) before the run ends
        final = swarm_lab.finish_drivers(drivers, work / f"{kind}.stop")
    finally:
        sampler.stop()  # also when the run failed (stopping twice does nothing)
        swarm_lab.stop_drivers(drivers)
    if fault is not None and fault["kind"] == "server-gone":
        return {"fault": fault, "times": []}, results
    results = {i: r for i, r in results.items() if "error" not in r}
    summary = rep.phase_summary(results, image["size"], tmin, tx, cpu_percent)
    if fault is not None:
        summary["fault"] = fault
    summary["server_cpu_seconds"] = round(server_cpu, 2)
    summary["cpu_before_percent"] = round(cpu_before, 1)
    summary["cpu_split"] = cpu_split
    summary["server_seeder_payload"] = seeded
    # what a node's download port carried per image byte: headers, the ACKs of its own upload,
    # HAVEs and requests, retransmissions (the median node; the swarm's nodes each receive F)
    summary["node_rx_copies"] = round(statistics.median(rx) / image["size"], 4) if rx else 0.0
    # where the last node's time goes: the server's link busy (its bytes at the link rate), until
    # it was done (99 % of its bytes sent), then the swarm's tail to the last node
    summary["server_busy_s"] = round(tx / (topo.server_link_bit / 8), 2)
    summary["server_done_s"] = round(sampler.done_at(t0), 2)
    summary["tail_s"] = round(summary["last"] - summary["server_done_s"], 2)
    cpu_times = [f.get("cpu", {}) for f in final.values()]
    node_cpu = sum(t.get("self", 0.0) + t.get("children", 0.0) for t in cpu_times)
    summary["node_cpu_seconds"] = round(node_cpu, 2)
    if kind == "swarm":
        summary["from_web_seeds"] = sum(r.get("from_web_seeds", 0) for r in results.values())
        summary["from_peers"] = sum(r.get("from_peers", 0) for r in results.values())
        summary["handed_out"] = sum(r.get("from_server_http", 0) for r in results.values())
        summary["hash_failures"] = sum(r.get("hash_failures", 0) for r in results.values())
        summary["seeder_uploaded"] = sum(f.get("seeder", {}).get("uploaded", 0) for f in final.values())
        after = [f.get("after_boot") or {} for f in final.values()]
        summary["after_boot_uploaded"] = sum(a.get("uploaded", 0) for a in after)
        summary["after_boot_reasons"] = sorted({a["reason"] for a in after if a.get("reason")})
    return summary, {i: {**results[i], **final.get(i, {})} for i in results}


def seeder_uploaded(server: swarm_lab.ServerProcess, info_hash: str) -> int:
    """Payload bytes the server's seeder has sent for the torrent (its own counter)."""
    stats = server.admin("stats")
    return sum(t["uploaded"] for t in stats["seeder"]["torrents"] if t["info_hash"] == info_hash)


def bench_nodes(
    args: argparse.Namespace, n: int, work: Path, image: dict[str, Any], home: Path
) -> dict[str, Any]:
    link, server_link = args.link_bit, args.server_link_bit
    tmin = rep.t_min(image["size"], n, link, server_link)
    group: dict[str, Any] = {
        "nodes": n, "t_min": tmin, "swarm": [], "http": [], "nodes_detail": [],
        "seeding": {m: [] for m in args.seeding_modes},  # "swarm": the first mode's runs
    }
    extra: list[str] = []
    if args.node_settings:
        extra += ["--settings", args.node_settings]
    extra += args.node_arg
    if args.stripes:
        extra += ["--stripes", str(args.stripes)]
    line_args = {"size": image["size"], "link_bit": link, "tmin": tmin}
    timeout = max(60.0, 8 * tmin + 60)
    http_timeout = max(60.0, 1.5 * n * tmin + 60)
    swarm_lab.import_inventory(home, swarm_lab.inventory(n, IMAGE))
    with NetLab() as lab:
        extra_ns = 1 if args.fault == "corrupt-peer" else 0
        topo = swarm_lab.Topology(lab, n, link, server_link, args.queue_ms / 1000, extra=extra_ns)
        topo.build()
        for run in range(1, args.runs + 1):
            rwork = work / f"n{n}-run{run}"
            rwork.mkdir(parents=True)
            server_env = dict(kv.split("=", 1) for kv in args.server_env)
            server = swarm_lab.start_server(topo.server, home, server_env)
            injector = None
            if args.fault:
                fault = swarm_faults.Fault(
                    args.fault, at=args.fault_at, outage=args.outage, node=args.fault_node
                )
                injector = swarm_faults.FaultInjector(fault, topo, server, home, rwork, image, server_env)
            try:
                swarm_lab.wait_seeding(server, image["info_hash"])
                k = (run - 1) % len(args.seeding_modes)  # each mode first in turn: the first phase
                for mode in args.seeding_modes[k:] + args.seeding_modes[:k]:  # after a start is slower
                    mwork = rwork / mode
                    mwork.mkdir()
                    lifecycle = ["--switch-root-after", str(args.switch_root_after),
                                 "--service-gap", str(args.service_gap)] if mode == "lifecycle" else []
                    swarm, detail = run_phase(
                        "swarm", topo=topo, server=server, work=mwork, image=image, tmin=tmin,
                        extra=[*extra, "--seeding", mode, *lifecycle], timeout=timeout,
                        wait_idle_seconds=args.wait_idle, injector=injector, linger=args.linger,
                    )
                    if injector is not None:
                        server = injector.server
                    if swarm["times"]:
                        print(rep.run_line(mode, swarm, n=n, run=run, **line_args), flush=True)
                    swarm["seeding"] = mode
                    group["seeding"][mode].append(swarm)
                    if mode == args.seeding_modes[0]:
                        group["swarm"].append(swarm)
                        group["nodes_detail"].append(detail)
                if not args.no_http and run <= args.http_runs and not args.fault:
                    http, _ = run_phase(
                        "http", topo=topo, server=server, work=rwork, image=image, tmin=tmin, extra=[],
                        timeout=http_timeout, wait_idle_seconds=args.wait_idle,
                    )
                    print(rep.run_line("http", http, n=n, run=run, **line_args), flush=True)
                    group["http"].append(http)
            finally:
                server.stop()
            if not args.keep:
                shutil.rmtree(rwork, ignore_errors=True)
    return group


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default="8", help="N, or a comma list (4,8,16,32)")
    p.add_argument("--size", default="8MiB", help="image size F (default 8MiB)")
    p.add_argument("--link", default="4mbit", help="node link rate c, each way (default 4mbit)")
    p.add_argument("--server-link", default="", help="server link rate u_s (default: c)")
    p.add_argument(
        "--queue-ms", type=float, default=300.0,
        help="switch port buffer, ms of traffic at the link rate (default 300: 100 packets at 4mbit)"
    )
    p.add_argument(
        "--piece-size", default="16KiB", help="torrent piece size (default 16KiB; '': the builder's policy)"
    )
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--no-http", action="store_true", help="skip the plain HTTP comparison")
    p.add_argument(
        "--http-runs", type=int, default=1, help="plain HTTP in the first K runs (default 1: takes N x T_min)"
    )
    p.add_argument("--node-settings", default="", help="JSON: libtorrent overrides, nodes")
    p.add_argument(
        "--stripes", type=int, default=0, help="override the plans' stripe hints: K (first K own), -1: none"
    )
    p.add_argument(
        "--seeding", default="lifecycle",
        help="what a node does once verified, a comma list run side by side: lifecycle (the product's: "
        "bench/swarm_node.py Lifecycle), forever (seed until the run ends), none (leave at once)",
    )
    p.add_argument("--seed-forever", action="store_true", help="the upper bound alone (--seeding forever)")
    p.add_argument("--no-seed", action="store_true", help="the lower bound alone (--seeding none)")
    p.add_argument("--bounds", action="store_true", help="the lifecycle with both bounds beside it")
    p.add_argument("--switch-root-after", type=float, default=2.0,
                   help="lifecycle: seconds the initramfs seeder runs after the sha256 (default 2)")
    p.add_argument("--service-gap", type=float, default=5.0,
                   help="lifecycle: seconds from switch_root to the booted seeding service (default 5)")
    p.add_argument("--linger", type=float, default=0.0,
                   help="seconds the nodes go on after the last one is done, before the run ends (0)")
    p.add_argument("--node-arg", action="append", default=[], help="extra driver argument (experiments)")
    p.add_argument("--server-env", action="append", default=[], help="KEY=VALUE for swarmboot serve")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument(
        "--wait-idle", type=float, default=600.0, help="seconds to wait for an idle machine before each run"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs) in /dev/shm")
    p.add_argument("--fault", choices=swarm_faults.FAULTS, default="", help="inject a fault (swarm runs)")
    p.add_argument("--fault-at", type=float, default=0.5, help="when: the swarm's share of the bytes (0.5)")
    p.add_argument("--outage", type=float, default=10.0, help="server-restart: seconds down (10)")
    p.add_argument("--fault-node", type=int, default=0, help="node-kill: which node (default: the middle)")
    args = p.parse_args(argv)
    args.node_list = [int(x) for x in str(args.nodes).split(",") if x.strip()]
    modes = [m.strip() for m in args.seeding.split(",") if m.strip()]
    if args.bounds:
        modes = list(SEEDING_MODES)
    elif args.seed_forever or args.no_seed:
        modes = [m for m, on in (("forever", args.seed_forever), ("none", args.no_seed)) if on]
    if not modes or any(m not in SEEDING_MODES for m in modes):
        p.error(f"--seeding takes a comma list of {', '.join(SEEDING_MODES)}")
    args.seeding_modes = list(dict.fromkeys(modes))
    if not args.node_list or min(args.node_list) < 1:
        p.error("--nodes must be positive")
    args.size_bytes = parse_size(args.size)
    args.link_bit = parse_rate(args.link)
    args.server_link_bit = parse_rate(args.server_link) if args.server_link else args.link_bit
    args.piece = parse_size(args.piece_size) if args.piece_size else None
    return args


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: processes stopped, namespaces removed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    work = Path(tempfile.mkdtemp(prefix="swarmboot-bench.", dir="/dev/shm"))
    groups: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        home = work / "server-home"
        home.mkdir()
        image = prepare_image(home, args.size_bytes, args.piece)
        print(
            f"swarm benchmark: F={image['size']} bytes ({image['size'] / MiB:.2f} MiB), piece "
            f"{image['piece_size'] // 1024} KiB, c={args.link}, u_s={args.server_link or args.link}, "
            f"payload fraction {rep.PAYLOAD_FRACTION:.3f}, work dir {work}",
            flush=True,
        )
        for n in args.node_list:
            groups.append(bench_nodes(args, n, work, image, home))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    rows = []
    for g in groups:
        http_ratio = rep.median_of(g["http"], "ratio") if g["http"] else math.nan
        for mode, runs in g["seeding"].items():
            if not runs or not all(s["times"] for s in runs):
                continue  # the server gone for good: no times, the fault lines say what happened
            rows.append(
                {
                    "nodes": g["nodes"],
                    "seeding": mode,
                    "t_min": g["t_min"],
                    "last": rep.median_of(runs, "last"),
                    "p50": rep.median_of(runs, "p50"),
                    "p99": rep.median_of(runs, "p99"),
                    "ratio": rep.median_of(runs, "ratio"),
                    "http_ratio": http_ratio,
                    "server_copies": rep.median_of(runs, "server_copies"),
                    "cpu_percent": rep.median_of(runs, "cpu_percent"),
                    "after_boot_uploaded": rep.median_of(runs, "after_boot_uploaded"),
                }
            )
    if rows:
        print(rep.table(rows))
    if args.json:
        doc = {
            "config": {k: v for k, v in vars(args).items() if isinstance(v, str | int | float | bool | list)},
            "image": image,
            "payload_fraction": rep.PAYLOAD_FRACTION,
            "seconds": round(time.monotonic() - started, 1),
            "rows": rows,
            "groups": groups,
        }
        args.json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    if args.plot:
        with contextlib.suppress(ImportError):
            rep.plot(args.plot, groups)
    last = groups[-1]
    if rows and last["swarm"] and all(s["times"] for s in last["swarm"]):
        print(rep.summary_line(last["nodes"], last["t_min"], last["swarm"], last["http"],
                               seeding=args.seeding_modes[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
