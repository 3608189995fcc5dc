"""Download the image by BitTorrent: the only BitTorrent client code of swarmboot. The initramfs
and the swarm benchmark (bench/) run exactly this.

    dl = ImageDownload(torrent_bytes, dest_dir, sha256=…, size=…, listen_interfaces="0.0.0.0:6881")
    dl.start(); status = dl.status(); path = dl.wait(on_progress=…, deadline=…, stall=…)
    dl.close()   # stops seeding

ImageDownload runs the libtorrent session; the decisions are pure parts, each unit-tested:
- `torrent_meta.py`: the torrent as the server serves it (its tracker, the server's HTTP URL as
  a BEP 19 web seed, the single file);
- `stripes.py`: the stripe hint: which pieces this node fetches from the server first, and when
  it keeps off the server's seeder (docs/swarm.md);
- `piece_fetch.py`: an owner's pieces, handed out one by one by the server over HTTP;
- `web_seed.py`: the web seed only as a fallback;
- `recovery.py`: the server's seeder connected to again after it went away (a restart, a filter
  lifted), and what the node last heard from tracker, seeder and web seed (a stall's message);
- `hashing.py`: the whole file's sha256 while it arrives. A mismatch is re-checked by hashing the
  whole file from disk before it is rejected; a partial file is never returned.
The session uses `lan_tuning.session_settings("node", …)`. A complete file already at the
destination is reused when its sha256 matches (no transfer), and is then seeded without libtorrent
re-checking it (seed mode). `wait()` has a stall timeout (nothing new arrived) and a deadline.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bootagent import lan_tuning
from bootagent.errors import DownloadError, DownloadStalled, DownloadTimeout, ImageHashMismatch
from bootagent.hashing import PieceReader, StreamingHash, sha256_file
from bootagent.piece_fetch import PieceFetch, dispenser_url, workers_for
from bootagent.recovery import Reachability, RecheckWatch, SeederWatch
from bootagent.stripes import TOP_PRIORITY, StripePolicy
from bootagent.torrent_meta import parse_torrent
from bootagent.web_seed import WebSeedFallback, WebSeedPolicy
from ground.contract.pieces import encode_seen

if TYPE_CHECKING:
    from ground.contract.plan import BootPlan

# Seconds of hashing per wait() iteration (it was 64 MiB: seconds under TCG), so alerts, the
# watches and the progress line keep flowing; while pieces wait to be hashed the loop does not
# sleep. (The 6-11 s first iteration seen under TCG was the per-piece have_piece calls: `_has`.)
HASH_SECONDS = 0.2
PEER_SAMPLE_SECONDS = 0.2
FLUSH_WAIT = 60.0  # seconds for the last pieces to reach the file after completion


@dataclass(frozen=True)
class DownloadStatus:
    state: str  # checking, downloading, seeding, …
    progress: float  # 0.0 - 1.0
    done: int  # bytes verified and written
    total: int
    download_rate: int  # bytes/s, payload
    upload_rate: int
    peers: int
    seeds: int
    uploaded: int  # payload bytes sent to other nodes
    from_peers: int  # payload bytes received from BitTorrent peers
    from_web_seeds: int  # payload bytes from the HTTP web seed (sampled: a lower bound)
    hashed: int  # bytes of the whole-file sha256 computed so far
    elapsed: float
    from_server_http: int = 0  # payload bytes of the pieces the server handed out to this owner

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ImageDownload:
    """One image's download and, after it, its seeding, in a libtorrent session of its own."""

    def __init__(
        self,
        torrent: bytes,
        dest_dir: Path,
        *,
        sha256: str,
        size: int | None = None,
        listen_interfaces: str = "0.0.0.0:6881",
        settings: dict[str, Any] | None = None,
        assume_verified: bool = False,
        web_seed: WebSeedPolicy = "fallback",
        stripe: tuple[int, int] | None = None,
        seeder_port: int = 0,
        dispensed: bool = True,
    ) -> None:
        import libtorrent as lt

        self.lt = lt
        self.meta = parse_torrent(lt, torrent, keep_web_seeds=web_seed == "always")
        if size is not None and size != self.meta.size:
            raise DownloadError(
                f"the .torrent describes {self.meta.size} bytes but the plan says the image has {size}",
                hint="the torrent and the plan come from different versions: re-pack the image",
            )
        self.info = self.meta.info
        self.dest_dir = Path(dest_dir)
        self.path = self.dest_dir / self.meta.name  # single file: its name is its path
        self.sha256 = sha256.lower()
        self.size = self.meta.size
        self.listen_interfaces = listen_interfaces
        self.overrides = settings or {}
        self.assume_verified = assume_verified
        self.stripes = StripePolicy(stripe, self.meta.num_pieces)
        self._dispenser = dispenser_url(self.meta.web_seeds[0]) if dispensed and self.meta.web_seeds else ""
        self.stripes.dispense = bool(self._dispenser)
        self.piece_fetch: PieceFetch | None = None
        self._seen_bits: list[bool] = []  # what this node or its peers have (the hand-out's X-Seen)
        self._checking = True  # libtorrent checks the file (until the first status says otherwise)
        self._held_pieces: list[tuple[int, bytes]] = []  # handed out while it checked
        self._held_lock = threading.Lock()
        self._lacking = False  # some missing piece has no peer (asked for again once handed out)
        self.web_seeds = WebSeedFallback(web_seed, self.meta.web_seeds)
        self.hash = StreamingHash(
            self.meta.num_pieces, self.meta.piece_length, self.meta.size, self.meta.piece_sha1
        )
        self.session: Any = None
        self.handle: Any = None
        self.verified = False
        self.reused = False
        self.rehashed = False  # the streaming sha256 did not match and the file was hashed again
        self.hash_failures = 0
        self.banned: set[str] = set()  # peers libtorrent banned (bad pieces), by address
        self.errors: list[str] = []
        self.server_ip = ""
        self.seeder_port = seeder_port
        self.seeder = SeederWatch("", 0.0)
        self.reach = Reachability(self.meta.tracker_url, "", self.meta.web_seeds)
        self._needed = False  # some missing piece has no source among the connected peers
        self._available_missing = False  # some missing piece has a source among the connected peers
        self.recheck = RecheckWatch()
        self._read = PieceReader(self.path)
        self._peer_bytes: dict[tuple[Any, int], int] = {}
        self._peer_sampled = 0.0
        self._started = 0.0
        self._hash_behind = False  # pieces are waiting to be hashed: wait() does not sleep
        self._have: Any = []  # the piece bitfield of the last status()

    # what the benchmark and the agent's report read
    @property
    def stripe(self) -> tuple[int, int] | None:
        return self.stripes.stripe

    @property
    def server_filtered(self) -> bool:
        return self.stripes.filtered

    @property
    def server_unfiltered(self) -> bool:
        return self.stripes.unfiltered

    @property
    def web_seed_added(self) -> bool:
        return self.web_seeds.added

    @property
    def tracker_url(self) -> str:
        return self.meta.tracker_url

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Create the session and add the torrent; reuse a complete, matching file if present."""
        lt = self.lt
        self._started = time.monotonic()
        self.server_ip = host_address(self.tracker_url)
        self.seeder = SeederWatch(self.server_ip, self._started)
        if self.server_ip and self.seeder_port:  # the plan says where the seeder listens
            self.seeder.endpoints.add((self.server_ip, self.seeder_port))
        self.reach.server_ip = self.server_ip
        self.dest_dir.mkdir(parents=True, exist_ok=True)
        seed_mode = self.assume_verified
        complete = self.path.is_file() and self.path.stat().st_size == self.size
        if not seed_mode and complete and sha256_file(self.path) == self.sha256:
            seed_mode = self.reused = True
        if seed_mode:
            self.verified = True
            self.hash.skip_all()
            self.stripes.dispense = False  # nothing to fetch
        else:
            self._check_space()
        self.session = lt.session(
            lan_tuning.session_settings("node", self.listen_interfaces, **self.overrides)
        )
        params = lt.add_torrent_params()
        params.ti = self.info
        params.save_path = str(self.dest_dir)
        flags = params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
        if seed_mode:
            flags |= lt.torrent_flags.seed_mode
        params.flags = flags
        self.handle = self.session.add_torrent(params)
        if not seed_mode:
            priorities = self.stripes.priorities()
            if priorities is not None:
                self.handle.prioritize_pieces(priorities)
            if self.stripes.start():
                self._filter_server(True)
            if self.stripes.dispense:
                self._start_piece_fetch()

    def _start_piece_fetch(self) -> None:
        """An owner's pieces as the server hands them out (piece_fetch.py)."""
        handle = self.handle

        def add_piece(k: int, data: bytes) -> None:
            # libtorrent drops a piece added while it checks the file (its start, a recheck):
            # those wait for the loop to add them once it is done (`_add_held_pieces`)
            with self._held_lock:
                if self._checking:
                    self._held_pieces.append((k, data))
                    return
            with contextlib.suppress(RuntimeError):  # the torrent was removed meanwhile (close)
                handle.add_piece(k, data, 0)  # no flags: a piece already there stays (2.0 and 2.1)

        assert self.stripes.stripe is not None
        self.piece_fetch = PieceFetch(
            self._dispenser, self.meta.piece_length, self.meta.size, add_piece,
            workers=workers_for(self.stripes.stripe[1]),
        )
        self.piece_fetch.start()  # X-Seen empty until the loop has seen the peers: nothing seen

    def _hand_out_text(self, now: float) -> str:
        fetch = self.piece_fetch
        return "" if fetch is None else f"hand-out {fetch.url}: {fetch.describe(now)}"

    def _watch_piece_fetch(self, since_progress: float, now: float) -> float:
        """Keep the hand-out's X-Seen current; back to the server's seeder when the hand-out ended
        early. Returns the time without progress that steers the seeder's filter: none while a
        request is out (the server answers, or the request fails and the fetch ends)."""
        fetch = self.piece_fetch
        if fetch is None or not self.stripes.dispense:
            return since_progress
        if self._seen_bits:
            fetch.seen = encode_seen(self._seen_bits)
            fetch.lacking = self._lacking
        if fetch.busy:
            return 0.0
        if fetch.finished:
            self.stripes.dispensed(now)
        elif fetch.held or fetch.failure:
            if fetch.failure:
                text = f"the server's piece hand-out: {fetch.failure}"
                if text not in self.errors:
                    self.errors.append(text)
                    del self.errors[:-10]
            # back to the seeder for this node's fixed stripe, as without the hand-out
            unfilter = self.stripes.dispense_failed(self._has)
            priorities = self.stripes.priorities()
            if priorities is not None:
                self.handle.prioritize_pieces(priorities)
            if unfilter:
                self._filter_server(False)
        return since_progress

    def _add_held_pieces(self, state: str) -> None:
        """Track whether libtorrent checks the file; add the pieces handed out meanwhile."""
        with self._held_lock:
            self._checking = state.startswith("checking")
            if self._checking or not self._held_pieces:
                return
            held, self._held_pieces = self._held_pieces, []
        for k, data in held:
            with contextlib.suppress(RuntimeError):
                self.handle.add_piece(k, data, 0)

    @classmethod
    def for_plan(cls, plan: BootPlan, torrent: bytes, dest_dir: Path, **kwargs: Any) -> ImageDownload:
        """The download a boot plan asks for: its image's sha256 and size, its stripe hint (the
        agent and the swarm benchmark both start here; keyword arguments go to the constructor,
        a `stripe` among them overrides the hint)."""
        hint = plan.torrent
        kwargs.setdefault("stripe", (hint.stripe, hint.stripes) if hint.stripes > 0 else None)
        kwargs.setdefault("seeder_port", hint.seeder_port)
        return cls(torrent, dest_dir, sha256=plan.image.sha256, size=plan.image.size, **kwargs)

    def _filter_server(self, on: bool) -> None:
        """Filter (on) or allow (off) peer connections to the server's seeder (the tracker's host):
        a leaf from the start, an owner once it has its whole stripe (stripes.py decides). Lifted,
        the seeder is connected to again at once: it is gone from libtorrent's peer list."""
        lt = self.lt
        rules = lt.ip_filter()
        address = self.server_ip if on else ""
        if address:
            rules.add_rule(address, address, 1)
        self.session.set_ip_filter(rules)
        if on and not address:
            self.stripes.filtered = False  # nothing to filter: the tracker's host has no address
        if not on:
            self._reconnect_seeder(reannounce=True)

    def _reconnect_seeder(self, reannounce: bool) -> None:
        for endpoint in sorted(self.seeder.endpoints):
            with contextlib.suppress(RuntimeError):
                self.handle.connect_peer(endpoint)
        if reannounce:
            # our tracker says "min interval 60": without this flag libtorrent waits for it
            flags = getattr(getattr(self.lt, "reannounce_flags_t", None), "ignore_min_interval", 0)
            with contextlib.suppress(RuntimeError, TypeError):
                self.handle.force_reannounce(0, flags)

    def _watch_seeder(self, now: float) -> None:
        """Keep the server's seeder connected while this node needs it (recovery.py)."""
        if self.verified:
            return
        peers = self.handle.get_peer_info()
        web = int(self.lt.peer_info.web_seed) | int(self.lt.peer_info.http_seed)
        mine = int(self.lt.peer_info.local_connection)
        seen = [
            (p.ip[0], p.ip[1], bool(int(p.connection_type) & web), bool(int(p.flags) & mine)) for p in peers
        ]
        self.seeder.observe(now, seen)
        # a web seed has every piece: what counts is whether a BitTorrent peer has it (else the web
        # seed, once added, would keep the restarted seeder from being dialled ever again)
        web_peers = sum(1 for _ip, _port, is_web, _out in seen if is_web)
        availability = self.handle.piece_availability()
        have = self._has
        self._needed = not self.stripes.filtered and any(
            a - web_peers <= 0 and not have(k) for k, a in enumerate(availability)
        )
        self._available_missing = any(a - web_peers > 0 and not have(k) for k, a in enumerate(availability))
        if self.stripes.dispense:
            self._seen_bits = [have(k) or a - web_peers > 0 for k, a in enumerate(availability)]
            self._lacking = not all(self._seen_bits)
        was_filtered = self.stripes.filtered
        share = self.stripes.adopt_due(now, have, availability)
        if share:  # a stripe lost its owner: this node fetches its share from the server, passes it on
            for k in share:
                self.handle.piece_priority(k, TOP_PRIORITY)
            if was_filtered:
                self._filter_server(False)
        # dial it whenever this node is not keeping off it: one connection attempt every 2 s is
        # cheap, and waiting until only the server has what is missing made the tail slow
        wanted = not self.stripes.filtered
        reannounce = self.seeder.reannounce_due(now, wanted)
        if self.seeder.reconnect_due(now, wanted) or reannounce:
            self._reconnect_seeder(reannounce=reannounce)

    def _check_space(self) -> None:
        stat = os.statvfs(self.dest_dir)
        free = stat.f_bavail * stat.f_frsize
        have = self.path.stat().st_size if self.path.is_file() else 0
        if free + have < self.size:
            raise DownloadError(
                f"not enough room for the image in {self.dest_dir}: it needs {self.size >> 20} MiB, "
                f"{free >> 20} MiB are free",
                hint="give the node more RAM, or use a smaller image",
            )

    @property
    def listen_port(self) -> int:
        return int(self.session.listen_port()) if self.session is not None else 0

    def close(self) -> None:
        """Stop downloading/seeding and drop the session."""
        self._read.close()
        if self.piece_fetch is not None:
            self.piece_fetch.close()
        if self.session is not None:
            if self.handle is not None:
                with contextlib.suppress(RuntimeError):
                    self.session.remove_torrent(self.handle)
            self.handle = None
            self.session = None

    def __enter__(self) -> ImageDownload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- progress ------------------------------------------------------------------------------
    def status(self) -> DownloadStatus:
        st = self.handle.status()  # all flags: its piece bitfield too, read once per loop iteration
        self._have = st.pieces
        self._sample_peers()
        from_web = sum(v for (_, kind), v in self._peer_bytes.items() if kind != 0)
        # Peers come and go (a seed drops seeds): BitTorrent bytes are the torrent's total minus
        # what the web seeds (sampled, long-lived connections) sent.
        from_peers = max(0, int(st.total_payload_download) - from_web)
        total = st.total_wanted or self.size
        return DownloadStatus(
            state=str(st.state).rsplit(".", 1)[-1],
            progress=(st.total_wanted_done / total) if total else 1.0,
            done=int(st.total_wanted_done),
            total=int(total),
            download_rate=int(st.download_payload_rate),
            upload_rate=int(st.upload_payload_rate),
            peers=int(st.num_peers),
            seeds=int(st.num_seeds),
            uploaded=int(st.all_time_upload),
            from_peers=from_peers,
            from_web_seeds=from_web,
            hashed=self.hash.hashed,
            elapsed=time.monotonic() - self._started,
            from_server_http=self.piece_fetch.fetched if self.piece_fetch is not None else 0,
        )

    def _sample_peers(self) -> None:
        now = time.monotonic()
        if now - self._peer_sampled < PEER_SAMPLE_SECONDS:
            return
        self._peer_sampled = now
        web = int(self.lt.peer_info.web_seed) | int(self.lt.peer_info.http_seed)
        for peer in self.handle.get_peer_info():
            # connection_type is a bit field: standard_bittorrent 1, web_seed 2, http_seed 4
            key = (tuple(peer.ip), 1 if int(peer.connection_type) & web else 0)
            self._peer_bytes[key] = max(self._peer_bytes.get(key, 0), int(peer.total_download))

    def _steer_server(self, now: float, since_progress: float) -> None:
        change = self.stripes.steer(self._has, since_progress, now)
        if change is not None:
            self._filter_server(change)

    def _maybe_add_web_seed(self, status: DownloadStatus, since_progress: float) -> None:
        now = time.monotonic()
        seeder_unreachable = not self.stripes.leaf and self.seeder.unreachable(
            now, self._needed, self.reach.tracker_answers
        )
        if self.reach.tracker_down(now):  # the whole server is down: its HTTP too; the seeder is dialled
            since_progress = 0.0
        if self.web_seeds.due(status.peers, status.done, status.elapsed, since_progress, seeder_unreachable):
            self.reach.web_seed_added()
            for url in self.web_seeds.urls:
                self.handle.add_url_seed(url)
            return
        own_done = self.stripes.stripe is not None and not self.stripes.leaf and (
            self.stripes.own_done_at is not None if self.stripes.dispense else not self.stripes.own_left
        )
        if self.web_seeds.retire_due(self.seeder.connected, own_done):
            for url in self.web_seeds.urls:
                self.handle.remove_url_seed(url)

    def wait(
        self,
        on_progress: Callable[[DownloadStatus], None] | None = None,
        deadline: float = 1800.0,
        stall: float = 120.0,
        poll: float = 0.25,
    ) -> Path:
        """Block until the image is complete and its sha256 verified; return its path."""
        start = time.monotonic()
        last_done, last_change = -1, start
        while True:
            self.session.wait_for_alert(0 if self._hash_behind else int(poll * 1000))
            self._handle_alerts()
            now = time.monotonic()
            status = self.status()
            self._add_held_pieces(status.state)
            if status.done != last_done or status.state.startswith("checking"):
                last_done, last_change = status.done, now
            self._watch_seeder(now)
            if self.recheck.due(now, now - last_change, self.hash_failures, self._available_missing):
                with self._held_lock:
                    self._checking = True  # what the hand-out brings meanwhile waits (add_piece drops it)
                with contextlib.suppress(RuntimeError):
                    self.handle.force_recheck()  # a failed piece the picker lost: recovery.py
            self._steer_server(now, self._watch_piece_fetch(now - last_change, now))
            self._maybe_add_web_seed(status, now - last_change)
            self._hash_ahead(HASH_SECONDS)
            if on_progress is not None:
                on_progress(status)
            if self.verified or status.state in ("seeding", "finished"):
                self._sample_peers()
                return self._finish()
            if now - last_change > stall:
                where = self.reach.summary(self.seeder, now, status.from_web_seeds, self._hand_out_text(now))
                raise DownloadStalled(
                    f"nothing arrived for {stall:.0f} s at {status.progress:.1%} "
                    f"({status.peers} peers, {status.seeds} seeds): {where}",
                    hint="check that `swarmboot serve` runs and that this node reaches its tracker, its "
                    "seeder port and its HTTP port (the web seed)",
                )
            if now - start > deadline:
                raise DownloadTimeout(
                    f"the download did not finish within {deadline:.0f} s ({status.progress:.1%} done, "
                    f"{status.download_rate >> 20} MiB/s){self._error_text()}",
                    hint="the network is slower than the plan's torrent.max_download_seconds allows",
                )

    def _from_server(self, alert: Any) -> bool:
        try:
            return bool(self.server_ip) and str(alert.ip[0]) == self.server_ip
        except (AttributeError, IndexError, TypeError):
            return False

    def _error_text(self) -> str:
        return ("; " + "; ".join(self.errors[-3:])) if self.errors else ""

    def _handle_alerts(self) -> None:
        lt = self.lt
        for alert in self.session.pop_alerts():
            if isinstance(alert, lt.hash_failed_alert):
                self.hash_failures += 1
            elif isinstance(alert, lt.peer_ban_alert):
                with contextlib.suppress(AttributeError, IndexError, TypeError):
                    self.banned.add(str(alert.ip[0]))
            elif isinstance(alert, lt.tracker_reply_alert):
                self.reach.tracker_ok(time.monotonic())
            elif isinstance(alert, lt.tracker_announce_alert):
                self.reach.announce_sent(time.monotonic())
            elif isinstance(alert, lt.url_seed_alert):
                self.reach.web_seed_failed(alert.message())
            elif isinstance(alert, lt.file_error_alert | lt.torrent_error_alert):
                raise DownloadError(
                    f"cannot write the image to {self.path}: {alert.message()}",
                    hint="the tmpfs holding the image may be full: give the node more RAM",
                )
            elif isinstance(alert, lt.tracker_error_alert | lt.peer_error_alert):
                text = alert.message()
                if isinstance(alert, lt.tracker_error_alert):
                    self.reach.tracker_failed(text)
                elif self._from_server(alert):
                    self.reach.seeder_failed(text)
                if text not in self.errors:
                    self.errors.append(text)
                    del self.errors[:-10]

    # -- verification ----------------------------------------------------------------------------
    def _has(self, k: int) -> bool:
        """Piece k, as the last status said. Not `handle.have_piece`: each of those is a call into
        libtorrent's network thread, and a loop iteration asked one per piece (three times over);
        under TCG, with that thread busy receiving, the first iteration took 6-11 s."""
        return k < len(self._have) and bool(self._have[k])

    def _hash_ahead(self, seconds: float) -> int:
        """Feed the streaming sha256 with the pieces verified and on disk, for at most about
        `seconds`; how many. `_hash_behind`: it stopped on the time with more pieces there."""
        end, done = time.monotonic() + seconds, 0
        while fed := self.hash.feed(self._has, self._read, self.meta.piece_length):
            done += fed
            if time.monotonic() >= end:
                self._hash_behind = True
                return done
        self._hash_behind = False
        return done

    def _finish(self) -> Path:
        if self.verified:
            return self.path
        with contextlib.suppress(RuntimeError, AttributeError):
            self.handle.flush_cache()
        settle = time.monotonic() + FLUSH_WAIT
        with contextlib.suppress(RuntimeError, AttributeError):
            self._have = self.handle.status(self.lt.status_flags_t.query_pieces).pieces
        while not self.hash.complete and time.monotonic() < settle:
            if not self._hash_ahead(FLUSH_WAIT):
                time.sleep(0.05)  # the last writes are still on their way to the file
        streamed = self.hash.hexdigest()
        if streamed != self.sha256:
            # Decide from the whole file on disk (also what says "wrong image" when it is).
            self.rehashed = streamed == ""
            actual = sha256_file(self.path)
            if actual != self.sha256:
                raise ImageHashMismatch(
                    f"the downloaded image {self.path.name} has sha256 {actual}, the plan says {self.sha256}",
                    hint="the image file and the plan come from different versions, or the server's "
                    "copy is damaged: check `swarmboot image verify` on the server",
                )
        self.verified = True
        return self.path


def host_address(url: str) -> str:
    """The IPv4/IPv6 address of a URL's host ("" when it has none or it does not resolve)."""
    host = urlsplit(url).hostname or ""
    if not host:
        return ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0])
    except (OSError, IndexError):
        return ""
