"""Stripes: the server's hint for how a group shares the server's link (pure logic).

`stripe=(i, n)`: this node owns stripe i of n. Pieces k with k % n == i get the top priority, so
each of the n owners asks the server for a different 1/n of the image first and the others get
those pieces from it: the server sends each piece about once (the fluid-optimal schedule of
Kumar & Ross / Mundinger), instead of the same rarest pieces to several nodes at once. Once an
owner has its whole stripe, it gets the rest from peers only: the server's address is filtered
for peer connections (not for the tracker), so the server's link stays with the owners still
fetching their stripes (when done owners helped, they asked the server for the pieces other owners
were about to get: 1.25-1.4 image copies at N = 4-16). `stripe=(-1, n)`: a leaf (a group larger
than n) gets everything from peers, the server filtered from the start. After SERVER_FALLBACK
seconds without progress the filter is dropped for good (an owner that is missing, a partial
reboot of a large group), and the seeder is connected to again at once (it is gone from
libtorrent's peer list by then: recovery.py). docs/swarm.md has the measurements.

`dispense`: the owners take the pieces the server hands out over HTTP instead (piece_fetch.py,
what the agent does with a server that has the hand-out): no fixed stripe, no priorities, off the
seeder from the start, no adoption. When the hand-out fails, or the server says booted nodes hold
the version, the owner falls back to its fixed stripe from the seeder (`dispense_failed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bootagent.errors import DownloadError

TOP_PRIORITY = 7
DEFAULT_PRIORITY = 4
# seconds without progress before a filtered node fetches from the server again (with the seeder
# connected to again at once: bootagent/recovery.py; 3 s gave 1.30 x T_min with a node killed, N = 4)
SERVER_FALLBACK = 2.0
# A stripe that has stopped growing for this long (among the pieces this node has or its peers
# have) while the others grow or are complete has lost its owner (killed, rebooted): every owner
# still there takes an equal share of its missing pieces from the server and passes them on, so the
# server still sends each piece about once and the survivors' shares end together. Before, only the
# next owner took it, once its own stripe was done: 1.27-1.39 x T_min with a node killed (N = 8, 4);
# before that every owner fell back to the server for the same pieces at the end (1.4-2.0 x:
# docs/swarm.md, "Faults").
ADOPT_AFTER = 2.0


def stripe_priorities(pieces: int, index: int, count: int) -> list[int]:
    """Top priority for stripe `index` of `count` (pieces k with k % count == index), default for
    the rest (rarest first). Grading the rest by index, so that a node done with its stripe helps
    a slow one from the other end, measured worse (1.28 vs 1.09 x T_min at N = 8): it overrode
    rarest-first between peers."""
    return [TOP_PRIORITY if k % count == index else DEFAULT_PRIORITY for k in range(pieces)]


@dataclass
class StripePolicy:
    """When this node keeps off the server's seeder: what `ImageDownload` asks each round."""

    stripe: tuple[int, int] | None  # (index, count); None: no hint (plain rarest-first)
    num_pieces: int
    filtered: bool = False  # the server's address is filtered for peer connections now
    unfiltered: bool = False  # the filter was dropped for good (no progress without the server)
    own_left: list[int] = field(default_factory=list)  # an owner's stripe pieces it does not have yet
    adopted: list[int] = field(default_factory=list)  # stripes whose owner is gone, shared out
    adopted_at: list[float] = field(default_factory=list)  # when (the caller's clock), for the records
    own_done_at: float | None = None  # when steer() found the whole stripe in (the caller's clock)
    # an owner takes the pieces the server hands out to it over HTTP (piece_fetch.py) instead of a
    # fixed stripe, off the server's seeder from the start; False again once that failed
    dispense: bool = False
    _seen: dict[int, tuple[int, float]] = field(default_factory=dict)  # stripe -> (most seen, when)

    def __post_init__(self) -> None:
        if self.stripe is not None:
            index, count = self.stripe
            if not (count > 0 and -1 <= index < count):
                raise DownloadError(f"invalid stripe {self.stripe}: need -1 <= index < count")
            if index >= 0:
                self.own_left = list(range(index, self.num_pieces, count))

    @property
    def leaf(self) -> bool:
        return self.stripe is not None and self.stripe[0] < 0

    def priorities(self) -> list[int] | None:
        """The piece priorities an owner starts with (None: leave libtorrent's defaults)."""
        if self.stripe is None or self.leaf or self.dispense:
            return None
        return stripe_priorities(self.num_pieces, *self.stripe)

    def start(self) -> bool:
        """Whether to filter the server's seeder from the start (a leaf does, and an owner that
        takes the pieces the server hands out: it has no fixed stripe then)."""
        self.dispense = self.dispense and self.stripe is not None and not self.leaf
        if self.dispense:
            self.own_left = []
        self.filtered = self.leaf or self.dispense
        return self.filtered

    def dispensed(self, now: float) -> None:
        """The server has handed out every piece of the round (this owner's share is in)."""
        if self.own_done_at is None:
            self.own_done_at = now

    def dispense_failed(self, have: Callable[[int], bool]) -> bool:
        """The hand-out ended early (the server down, an older server) or booted nodes hold the
        version: this owner takes the pieces of its fixed stripe it lacks from the server's seeder,
        as without the hand-out (`priorities()` is then the stripe's again). Whether to go back on
        the seeder now."""
        self.dispense = False
        assert self.stripe is not None
        index, count = self.stripe
        self.own_left = [k for k in range(index, self.num_pieces, count) if not have(k)]
        if self.filtered and not self.unfiltered and self.own_left:
            self.filtered = False
            return True
        return False

    def adopt_due(self, now: float, have: Callable[[int], bool], availability: list[int]) -> list[int] | None:
        """This node's share of the pieces of stripes whose owner is gone, to fetch from the server
        now; else None. A stripe's owner is gone when the stripe has stopped growing for ADOPT_AFTER
        (what this node has or its peers have of it) with pieces nobody has, while another stripe
        grew in that time or all the others are complete (a server that is down stops them all).
        The owners still there split its missing pieces by piece number, the same split whatever
        each of them sees (pieces k with k // count % len(survivors) == this owner's rank)."""
        if self.stripe is None or self.leaf or self.dispense:
            return None
        index, count = self.stripe
        if count < 2:
            return None
        unseen: dict[int, list[int]] = {}
        for s in range(count):
            pieces = range(s, self.num_pieces, count)
            unseen[s] = [
                k for k in pieces if not have(k) and not (k < len(availability) and availability[k] > 0)
            ]
            seen = len(pieces) - len(unseen[s])
            most, _at = self._seen.get(s, (-1, now))
            if seen > most:
                self._seen[s] = (seen, now)

        def stalled(s: int) -> bool:
            most, at = self._seen[s]
            return bool(unseen[s]) and most > 0 and now - at > ADOPT_AFTER

        def flowing_without(s: int) -> bool:
            others = [t for t in range(count) if t != s and t not in self.adopted]
            return all(not unseen[t] for t in others) or any(
                unseen[t] and now - self._seen[t][1] <= ADOPT_AFTER for t in others
            )

        others = [s for s in range(count) if s != index and s not in self.adopted]
        gone = [s for s in others if stalled(s) and flowing_without(s)]
        if not gone:
            return None
        self.adopted.extend(gone)
        self.adopted_at.extend(now for _ in gone)
        survivors = [s for s in range(count) if s not in self.adopted]
        rank = survivors.index(index)
        share = [k for s in gone for k in unseen[s] if (k // count) % len(survivors) == rank]
        self.own_left.extend(share)
        if share and self.filtered:
            self.filtered = False  # back to the server for the share; steer() filters again once it is in
        return share

    def steer(self, have: Callable[[int], bool], since_progress: float, now: float = 0.0) -> bool | None:
        """The new filter state when it changes this round, else None: an owner with its whole
        stripe goes off the server; anyone filtered and stuck goes back on it, for good."""
        was_left = bool(self.own_left)
        if was_left:  # what is left of the stripe (and adopted shares), whichever way it comes
            self.own_left = [k for k in self.own_left if not have(k)]
            if not self.own_left and self.own_done_at is None:
                self.own_done_at = now
        if self.filtered:
            if since_progress > SERVER_FALLBACK:
                self.filtered, self.unfiltered = False, True
                return False
            return None
        if was_left and not self.own_left and not self.unfiltered:
            self.filtered = True
            return True
        return None
