"""A model of the whole network boot of N nodes, from power-on of the NIC's iPXE to switch_root.

Each node goes through, in order (every parameter is in `Fixed` and `Cluster`):
1. iPXE: DHCP, start.ipxe and the node's script (a fixed time per node, `Fixed.ipxe`);
2. the kernel and initramfs (`boot_files` bytes) over HTTP, from the head node — whose link u_s is
   shared fairly between the nodes fetching at once, each at most its own link c (processor
   sharing, `http_finish`) — or, with `boot_files_from_peers`, from a booted peer on its switch
   (at c, the head node sending one copy); in a cold start with the files from peers
   (`cold_from_peers`), the head node sends them to 16 nodes at a time and each node serves them
   from its initramfs once its agent has fetched them again, then (after a gap at switch_root)
   from its booted service, to 4 nodes at once, a slot freed when that node has both files
   (`cold_peer_files`, server/boot_peers.py's and bootagent/boot_files.py's rules);
3. the kernel and dracut up to the agent (`Fixed.kernel`: kernel init, udev, modules, DHCP);
4. the plan and the .torrent: a queue at the server's plan rate (bench/server.py: plans built
   ahead are cache hits) and the .torrent's bytes over u_s;
5. the swarm: bench/swarm_sim.py with each node starting at its own time from steps 1-4 and the
   slots, efficiency and hop delay fitted on the namespace benchmark (bench/swarm_model.py);
6. the agent's own time without the transfer and switch_root (`Fixed.agent`, `Fixed.switch_root`).
The nodes that booted keep seeding while the others download (the seeding service), as the
simulation's done nodes do. A rolling reboot of a fraction f of the cluster is the same boot of
f x N nodes, with the boot files from the head node or from the booted peers; the nodes that stay
up stopped seeding long ago, but they hold the image and seed it again on demand
(server/reseed.py, `reseed_starts`: one per rebooting node, at the rate the server's answers
let them ask).

The physical limit of a boot: the fixed times, plus the boot files, plus the swarm's T_min (Kumar
& Ross). The boot files from the head node: N x B / u_s, at least B / c. From peers in a cold
start (`peer_files_bound`): as fast as copies can spread, each node serving at c from the moment
its kernel is up (`Fixed.kernel` after it has them: firmware cannot serve), the head node at u_s,
every transfer at a full link. Then the 99th percentile node (what p99 is compared with) cannot
finish before it has its files plus F / c, and no node before the first one's files plus the
swarm's T_min (nodes start the swarm at different times here: the terms are not added).
`limit(..., naive=True)`: B / c as if every node could fetch them from a peer at once.
Rolling reboot from booted peers: B / c; with booted nodes that hold the image (seeding again),
the image's term is F / c: they can send all of it. Plain HTTP from one server (Warewulf, xCAT): the same
fixed times without our agent's, and N x (B + F) through u_s.

    .venv/bin/python bench/boot_model.py --e2e-log e2e.log --swarm bench/results/lifecycle.json \\
        [--plans-per-second 6000] [--json FILE]

--e2e-log: a pytest log of tests/e2e/test_boot.py (its FIGURES: each node's timeline and booted
report): the fixed times come from the first node and the model is checked against the others
(held out). --swarm: a bench/swarm.py --json file: the swarm's free parameters are fitted on it and
checked against every size in it (bench/swarm_model.py). Then the predictions table.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swarm_report import payload_rate, percentile
from swarm_sim import Params, simulate

from server.boot_peers import BOOTING_FETCH_WAIT, PER_HOLDER
from server.reseed import POLL_SECONDS, POLLS_PER_SECOND

GB = 10**9
MODEL_PIECES = 256  # pieces the simulation moves (a 1 GB image's 1 MiB pieces, 4 at a time)
TORRENT_BYTES = 20 * 1024 + 400  # a 1 GB image's .torrent at 1 MiB pieces
SERVER_STREAMS = 4  # boot_files_server_streams' default
SERVICE_START = 10.0  # switch_root -> the booted service serves the agent's boot files (systemd)
REPORT_LATENCY = 0.05  # a holder's "sent it both files" event -> the server frees the slot


@dataclass(frozen=True)
class Fixed:
    """Per-node seconds that do not depend on how many nodes boot (they run on the node)."""

    ipxe: float  # iPXE's start -> the node's script fetched (DHCP, start.ipxe, the script)
    kernel: float  # the kernel's start -> the agent's start (kernel init, dracut: udev, modules, DHCP)
    agent: float  # the agent's own time, without the transfer
    switch_root: float  # the agent's exit -> switch_root

    @property
    def total(self) -> float:
        return self.ipxe + self.kernel + self.agent + self.switch_root


@dataclass(frozen=True)
class Cluster:
    nodes: int
    head_bit: float  # u_s, bits/s
    node_bit: float  # c, bits/s
    image: int  # F, bytes
    boot_files: int  # B: vmlinuz + initramfs.img, bytes
    plans_per_second: float
    boot_files_from_peers: bool = False
    cold_from_peers: bool = False  # a cold start: the head's hold-back, then the first nodes up serve
    torrent: int = TORRENT_BYTES
    swarm_start: float = 0.3  # plan -> the first byte (session, tracker): the benchmark's first_byte
    holding: int = 0  # booted nodes that hold the image and seed it again on demand (server/reseed.py)


@dataclass
class Boot:
    """One modelled boot: each node's switch_root, and the parts of the slowest."""

    done: list[float]
    boot_files_last: float
    plans_last: float
    swarm_last: float
    server_copies: float

    def p(self, q: float) -> float:
        return percentile(self.done, q)


