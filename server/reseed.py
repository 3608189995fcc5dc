"""Booted nodes seed their image again when nodes boot it (docs/swarm.md, "Seeding again on demand").

A booted node's seeding service stops seeding once nobody has needed its image for a while
(bootagent/seeder.py's stop rule), but it keeps the verified file (an overlay root's squashfs, a
disk root's cache) and, every `poll` seconds, asks the server whether to seed it again
(GET /api/v1/seed-wanted). A rolling reboot of the same version then has the nodes that stayed up
as seeds, not the head node alone.

The rule (pure logic; the tracker's counts are passed in): a version is wanted while its swarm
has more incomplete peers (leechers) than seeds other than the server's own, counting the nodes
told to seed in the last `PROMISE_SECONDS` that may not have announced yet. Each leecher then has
a seed of its own at most: one booted node's link, c, feeds one node at c, and more seeds than
leechers would only add connections. The services' polls are spread so that all of them together
ask at most `POLLS_PER_SECOND` times a second (`poll` grows with the number waiting).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Version = tuple[str, int]

POLL_SECONDS = 10.0  # the shortest wait between two asks of one service
POLLS_PER_SECOND = 200.0  # what all the waiting services together ask at most
PROMISE_SECONDS = 30.0  # a node told to seed counts as a seed this long before it announces
FORGET_SECONDS = 600.0  # a service not heard from this long no longer counts as waiting
HOLDER_POLLS = 3  # polls a service may miss and still count as holding the version (`holders`)


@dataclass(frozen=True)
class Answer:
    seed: bool
    poll: float  # when to ask again (0: do not: nobody will want it from this node)
    leechers: int
    seeds: int
    why: str


class Reseeding:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[Version, dict[str, float]] = {}  # version -> node -> when it last asked
        self._told: dict[Version, dict[str, float]] = {}  # version -> node -> when it was told to seed
        self.told_total = 0

    def poll_seconds(self, version: Version) -> float:
        return max(POLL_SECONDS, len(self._waiting.get(version, {})) / POLLS_PER_SECOND)

    def ask(self, version: Version, node: str, leechers: int, seeds: int, server_seeds: int = 1) -> Answer:
        """Node `node`, which holds `version` and is not seeding it, asks whether to; `leechers` and
        `seeds` are the version's swarm as the tracker has it now (`server_seeds`: the server's own
        seeders among the seeds)."""
        now = self.clock()
        with self._lock:
            waiting = self._waiting.setdefault(version, {})
            waiting.pop(node, None)
            waiting[node] = now  # the dicts keep the order of the times: the oldest go from the front
            _drop_before(waiting, now - FORGET_SECONDS)
            told = self._told.setdefault(version, {})
            _drop_before(told, now - PROMISE_SECONDS)
            told.pop(node, None)  # it asks again: it is not seeding (or it stopped)
            node_seeds = max(0, seeds - server_seeds) + len(told)
            poll = self.poll_seconds(version)
            if leechers <= node_seeds:
                why = ("no node is downloading this version" if leechers == 0
                       else f"{leechers} node(s) downloading, {node_seeds} booted node(s) seeding already")
                return Answer(False, poll, leechers, seeds, why)
            told[node] = now
            self.told_total += 1
            return Answer(True, poll, leechers, seeds,
                          f"{leechers} node(s) downloading this version, {node_seeds} booted node(s) seeding")

    def holders(self, version: Version) -> int:
        """Booted nodes that hold `version`: told in the last PROMISE_SECONDS to seed it, or asking
        whether to within the last HOLDER_POLLS polls (a node that stopped asking, rebooting
        itself, is not one; FORGET_SECONDS is for the poll's length, far longer)."""
        now = self.clock()
        with self._lock:
            recent = now - HOLDER_POLLS * self.poll_seconds(version)
            waiting = {n for n, t in self._waiting.get(version, {}).items() if t >= recent}
            told = {n for n, t in self._told.get(version, {}).items() if t >= now - PROMISE_SECONDS}
            return len(waiting | told)

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "waiting": {f"{i}/{v}": len(w) for (i, v), w in self._waiting.items()},
                "told": self.told_total,
            }


def _drop_before(times: dict[str, float], oldest: float) -> None:
    """Drop the entries older than `oldest` from a dict whose values grow in insertion order."""
    while times:
        name = next(iter(times))
        if times[name] >= oldest:
            return
        del times[name]
