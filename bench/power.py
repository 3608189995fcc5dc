"""`swarmboot power status` for many simulated BMCs, against ipmitool in a shell loop, side by side.

    .venv/bin/python bench/power.py [--bmcs 500] [--concurrency 64] [--runs 2] [--json FILE]

Starts BMCS OpenIPMI `ipmi_sim` processes on loopback (lab/bmcsim.py: IPMI over LAN, lanplus;
every third one powered on), an inventory with one node per BMC (imported in one transaction),
then times, in one run:

  baseline   a shell loop of `ipmitool -I lanplus … chassis power status`, one BMC after the other
             (what an administrator's script does)
  ipmitool   `swarmboot power status` with ipmi_client=ipmitool (an ipmitool process per node,
             CONCURRENCY at once)
  swarmboot  `swarmboot power status` as it runs by default (pyghmi in process, CONCURRENCY at once)

Each run's answer is checked against the simulators' own state (every node right, none failed).
The goal: all BMCS in <= 10 s on 2 cores. `--no-baseline` skips the shell loop (it is the slow one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.bmcsim import BmcSim
from lab.server_process import home_env, swarmboot_command

GOAL_SECONDS = 10.0
PASSWORD = "bench-password"


def inventory(sim: BmcSim) -> str:
    import yaml

    nodes = [
        {
            "name": f"b{b.index:04d}",
            "group": "bench",
            "bmc": {"address": b.address, "user": "admin", "password": PASSWORD},
        }
        for b in sim.bmcs
    ]
    return yaml.safe_dump(
        {"swarmboot_inventory": 1, "groups": [{"name": "bench", "image": "bench"}], "nodes": nodes}
    )


def swarmboot_status(home: Path, concurrency: int, client: str) -> tuple[float, dict]:
    env = home_env(home, SWARMBOOT_IPMI_CLIENT=client, SWARMBOOT_POWER_TIMEOUT="20")
    start = time.monotonic()
    done = subprocess.run(
        [
            *swarmboot_command(),
            "power",
            "status",
            "--group",
            "bench",
            "--json",
            "--concurrency",
            str(concurrency),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    seconds = time.monotonic() - start
    if not done.stdout.strip():
        raise SystemExit(f"swarmboot power failed: {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def shell_loop(sim: BmcSim, workdir: Path) -> tuple[float, dict]:
    script = workdir / "loop.sh"
    lines = ["#!/bin/sh"] + [
        f"echo {b.index} $(ipmitool -I lanplus -C 3 -H {b.host} -p {b.port} -U admin -E chassis power status)"
        for b in sim.bmcs
    ]
    script.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    done = subprocess.run(
        ["sh", str(script)],
        env={**os.environ, "IPMI_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    seconds = time.monotonic() - start
    results = []
    for line in done.stdout.splitlines():
        index, _, text = line.partition(" ")
        power = "on" if text.endswith(" on") else "off" if text.endswith(" off") else ""
        results.append({"node": f"b{int(index):04d}", "ok": bool(power), "power": power})
    return seconds, {"results": results}


def check(report: dict, sim: BmcSim) -> tuple[int, int]:
    """(right, failed): nodes whose answer matches the simulator's state, nodes that failed."""
    right = failed = 0
    for row in report["results"]:
        index = int(row["node"][1:])
        failed += not row["ok"]
        right += row["ok"] and row["power"] == sim.power_of(index)
    return right, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bmcs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true", help="skip the sequential ipmitool loop")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="swarmboot-bench-power-") as tmp:
        workdir = Path(tmp)
        home = workdir / "home"
        t0 = time.monotonic()
        with BmcSim(workdir / "bmcs", args.bmcs, password=PASSWORD) as sim:
            for bmc in sim.bmcs[::3]:
                sim.set_power(bmc.index, True)
            started = time.monotonic() - t0
            (workdir / "inv.yaml").write_text(inventory(sim))
            subprocess.run(
                [*swarmboot_command(), "inventory", "import", str(workdir / "inv.yaml")],
                env=home_env(home),
                check=True,
                capture_output=True,
                timeout=600,
            )
            print(
                f"{args.bmcs} simulated BMCs (ipmi_sim) started in {started:.1f} s; {os.cpu_count()} cores; "
                f"concurrency {args.concurrency}"
            )
            figures: dict[str, list[float]] = {"baseline": [], "ipmitool": [], "swarmboot": []}
            for run in range(args.runs):
                rounds = [
                    ("swarmboot", lambda: swarmboot_status(home, args.concurrency, "pyghmi")),
                    ("ipmitool", lambda: swarmboot_status(home, args.concurrency, "ipmitool")),
                ]
                if not args.no_baseline and run == 0:
                    rounds.append(("baseline", lambda: shell_loop(sim, workdir)))
                for name, job in rounds:
                    seconds, report = job()
                    right, failed = check(report, sim)
                    print(
                        f"  run {run + 1} {name:9s} {seconds:7.2f} s  "
                        f"{right}/{args.bmcs} right, {failed} failed"
                    )
                    if right != args.bmcs:
                        bad = [r for r in report["results"] if not r["ok"]][:3]
                        print(f"    not all right: {bad}")
                    figures[name].append(seconds)
    medians = {k: statistics.median(v) for k, v in figures.items() if v}
    base = medians.get("baseline")
    print(f"\npower status, {args.bmcs} BMCs (median of runs):")
    for name, label in (
        ("baseline", "ipmitool in a shell loop, one BMC after the other"),
        ("ipmitool", f"swarmboot power, ipmi_client=ipmitool, {args.concurrency} at once"),
        ("swarmboot", f"swarmboot power (pyghmi), {args.concurrency} at once"),
    ):
        if name in medians:
            ratio = f"{medians[name] / base:6.3f} x baseline" if base else ""
            print(f"  {label:62s} {medians[name]:7.2f} s  {ratio}")
    goal = medians["swarmboot"] <= GOAL_SECONDS
    print(
        f"goal: <= {GOAL_SECONDS:.0f} s for {args.bmcs} BMCs: {'met' if goal else 'NOT met'} "
        f"({medians['swarmboot']:.2f} s)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "bmcs": args.bmcs,
                    "concurrency": args.concurrency,
                    "cores": os.cpu_count(),
                    "runs": figures,
                    "medians": medians,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