def http_finish(arrivals: list[float], size: float, rate: float, cap: float) -> list[float]:
    """When each of the downloads of `size` bytes, starting at `arrivals`, ends: the server's
    `rate` shared equally by the downloads in progress, each at most `cap` (processor sharing;
    with equal sizes they end in the order they started)."""
    order = sorted(range(len(arrivals)), key=arrivals.__getitem__)
    finish = [0.0] * len(arrivals)
    active: list[tuple[float, int]] = []  # (the progress at which it ends, node), oldest first
    progress, now, head, nxt = 0.0, 0.0, 0, 0  # bytes each active download has had so far
    while nxt < len(order) or head < len(active):
        n = len(active) - head
        speed = min(cap, rate / n) if n else 0.0
        t_arrive = arrivals[order[nxt]] if nxt < len(order) else math.inf
        t_end = now + (active[head][0] - progress) / speed if n else math.inf
        if t_arrive <= t_end:
            progress += speed * (t_arrive - now)
            now = t_arrive
            active.append((progress + size, order[nxt]))
            nxt += 1
        else:
            progress, now = active[head][0], t_end
            finish[active[head][1]] = now
            head += 1
    return finish


def cold_peer_files(  # noqa: PLR0917
    arrivals: list[float], size: float, rate: float, cap: float, streams: int,
    serving: tuple[float, float, float], per_holder: int = PER_HOLDER,
) -> tuple[list[float], int]:
    """A cold start with the hold-back (server/boot_peers.py): the head node sends the boot files
    to at most `streams` nodes at once (its `rate` shared, each at most `cap`). `serving` =
    (start, pause, resume), seconds after a node has its files: its initramfs serves them from
    `start` (the kernel, the plan, its agent's fetch of them again), stops at `pause` (switch_root)
    and its booted service serves them from `resume` on. A holder serves `per_holder` nodes at once,
    each at cap / per_holder (counted as if always full: pessimistic), a slot free again when the
    transfer ends; each transfer counts twice, for the agents' own fetches of them again (which
    holders serve too, off the boot's path). A waiting node takes the first holder slot free, else
    a server slot. The first nodes, whose files came from the head node, find no holder: one of
    them fetches them again from the head node, which holds the other transfers back meanwhile
    (its whole link: B / min(u_s, c); the pause of the others is not counted), the others ask
    again `BOOTING_FETCH_WAIT` s later and fetch from a holder. Returns each node's finish and how
    many came from the head."""
    start, pause, resume = serving
    order = sorted(range(len(arrivals)), key=arrivals.__getitem__)
    finish = [0.0] * len(arrivals)
    slots = [0.0] * max(1, streams)  # when each server slot is free again
    per_copy = size / min(cap, rate / max(1, streams))
    each = per_holder * size / cap  # one transfer from a holder serving per_holder at once
    first = size / min(rate, cap)  # the first holder-to-be's fetch from the head node, alone on its link
    held = 2 * each  # a holder's slot: that transfer and, in the model's count, one agent's fetch
    free: list[tuple[float, int]] = []  # heap of (when a holder slot is free, holder)
    ready: list[tuple[float, int]] = []  # heap of (when a holder starts serving, holder)
    got: list[float] = []  # holder -> when it had its files
    from_head = 0

    def available(t: float, holder: int) -> float:  # a holder's slot free at t: not in its switch_root gap
        return resume + got[holder] if pause + got[holder] <= t < resume + got[holder] else t

    def admit(until: float) -> None:
        while ready and ready[0][0] <= until:
            t, h = heapq.heappop(ready)
            for _ in range(per_holder):
                heapq.heappush(free, (t, h))

    for i in order:
        t = arrivals[i]
        slot = min(range(len(slots)), key=slots.__getitem__)
        t_server = max(t, slots[slot])
        admit(t_server)  # holders that start serving before the server slot count too
        t_peer, holder = math.inf, -1
        while free:
            when, h = free[0]
            later = available(max(t, when), h)
            if later > max(t, when):  # in its gap: back in the heap at its end
                heapq.heapreplace(free, (later, h))
                admit(later)
                continue
            t_peer, holder = later, h
            break
        if t_peer < t_server:
            heapq.heappop(free)
            done = t_peer + each
            heapq.heappush(free, (t_peer + held + REPORT_LATENCY, holder))
        else:
            done = t_server + per_copy
            slots[slot] = done
            from_head += 1
        finish[i] = done
        got.append(done)
        # it serves once its agent has them again: from a holder, or (the first nodes) the head node
        refetch = each if t_peer < t_server else first + BOOTING_FETCH_WAIT + each
        heapq.heappush(ready, (done + start + refetch, len(got) - 1))
    return finish, from_head


