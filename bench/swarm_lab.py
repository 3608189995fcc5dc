"""The swarm benchmark's network and processes: a server namespace, a switch (bridge) namespace and
N node namespaces, veth links shaped with tbf both ways, the real `swarmboot serve` in the server
namespace and one driver (bench/swarm_node.py) per node namespace.

    switch ns:  br0 ── s0 ──────────── eth0  server ns (10.77.0.1, u_s both ways)
                 ├─── p1 ──────────── eth0  node 1 ns (10.77.1.1, c both ways)
                 └─── pN ──────────── eth0  node N ns

Every link is shaped on both ends' egress (tbf), so a link carries at most its rate each way.
The namespaces have no route out: traffic stays inside. NetLab removes everything at the end.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground import run as runmod
from ground.errors import SwarmbootError
from lab import server_process
from lab.netns import Namespace, NetLab, link_counters
from lab.server_process import ServerProcess, swarmboot_command

ROOT = Path(__file__).resolve().parent.parent
SERVER_IP = "10.77.0.1"
HTTP_PORT = 8080
SEEDER_PORT = 6880
NODE_PORT = 6881


def node_ip(i: int) -> str:
    """Node i (1-based) → 10.77.1.i (consecutive addresses, as `swarmboot node add` allocates)."""
    return str(ipaddress.ip_address("10.77.1.0") + i)


def node_name(i: int) -> str:
    return f"n{i:03d}"


def node_mac(i: int) -> str:
    """Node i's MAC: what it asks its iPXE script (and in it its boot token) for."""
    return f"52:54:00:77:{i >> 8:02x}:{i & 0xFF:02x}"


def inventory(nodes: int, image: str) -> dict[str, Any]:
    """The benchmark's inventory (`swarmboot inventory import --replace`): one network, one
    switch, one group of exactly these nodes on the image, at the namespaces' addresses."""
    return {
        "swarmboot_inventory": 1,
        "networks": [{"name": "bench", "cidr": "10.77.0.0/16", "range": "10.77.1.1-10.77.255.254"}],
        "switches": [{"name": "sw1", "address": "", "description": "the benchmark's bridge"}],
        "groups": [{"name": "bench", "image": image, "network": "bench"}],
        "nodes": [
            {
                "name": node_name(i),
                "group": "bench",
                "address": node_ip(i),
                "switch": "sw1",
                "macs": [node_mac(i)],
            }
            for i in range(1, nodes + 1)
        ],
    }


@dataclass
class Topology:
    lab: NetLab
    nodes: int
    link_bit: int
    server_link_bit: int
    queue_seconds: float = 0.05  # what each switch port (and host) buffers, in seconds of traffic
    extra: int = 0  # more namespaces like the nodes' (a misbehaving peer: bench/swarm_faults.py)
    switch: Namespace = field(init=False)
    server: Namespace = field(init=False)
    node_ns: list[Namespace] = field(default_factory=list)
    extra_ns: list[Namespace] = field(default_factory=list)

    def build(self) -> None:
        lab = self.lab
        self.switch = lab.namespace("sw")
        lab.bridge(self.switch, "br0")
        self.server = lab.namespace("srv")
        self._port(self.server, "s0", f"{SERVER_IP}/16", self.server_link_bit)
        for i in range(1, self.nodes + 1):
            ns = lab.namespace(f"n{i}")
            self._port(ns, f"p{i}", f"{node_ip(i)}/16", self.link_bit)
            self.node_ns.append(ns)
        for i in range(1, self.extra + 1):
            ns = lab.namespace(f"x{i}")
            self._port(ns, f"x{i}", f"{self.extra_ip(i)}/16", self.link_bit)
            self.extra_ns.append(ns)

    def extra_ip(self, i: int) -> str:
        return str(ipaddress.ip_address("10.77.2.0") + i)

    def _port(self, ns: Namespace, port: str, cidr: str, rate: int) -> None:
        self.lab.veth(ns, "eth0", self.switch, port)
        self.lab.attach(self.switch, port, "br0")
        self.lab.address(ns, "eth0", cidr)
        self.lab.shape(ns, "eth0", rate, queue_seconds=self.queue_seconds)  # what the host sends (its upload)
        # what the switch sends it (its download)
        self.lab.shape(self.switch, port, rate, queue_seconds=self.queue_seconds)

    def server_counters(self) -> dict[str, int]:
        return link_counters(self.server, "eth0")

    def node_counters(self) -> list[dict[str, int]]:
        return [link_counters(ns, "eth0") for ns in self.node_ns]


