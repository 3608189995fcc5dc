"""One node of the swarm benchmark: runs inside the node's network namespace.

Swarm mode does what the agent's plan and download stages do, with the agent's own code: fetch
the node's boot plan and the torrent from the server (`bootagent.server.ServerClient`), download
the image with
`bootagent.download.ImageDownload` (session settings from `bootagent.lan_tuning`), and once it is
verified close the session and start the seeding process (`bootagent.seeder.start_seeder`); then,
by default, what the product does after that (`Lifecycle`: the initramfs seeder until switch_root,
a gap, the booted system's seeding service under the plan's rules), or `--seeding forever` (seed
until the benchmark says stop) or `--seeding none`. HTTP mode fetches the image file with one
plain HTTP GET.

It imports everything, writes `ready`, waits for the orchestrator's go file (which holds the
start time on the shared monotonic clock), and writes its result as JSON. Every wait is bounded.

    ip netns exec NS python bench/swarm_node.py --server URL --image NAME --version N \
        --sha256 HEX --size BYTES --listen IP:PORT --dir DIR --go FILE --stop FILE --result FILE
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bootagent.context import Console, Paths  # noqa: E402
from bootagent.download import DownloadStatus, ImageDownload  # noqa: E402
from bootagent.errors import DownloadError  # noqa: E402
from bootagent.report import Reporter  # noqa: E402
from bootagent.seed_handover import HANDOVER_FILE, handover_for  # noqa: E402
from bootagent.seeder import Handover, agent_command, start_seeder  # noqa: E402
from bootagent.server import ServerClient  # noqa: E402
from lab.server_process import token_in  # noqa: E402

TRACE_EVERY = 0.25  # seconds between progress samples
STOP_POLL = 0.2
SEEDER_STOP_WAIT = 5.0


def wait_for_file(path: Path, deadline: float, poll: float) -> str:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text()
            if text.endswith("\n"):
                return text
        time.sleep(poll)
    raise TimeoutError(f"{path} did not appear within {deadline} s")


def wait_go(fifo: Path, deadline: float) -> float:
    """Block (no CPU) on our FIFO until the orchestrator writes the start time into it."""
    signal.alarm(int(deadline) + 1)  # bounded: SIGALRM ends the process if nobody says go
    with open(fifo) as pipe:
        text = pipe.readline()
    signal.alarm(0)
    return float(text)


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(path)


def run_swarm(args: argparse.Namespace, result: dict[str, Any]) -> None:
    run_dir = Path(args.dir)
    image_dir = run_dir / "image"
    console = Console(Paths(run_dir=run_dir))
    servers = tuple(u for u in args.server.split(",") if u)  # like swarmboot.server=A,B: failover
    client = ServerClient(servers, console, base_delay=0.05, max_delay=0.5)
    reporter = _reporter(args, console, servers)
    if reporter is not None:
        reporter.event("cmdline", "start")
    plan, plan_server = client.fetch_plan("", args.node, 30.0)
    result["t_plan"] = time.monotonic()
    result["plan_server"] = plan_server
    if reporter is not None:
        reporter.set_events_url(plan.reporting.events_url)
        reporter.set_image(plan.image.name, plan.image.version)
        reporter.event("plan", "done", duration=result["t_plan"] - result["t_start"])
        reporter.event("download", "start")
    torrent = client.fetch_bytes(plan.image.torrent_url, 30.0, "the image's .torrent")
    result["t_torrent"] = time.monotonic()
    experiment: dict[str, Any] = {}  # without: what the agent does (the plan's stripe hint)
    if args.stripes > 0:  # override the plan's hint: the first K nodes own a stripe
        experiment["stripe"] = (args.index if args.index < args.stripes else -1, args.stripes)
    elif args.stripes < 0:  # no stripes: plain rarest-first
        experiment["stripe"] = None
    torrent_file = run_dir / "image.torrent"
    torrent_file.write_bytes(torrent)
    overrides = json.loads(args.settings) if args.settings else None
    trace: list[tuple[float, int]] = []
    last = [0.0]
    last_event = [0.0]

    def on_progress(status: DownloadStatus) -> None:
        now = time.monotonic()
        if status.done and "t_first" not in result:
            result["t_first"] = now
        if status.done == status.total and "t_all_pieces" not in result:
            result["t_all_pieces"] = now  # libtorrent has every piece; the sha256 may still run
        if now - last[0] >= TRACE_EVERY:
            last[0] = now
            trace.append((round(now - result["t_go"], 3), status.done))
        if reporter is not None and now - last_event[0] >= args.report_every:
            last_event[0] = now
            reporter.event("download", "progress", progress=status.progress, details={"peers": status.peers})

    cls = TracingDownload if args.trace_blocks else ImageDownload
    if args.trace_blocks:
        import libtorrent as lt

        from bootagent.lan_tuning import session_settings

        mask = session_settings("node", args.listen)["alert_mask"]
        mask |= int(lt.alert.category_t.block_progress_notification)
        overrides = {**(overrides or {}), "alert_mask": mask}
    dl = cls.for_plan(
        plan, torrent, image_dir, listen_interfaces=args.listen, settings=overrides, web_seed=args.web_seed,
        **experiment,
    )
    result["stripe"] = dl.stripe
    try:
        dl.start()
        path = dl.wait(on_progress, deadline=args.deadline, stall=args.stall)
        result["t_done"] = time.monotonic()
        status = dl.status()
    except DownloadError:
        result.update(errors=dl.errors[-10:], trace=trace, web_seed_added=dl.web_seed_added)
        raise
    finally:
        dl.close()
    result["t_closed"] = time.monotonic()
    trace.append((round(result["t_done"] - result["t_go"], 3), status.total))
    result.update(
        trace=trace,
        from_peers=status.from_peers,
        from_web_seeds=status.from_web_seeds,
        from_server_http=status.from_server_http,
        piece_fetch=None if (f := dl.piece_fetch) is None else {
            "requests": f.requests, "failure": f.failure, "dispense": dl.stripes.dispense,
            "delivered": [(round(t - result["t_go"], 3), k) for t, k in f.delivered]},
        uploaded=status.uploaded,
        hash_failures=dl.hash_failures,
        rechecks=dl.recheck.rechecks,
        by_peer=by_peer(dl),
        blocks=getattr(dl, "blocks", None),
        peer_flags=getattr(dl, "peer_flags", None),
        web_seed_added=dl.web_seed_added,
        banned=sorted(getattr(dl, "banned", ())),
        adopted=getattr(dl.stripes, "adopted", -1),
        adopted_at=[round(t - result["t_go"], 3) for t in getattr(dl.stripes, "adopted_at", ())],
        own_done=None if (done := dl.stripes.own_done_at) is None else round(done - result["t_go"], 3),
        unfiltered=dl.server_unfiltered,
        rehashed=dl.rehashed,
        errors=dl.errors[-5:],
    )
    seeding = args.seeding != "none"
    if seeding:
        pid = start_seeder(torrent_file, path, plan.image.sha256, args.listen, run_dir)
        result["seeder_pid"] = pid
    if reporter is not None:
        seconds = result["t_done"] - result["t_torrent"]
        reporter.event("download", "done", duration=seconds, details={
            "bytes": status.total, "from_peers": status.from_peers, "from_web_seeds": status.from_web_seeds})
        reporter.event("booted", "done", details={"hostname": args.node, "swarm_bench": True})
        reporter.close(timeout=10.0)
        result["events_sent"], result["events_failed"] = reporter.sent, reporter.failed
        result["events_urls"] = list(reporter.urls)
    write_json(Path(args.result), result)
    if args.seeding == "lifecycle":
        handover = handover_for(  # what the agent leaves the booted system
            plan, run_dir, path, args.listen, list(reporter.urls) if reporter is not None else [],
            reporter.token if reporter is not None else "",
        )
        life = Lifecycle(args, run_dir, handover, result["seeder_pid"])
        life.run_until(Path(args.stop), args.deadline + 600)
        result["seeder"], result["after_boot"] = life.seeder, life.after_boot
        result["lifecycle"] = life.marks
        return
    wait_for_file(Path(args.stop), args.deadline + 600, STOP_POLL)
    if seeding:
        result["seeder"] = stop_seeder(result["seeder_pid"], run_dir / "seeder.json")


class Lifecycle:
    """What a node does after its image is verified, as the product does it (the default): the
    initramfs seeder until switch_root (`--switch-root-after` s: the agent's root, files, post and
    handover stages and dracut's cleanup), nothing while the booted system comes up
    (`--service-gap` s: systemd up to network-online), then the booted system's seeding service,
    the real one (`swarmboot-agent seed --handover`, bootagent/seeder.py) with the plan's
    seed_after_boot_seconds, seed_idle_seconds and seed_rate_limit, until its own rule stops it or
    the run ends. Every phase is bounded by the stop file and the deadline."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, handover: Handover, seeder_pid: int) -> None:
        self.args, self.run_dir, self.handover, self.seeder_pid = args, run_dir, handover, seeder_pid
        self.seeder: dict[str, Any] = {}
        self.after_boot: dict[str, Any] = {}
        self.marks: dict[str, float] = {"verified": time.monotonic()}
        self.service: Any = None

    def _stopped(self, stop: Path) -> bool:
        return stop.exists() and stop.read_text().endswith("\n")

    def _sleep_until(self, at: float, stop: Path, end: float) -> bool:
        """False when the run ended first."""
        while time.monotonic() < min(at, end):
            if self._stopped(stop):
                return False
            time.sleep(STOP_POLL)
        return time.monotonic() < end

    def run_until(self, stop: Path, deadline: float) -> None:
        end = time.monotonic() + deadline
        t0 = self.marks["verified"]
        switch_root = t0 + self.args.switch_root_after
        in_time = self._sleep_until(switch_root, stop, end)
        self.seeder = stop_seeder(self.seeder_pid, self.run_dir / "seeder.json")
        self.marks["switch_root"] = time.monotonic()
        if not in_time or not self._sleep_until(switch_root + self.args.service_gap, stop, end):
            return
        self.marks["service"] = time.monotonic()
        status = Path(self.handover.status)
        handover_file = self.run_dir / HANDOVER_FILE
        handover_file.write_text(self.handover.to_json())
        if self.handover.max_seconds <= 0:
            self.after_boot = {"skipped": "seed_after_boot_seconds is 0"}
            wait_for_file(stop, max(1.0, end - time.monotonic()), STOP_POLL)
            return
        log = open(self.run_dir / "seed-service.log", "ab")  # noqa: SIM115 - the child's output
        self.service = subprocess.Popen(
            [*agent_command(), "seed", "--handover", str(handover_file)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            while time.monotonic() < end and self.service.poll() is None and not self._stopped(stop):
                time.sleep(STOP_POLL)
            if self.service.poll() is not None:
                self.marks["service_done"] = time.monotonic()
                wait_for_file(stop, max(1.0, end - time.monotonic()), STOP_POLL)
        finally:
            if self.service.poll() is None:
                self.service.terminate()
                try:
                    self.service.wait(SEEDER_STOP_WAIT)
                except subprocess.TimeoutExpired:
                    self.service.kill()
                    self.service.wait(10)
        with contextlib.suppress(OSError, ValueError):
            self.after_boot = dict(json.loads(status.read_text()))


class _AlertTap:
    """Forwards to the libtorrent session; notes block_finished alerts on the way."""

    def __init__(self, session: Any, lt: Any, blocks: list[tuple[float, int, str]]) -> None:
        self._session, self._lt, self._blocks = session, lt, blocks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def pop_alerts(self) -> list[Any]:
        alerts = self._session.pop_alerts()
        kinds = {
            self._lt.block_finished_alert: "", self._lt.block_downloading_alert: "req",
            self._lt.block_timeout_alert: "timeout", self._lt.request_dropped_alert: "dropped",
        }
        for alert in alerts:
            kind = kinds.get(type(alert))
            if kind is not None:
                self._blocks.append((round(time.monotonic(), 3), alert.piece_index, alert.ip[0] + kind))
        return list(alerts)


class TracingDownload(ImageDownload):
    """Diagnostics: which peer sent which piece, and when (block_finished alerts)."""

    def start(self) -> None:
        super().start()
        self.blocks: list[tuple[float, int, str]] = []
        self.peer_flags: list[tuple[float, int, int, int, int, int]] = []
        self.session = _AlertTap(self.session, self.lt, self.blocks)

    def status(self) -> DownloadStatus:
        """Also notes, per poll: peers, peers choking us, snubbed, in end-game, on parole."""
        st = super().status()
        pi = self.lt.peer_info
        peers = self.handle.get_peer_info()
        count = [sum(1 for p in peers if int(p.flags) & int(f)) for f in
                 (pi.remote_choked, pi.snubbed, pi.endgame_mode, pi.on_parole)]
        self.peer_flags.append((round(time.monotonic(), 3), len(peers), *count))  # type: ignore[arg-type]
        return st


def _reporter(args: argparse.Namespace, console: Console, servers: tuple[str, ...]) -> Reporter | None:
    """Events like the agent's (bootagent/report.py: one thread, failover between the servers)."""
    if not args.report:
        return None
    reporter = Reporter(console, servers, timeout=3.0, heartbeat_seconds=10.0)
    reporter.token = boot_token(servers, args.mac)
    reporter.set_events_url(f"{servers[0]}/api/v1/nodes/{args.node}/events")
    reporter.start()
    return reporter


def boot_token(servers: tuple[str, ...], mac: str) -> str:
    """This boot's token, as a node gets it: from the iPXE script the first server that answers
    renders for its MAC (swarmboot.token=…); events without it are refused."""
    if not mac:
        return ""
    for server in servers:
        with contextlib.suppress(requests.RequestException):
            token = token_in(requests.get(f"{server}/boot/ipxe", params={"mac": mac}, timeout=5).text)
            if token:
                return token
    raise RuntimeError(f"no server gave a boot token to {mac} (tried {', '.join(servers)})")


def by_peer(dl: ImageDownload) -> dict[str, int]:
    """Payload bytes received per peer address (sampled by the download module)."""
    out: dict[str, int] = {}
    for (ip, kind), n in dl._peer_bytes.items():
        key = f"{ip[0]}{'/web' if kind else ''}"
        out[key] = out.get(key, 0) + n
    return out


def stop_seeder(pid: int, status_file: Path) -> dict[str, Any]:
    """SIGTERM the seeding process (our child), reap it within a bound, return its last status."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + SEEDER_STOP_WAIT
    while time.monotonic() < end:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    try:
        return dict(json.loads(status_file.read_text()))
    except (OSError, ValueError):
        return {}


def run_http(args: argparse.Namespace, result: dict[str, Any]) -> None:
    url = f"{args.server.split(',')[0]}/images/{args.image}/{args.version}/{args.file}"
    dest = Path(args.dir) / args.file
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    trace: list[tuple[float, int]] = []
    got, last = 0, 0.0
    with requests.get(url, stream=True, timeout=30) as response, dest.open("wb") as out:
        response.raise_for_status()
        for chunk in response.iter_content(256 * 1024):
            if not got:
                result["t_first"] = time.monotonic()
            out.write(chunk)
            digest.update(chunk)
            got += len(chunk)
            now = time.monotonic()
            if now - last >= TRACE_EVERY:
                last = now
                trace.append((round(now - result["t_go"], 3), got))
            if now - result["t_go"] > args.deadline:
                raise TimeoutError(f"HTTP download not done after {args.deadline} s")
    result["t_done"] = time.monotonic()
    trace.append((round(result["t_done"] - result["t_go"], 3), got))
    if got != args.size or digest.hexdigest() != args.sha256:
        raise DownloadError(f"HTTP download: {got} bytes, sha256 {digest.hexdigest()}")
    result.update(trace=trace, from_http=got)
    write_json(Path(args.result), result)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("swarm", "http"), default="swarm")
    p.add_argument("--server", required=True, help="URL[,URL…]: the servers, tried in turn")
    p.add_argument("--image", required=True)
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--file", default="image.squashfs")
    p.add_argument("--sha256", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--listen", default="0.0.0.0:6881")
    p.add_argument("--dir", required=True)
    p.add_argument("--go", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--settings", default="", help="JSON: libtorrent setting overrides (experiments)")
    p.add_argument("--node", default="", help="the node's name in the inventory (its plan)")
    p.add_argument("--mac", default="", help="the node's MAC: --report first gets its iPXE script's token")
    p.add_argument("--index", type=int, default=0, help="0-based node index (for --stripes)")
    p.add_argument("--stripes", type=int, default=0, help="0: the plan's hint; K: first K own; -1: none")
    p.add_argument("--trace-blocks", action="store_true")
    p.add_argument("--web-seed", choices=("fallback", "always", "never"), default="fallback")
    p.add_argument(
        "--seeding", choices=("lifecycle", "forever", "none"), default="lifecycle",
        help="after the download: the product's lifecycle (Lifecycle), seed until the run ends, or not",
    )
    p.add_argument("--switch-root-after", type=float, default=2.0,
                   help="lifecycle: seconds the initramfs seeder runs after the sha256 (to switch_root)")
    p.add_argument("--service-gap", type=float, default=5.0,
                   help="lifecycle: seconds from switch_root to the seeding service (systemd)")
    p.add_argument("--report", action="store_true", help="send the agent's events (stages, progress, booted)")
    p.add_argument("--report-every", type=float, default=1.0, help="seconds between progress events")
    p.add_argument("--deadline", type=float, default=600.0)
    p.add_argument("--stall", type=float, default=120.0)
    p.add_argument("--ready-wait", type=float, default=300.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ready = Path(args.result).with_suffix(".ready")
    ready.write_text(f"{os.getpid()}\n")
    t_go = wait_go(Path(args.go), args.ready_wait)
    result: dict[str, Any] = {"mode": args.mode, "t_go": t_go, "t_start": time.monotonic()}
    try:
        if args.mode == "swarm":
            run_swarm(args, result)
        else:
            run_http(args, result)
    except (DownloadError, OSError, TimeoutError, ValueError, RuntimeError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        write_json(Path(args.result), result)
        return 1
    result["cpu"] = cpu_seconds()
    write_json(Path(args.result).with_suffix(".final"), result)
    return 0


def cpu_seconds() -> dict[str, float]:
    """This process's CPU time and that of its reaped children (the seeding process)."""
    t = os.times()
    return {"self": round(t.user + t.system, 3), "children": round(t.children_user + t.children_system, 3)}


if __name__ == "__main__":
    sys.exit(main())
