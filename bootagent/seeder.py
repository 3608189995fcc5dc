"""Keep seeding after the agent returns: a small process of its own (`swarmboot-agent seed`),
started once the image is verified, that survives the agent and is stopped by the dracut cleanup
hook just before switch_root (it reads `seeder.pid`). It seeds the verified file in seed mode (no
re-check) and writes its counters to `seeder.json`, which the booted system's report carries.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ground.run import spawn

MAX_SECONDS = 4 * 3600  # a seeder nobody stopped ends by itself
STATUS_EVERY = 2.0


def agent_command() -> list[str]:
    """How to start this agent again: the frozen binary, or the Python module."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "bootagent"]


def start_seeder(torrent: Path, image_file: Path, sha256: str, listen: str, run_dir: Path) -> int:
    """Start the seeding process; return its PID (also written to run_dir/seeder.pid)."""
    log = open(run_dir / "seeder.log", "ab")  # noqa: SIM115 - handed to the child
    proc = spawn(
        [
            *agent_command(),
            "seed",
            "--torrent",
            str(torrent),
            "--dir",
            str(image_file.parent),
            "--sha256",
            sha256,
            "--listen",
            listen,
            "--status",
            str(run_dir / "seeder.json"),
        ],
        stdout=log,
        stderr=log,
    )
    log.close()
    pid = proc.detach()  # it outlives the agent: the dracut cleanup hook stops it (seeder.pid)
    (run_dir / "seeder.pid").write_text(f"{pid}\n")
    return pid


def write_status(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(path)


def seed_main(
    torrent: Path, dest_dir: Path, sha256: str, listen: str, status: Path, *, max_seconds: float = MAX_SECONDS
) -> int:
    """Seed until SIGTERM/SIGINT (or max_seconds); keep `status` up to date."""
    from bootagent.download import ImageDownload

    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    with ImageDownload(
        torrent.read_bytes(), dest_dir, sha256=sha256, listen_interfaces=listen, assume_verified=True
    ) as dl:
        dl.start()
        while not stop and time.monotonic() - started < max_seconds:
            dl.session.wait_for_alert(int(STATUS_EVERY * 1000))
            dl.session.pop_alerts()
            st = dl.status()
            write_status(
                status,
                {
                    "uploaded": st.uploaded,
                    "upload_rate": st.upload_rate,
                    "peers": st.peers,
                    "seconds": round(time.monotonic() - started, 1),
                    "listen_port": dl.listen_port,
                    "stopped": False,
                },
            )
        st = dl.status()
        write_status(
            status,
            {
                "uploaded": st.uploaded,
                "upload_rate": 0,
                "peers": st.peers,
                "seconds": round(time.monotonic() - started, 1),
                "listen_port": dl.listen_port,
                "stopped": True,
            },
        )
    return 0
