"""The swarm benchmark end to end, small: real namespaces, real `swarmboot serve`, real agent
download module in each node namespace, each node then going through the product's lifecycle
(bench/swarm_node.py Lifecycle), plain HTTP beside it; its report and its clean-up."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(
    r"^swarm N=(\d+) T_min=([\d.]+)s last=([\d.]+)s ratio=([\d.]+) http_ratio=([\d.]+) "
    r"server_copies=([\d.]+) seeding=lifecycle$"
)


def _namespaces() -> set[str]:
    return {p.name for p in Path("/run/netns").glob("*")} if Path("/run/netns").is_dir() else set()


def _benches() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("swarmboot-bench.*")}


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def test_a_small_swarm_beats_plain_http_and_leaves_nothing_behind(tmp_path: Path) -> None:
    before_ns, before_work = _namespaces(), _benches()
    out_json, out_png = tmp_path / "swarm.json", tmp_path / "swarm.png"
    cmd = [
        sys.executable, str(ROOT / "bench" / "swarm.py"), "--nodes", "4", "--size", "2MiB", "--link", "8mbit",
        "--wait-idle", "20", "--json", str(out_json), "--plot", str(out_png),
        # the lifecycle's phases, short, and 3 s after the last node so that every node gets there
        "--switch-root-after", "0.5", "--service-gap", "0.5", "--linger", "3",
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=420, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    match = LAST_LINE.match(last)
    assert match, last
    n, tmin, t_last, ratio, http_ratio, copies = match.groups()
    assert int(n) == 4
    # the limit is physics: nobody finishes before F/c; HTTP from one server takes about N x F/u_s
    assert float(t_last) >= float(tmin)
    assert float(ratio) >= 1.0
    assert float(http_ratio) > 2.5
    # the swarm beats one server over HTTP, and the server sends about one copy, not N
    assert float(ratio) < float(http_ratio)
    assert 0.9 < float(copies) < 2.5
    doc = json.loads(out_json.read_text())
    (group,) = doc["groups"]
    (swarm,) = group["swarm"]
    assert len(swarm["times"]) == 4 and len(group["http"][0]["times"]) == 4
    assert swarm["hash_failures"] == 0
    assert swarm["from_peers"] > 2 * doc["image"]["size"]  # most of the image came from other nodes
    assert 0 < swarm["cpu_percent"] <= 100
    # the product's lifecycle (the default): each node's initramfs seeder stopped at its switch_root,
    # then the booted system's seeding service (the agent's `seed --handover`) ran until the run's end
    (nodes,) = group["nodes_detail"]
    for i, node in nodes.items():
        marks = node["lifecycle"]
        assert marks["verified"] < marks["switch_root"] < marks["service"], (i, marks)
        assert node["seeder"].get("stopped"), (i, node["seeder"])
        after = node["after_boot"]
        assert after.get("stopped") and after["reason"] == "stopped by a signal", (i, after)
        assert "served" in after and "incomplete" in after, after
    assert swarm["after_boot_uploaded"] == sum(n["after_boot"].get("uploaded", 0) for n in nodes.values())
    assert "| lifecycle |" in proc.stdout
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _namespaces() == before_ns
    assert _benches() == before_work
