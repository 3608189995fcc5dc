"""Keep seeding after the agent returns: a small process of its own (`swarmboot-agent seed`).

Two lives, one program (docs/swarm.md, "Seeding after boot"):
- in the initramfs, started once the image is verified; it survives the agent and is stopped by
  the dracut cleanup hook just before switch_root (it reads `seeder.pid`), writing its last
  counters to `seeder.json`, which the booted report carries;
- in the booted system, started by `swarmboot-seed.service` (bootagent/seed_handover.py) from the
  agent's bundle carried in /run, with the handover file's settings: it seeds the same file until
  the tracker has had no incomplete peer (and no peer is downloading from it) for `idle_seconds`,
  or for at most `max_seconds`, with an optional upload cap; it reports `seed start` and
  `seed done` (what it sent, to whom, why it stopped) to the server, and writes `seed-status.json`.
Both seed in seed mode (no re-check: the agent verified the file's sha256).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ground.run import spawn

MAX_SECONDS = 4 * 3600  # a seeder nobody stopped ends by itself
# The initramfs's seeder runs at the booted service's CPU priority (Nice=19): on a node with one
# CPU (the lab's TCG guests) its start-up (~2.5 s there) otherwise took CPU from the agent's root,
# files and handover stages and from dracut's switch_root, which it only covers for ~1.5 s.
SEEDER_NICE = 19
STATUS_EVERY = 2.0
LOOK_EVERY = 0.5
PROGRESS_EVERY = 30.0  # a `seed progress` event at most this often, when it sent more or its need changed
ALERT_QUEUE = 1 << 16  # block_uploaded_alerts between two looks: ~4000 a second at 1 GbE
REANNOUNCE_EVERY = 15.0  # the booted seeder asks the tracker this often how many still download
SIGNALLED = threading.Event()  # SIGTERM/SIGINT came (the booted service then stops serving boot files too)


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
    with contextlib.suppress(OSError):  # the agent's last stages and switch_root come first
        os.setpriority(os.PRIO_PROCESS, proc.proc.pid, SEEDER_NICE)
    pid = proc.detach()  # it outlives the agent: the dracut cleanup hook stops it (seeder.pid)
    (run_dir / "seeder.pid").write_text(f"{pid}\n")
    return pid


def signal_seeder(run_dir: Path) -> bool:
    """Ask the initramfs's seeder to stop (SIGTERM), without waiting: it winds down (its last
    counters to seeder.json) while the agent hands over, instead of in the dracut cleanup hook
    just before switch_root, which still waits for it and kills what is left. Only once it seeds
    (its first status written: its handler is set), else it would die without its counters; then
    the hook stops it as before. True if signalled."""
    if not (run_dir / "seeder.json").is_file():
        return False
    try:
        pid = int((run_dir / "seeder.pid").read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        return False
    return True


def write_status(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(path)


@dataclass
class StopRule:
    """When the seeding ends (pure logic): after `max_seconds`, or once nobody needed it for
    `idle_seconds` (0: never for that). Needed: the tracker counts an incomplete peer, or a peer
    connected to this seeder downloads from it (interested, not a seed). An unknown count (-1: no
    tracker answer) is not a need: with the server gone, the seeder stops once its own peers are
    done."""

    max_seconds: float = MAX_SECONDS
    idle_seconds: float = 0.0
    started: float = 0.0
    needed_at: float = 0.0
    needed_by: str = ""  # what kept it seeding last ("the tracker: 2 incomplete", "a peer downloading")
    changes: list[tuple[float, int, int]] = field(default_factory=list)  # (seconds, incomplete, downloading)

    def __post_init__(self) -> None:
        self.needed_at = self.started

    def observe(self, now: float, incomplete: int, downloading_peers: int) -> str | None:
        """The reason to stop now, else None."""
        if not self.changes or self.changes[-1][1:] != (incomplete, downloading_peers):
            change = (round(now - self.started, 1), incomplete, downloading_peers)
            self.changes = [*self.changes[-15:], change]
        if incomplete > 0 or downloading_peers > 0:
            self.needed_at = now
            self.needed_by = (f"the tracker: {incomplete} incomplete" if incomplete > 0
                              else f"{downloading_peers} peer(s) downloading from it")
        if now - self.started >= self.max_seconds:
            return f"seeded for the longest time allowed ({self.max_seconds:.0f} s)"
        if self.idle_seconds > 0 and now - self.needed_at >= self.idle_seconds:
            return f"no node needed the image for {self.idle_seconds:.0f} s"
        return None


BLOCK = 16 * 1024  # libtorrent's block: what one block_uploaded_alert stands for


@dataclass
class PeerCounts:
    """Bytes sent per peer address, from libtorrent's block_uploaded_alert (one per 16 KiB block
    sent; the last block of the last piece is shorter): exact even for a connection that comes and
    goes between two looks at the peer list. `dropped`: alerts libtorrent could not queue."""

    piece_size: int
    total_size: int
    sent: dict[str, int] = field(default_factory=dict)
    dropped: int = 0

    def block(self, address: str, piece: int, block: int) -> None:
        start = piece * self.piece_size + block * BLOCK
        length = max(0, min(BLOCK, self.piece_size - block * BLOCK, self.total_size - start))
        self.sent[address] = self.sent.get(address, 0) + length

    def by_address(self) -> dict[str, int]:
        return dict(sorted(self.sent.items(), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class Handover:
    """What the booted system's seeding service is told (seed-handover.json, written by the agent)."""

    torrent: str
    dir: str
    sha256: str
    listen: str
    status: str
    max_seconds: float
    idle_seconds: float
    rate_limit: int = 0  # bytes/s, 0: none
    events_urls: tuple[str, ...] = ()
    token: str = ""
    image: str = ""
    version: int = 0
    remove_after: tuple[str, ...] = ()  # a tmpfs root's archive: RAM freed when seeding ends
    node: str = ""
    servers: tuple[str, ...] = ()  # the server's URLs (the boot files' source, bootagent/boot_files.py)
    boot_files_dir: str = ""  # "": serve no boot files
    boot_files_port: int = 0
    file: str = ""  # the image file; kept after the seeding (not in remove_after): it may seed again

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def read(cls, path: Path) -> Handover:
        data = json.loads(path.read_text())
        for key in ("events_urls", "remove_after", "servers"):
            data[key] = tuple(data.get(key) or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _downloading(peers: list[Any], seed_flag: int, interested_flag: int) -> int:
    """Connected peers taking from this seeder: interested in it and not seeds (a connection still in
    its handshake, or another seed's, is neither)."""
    return sum(1 for p in peers if not int(p.flags) & seed_flag and int(p.flags) & interested_flag)


def seed_main(
    torrent: Path,
    dest_dir: Path,
    sha256: str,
    listen: str,
    status: Path,
    *,
    max_seconds: float = MAX_SECONDS,
    idle_seconds: float = 0.0,
    rate_limit: int = 0,
    on_event: Callable[[str, str, dict[str, Any]], None] | None = None,
    start_message: str = "",
    round_number: int = 1,
) -> int:
    """Seed until SIGTERM/SIGINT or the stop rule; keep `status` up to date."""
    from bootagent import lan_tuning
    from bootagent.download import ImageDownload

    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True
        SIGNALLED.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    rule = StopRule(max_seconds=max_seconds, idle_seconds=idle_seconds, started=started)
    reason = "stopped by a signal"
    settings = {
        "upload_rate_limit": max(0, int(rate_limit)),
        "alert_queue_size": ALERT_QUEUE,
        "alert_mask": lan_tuning.alert_mask((*lan_tuning.ALERTS, "upload")),
    }
    with ImageDownload(
        torrent.read_bytes(), dest_dir, sha256=sha256, listen_interfaces=listen, assume_verified=True,
        settings=settings,
    ) as dl:
        lt = dl.lt
        served = PeerCounts(dl.info.piece_length(), dl.info.total_size())
        dl.start()
        if rate_limit > 0:  # the other nodes are on the LAN: libtorrent's local class, unlimited by default
            local = lt.session.local_peer_class_id
            limited = {**dl.session.get_peer_class(local), "upload_limit": int(rate_limit)}
            dl.session.set_peer_class(local, limited)
        seed_flag, interested_flag = int(lt.peer_info.seed), int(lt.peer_info.remote_interested)
        reannounce_flags = getattr(getattr(lt, "reannounce_flags_t", None), "ignore_min_interval", 0)
        announced = started
        incomplete = -1
        written = 0.0
        reported, last_news = started, (0, "")

        def snapshot(stopped: bool) -> dict[str, Any]:
            st = dl.status()
            return {
                "uploaded": st.uploaded,
                "upload_rate": 0 if stopped else st.upload_rate,
                "peers": st.peers,
                "seconds": round(time.monotonic() - started, 1),
                "listen_port": dl.listen_port,
                "incomplete": incomplete,
                "served": served.by_address(),
                **({"alerts_dropped": served.dropped} if served.dropped else {}),
                # why it still seeds (or did until it stopped): the last need, how long ago
                "needed": {"by": rule.needed_by, "ago": round(time.monotonic() - rule.needed_at, 1),
                           "changes": rule.changes},
                "stopped": stopped,
                "round": round_number,  # 2, 3…: seeding again on demand (`seed_on_demand`)
                **({"reason": reason} if stopped else {}),
            }

        if on_event is not None:
            on_event("start", start_message or f"seeding {dl.path.name} to the nodes still booting",
                     snapshot(False))
        while not stop:
            time.sleep(LOOK_EVERY)  # the alerts queue meanwhile (a batch per look, not a wakeup per block)
            for alert in dl.session.pop_alerts():
                if isinstance(alert, lt.block_uploaded_alert):
                    served.block(str(alert.ip[0]), int(alert.piece_index), int(alert.block_index))
                elif isinstance(alert, lt.alerts_dropped_alert):
                    served.dropped += 1
            now = time.monotonic()
            peers = dl.handle.get_peer_info()
            incomplete = int(dl.handle.status().num_incomplete)
            if idle_seconds > 0 and now - announced >= REANNOUNCE_EVERY:
                announced = now
                dl.handle.force_reannounce(0, -1, reannounce_flags)
            why = rule.observe(now, incomplete, _downloading(peers, seed_flag, interested_flag))
            if why is not None:
                reason = why
                break
            if now - written >= STATUS_EVERY:
                written = now
                current = snapshot(False)
                write_status(status, current)
                news = (current["uploaded"], rule.needed_by)
                if on_event is not None and now - reported >= PROGRESS_EVERY and news != last_news:
                    reported, last_news = now, news
                    on_event("progress", f"seeded {current['uploaded'] >> 20} MiB so far", current)
        last = snapshot(True)
        write_status(status, last)
    if on_event is not None:
        sent = last["uploaded"] >> 20
        on_event(
            "done",
            f"seeded {sent} MiB to {len(last['served'])} peer(s) in {last['seconds']:.0f} s: {reason}",
            last,
        )
    return 0


def seed_after_boot(handover_file: Path) -> int:
    """The booted system's seeding service (swarmboot-seed.service): the handover's settings, its
    events to the server, and the archive it frees at the end. It also serves the boot files
    (bootagent/boot_files.py) from the start until it is stopped, long after the image's seeding."""
    from bootagent import boot_files
    from bootagent.context import Console, Paths
    from bootagent.report import Reporter

    handover = Handover.read(handover_file)
    status = Path(handover.status)
    reporter = Reporter(Console(Paths(run_dir=status.parent)), heartbeat_seconds=3600.0)
    reporter.urls = list(handover.events_urls)
    reporter.token = handover.token
    reporter.set_image(handover.image, handover.version)
    reporter.start()

    def on_event(status_word: str, message: str, details: dict[str, Any]) -> None:
        reporter.console.info(message)
        reporter.event("seed", status_word, message=message, details={"seeding": details})

    def on_boot_files(status_word: str, message: str, details: dict[str, Any]) -> None:
        reporter.console.info(message)
        reporter.event("seed", status_word, message=message, details={"boot_files": details})

    stopping = threading.Event()
    serving = None
    if handover.boot_files_dir and handover.servers and handover.node:
        serving = threading.Thread(
            target=boot_files.serve_after_boot, name="boot-files", daemon=True,
            args=(handover.servers, handover.node, Path(handover.boot_files_dir), handover.boot_files_port,
                  stopping, on_boot_files, reporter.console.info),
        )
        serving.start()
    try:
        def seed(start_message: str = "", round_number: int = 1) -> int:
            return seed_main(
                Path(handover.torrent), Path(handover.dir), handover.sha256, handover.listen, status,
                max_seconds=handover.max_seconds, idle_seconds=handover.idle_seconds,
                rate_limit=handover.rate_limit, on_event=on_event, start_message=start_message,
                round_number=round_number,
            )

        code = seed()
        for name in handover.remove_after:  # the image's seeding is over: a tmpfs root's archive goes
            Path(name).unlink(missing_ok=True)
        if not SIGNALLED.is_set() and may_seed_again(handover):
            seed_on_demand(handover, seed, reporter.console.info)
        if serving is not None:  # the boot files: until the system stops the service (SIGTERM)
            while serving.is_alive() and not SIGNALLED.wait(5.0):
                pass
        return code
    finally:
        stopping.set()
        if serving is not None:
            serving.join(timeout=10.0)
        reporter.close(timeout=15.0)
        for name in handover.remove_after:
            Path(name).unlink(missing_ok=True)


AGAIN_POLL_LONGEST = 300.0  # the longest wait between two asks (the server unreachable: it doubles to this)


def may_seed_again(handover: Handover) -> bool:
    """The service can seed again later: it still holds the image file, and knows a server."""
    return bool(handover.servers and handover.file and handover.image and not handover.remove_after
                and Path(handover.file).is_file())


def seed_on_demand(handover: Handover, seed: Callable[[str, int], int], say: Callable[[str], None]) -> None:
    """After the seeding stopped by its rule: ask the server every `poll` s whether nodes are
    downloading this version with too few seeds (GET /api/v1/seed-wanted, server/reseed.py) and
    seed again while they do, by the same rule; until the service is stopped, the server says it
    never will ask (its seed_on_demand is off, the version was deleted) or the file is gone."""
    from bootagent.http_client import Client

    params = {"node": handover.node, "image": handover.image, "version": str(handover.version)}
    name = Path(handover.file).name
    poll, round_number = 10.0, 1
    say(f"seeding {name} again when nodes boot this version: asking the server")
    with Client() as session:
        while not SIGNALLED.wait(poll * random.uniform(0.8, 1.2)):  # spread: not every node at once
            if not Path(handover.file).is_file():
                say(f"not seeding again: {handover.file} is gone")
                return
            answer = _ask_seed_wanted(session, handover.servers, params)
            if answer is None:  # no server answered: ask again later, less often
                poll = min(AGAIN_POLL_LONGEST, poll * 2)
                continue
            poll = float(answer.get("poll") or 0)
            if poll <= 0:
                say(f"not seeding again: {answer.get('why') or 'the server says no node will need it'}")
                return
            if answer.get("seed") is True:
                round_number += 1
                seed(f"seeding {name} again (round {round_number}): {answer.get('why', '')}", round_number)
                if SIGNALLED.is_set():
                    return


def _ask_seed_wanted(session: Any, servers: tuple[str, ...], params: dict[str, str]) -> dict[str, Any] | None:
    """The first server's answer; {"poll": 0} when one says the version is gone (404)."""
    from bootagent.http_client import HttpError

    for server in servers:
        try:
            response = session.get(f"{server}/api/v1/seed-wanted", params=params, timeout=10.0)
        except HttpError:
            continue
        if response.status_code == 404:
            return {"poll": 0, "why": f"{server} no longer has {params['image']}/{params['version']}"}
        if response.status_code == 200:
            with contextlib.suppress(ValueError):
                answer = response.json()
                if isinstance(answer, dict):
                    return answer
    return None
