"""A stripe owner's pieces from the server, handed out one by one over HTTP (ground/contract/pieces.py).

Over the server's seeder, each owner fetched a fixed stripe (piece k when k mod n is its index).
That sent about one copy, not exactly one (once an owner had asked for all of its stripe,
libtorrent's picker filled its queue to the server with other pieces, lost when it went off the
server), and the stripes ended when their owners did: owners that got their .torrent 2-4 s
late ended 2-4 s late, and the last node waited for them. Now the server picks each piece when
an owner asks (server/piece_dispenser.py): every piece leaves it once, to whichever owner is
ready, so the owners end together. Each piece goes to libtorrent (`add_piece`), which checks it
against the torrent's SHA-1 and announces it to the peers.

`workers` requests are in flight at a time (each on its own kept-alive connection), so the
owner's share of the server's link does not idle while the next request travels. The fetch ends
when the server answers 204 (the round is handed out); one worker then asks again every REASK s
while `lacking` (pieces missing that no peer has: the server hands out again what did not reach
the swarm). `held` (204 with X-Held): booted nodes hold the version. A failure (the server down,
an older server: 404) ends it early with `failure` set; for both the caller goes back to the
server's seeder, for its fixed stripe.

    fetch = PieceFetch(url, piece_length, size, add_piece=lambda k, data: ..., workers=2)
    fetch.start(); fetch.seen = encode_seen(bits); fetch.busy, fetch.finished, fetch.failure
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from bootagent.http_client import Client, HttpError
from ground.contract.pieces import HELD_HEADER, PATH, PIECE_HEADER, SEEN_HEADER

# seconds before each new try after a request failed (no answer: a server restarting); then the
# fetch ends. An answer other than 200/204 (404: an older server) ends it at once.
RETRIES = (0.5, 1.0, 2.0, 4.0, 8.0)
TIMEOUT = 10.0  # seconds for an answer (at N = 32 on 4 Mbit/s a piece takes 1-2 s)
REASK = 1.0  # seconds between asks, once the round is handed out, while pieces no peer has are missing


def dispenser_url(web_seed_url: str) -> str:
    """The hand-out URL on the server that serves the image as a web seed
    (http://host:port/images/IMAGE/VERSION/FILE); "" when the URL is not of that form."""
    parts = urlsplit(web_seed_url)
    path = [p for p in parts.path.split("/") if p]
    if len(path) != 4 or path[0] != "images" or not path[2].isdigit():
        return ""
    return urlunsplit((parts.scheme, parts.netloc, PATH.format(image=path[1], version=path[2]), "", ""))


def workers_for(stripes: int) -> int:
    """Requests in flight per owner: one each when 16 or more owners share the server's link
    (more would only slow each piece), more when few do, so their shares do not idle between
    answers."""
    return max(1, min(4, -(-16 // max(1, stripes))))


class Refused(Exception):
    """The server answered, but not with a piece (an older server: 404)."""


class PieceFetch:
    def __init__(self, url: str, piece_length: int, size: int, add_piece: Callable[[int, bytes], None],
                 *, workers: int = 1, client: Callable[[], Client] = Client, timeout: float = TIMEOUT,
                 retries: tuple[float, ...] = RETRIES) -> None:
        self.url, self.piece_length, self.size = url, piece_length, size
        self.pieces = -(-size // piece_length)
        self.add_piece = add_piece
        self.timeout, self.retries = timeout, retries
        self.seen = ""  # the X-Seen value, kept current by the caller
        self.lacking = False  # the caller misses pieces no peer has (kept current by the caller)
        self.held = False  # the server said booted nodes hold the version
        self.fetched = 0  # payload bytes handed to libtorrent
        self.requests = 0
        self.failure = ""  # why the fetch ended early ("" while it works or once it is done)
        self.error = ""  # the last request's failure while the fetch tries again
        self.failing_since: float | None = None  # since when the requests fail (None: they answer)
        self.delivered: list[tuple[float, int]] = []  # (when, piece), for the records
        self._client = client
        self._ended = 0  # workers told that the round is handed out
        self._idle = 0  # workers waiting to ask again (the round handed out)
        self.gave_up_after: float | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"piece-fetch-{i}", daemon=True) for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def busy(self) -> bool:
        """A request is out or being tried again (not: waiting to ask again, ended)."""
        return sum(t.is_alive() for t in self._threads) > self._idle

    @property
    def finished(self) -> bool:
        """The server said the round is handed out (to a worker; the others are done or wait)."""
        return self._ended > 0 and not self.busy and not self.held

    def describe(self, now: float) -> str:
        """What the hand-out is doing, for a stall's message."""
        failing_since = self.failing_since  # read once: a worker may reset it meanwhile
        if self.held:
            return "held: booted nodes seed this version"
        if self.failure:
            after = f" after {self.gave_up_after:.0f} s" if self.gave_up_after is not None else ""
            return f"gave up{after}: {self.failure}"
        if failing_since is not None:
            return f"no answer for {now - failing_since:.0f} s ({self.error})"
        if self.finished:
            return f"done ({self.fetched} bytes handed out)"
        return f"answering ({self.fetched} bytes so far)"

    def close(self) -> None:
        """Stop asking; a request still out ends on its own (daemon threads: the boot goes on)."""
        self._closed.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=0.5)

    def _run(self) -> None:
        try:
            with self._client() as client:
                self._loop(client)
        except Exception as exc:  # a worker's failure is reported, never lost
            self.failure = f"{type(exc).__name__}: {exc}"

    def _loop(self, client: Client) -> None:
        failures = 0
        while not self._closed.is_set():
            try:
                answered = self._ask(client)
            except Refused as exc:
                self.failure = str(exc)
                return
            except (HttpError, ValueError) as exc:
                self.error = exc.reason if isinstance(exc, HttpError) else str(exc)
                first = self.failing_since
                if first is None:
                    self.failing_since = first = time.monotonic()
                if failures >= len(self.retries):
                    self.failure, self.gave_up_after = self.error, time.monotonic() - first
                    return
                if self._closed.wait(self.retries[failures]):
                    return
                failures += 1
                continue
            failures, self.failing_since, self.error = 0, None, ""
            if answered:
                continue
            with self._lock:
                self._ended += 1
                last = self._ended == 1 and not self.held
                self._idle += last
            if last:  # this worker asks again for what did not reach the swarm
                self._ask_again(client)
            return

    def _ask_again(self, client: Client) -> None:
        """Once the round is handed out: ask every REASK s while pieces no peer has are missing;
        failures only end it (the seeder fallback covers the rest)."""
        while not self._closed.wait(REASK):
            if not self.lacking:
                continue
            try:
                self._ask(client)
            except (Refused, HttpError, ValueError):
                return

    def _ask(self, client: Client) -> bool:
        """One piece; False when the round is handed out."""
        with self._lock:
            self.requests += 1
        answer = client.get(self.url, headers={SEEN_HEADER: self.seen}, timeout=self.timeout)
        if answer.status_code == 204:
            # held counts before anything came only: later the peers have what it lacks
            first = self.fetched == 0 and self._ended == 0
            self.held = self.held or (first and answer.headers.get(HELD_HEADER.lower()) == "1")
            return False
        if answer.status_code >= 500:  # the server's trouble: tried again
            raise HttpError(self.url, f"answered {answer.status_code}")
        if answer.status_code != 200:
            raise Refused(f"answered {answer.status_code} to a piece request")
        k = int(answer.headers.get(PIECE_HEADER.lower(), "-1"))
        data = answer.content
        expected = min(self.piece_length, self.size - k * self.piece_length) if 0 <= k < self.pieces else -1
        if len(data) != expected:
            raise ValueError(f"{self.url}: piece {k} came with {len(data)} bytes, not {expected}")
        self.add_piece(k, data)
        with self._lock:
            self.fetched += len(data)
            self.delivered.append((time.monotonic(), k))
        return True
