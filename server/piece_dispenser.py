"""The server hands out the image's pieces to the stripe owners one by one, as they ask (pure logic).

An owner asks `GET /api/v1/pieces/{image}/{version}/next` (ground/contract/pieces.py) and gets the
next piece nobody has had from the server in this round, skipping the ones it says it or its peers
already have (its `X-Seen` bitfield: after a server restart the round starts again, and what the
swarm holds is not sent twice). Each piece leaves the server once, and it goes to whichever owner
is ready for it: an owner that started late, or whose download port is busier, simply takes fewer
pieces. With fixed stripes (piece k to owner k mod n) the owners that started 2-4 s late (their
.torrent behind the others' pieces) had their stripes complete up to 4 s after the others, and
the last node waited for them (docs/swarm.md, "Pieces handed out by the server").

Once every piece has been handed out, a piece handed out more than REGIVE_AFTER seconds ago that
an asker still has not seen is handed out again: it did not reach the swarm (its owner died, its
answer was cut off). A round ends ROUND_IDLE seconds after its last hand-out (a later boot of the
same version starts a new one); before that, an asker that has seen everything left gets nothing
(the pieces are on their way to the owners; the peers pass them on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

ROUND_IDLE = 10.0  # seconds after a round's last hand-out before a new round starts
# seconds after a piece was handed out before an asker that has not seen it gets it again (at
# N = 32 on 4 Mbit/s a piece took 3.7 s to reach every node, at most 7.5 s; an owner's own peers
# see it within about a second of it arriving there)
REGIVE_AFTER = 5.0

Seen = Callable[[int], bool]


@dataclass
class Round:
    pieces: int
    started: float = 0.0
    given_at: list[float] = field(init=False)  # when each piece was handed out (-1: not yet)
    low: int = 0  # every piece below it has been handed out
    last: float = 0.0  # when the last piece was handed out
    handed: int = 0  # hand-outs, repeats included

    def __post_init__(self) -> None:
        self.given_at = [-1.0] * self.pieces
        self.last = self.started

    def take(self, seen: Seen, now: float) -> int | None:
        """The lowest piece not handed out yet that the asker has not seen; once all are out, the
        oldest-handed one it has still not seen REGIVE_AFTER after; else None."""
        given = self.given_at
        while self.low < self.pieces and given[self.low] >= 0:
            self.low += 1
        for k in range(self.low, self.pieces):
            if given[k] < 0 and not seen(k):
                return self._give(k, now)
        if self.low < self.pieces:
            return None  # pieces are left, all of them seen by this asker: they are in its swarm
        lost = [k for k in range(self.pieces) if not seen(k) and now - given[k] > REGIVE_AFTER]
        return self._give(min(lost, key=given.__getitem__), now) if lost else None

    def _give(self, k: int, now: float) -> int:
        self.given_at[k] = now
        self.last, self.handed = now, self.handed + 1
        return k

    def give_back(self, k: int) -> None:
        if 0 <= k < self.pieces and self.given_at[k] >= 0:
            self.given_at[k] = -1.0
            self.low = min(self.low, k)


class PieceDispenser:
    """One round per image version."""

    def __init__(self) -> None:
        self.rounds: dict[tuple[str, int], Round] = {}

    def take(self, key: tuple[str, int], pieces: int, seen: Seen, now: float) -> tuple[int | None, Round]:
        """The piece for this asker (None: nothing for it) and the round it belongs to."""
        current = self.rounds.get(key)
        if current is None or current.pieces != pieces or now - current.last > ROUND_IDLE:
            current = self.rounds[key] = Round(pieces, started=now)
        return current.take(seen, now), current

    @staticmethod
    def give_back(round_: Round, k: int) -> None:
        """Piece k did not get out (its file could not be read): hand it out again in that round."""
        round_.give_back(k)
