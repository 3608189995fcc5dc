"""Faults for the swarm benchmark (`bench/swarm.py --fault KIND`), so their figures are reproducible:

    server-restart      `swarmboot serve` (tracker, seeder, HTTP) killed (SIGKILL) once the swarm
                        has AT of its bytes, started again OUTAGE seconds later
    node-kill           one node's driver (its libtorrent session) killed at AT
    seeder-unreachable  the seeder's port refused from the start (iptables in the server
                        namespace: in and out), tracker and HTTP up
    server-gone         the server killed at AT, for good
    corrupt-peer        an extra peer (a namespace of its own) seeds a copy of the image with
                        every piece damaged, announced to the tracker like any node

Progress is measured where it cannot lie: the bytes the nodes' links received (kernel counters).
What happened and when is in `FaultInjector.events` (seconds after go), and goes into the JSON.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import swarm_lab

from ground import run as runmod
from ground.errors import SwarmbootError

FAULTS = ("server-restart", "node-kill", "seeder-unreachable", "server-gone", "corrupt-peer")
POLL = 0.25


@dataclass
class Fault:
    kind: str
    at: float = 0.5  # fraction of all the bytes the swarm needs (N x the image)
    outage: float = 10.0  # server-restart: seconds between the kill and the new start
    node: int = 0  # node-kill: which node (1-based; 0: the middle one)

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise SwarmbootError(f"unknown fault {self.kind!r}", hint="one of: " + ", ".join(FAULTS))


@dataclass
class FaultInjector:
    fault: Fault
    topo: swarm_lab.Topology
    server: swarm_lab.ServerProcess
    home: Path
    work: Path
    image: dict[str, Any]
    server_env: dict[str, str]
    drivers: list[swarm_lab.Driver] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)  # node indexes (1-based) killed on purpose
    server_down: float = 0.0  # seconds after go
    server_up: float = 0.0
    bad_peer: runmod.Child | None = None
    _t0: float = 0.0
    _rx0: list[int] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    error: str = ""

    # -- before the nodes start ------------------------------------------------------------------
    def prepare(self) -> None:
        if self.fault.kind == "seeder-unreachable":
            port = str(swarm_lab.SEEDER_PORT)
            ns = self.topo.server
            # nodes cannot reach the seeder, and the seeder cannot reach the nodes
            ns.run(["iptables", "-A", "INPUT", "-p", "tcp", "--dport", port, "-j", "REJECT"], timeout=30)
            ns.run(["iptables", "-A", "OUTPUT", "-p", "tcp", "--dport", str(swarm_lab.NODE_PORT),
                    "-j", "REJECT"], timeout=30)
            self.note("seeder port blocked")
        if self.fault.kind == "corrupt-peer":  # announced before the nodes: their first answer has it
            self.bad_peer = start_bad_peer(self.topo, self.server, self.work, self.image)
            self.note(f"corrupt peer {self.topo.extra_ip(1)} seeding")


    # -- while they run ------------------------------------------------------------------------------
    def start(self, t0: float, drivers: list[swarm_lab.Driver]) -> None:
        self._t0, self.drivers = t0, drivers
        self._rx0 = [c["rx_bytes"] for c in self.topo.node_counters()]
        if self.fault.kind in ("server-restart", "node-kill", "server-gone"):
            self._thread = threading.Thread(target=self._run, name="fault", daemon=True)
            self._thread.start()

    def note(self, what: str) -> None:
        at = time.monotonic() - self._t0 if self._t0 else 0.0
        self.events.append((round(at, 2), what))
        print(f"  fault: {at:6.2f} s {what}", flush=True)

    def progress(self) -> float:
        rx = [c["rx_bytes"] for c in self.topo.node_counters()]
        got = sum(max(0, now - before) for now, before in zip(rx, self._rx0, strict=True))
        return got / (self.image["size"] * len(rx))

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and self.progress() < self.fault.at:
                time.sleep(POLL)
            if self._stop.is_set():
                return
            kind = self.fault.kind
            if kind == "node-kill":
                self.kill_node()
            else:
                self.kill_server()
                if kind == "server-restart":
                    self._stop.wait(self.fault.outage)
                    if not self._stop.is_set():
                        self.restart_server()
        except (SwarmbootError, OSError) as exc:
            self.error = str(exc)
            self.note(f"fault injection failed: {exc}")

    def kill_node(self) -> None:
        index = self.fault.node or (len(self.drivers) + 1) // 2
        driver = self.drivers[index - 1]
        self.killed.add(index)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.proc.pid, signal.SIGKILL)
        self.note(f"node {index} killed at {self.progress():.0%}")

    def kill_server(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.child.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.server.child.wait(timeout=10)
        self.server.stop(grace=1)
        self.server_down = time.monotonic() - self._t0
        self.note(f"server killed at {self.progress():.0%}")

    def restart_server(self) -> None:
        self.server = swarm_lab.start_server(self.topo.server, self.home, self.server_env)
        self.server_up = time.monotonic() - self._t0
        self.note("server restarted")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
        if self.bad_peer is not None:
            runmod.stop(self.bad_peer, grace=3)
            self.bad_peer = None


def corrupt_copy(source: Path, target: Path, piece_size: int) -> int:
    """`source` with one byte flipped in every piece; how many pieces."""
    data = bytearray(source.read_bytes())
    pieces = 0
    for offset in range(0, len(data), piece_size):
        data[offset + min(100, len(data) - offset - 1)] ^= 0xFF
        pieces += 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(data))
    return pieces


def start_bad_peer(
    topo: swarm_lab.Topology, server: swarm_lab.ServerProcess, work: Path, image: dict[str, Any]
) -> runmod.Child:
    """bench/swarm_badpeer.py on a damaged copy, in the extra namespace: to the nodes a seed like
    any other, announced to the tracker, that sends pieces that fail their hash."""
    bad = work / "bad-peer"
    version_dir = server.home / "images" / image["name"] / "versions" / str(image["version"])
    corrupt_copy(version_dir / image["file"], bad / image["file"], image["piece_size"])
    status, body = server.request(f"/images/{image['name']}/{image['version']}/image.torrent")
    if status != 200:
        raise SwarmbootError(f"cannot fetch the torrent for the corrupt peer: HTTP {status}")
    (bad / "image.torrent").write_bytes(body)
    argv = [sys.executable, str(swarm_lab.ROOT / "bench" / "swarm_badpeer.py"), "--torrent",
            str(bad / "image.torrent"), "--dir", str(bad), "--listen",
            f"{topo.extra_ip(1)}:{swarm_lab.NODE_PORT}", "--ready", str(bad / "status.json")]
    log = (work / "bad-peer.log").open("wb")
    env = runmod.base_env({"PYTHONPATH": str(swarm_lab.ROOT)})
    child = topo.extra_ns[0].spawn(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (bad / "status.json").exists():
        if child.poll() is not None:
            raise SwarmbootError(f"the corrupt peer exited:\n{(work / 'bad-peer.log').read_text()[-2000:]}")
        time.sleep(0.1)
    return child


def fault_summary(
    injector: FaultInjector, results: dict[int, dict[str, Any]], size: int, tmin: float,
    rx: list[int],
) -> dict[str, Any]:
    """What the fault did, in the figures the issue's goals are written in."""
    done = {i: r for i, r in results.items() if "error" not in r}
    times = sorted(r["t_done"] - r["t_go"] for r in done.values())
    web = sum(r.get("from_web_seeds", 0) for r in done.values())
    summary: dict[str, Any] = {
        "kind": injector.fault.kind,
        "at": injector.fault.at,
        "outage": injector.fault.outage,
        "events": injector.events,
        "killed": sorted(injector.killed),
        "completed": len(done),
        "last": max(times) if times else None,
        "ratio": max(times) / tmin if times else None,
        "web_seed_copies": web / size,
        "max_node_rx_copies": max(rx) / size if rx else None,
        "max_node_payload_copies": max(
            ((r.get("from_peers", 0) + r.get("from_web_seeds", 0)) / size for r in done.values()),
            default=None,
        ),
        "hash_failures": sum(r.get("hash_failures", 0) for r in done.values()),
        "rechecks": sum(r.get("rechecks", 0) for r in done.values()),
        "banned": sorted({b for r in done.values() for b in r.get("banned", [])}),
        "errors": {i: r["error"] for i, r in results.items() if "error" in r},
        "server_down": injector.server_down,
        "server_up": injector.server_up,
        "injection_error": injector.error,
    }
    if injector.fault.kind == "server-restart" and times:
        outage = injector.server_up - injector.server_down
        summary["outage_seconds"] = round(outage, 2)
        summary["goal_seconds"] = round((tmin + outage) * 1.2, 2)  # T_min + the outage, + 20 %
    return summary


def fault_line(s: dict[str, Any], tmin: float) -> str:
    ratio = f"{s['ratio']:.3f}" if s["ratio"] is not None else "nan"
    last = f"{s['last']:.2f}" if s["last"] is not None else "nan"
    extra = ""
    if "goal_seconds" in s:
        extra = f" outage={s['outage_seconds']:.1f}s goal={s['goal_seconds']:.1f}s"
    if "seeder_after_restart" in s:
        extra += f" seeder_after_restart={s['seeder_after_restart']}"
        extra += f" handed_out_after_restart={s.get('handed_out_after_restart', 0)}"
    return (
        f"fault {s['kind']} completed={s['completed']} last={last}s ratio={ratio} T_min={tmin:.2f}s"
        f" web_seed_copies={s['web_seed_copies']:.2f} max_node_rx_copies={s['max_node_rx_copies']:.2f}"
        f" max_node_payload_copies={s['max_node_payload_copies'] or 0:.2f}"
        f" hash_failures={s['hash_failures']} rechecks={s.get('rechecks', 0)}"
        f" errors={len(s['errors'])}{extra}"
    )
