"""Getting the server back (pure logic, what `ImageDownload` asks each round):

- `SeederWatch`: whether the node is connected to the server's seeder, and when to connect to it
  again. libtorrent alone gives a peer up after a few failed attempts (max_failcount) and learns
  it again only at the next announce, 300 s later: a server restarted after 10 s was never used
  again, the nodes took the rest over the web seed (docs/swarm.md, "Faults"). So the endpoints
  the seeder was seen at are kept, and while the node needs pieces no connected peer has, it
  connects to them again every RECONNECT_EVERY seconds (and re-announces, so the tracker and the
  node learn of each other at once).
- `RecheckWatch`: a piece that failed its hash and is then never asked for again. libtorrent can
  leave such a piece out of its picker (arvidn/libtorrent#3843, qBittorrent#8070: "only a force
  recheck helps"); the swarm benchmark's corrupt peer left one node stuck this way in about 1 run
  of 9 (n3 of 3: piece 71 of its own stripe still held the corrupt byte 90 s later, while the
  server and both peers had it). After a hash failure, when nothing arrived for RECHECK_AFTER
  seconds although a connected peer has a missing piece, the torrent is checked again (at most
  every RECHECK_EVERY seconds): libtorrent forgets its piece states and asks for what is missing.
- `Reachability`: what the node last heard from the tracker, the seeder and the web seed, for the
  message of a download that stalls ("tracker …: connection refused; seeder …: not reached for
  63 s; web seed …: 503"), not just "nothing arrived".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

RECONNECT_AFTER = 1.0  # seconds without the seeder, while the node needs it, before connecting again
RECONNECT_EVERY = 2.0  # between attempts (a TCP connection to one address: cheap)
REANNOUNCE_EVERY = 4.0  # between forced announces while the seeder is missing
SEEDER_UNREACHABLE = 3.0  # seconds the seeder is needed and missing before the web seed is used
NO_ANSWER = 3.0  # an announce without an answer this long counts as "no answer"
RECHECK_AFTER = 8.0  # seconds without progress, after a hash failure, before a recheck
RECHECK_EVERY = 30.0


@dataclass
class SeederWatch:
    """The server's seeder as this node sees it (`server_ip`: the tracker's host)."""

    server_ip: str
    started: float
    endpoints: set[tuple[str, int]] = field(default_factory=set)  # where the seeder was seen
    connected: bool = False
    ever_connected: bool = False
    last_connected: float | None = None
    next_attempt: float = 0.0
    next_announce: float = 0.0
    attempts: int = 0

    def observe(self, now: float, peers: Iterable[tuple[str, int, bool, bool]]) -> None:
        """This round's peers: (ip, port, is_web_seed, we_connected). Only a connection this node
        made has the seeder's listening port (one the seeder made comes from a passing port)."""
        mine = [(ip, port, outgoing) for ip, port, web, outgoing in peers if ip == self.server_ip and not web]
        self.endpoints |= {(ip, port) for ip, port, outgoing in mine if outgoing}
        self.connected = bool(mine)
        if self.connected:
            self.ever_connected = True
            self.last_connected = now
            self.attempts = 0

    def missing_for(self, now: float) -> float:
        """Seconds the seeder has not been connected (since the start when it never was)."""
        if self.connected:
            return 0.0
        return now - (self.last_connected if self.last_connected is not None else self.started)

    def reconnect_due(self, now: float, needed: bool) -> bool:
        """Connect to the seeder's endpoints this round? Only when the node wants the seeder (the
        agent: whenever it does not keep off it on purpose, the stripes' filter)."""
        if self.connected or not needed or not self.endpoints or self.missing_for(now) < RECONNECT_AFTER:
            return False
        if now < self.next_attempt:
            return False
        self.attempts += 1
        self.next_attempt = now + RECONNECT_EVERY
        return True

    def reannounce_due(self, now: float, needed: bool) -> bool:
        if self.connected or not needed or self.missing_for(now) < RECONNECT_AFTER:
            return False
        if now < self.next_announce:
            return False
        self.next_announce = now + REANNOUNCE_EVERY
        return True

    def unreachable(self, now: float, needed: bool, tracker_answers: bool = True) -> bool:
        """The seeder is needed and has been missing for SEEDER_UNREACHABLE seconds while the
        tracker answers: the web seed may help (the server is up, its seeder port is not: blocked,
        or the seeder died). With the tracker down too, the whole server is (a restart): HTTP
        would not answer either, and the seeder is waited for."""
        return needed and tracker_answers and self.missing_for(now) > SEEDER_UNREACHABLE

    def describe(self, now: float) -> str:
        if self.connected:
            return "connected"
        if not self.ever_connected:
            return "never reached" + (f" ({self.attempts} attempts)" if self.attempts else "")
        return f"not reached for {self.missing_for(now):.0f} s ({self.attempts} attempts)"