def peer_files_bound(nodes: int, size: float, rate: float, cap: float, serve_after: float) -> list[float]:
    """The earliest each of `nodes` nodes can have the boot files in a cold start from peers: the
    head node sends one copy after another at min(rate, cap) (in parallel if rate > cap), each node
    sends one copy after another at cap from `serve_after` seconds after it has its own, and every
    new copy goes to the next node as soon as any sender is free (sorted)."""
    senders: list[tuple[float, float]] = []  # heap of (when free, the copy's seconds)
    channels = max(1, int(rate // cap))
    for _ in range(channels):
        senders.append((0.0, size / min(rate, cap)))
    heapq.heapify(senders)
    done: list[float] = []
    while len(done) < nodes:
        t, seconds = heapq.heappop(senders)
        end = t + seconds
        done.append(end)
        heapq.heappush(senders, (end, seconds))
        heapq.heappush(senders, (end + serve_after, size / cap))
    return sorted(done)


def plan_finish(arrivals: list[float], per_second: float, torrent: float, rate: float) -> list[float]:
    """The plan requests served one after the other at `per_second`, then each node's .torrent
    over the server's link (small: counted as if sent one after the other)."""
    order = sorted(range(len(arrivals)), key=arrivals.__getitem__)
    finish = [0.0] * len(arrivals)
    free = 0.0
    for i in order:
        free = max(free, arrivals[i]) + 1 / per_second + torrent / rate
        finish[i] = free
    return finish


def boot(cluster: Cluster, fixed: Fixed, swarm: dict[str, Any], seed: int = 1) -> Boot:
    """The whole boot of `cluster.nodes` nodes powered on at once."""
    n = cluster.nodes
    c, u = payload_rate(int(cluster.node_bit)), payload_rate(int(cluster.head_bit))
    at_ipxe = [fixed.ipxe] * n
    if cluster.cold_from_peers:  # its initramfs serves, then (after switch_root) its booted service
        start = fixed.kernel + cluster.swarm_start
        pause = start + 1.3 * cluster.image / c + fixed.agent + fixed.switch_root
        files, _ = cold_peer_files(at_ipxe, cluster.boot_files, u, c, SERVER_STREAMS,
                                   (start, pause, pause + SERVICE_START))
    elif cluster.boot_files_from_peers:  # one copy from the head node, then peer to peer at c
        first = cluster.boot_files / min(u, c)
        files = [t + first + cluster.boot_files / c * (i > 0) for i, t in enumerate(at_ipxe)]
    else:
        files = http_finish(at_ipxe, cluster.boot_files, u, c)
    agents = [t + fixed.kernel for t in files]
    plans = plan_finish(agents, cluster.plans_per_second, cluster.torrent, u)
    starts = tuple(t + cluster.swarm_start for t in plans)
    piece = math.ceil(cluster.image / MODEL_PIECES)
    again = reseed_starts(sorted(starts), cluster.holding, cluster.swarm_start)
    result = simulate(
        Params(
            nodes=n, size=cluster.image, piece=piece, link=c, server_link=u, starts=starts, seed=seed,
            holders=len(again), holder_starts=tuple(again), **swarm
        )
    )
    done = [t + fixed.agent + fixed.switch_root for t in result.done]
    return Boot(done, max(files), max(plans), max(result.done), result.server_bytes / cluster.image)


def reseed_starts(leecher_starts: list[float], holding: int, start: float) -> list[float]:
    """When booted nodes holding the image seed it again (server/reseed.py): the `holding` waiting
    services ask `min(POLLS_PER_SECOND, holding / POLL_SECONDS)` times a second in all, and each
    ask while the swarm has more leechers than booted seeds is a yes; one holder per leecher, each
    seeding `start` seconds after its yes (its session and announce). `leecher_starts` sorted."""
    if holding <= 0 or not leecher_starts:
        return []
    gap = 1 / min(POLLS_PER_SECOND, holding / POLL_SECONDS)
    out, told = [], -math.inf
    for joined in leecher_starts[:holding]:
        told = max(told + gap, joined + gap / 2)  # the first ask after that leecher announced
        out.append(told + start)
    return out


def limit(cluster: Cluster, fixed: Fixed, naive: bool = False) -> float:
    """The physical limit of the whole boot (see the module's docstring)."""
    n = cluster.nodes
    c, u = payload_rate(int(cluster.node_bit)), payload_rate(int(cluster.head_bit))
    b, f = cluster.boot_files, cluster.image
    if cluster.cold_from_peers and not naive:
        # the p99 node cannot start before it has its files, nor take its image faster than c; the
        # image's first copy (u_s) and the swarm's capacity count from the first node's start
        spread = peer_files_bound(n, b, u, c, fixed.kernel)
        first = spread[0] + max(f / u, n * f / (u + n * c))
        return fixed.total + max(percentile(spread, 99) + f / c, first)
    if cluster.boot_files_from_peers or cluster.cold_from_peers:
        files = b / min(u, c)
    else:
        files = max(b / c, n * b / u)
    if cluster.holding > 0:  # booted holders can send it all: the head node's link bounds nothing
        return fixed.total + files + max(f / c, n * f / (u + (n + cluster.holding) * c))
    return fixed.total + files + max(f / u, f / c, n * f / (u + n * c))


def plain_http(cluster: Cluster, fixed: Fixed) -> float:
    """Warewulf and xCAT: the boot files and the image over HTTP from one server, no agent."""
    n = cluster.nodes
    c, u = payload_rate(int(cluster.node_bit)), payload_rate(int(cluster.head_bit))
    return (
        fixed.ipxe
        + fixed.kernel
        + fixed.switch_root
        + max((cluster.boot_files + cluster.image) / c, n * (cluster.boot_files + cluster.image) / u)
    )


# --- calibration: the e2e QEMU boots' timelines ---------------------------------------------------

TIMELINE = re.compile(r"(\S+) timeline: host clock \(since QEMU start\): (.*?); guest kernel clock: (.*)$")
REPORT = re.compile(
    r"(\S+) \(\w+, root \w+\): booted report at uptime ([\d.]+) s; agent ([\d.]+) s, own time "
    r"\(without transfer\) ([\d.]+) s; download (\d+) MiB in ([\d.]+) s"
)


@dataclass(frozen=True)
class E2ENode:
    """One e2e node's boot as its console and booted report showed it."""

    name: str
    host: dict[str, float]  # seconds since QEMU started: ipxe, script, kernel, ...
    guest: dict[str, float]  # the guest kernel's clock: init, agent, agent_exit, switch_root
    agent_own: float
    download: float

    def fixed(self) -> Fixed:
        return Fixed(
            ipxe=self.host["script"] - self.host["ipxe"],
            kernel=self.guest["agent"],
            agent=self.agent_own,
            switch_root=self.guest["switch_root"] - self.guest["agent_exit"],
        )

    @property
    def boot_files_seconds(self) -> float:
        return self.host["kernel"] - self.host["script"]

    @property
    def measured(self) -> float:
        """iPXE's start -> switch_root: the host clock to the kernel, the guest's after it."""
        return self.host["kernel"] - self.host["ipxe"] + self.guest["switch_root"]


def parse_e2e(text: str) -> list[E2ENode]:
    reports = {
        m.group(1): (float(m.group(4)), float(m.group(6))) for m in map(REPORT.search, text.splitlines()) if m
    }
    nodes = []
    for line in text.splitlines():
        m = TIMELINE.search(line)
        if not m or m.group(1) not in reports:
            continue
        host = {k: float(v) for k, v in re.findall(r"(\w+)@([\d.]+)s", m.group(2))}
        guest = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+)", m.group(3))}
        if {"ipxe", "script", "kernel"} <= host.keys() and {
            "agent",
            "agent_exit",
            "switch_root",
        } <= guest.keys():
            own, download = reports[m.group(1)]
            nodes.append(E2ENode(m.group(1), host, guest, own, download))
    return nodes


def check_e2e(nodes: list[E2ENode], reference: int = 0) -> list[dict[str, Any]]:
    """Each held-out node's measured time against the reference node's fixed times plus its own
    transfers (boot files as measured, the download as its report says): what the model adds."""
    fixed = nodes[reference].fixed()
    rows = []
    for node in nodes[:reference] + nodes[reference + 1 :]:
        model = fixed.total + node.boot_files_seconds + node.download
        rows.append(
            {
                "node": node.name,
                "measured": node.measured,
                "model": model,
                "error": abs(model - node.measured) / node.measured,
            }
        )
    return rows


# --- the predictions ----------------------------------------------------------------------------


def scenarios(plans_per_second: float, boot_files: int) -> list[tuple[str, Cluster]]:
    out = []
    for n in (1000, 10_000):
        for head in (1, 10):
            for node in (1, 10, 25):
                if node < head:
                    continue
                for image in (1, 4):
                    for kind in ("cold", "cold, files from peers", "rolling", "rolling, files from peers"):
                        size = n if kind.startswith("cold") else n // 10
                        cluster = Cluster(
                            nodes=size,
                            head_bit=head * 1e9,
                            node_bit=node * 1e9,
                            image=image * GB,
                            boot_files=boot_files,
                            plans_per_second=plans_per_second,
                            boot_files_from_peers=kind == "rolling, files from peers",
                            cold_from_peers=kind == "cold, files from peers",
                            holding=0 if kind.startswith("cold") else n - size,
                        )
                        out.append((f"{n} {kind}", cluster))
    return out


def predict(  # noqa: PLR0917
    fixed: Fixed, swarm: dict[str, Any], plans_per_second: float, boot_files: int, quick: bool = False,
    cases: str = "",
) -> list[dict[str, Any]]:
    rows = []
    for label, cluster in scenarios(plans_per_second, boot_files):
        if quick and (cluster.nodes > 1000 or cluster.image > GB):
            continue
        if cases and not any(label.split(" ", 1)[1] == c.strip() for c in cases.split(";")):
            continue
        t0 = time.monotonic()
        b = boot(cluster, fixed, swarm)
        lim = limit(cluster, fixed)
        naive = limit(cluster, fixed, naive=True)
        row = {
            "case": label,
            "nodes": cluster.nodes,
            "head_gbit": cluster.head_bit / 1e9,
            "node_gbit": cluster.node_bit / 1e9,
            "image_gb": cluster.image / GB,
            "p50": b.p(50),
            "p99": b.p(99),
            "limit": lim,
            "p99_x_limit": b.p(99) / lim,
            "naive_limit": naive,
            "p99_x_naive_limit": b.p(99) / naive,
            "plain_http": plain_http(cluster, fixed),
            "boot_files_last": b.boot_files_last,
            "plans_last": b.plans_last,
            "swarm_last": b.swarm_last,
            "server_copies": b.server_copies,
            "seconds": time.monotonic() - t0,
        }
        rows.append(row)
        print(
            f"  {label:28} u_s {row['head_gbit']:>4.0f} c {row['node_gbit']:>4.0f} Gbit/s "
            f"F {row['image_gb']:.0f} GB: "
            f"p50 {row['p50']:7.1f} s p99 {row['p99']:7.1f} s = {row['p99_x_limit']:.2f} x limit "
            f"{lim:7.1f} s"
            + (f" ({row['p99_x_naive_limit']:.2f} x B/c's {naive:.1f} s)" if naive != lim else "")
            + f"; plain HTTP {row['plain_http']:7.1f} s; "
            f"boot files done {b.boot_files_last:6.1f} s "
            f"[{row['seconds']:.0f} s]",
            flush=True,
        )
    return rows


def luna(fixed: Fixed, swarm: dict[str, Any], plans_per_second: float, boot_files: int) -> dict[str, Any]:
    """Luna's published cold boot: 72 nodes, a 1 GB image, 1 GbE, 4 minutes including POST."""
    cluster = Cluster(
        nodes=72,
        head_bit=1e9,
        node_bit=1e9,
        image=GB,
        boot_files=boot_files,
        plans_per_second=plans_per_second,
    )
    b = boot(cluster, fixed, swarm)
    return {
        "nodes": 72,
        "p99": b.p(99),
        "last": max(b.done),
        "luna": 240.0,
        "plain_http": plain_http(cluster, fixed),
    }


def main(argv: list[str] | None = None) -> int:
    from swarm_model import calibrate, load, params_for

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--e2e-log", type=Path, required=True, help="a pytest log of tests/e2e/test_boot.py")
    p.add_argument("--swarm", type=Path, required=True, help="a bench/swarm.py --json file")
    p.add_argument("--fit", default="4,32", help="the swarm sizes to fit on (default 4,32)")
    p.add_argument("--plans-per-second", type=float, default=6000.0, help="bench/server.py: plans (cached)")
    # vmlinuz 8.2 MB + initramfs.img 45.7 MB, as this week's e2e boots loaded them
    p.add_argument("--boot-files", type=float, default=53.9e6, help="vmlinuz + initramfs.img, bytes")
    p.add_argument(
        "--fixed", default="", help="ipxe,kernel,agent,switch_root seconds (default: the e2e log's)"
    )
    p.add_argument("--fixed-from", default="", help="the predictions' fixed times: this e2e node's")
    p.add_argument("--quick", action="store_true", help="predict 1,000 nodes and 1 GB only")
    p.add_argument("--cases", default="", help="only these kinds, ';'-separated: 'cold, files from peers'")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    nodes = parse_e2e(args.e2e_log.read_text(errors="replace"))
    if len(nodes) < 2:
        p.error(f"{args.e2e_log}: need the timelines and booted reports of two e2e nodes or more")
    out: dict[str, Any] = {"e2e": [asdict(n) for n in nodes], "e2e_check": check_e2e(nodes)}
    print(f"fixed times from {nodes[0].name} (TCG): {nodes[0].fixed()}")
    for node in nodes:
        print(f"  e2e {node.name:6} fixed times {node.fixed()} ({node.fixed().total:.1f} s)")
    for row in out["e2e_check"]:
        print(
            f"  e2e {row['node']:6} measured {row['measured']:6.1f} s model {row['model']:6.1f} s "
            f"error {row['error']:.1%} (held out)"
        )

    base, rows = load(args.swarm)
    fit_on = {int(x) for x in args.fit.split(",") if x}
    fit, fit_error = calibrate(base, rows, fit_on)
    swarm_check = []
    for m in rows:
        r = simulate(params_for(base, m, **fit))
        err = max(abs(r.last - m.last) / m.last, abs(r.percentile(50) - m.p50) / m.p50)
        swarm_check.append(
            {
                "nodes": m.nodes,
                "measured_last": m.last,
                "model_last": r.last,
                "measured_p50": m.p50,
                "model_p50": r.percentile(50),
                "error": err,
                "held_out": m.nodes not in fit_on,
            }
        )
        print(
            f"  swarm N={m.nodes:<3d} measured last {m.last:6.2f} s p50 {m.p50:6.2f} s | model last "
            f"{r.last:6.2f} s p50 {r.percentile(50):6.2f} s | error {err:.1%}"
            f"{' (held out)' if m.nodes not in fit_on else ''}"
        )
    print(f"swarm fitted on N={sorted(fit_on)}: {fit} (worst on the fitted sizes {fit_error:.1%})")
    out.update(swarm_fit=fit, swarm_check=swarm_check)

    if args.fixed_from:
        fixed = next(n.fixed() for n in nodes if n.name == args.fixed_from)
    else:
        fixed = Fixed(*map(float, args.fixed.split(","))) if args.fixed else nodes[0].fixed()
    out["fixed"] = asdict(fixed)
    print(
        f"predictions with fixed times {fixed} ({fixed.total:.1f} s per node), boot files "
        f"{args.boot_files / 1e6:.1f} MB, {args.plans_per_second:.0f} plans/s, {MODEL_PIECES} pieces:"
    )
    out["predictions"] = predict(
        fixed, fit, args.plans_per_second, int(args.boot_files), args.quick, args.cases
    )
    out["luna"] = luna(fixed, fit, args.plans_per_second, int(args.boot_files))
    print(
        f"Luna's 72 nodes, 1 GB, 1 GbE: 240 s published (with POST); model p99 {out['luna']['p99']:.1f} s "
        f"(without POST), plain HTTP {out['luna']['plain_http']:.1f} s"
    )
    worst = max([r["error"] for r in out["e2e_check"]] + [r["error"] for r in swarm_check])
    print(
        f"model vs lab runs: worst error {worst:.1%} (goal: within 10 %); predictions with p99 > 1.3 x "
        f"limit: {sum(r['p99_x_limit'] > 1.3 for r in out['predictions'])} of {len(out['predictions'])}"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
