"""One node of the boot-files benchmark (bench/boot_files.py): runs inside the node's namespace.

It does what a rebooting node's iPXE does with its script, then what its booted seeding service
does with the boot files:
1. GET /boot/ipxe?mac=MAC from the server (the server's real script; one that says "wait" is
   slept on and asked for again, as iPXE does with its `sleep` and `chain`); for the `kernel` and
   `initrd` lines, try each URL in turn as iPXE's `a || b` does (`--direct`: the server's URL
   only, as with no booted peer), counting the bytes by source; the boot's token is in the
   script's kernel line;
2. `--serve`: then the booted service's boot-file thread (bootagent/boot_files.py
   `serve_after_boot`: from a peer the server names, or from the server; checked; served; its
   events to the server with the token) until the stop file;
3. `--kernel-seconds K`: before that, what the agent does K seconds after the files (its kernel
   and initramfs up): the real `swarmboot-agent boot-files` process (fetch again, check, serve
   while booting), stopped with SIGTERM at the handover, `--gap` seconds before the booted
   service starts (switch_root, systemd), which then serves the files it left.

    ip netns exec NS python bench/boot_files_node.py --server URL --node NAME --mac MAC \
        --dir DIR --go FIFO --stop FILE --result FILE [--direct] [--serve] [--boot-seconds S] \
        [--kernel-seconds K --gap G]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bootagent import boot_files  # noqa: E402
from bootagent.context import Console, Paths  # noqa: E402
from bootagent.report import Reporter  # noqa: E402
from lab.server_process import token_in, urls_in  # noqa: E402

STOP_POLL = 0.2
LIMIT = 1800.0  # every wait is bounded


def fetch_one(session: requests.Session, urls: list[str], server: str) -> tuple[str, int]:
    """What iPXE does with `kernel A || kernel B`: the first URL that answers whole."""
    for url in urls:
        try:
            with session.get(url, stream=True, timeout=60) as response:
                if response.status_code != 200:
                    continue
                size = sum(len(chunk) for chunk in response.iter_content(1 << 20))
            return ("server" if url.startswith(server) else "peer"), size
        except requests.RequestException:
            continue
    raise SystemExit(f"no URL gave the file: {urls}")


def while_booting(args: argparse.Namespace, token: str, handover: float) -> dict[str, Any]:
    """`swarmboot-agent boot-files` as the agent runs it (bootagent/seed_handover.py), until the
    handover's SIGTERM; what it said it served (its run dir's boot-files.json)."""
    run_dir = Path(args.dir)
    with open(run_dir / "boot-files.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bootagent", "boot-files", "--servers", args.server, "--node", args.node,
             "--dir", str(run_dir / "boot-files"), "--events-url",
             f"{args.server}/api/v1/nodes/{args.node}/events", "--image", "bench", "--version", "1"],
            cwd=ROOT, env={**os.environ, "SWARMBOOT_TOKEN": token}, stdout=log, stderr=log,
        )
    try:
        time.sleep(max(0.0, handover - time.monotonic()))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        return dict(json.loads((run_dir / "boot-files.json").read_text()))
    except (OSError, ValueError):
        return {}


def main() -> int:
    ap = argparse.ArgumentParser()
    for name in ("--server", "--node", "--mac", "--dir", "--go", "--stop", "--result"):
        ap.add_argument(name, required=True)
    ap.add_argument("--direct", action="store_true", help="the server's URLs only (no booted peers)")
    ap.add_argument("--serve", action="store_true", help="then run the booted service's boot-file part")
    ap.add_argument("--boot-seconds", type=float, default=0.0, help="from the files to the booted service")
    ap.add_argument("--kernel-seconds", type=float, default=0.0,
                    help="from the files to the agent's boot-files process (0: the booted service only)")
    ap.add_argument("--gap", type=float, default=0.0, help="from the handover to the booted service")
    args = ap.parse_args()
    result = Path(args.result)
    result.with_suffix(".ready").write_text("ready\n")
    with open(args.go) as fifo:  # a FIFO: blocks until the orchestrator writes
        t0 = float(fifo.readline())
    record: dict[str, Any] = {"node": args.node, "bytes": {"peer": 0, "server": 0}}
    record["held_back"] = 0
    with requests.Session() as session:
        for _ in range(int(LIMIT)):  # iPXE's loop: a script that says "wait" sleeps, then asks again
            script = session.get(f"{args.server}/boot/ipxe", params={"mac": args.mac}, timeout=60).text
            wait = re.search(r"^sleep (\d+)$", script, re.MULTILINE)
            if any(line.startswith("kernel ") for line in script.splitlines()) or wait is None:
                break
            record["held_back"] += 1
            time.sleep(int(wait.group(1)))
        record["script_at"] = time.monotonic() - t0
        token = token_in(script)
        record["peer_named"] = len(urls_in(script, "kernel")) > 1
        for command in ("kernel", "initrd"):
            urls = urls_in(script, command)
            source, size = fetch_one(session, urls[-1:] if args.direct else urls, args.server)
            record["bytes"][source] += size
    record["files_at"] = time.monotonic() - t0
    files_at = time.monotonic()
    if args.serve and args.kernel_seconds > 0:  # the agent's process, from its plan to its handover
        time.sleep(args.kernel_seconds)
        record["early"] = while_booting(args, token, files_at + max(0.0, args.boot_seconds - args.gap))
    time.sleep(max(0.0, files_at + args.boot_seconds - time.monotonic()))  # to the booted service
    stopping = threading.Event()
    said: list[dict[str, Any]] = []
    if args.serve:
        reporter = Reporter(Console(Paths(run_dir=Path(args.dir))), heartbeat_seconds=3600.0)
        reporter.urls = [f"{args.server}/api/v1/nodes/{args.node}/events"]
        reporter.token = token
        reporter.start()

        def report(status: str, message: str, details: dict[str, Any]) -> None:
            said.append({"status": status, "at": time.monotonic() - t0, **details})
            reporter.event("seed", status, message=message, details={"boot_files": details})

        thread = threading.Thread(
            target=boot_files.serve_after_boot, daemon=True,
            args=((args.server,), args.node, Path(args.dir) / "boot-files", boot_files.PORT, stopping, report,
                  lambda _: None),
        )
        thread.start()
    result.write_text(json.dumps(record) + "\n")
    end = time.monotonic() + LIMIT
    stop = Path(args.stop)
    while not stop.exists() and time.monotonic() < end:
        time.sleep(STOP_POLL)
    if args.serve:
        stopping.set()
        thread.join(15)
        reporter.close(timeout=10)
        record["service"] = said[0] if said else {}
        record["service_done"] = said[-1] if len(said) > 1 else {}
    result.with_suffix(".final").write_text(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