def start_server(ns: Namespace, home: Path, extra_env: dict[str, str] | None = None) -> ServerProcess:
    """`swarmboot serve` in the server namespace, with its home (image store) in `home`."""
    env = {"SWARMBOOT_SEEDER_LISTEN": f"{SERVER_IP}:{SEEDER_PORT}", **(extra_env or {})}
    return server_process.start_server(
        home, listen=f"{SERVER_IP}:{HTTP_PORT}", namespace=ns, env=env, timeout=60.0
    )


def wait_seeding(server: ServerProcess, info_hash: str, timeout: float = 60.0) -> None:
    """Until the seeder seeds the torrent and the tracker lists it: nodes find it at once."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(SwarmbootError, ValueError):
            stats = server.admin("stats")
            swarm = stats["tracker"]["swarms"].get(info_hash, {})
            seeding = [t for t in stats["seeder"]["torrents"] if t["info_hash"] == info_hash]
            if seeding and swarm.get("seeders", 0) >= 1:
                return
        time.sleep(0.2)
    raise SwarmbootError(f"the server's seeder did not announce {info_hash} within {timeout} s")


def import_inventory(home: Path, doc: dict[str, Any]) -> None:
    path = home / "inventory.json"
    path.write_text(json.dumps(doc) + "\n")
    argv = [*swarmboot_command(), "inventory", "import", str(path), "--replace"]
    runmod.run(argv, env=server_process.home_env(home), timeout=120)


@dataclass
class Driver:
    index: int  # 1-based
    proc: runmod.Child
    result: Path


def start_drivers(
    topo: Topology, server: ServerProcess, work: Path, *, mode: str, image: dict[str, Any], extra: list[str]
) -> list[Driver]:
    """One bench/swarm_node.py per node namespace; each waits for the go file."""
    drivers = []
    for i, ns in enumerate(topo.node_ns, start=1):
        ndir = work / f"{mode}-n{i}"
        ndir.mkdir(parents=True)
        result = work / f"{mode}-n{i}.json"
        argv = [
            sys.executable, str(ROOT / "bench" / "swarm_node.py"), "--mode", mode,
            "--server", server.url, "--image", image["name"], "--version", str(image["version"]),
            "--file", image["file"], "--sha256", image["sha256"], "--size", str(image["size"]),
            "--listen", f"{node_ip(i)}:{NODE_PORT}", "--dir", str(ndir),
            "--node", node_name(i), "--mac", node_mac(i), "--index", str(i - 1),
            "--go", str(work / f"{mode}-n{i}.go"), "--stop", str(work / f"{mode}.stop"),
            "--result", str(result), *extra,
        ]
        os.mkfifo(work / f"{mode}-n{i}.go")
        log = (work / f"{mode}-n{i}.log").open("wb")
        proc = ns.spawn(argv, stdout=log, stderr=subprocess.STDOUT, env=runmod.base_env())
        log.close()
        drivers.append(Driver(i, proc, result))
    return drivers


def wait_ready(drivers: list[Driver], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for d in drivers:
            if d.proc.poll() is not None:
                raise SwarmbootError(f"node {d.index}'s driver exited early:\n{_log_of(d)}")
        if all(d.result.with_suffix(".ready").exists() for d in drivers):
            return
        time.sleep(0.05)
    raise SwarmbootError(f"the node drivers were not ready within {timeout} s")


def wait_results(
    drivers: list[Driver], timeout: float, ignore: set[int] | None = None
) -> dict[int, dict[str, Any]]:
    """Each driver's result (written when its download is done or failed), within `timeout`;
    `ignore`: drivers killed on purpose (a fault), looked at as it changes."""
    results: dict[int, dict[str, Any]] = {}
    skip = ignore if ignore is not None else set()
    end = time.monotonic() + timeout
    while time.monotonic() < end and len(results) < len(drivers) - len(skip):
        for d in drivers:
            if d.index in results or d.index in skip:
                continue
            with contextlib.suppress(FileNotFoundError, ValueError):
                results[d.index] = json.loads(d.result.read_text())
                continue
            if d.proc.poll() is not None:
                raise SwarmbootError(f"node {d.index}'s driver exited without a result:\n{_log_of(d)}")
        time.sleep(0.02)
    missing = [d.index for d in drivers if d.index not in results and d.index not in skip]
    if missing:
        raise SwarmbootError(f"nodes {missing} did not finish within {timeout:.0f} s")
    return results


def finish_drivers(
    drivers: list[Driver], stop_file: Path, timeout: float = 30.0
) -> dict[int, dict[str, Any]]:
    """Tell the drivers to stop (they stop their seeders) and collect their final records."""
    stop_file.write_text("stop\n")
    final: dict[int, dict[str, Any]] = {}
    end = time.monotonic() + timeout
    for d in drivers:
        try:
            d.proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            runmod.stop(d.proc, grace=3)
        with contextlib.suppress(FileNotFoundError, ValueError):
            final[d.index] = json.loads(d.result.with_suffix(".final").read_text())
    return final


def stop_drivers(drivers: list[Driver]) -> None:
    for d in drivers:
        with contextlib.suppress(SwarmbootError):
            runmod.stop(d.proc, grace=3)


def _log_of(d: Driver) -> str:
    with contextlib.suppress(OSError):
        return d.result.with_suffix(".log").read_text(errors="replace")[-3000:]
    return ""


def go(drivers: list[Driver], work: Path, mode: str, timeout: float = 30.0) -> float:
    """Start every driver at once: each blocks reading its FIFO, which gets the start time on the
    shared monotonic clock (a few microseconds apart)."""
    fds = []
    end = time.monotonic() + timeout
    try:
        for d in drivers:
            fifo = work / f"{mode}-n{d.index}.go"
            while True:
                try:
                    fds.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                    break
                except OSError as exc:  # ENXIO: the driver has not opened its end yet
                    if exc.errno != errno.ENXIO or time.monotonic() > end:
                        raise SwarmbootError(f"node {d.index}'s driver does not listen: {exc}") from exc
                    time.sleep(0.005)
        t0 = time.monotonic()
        line = f"{t0!r}\n".encode()
        for fd in fds:
            os.write(fd, line)
    finally:
        for fd in fds:
            os.close(fd)
    return t0


class LinkSampler:
    """The server link's sent bytes every `every` s from a thread (an `ip -s link` each time), for
    when the link was done: `done_at(t0, share)` is when it had sent `share` of the run's bytes,
    after t0. Every piece enters the swarm through that link: the last node's time is when the link
    was done plus the swarm's tail (docs/swarm.md, "Where the time goes")."""

    def __init__(self, read: Callable[[], int], every: float = 0.5) -> None:
        self.read, self.every = read, every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a failed reading is a missing sample
                self.samples.append((time.monotonic(), self.read()))
            self._stop.wait(self.every)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._stop.is_set() or not self._thread.is_alive():
            return  # stopped already, or never started
        self._stop.set()
        self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self.samples.append((time.monotonic(), self.read()))

    def done_at(self, t0: float, share: float = 0.99) -> float:
        """Seconds after t0 at which the link had sent `share` of what it sent in all (nan: no samples)."""
        if len(self.samples) < 2:
            return math.nan
        first, last = self.samples[0][1], self.samples[-1][1]
        goal = first + share * (last - first)
        for when, sent in self.samples:
            if sent >= goal:
                return when - t0
        return self.samples[-1][0] - t0


class CpuMeter:
    """Host CPU use from /proc/stat between start() and stop(), as % of all cores; `split` has
    the user, system and softirq (the emulated network: veth, bridge, tbf) parts of it."""

    def __init__(self) -> None:
        self.t0: list[int] = []
        self.split: dict[str, float] = {}

    @staticmethod
    def _read() -> list[int]:
        # user nice system idle iowait irq softirq steal
        return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]

    def start(self) -> None:
        self.t0 = self._read()

    def stop(self) -> float:
        now = self._read()
        d = [a - b for a, b in zip(now, self.t0, strict=True)]
        total = sum(d)
        if total <= 0:
            return 0.0
        self.split = {
            "user": 100.0 * (d[0] + d[1]) / total,
            "system": 100.0 * (d[2] + d[5]) / total,
            "softirq": 100.0 * d[6] / total,
        }
        return 100.0 * (total - d[3] - d[4]) / total


def process_cpu(pid: int) -> float:
    """CPU seconds used by a process (all threads) and its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields[11:15]) / ticks
