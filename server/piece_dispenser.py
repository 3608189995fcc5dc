"""The server hands out the image's pieces to the stripe owners one by one, as they ask (pure logic).

An owner asks `GET /api/v1/pieces/{image}/{version}/next` (ground/contract/pieces.py) and gets the
next piece nobody has had from the server in this round, skipping the ones it says it or its peers
already have (its `X-Seen` bitfield: after a server restart the round starts again, and what the
swarm holds is not sent twice). Each piece leaves the server once, and it goes to whichever owner
is ready for it: an owner that started late, or whose download port is busier, simply takes fewer
pieces. With fixed stripes (piece k to owner k mod n) the owners that started 2-4 s late (their
.torrent behind the others' pieces) had their stripes complete up to 4 s after the others, and
the last node waited for them (docs/swarm.md, "Pieces handed out by the server").

A round ends when every piece has been handed out; a request after ROUND_IDLE seconds without a
hand-out starts the next one (a later boot of the same version), an earlier one gets nothing (the
pieces are on their way to the owners; the peers pass them on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROUND_IDLE = 10.0  # seconds after a round's last hand-out before a new round starts


@dataclass
class Round:
    pieces: int
    given: bytearray = field(init=False)
    low: int = 0  # every piece below it has been handed out
    last: float = 0.0  # when the last piece was handed out
    handed: int = 0

    def __post_init__(self) -> None:
        self.given = bytearray(self.pieces)

    @property
    def exhausted(self) -> bool:
        return self.low >= self.pieces

    def take(self, seen: bytearray, now: float) -> int | None:
        """The lowest piece not handed out yet that the asker has not seen; None when none is left."""
        while self.low < self.pieces and self.given[self.low]:
            self.low += 1
        for k in range(self.low, self.pieces):
            if not self.given[k] and not seen[k]:
                self.given[k] = 1
                self.last, self.handed = now, self.handed + 1
                return k
        return None


class PieceDispenser:
    """One round per image version."""

    def __init__(self) -> None:
        self.rounds: dict[tuple[str, int], Round] = {}

    def take(self, key: tuple[str, int], pieces: int, seen: bytearray, now: float) -> int | None:
        current = self.rounds.get(key)
        if current is None or current.pieces != pieces or (
            current.exhausted and now - current.last > ROUND_IDLE
        ):
            current = self.rounds[key] = Round(pieces)
        return current.take(seen, now)

    def give_back(self, key: tuple[str, int], k: int) -> None:
        """Piece k did not get out (the owner went away while it was read): hand it out again."""
        current = self.rounds.get(key)
        if current is not None and 0 <= k < current.pieces and current.given[k]:
            current.given[k] = 0
            current.low = min(current.low, k)
            current.handed -= 1
