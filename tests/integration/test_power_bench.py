"""bench/power.py, small: 24 simulated BMCs, every answer checked against the simulators' state,
the default client and ipmitool side by side (the 500-BMC figure is `make bench`'s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_power_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "power.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "power.py"),
            "--bmcs",
            "24",
            "--runs",
            "1",
            "--concurrency",
            "8",
            "--json",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("24/24 right, 0 failed") == 3, done.stdout
    figures = json.loads(out.read_text())
    assert set(figures["medians"]) == {"baseline", "ipmitool", "swarmboot"} and figures["concurrency"] == 8
    assert "goal: <= 10 s for 24 BMCs" in done.stdout
