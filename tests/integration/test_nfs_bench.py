"""The NFS-root benchmark end to end, small: real namespaces and tbf links, real `swarmboot serve`
with its nfs-ganesha export, the libnfs reader in each node namespace replaying the recorded boot,
then the BitTorrent download of the whole image beside it; its report and its clean-up. Two sizes
of swarm: the second serve restarts nfs-ganesha with the first's clients on record (its grace
period, which the bench waits out)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^nfs N=(\d+) last=([\d.]+)s server_bytes=([\d.]+)MiB \| bittorrent last=([\d.]+)s "
                  r"server_bytes=([\d.]+)MiB \| time nfs/bt=([\d.]+) bytes nfs/bt=([\d.]+) \| "
                  r"server sends less: (nfs|bittorrent)$")


def test_the_nfs_bench_reports_both_sides_and_the_server_sends_what_the_nodes_read(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    out = tmp_path / "nfs.json"
    cmd = [sys.executable, str(ROOT / "bench" / "nfs_root.py"), "--nodes", "2,3", "--scale", "0.03",
           "--link", "50mbit", "--server-link", "50mbit", "--json", str(out)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=540, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [LINE.match(text) for text in proc.stdout.strip().splitlines()[-2:]]
    assert all(lines), proc.stdout
    result = json.loads(out.read_text())
    image = result["image"]
    assert [row["nodes"] for row in result["rows"]] == [2, 3]
    for row in result["rows"]:
        # NFS: the server sent each node what it read (plus the protocol's overhead), not the image
        per_node = row["nfs"]["server_tx_bytes"] / row["nodes"]
        assert image["read_bytes"] <= per_node < 1.5 * image["read_bytes"] + 2**20, (per_node, image)
        # BitTorrent: the nodes got the whole image, the server sent at least one copy of it
        assert row["bittorrent"]["server_tx_bytes"] >= image["size"], row
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert after <= before, f"namespaces left behind: {after - before}"