@dataclass
class RecheckWatch:
    """When to check the torrent again: a hash failure, then no progress while a peer has what
    is missing (see the module's text)."""

    next_allowed: float = 0.0
    rechecks: int = 0

    def due(self, now: float, since_progress: float, hash_failures: int, available_missing: bool) -> bool:
        if hash_failures == 0 or not available_missing or since_progress < RECHECK_AFTER:
            return False
        if now < self.next_allowed:
            return False
        self.next_allowed = now + RECHECK_EVERY
        self.rechecks += 1
        return True


@dataclass
class Reachability:
    """The last word from each of the server's parts (for the message of a stalled download)."""

    tracker_url: str
    server_ip: str
    web_seeds: tuple[str, ...] = ()
    tracker: str = "not asked yet"
    web_seed: str = "not used"
    seeder_error: str = ""
    asked_since: float | None = None  # an announce is on its way since then (no answer, no error)
    answered_at: float | None = None

    @property
    def tracker_answers(self) -> bool:
        """The tracker's last word was an answer (not an error)."""
        return self.tracker == "answered"

    def tracker_down(self, now: float) -> bool:
        """Its last word was an error, or an announce has had no answer for NO_ANSWER seconds: the
        server is down, and its HTTP (the web seed) with it."""
        failed = self.tracker not in ("answered", "not asked yet")
        return failed or (self.asked_since is not None and now - self.asked_since > NO_ANSWER)

    def tracker_ok(self, now: float | None = None) -> None:
        self.tracker, self.asked_since, self.answered_at = "answered", None, now

    def tracker_failed(self, message: str) -> None:
        # libtorrent's "HASH (URL)[LISTEN-v1] Connection refused "" (3)": what it said
        text = message.rsplit("] ", 1)[-1].replace(' ""', "").strip()
        self.tracker, self.asked_since = text or message, None

    def announce_sent(self, now: float) -> None:
        if self.asked_since is None:
            self.asked_since = now

    def web_seed_failed(self, message: str) -> None:
        self.web_seed = message

    def web_seed_added(self) -> None:
        if self.web_seed == "not used":
            self.web_seed = "added"

    def seeder_failed(self, message: str) -> None:
        self.seeder_error = message

    def summary(self, seeder: SeederWatch, now: float, web_bytes: int = 0, hand_out: str = "") -> str:
        seeder_text = seeder.describe(now)
        if self.seeder_error and not seeder.connected:
            seeder_text += f": {self.seeder_error}"
        where = ", ".join(f"{ip}:{port}" for ip, port in sorted(seeder.endpoints)) or self.server_ip or "?"
        tracker = self.tracker
        if self.asked_since is not None and now - self.asked_since > NO_ANSWER:
            tracker = f"no answer for {now - self.asked_since:.0f} s (last: {self.tracker})"
        elif tracker == "answered" and self.answered_at is not None:
            tracker = f"last answered {now - self.answered_at:.0f} s ago"
        web_seed = self.web_seed
        if web_seed == "added" and not web_bytes:
            web_seed = "added, nothing came"
        parts = [
            f"tracker {self.tracker_url or '(none)'}: {tracker}",
            f"seeder {where}: {seeder_text}",
            f"web seed {', '.join(self.web_seeds) or '(none)'}: {web_seed}",
        ]
        if hand_out:  # an owner's pieces from the server (bootagent/piece_fetch.py)
            parts.append(hand_out)
        return "; ".join(parts)
