"""Download the image by BitTorrent: the only BitTorrent client code of swarmboot. The initramfs
and the swarm benchmark (bench/) run exactly this.

    dl = ImageDownload(torrent_bytes, dest_dir, sha256=…, size=…, listen_interfaces="0.0.0.0:6881")
    dl.start(); status = dl.status(); path = dl.wait(on_progress=…, deadline=…, stall=…)
    dl.close()   # stops seeding

- The torrent as the server serves it carries the tracker (`announce`) and the server's HTTP URL
  as a BEP 19 web seed (`url-list`); the session uses `lan_tuning.session_settings("node", …)`.
- libtorrent verifies every piece; this module also hashes the whole file with sha256 *while it
  arrives* (in piece order, reading back pieces libtorrent has verified and written) and compares
  with the plan. A mismatch is re-checked by hashing the whole file from disk before it is
  rejected; a partial file is never returned.
- A complete file already at the destination is reused when its sha256 matches (no transfer), and
  is then seeded without libtorrent re-checking it (seed mode).
- `wait()` has a stall timeout (nothing new arrived) and an overall deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bootagent import lan_tuning
from bootagent.errors import DownloadError, DownloadStalled, DownloadTimeout, ImageHashMismatch

HASH_CHUNK = 4 * 1024 * 1024
HASH_BUDGET = 64 * 1024 * 1024  # bytes hashed per wait() iteration, so alerts keep flowing
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: Path, chunk: int = HASH_CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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
    ) -> None:
        import libtorrent as lt

        self.lt = lt
        try:
            self.info = lt.torrent_info(lt.bdecode(torrent))
        except RuntimeError as exc:
            raise DownloadError(f"the image's .torrent is not valid: {exc}") from exc
        if self.info.num_files() != 1:
            raise DownloadError(f"the image's .torrent has {self.info.num_files()} files, expected 1")
        self.dest_dir = Path(dest_dir)
        self.path = self.dest_dir / self.info.name()  # single file: its name is its path
        self.sha256 = sha256.lower()
        self.size = self.info.total_size()
        if size is not None and size != self.size:
            raise DownloadError(
                f"the .torrent describes {self.size} bytes but the plan says the image has {size}",
                hint="the torrent and the plan come from different versions: re-pack the image",
            )
        self.listen_interfaces = listen_interfaces
        self.overrides = settings or {}
        self.assume_verified = assume_verified
        self.session: Any = None
        self.handle: Any = None
        self.verified = False
        self.reused = False
        self.rehashed = False  # the streaming sha256 did not match and the file was hashed again
        self.hash_failures = 0
        self.errors: list[str] = []
        self._digest = hashlib.sha256()
        self._next_piece = 0
        self._fd: int | None = None
        self._peer_bytes: dict[tuple[Any, int], int] = {}
        self._peer_sampled = 0.0
        self._started = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Create the session and add the torrent; reuse a complete, matching file if present."""
        lt = self.lt
        self._started = time.monotonic()
        self.dest_dir.mkdir(parents=True, exist_ok=True)
        seed_mode = self.assume_verified
        complete = self.path.is_file() and self.path.stat().st_size == self.size
        if not seed_mode and complete and sha256_file(self.path) == self.sha256:
            seed_mode = self.reused = True
        if seed_mode:
            self.verified = True
            self._next_piece = self.info.num_pieces()
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
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
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
        st = self.handle.status()
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
            hashed=min(self._next_piece * self.info.piece_length(), self.size),
            elapsed=time.monotonic() - self._started,
        )

    def _sample_peers(self) -> None:
        now = time.monotonic()
        if now - self._peer_sampled < PEER_SAMPLE_SECONDS:
            return
        self._peer_sampled = now
        for peer in self.handle.get_peer_info():
            key = (tuple(peer.ip), int(peer.connection_type))
            self._peer_bytes[key] = max(self._peer_bytes.get(key, 0), int(peer.total_download))

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
            self.session.wait_for_alert(int(poll * 1000))
            self._handle_alerts()
            now = time.monotonic()
            status = self.status()
            if status.done != last_done or status.state.startswith("checking"):
                last_done, last_change = status.done, now
            self._hash_ahead(HASH_BUDGET)
            if on_progress is not None:
                on_progress(status)
            if self.verified or status.state in ("seeding", "finished"):
                self._sample_peers()
                return self._finish()
            if now - last_change > stall:
                raise DownloadStalled(
                    f"nothing arrived for {stall:.0f} s at {status.progress:.1%} "
                    f"({status.peers} peers, {status.seeds} seeds){self._error_text()}",
                    hint="check that the server's seeder and tracker run and that the node reaches "
                    "the server's HTTP port (the web seed)",
                )
            if now - start > deadline:
                raise DownloadTimeout(
                    f"the download did not finish within {deadline:.0f} s ({status.progress:.1%} done, "
                    f"{status.download_rate >> 20} MiB/s){self._error_text()}",
                    hint="the network is slower than the plan's torrent.max_download_seconds allows",
                )

    def _error_text(self) -> str:
        return ("; " + "; ".join(self.errors[-3:])) if self.errors else ""

    def _handle_alerts(self) -> None:
        lt = self.lt
        for alert in self.session.pop_alerts():
            if isinstance(alert, lt.hash_failed_alert):
                self.hash_failures += 1
            elif isinstance(alert, lt.file_error_alert | lt.torrent_error_alert):
                raise DownloadError(
                    f"cannot write the image to {self.path}: {alert.message()}",
                    hint="the tmpfs holding the image may be full: give the node more RAM",
                )
            elif isinstance(alert, lt.tracker_error_alert | lt.peer_error_alert):
                text = alert.message()
                if text not in self.errors:
                    self.errors.append(text)
                    del self.errors[:-10]

    # -- verification ----------------------------------------------------------------------------
    def _hash_ahead(self, budget: int) -> int:
        """Feed the sha256 with the pieces that are verified and on disk, in order; return how many.

        `have_piece` can be true before libtorrent's disk thread has written the piece (a hole
        in the sparse file reads as zeros), so a piece read back is used only when its SHA-1 is
        the torrent's: then these are the final bytes.
        """
        pieces = self.info.num_pieces()
        piece_length = self.info.piece_length()
        done = 0
        while budget > 0 and self._next_piece < pieces and self.handle.have_piece(self._next_piece):
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY)
            length = self.info.piece_size(self._next_piece)
            data = os.pread(self._fd, length, self._next_piece * piece_length)
            if hashlib.sha1(data).digest() != self.info.hash_for_piece(self._next_piece):
                break  # not on disk yet: try again at the next round
            self._digest.update(data)
            self._next_piece += 1
            budget -= length
            done += 1
        return done

    def _finish(self) -> Path:
        if self.verified:
            return self.path
        with contextlib.suppress(RuntimeError, AttributeError):
            self.handle.flush_cache()
        pieces = self.info.num_pieces()
        settle = time.monotonic() + FLUSH_WAIT
        while self._next_piece < pieces and time.monotonic() < settle:
            if not self._hash_ahead(self.size + 1):
                time.sleep(0.05)  # the last writes are still on their way to the file
        streamed = self._digest.hexdigest() if self._next_piece == pieces else ""
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
