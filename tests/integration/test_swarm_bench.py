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
    # where the time went: the server's link, busy at least its bytes at its rate, was done before
    # the last node (every piece crosses it first), and the rest is the swarm's tail
    assert 0 < swarm["server_busy_s"] <= swarm["server_done_s"] + 1.0
    assert swarm["server_done_s"] <= swarm["last"] + 0.5
    assert swarm["tail_s"] == pytest.approx(swarm["last"] - swarm["server_done_s"], abs=0.02)
    assert 1.0 < swarm["node_rx_copies"] < 2.0  # a node's download port carried about one copy
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


BOOT_FILES_LINE = re.compile(
    r"^boot-files N=(\d+) booted=(\d+) head_peers=([\d.]+)MB head_direct=([\d.]+)MB copies=([\d.]+) "
    r"last_peers=([\d.]+)s last_direct=([\d.]+)s$"
)


def test_nodes_rebooting_beside_booted_peers_take_their_boot_files_from_them(tmp_path: Path) -> None:
    """bench/boot_files.py, small: 4 nodes reboot beside 2 booted ones; the server's scripts name
    the booted peers, so the head node sends none of the 4 copies it sends without them."""
    before_ns = _namespaces()
    out = tmp_path / "boot_files.json"
    cmd = [sys.executable, str(ROOT / "bench" / "boot_files.py"), "--rebooting", "4", "--booted", "2",
           "--kernel", "300KB", "--initramfs", "1.2MB", "--link", "50mbit", "--server-link", "50mbit",
           "--json", str(out)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    match = BOOT_FILES_LINE.match(proc.stdout.strip().splitlines()[-1])
    assert match, proc.stdout
    (row,) = json.loads(out.read_text())
    assert row["head_direct"] == 4 * row["pair_bytes"]  # without peers: a copy per node
    assert row["scripts_naming_a_peer"] == 4 and row["ipxe_bytes_from_peers"] == 4 * row["pair_bytes"]
    assert row["head_peers_total"] == 0  # iPXE and the booted services: all from the booted peers
    assert _namespaces() == before_ns
