"""A discrete-event simulation of pieces moving over links: swarmboot's swarm as tuned.

The model (every parameter is in `Params`):
- A server (upload u_s) and N nodes (upload = download = c) on one switch. Each link carries at
  most `slots` transfers at once, each at 1/slots of its rate (TCP sharing a link); a transfer
  moves one piece and runs at the slower of its two ends' slot rates, times `efficiency` (what TCP
  achieves of the payload rate).
- The first `stripes` nodes own a stripe (pieces k with k % stripes == owner index): they fetch
  it from the server first, lowest index first, the server's slots shared evenly between the
  owners still fetching; an owner done with its stripe helps with pieces the server has not sent
  yet. The other nodes (leaves) never fetch from the server.
- Between nodes, a node with a free upload slot and a neighbour with a free download slot that
  lacks one of its pieces start a transfer of the newest such piece (rarest first, in a swarm
  where pieces spread in the order they enter it). A piece a node receives can be passed on
  `hop_delay` seconds later (hash check, HAVE, request). Neighbours: everyone up to `degree`
  (libtorrent's peer list), else a random graph of that degree.
- A node starts `start` seconds after go (the measured start-up: plan, torrent, session,
  tracker), plus a uniform jitter of +- `start_jitter` (or at its own time in `starts`); it is
  done `end_delay` after its last piece (flush and the streamed sha256). Done nodes keep
  uploading (the agent's seeder).
- `holders` booted nodes that hold the whole image join at their own times and only upload
  (seeding again on demand, server/reseed.py), each its pieces in an order of its own.

Transfers are matched when a slot frees or a piece arrives; a node that finds nothing retries
after one piece time. Bytes are conserved: what the server and the nodes send is what the nodes
receive (`Result.check()`).
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

from swarm_report import percentile

DONE, START, RETRY, VISIBLE = 0, 1, 2, 3
SAMPLES = 12  # neighbours a free slot looks at before it waits
NEWEST_SCAN = 48  # how far back a sender looks in its pieces (newest first) before any piece


@dataclass(frozen=True)
class Params:
    nodes: int
    size: int  # F, bytes
    piece: int  # bytes
    link: float  # c, payload bytes/s each way
    server_link: float  # u_s, payload bytes/s
    stripes: int = -1  # owners; -1: min(nodes, 32) as the server assigns
    slots: int = 8
    degree: int = 200
    efficiency: float = 1.0
    start: float = 0.2
    start_jitter: float = 0.1
    hop_delay: float = 0.0
    end_delay: float = 0.05
    seed: int = 1
    starts: tuple[float, ...] = ()  # each node's own start (bench/boot_model.py), else start +- jitter
    # booted nodes that hold the image and seed it again (server/reseed.py): they join at their
    # own times (else at `start`), upload only, and count as neither nodes nor the server
    holders: int = 0
    holder_starts: tuple[float, ...] = ()

    @property
    def pieces(self) -> int:
        return math.ceil(self.size / self.piece)

    @property
    def owners(self) -> int:
        return min(self.nodes, 32) if self.stripes < 0 else min(self.stripes, self.nodes)


@dataclass
class Result:
    params: Params
    done: list[float]
    server_bytes: int
    sent: list[int]
    received: list[int]
    events: int

    def percentile(self, q: float) -> float:
        return percentile(self.done, q)

    @property
    def last(self) -> float:
        return max(self.done)

    def check(self) -> None:
        """Conservation: every byte received was sent by the server or a node; each node got F."""
        total = sum(self.received)
        if total != self.server_bytes + sum(self.sent):
            raise AssertionError(f"bytes not conserved: {total} != {self.server_bytes} + {sum(self.sent)}")
        if any(r != self.params.size for r in self.received):
            raise AssertionError("a node did not receive exactly F bytes")


@dataclass
class _State:
    p: Params
    rng: random.Random
    has: list[int] = field(default_factory=list)  # bitsets of pieces held (incl. the server at [N])
    visible: list[int] = field(default_factory=list)  # pieces others can ask for
    inflight: list[int] = field(default_factory=list)
    order: list[list[int]] = field(default_factory=list)  # pieces in the order they became visible
    up_free: list[int] = field(default_factory=list)
    down_free: list[int] = field(default_factory=list)
    started: list[bool] = field(default_factory=list)
    complete: list[bool] = field(default_factory=list)
    retry_pending: list[bool] = field(default_factory=list)
    neighbours: list[list[int]] = field(default_factory=list)
    own: list[list[int]] = field(default_factory=list)  # owner's stripe pieces still to request
    server_holds: list[int] = field(default_factory=list)  # server slots each owner uses
    unsent: set[int] = field(default_factory=set)  # pieces the server has not sent yet
    server_waiters: list[int] = field(default_factory=list)
    server: int = 0  # the server's index: after the nodes and the holders
    heap: list[tuple[float, int, int, int, int, int]] = field(default_factory=list)
    seq: int = 0
    events: int = 0


def simulate(p: Params) -> Result:
    n, m = p.nodes, p.pieces
    if n < 1 or m < 1:
        raise ValueError("need at least one node and one piece")
    st = _State(p, random.Random(p.seed))
    h = p.holders
    peers = n + h
    st.server = server = peers
    full = (1 << m) - 1
    st.has = [0] * n + [full] * h + [full]
    st.visible = [0] * n + [full] * h + [full]
    st.inflight = [0] * (peers + 1)
    st.order = [[] for _ in range(n)] + [st.rng.sample(range(m), m) for _ in range(h)] + [[]]
    st.up_free = [p.slots] * (peers + 1)
    st.down_free = [p.slots] * n + [0] * (h + 1)
    st.started = [False] * peers + [True]
    st.complete = [False] * n + [True] * (h + 1)
    st.retry_pending = [False] * (peers + 1)
    st.neighbours = _graph(peers, p.degree, st.rng)
    owners = p.owners
    st.own = [list(range(i, m, owners)) if i < owners else [] for i in range(peers)]
    st.server_holds = [0] * peers
    st.unsent = set(range(m))
    sizes = [p.piece] * (m - 1) + [p.size - p.piece * (m - 1)]
    done = [math.inf] * n
    sent = [0] * peers
    received = [0] * n
    server_bytes = 0
    for i in range(n):
        jitter = st.rng.uniform(-p.start_jitter, p.start_jitter)
        _push(st, p.starts[i] if p.starts else p.start + jitter, START, i)
    for j in range(h):
        _push(st, p.holder_starts[j] if p.holder_starts else p.start, START, n + j)
    remaining = n
    while st.heap and remaining:
        t, _, kind, a, b, k = heapq.heappop(st.heap)
        st.events += 1
        if kind == START:
            st.started[a] = True
            _fill(st, a, t)
        elif kind == RETRY:
            st.retry_pending[a] = False
            _fill(st, a, t)
        elif kind == VISIBLE:
            st.visible[a] |= 1 << k
            st.order[a].append(k)
            _fill(st, a, t)
        else:  # a transfer a -> b of piece k is done
            bit = 1 << k
            st.has[b] |= bit
            st.inflight[b] &= ~bit
            st.up_free[a] += 1
            st.down_free[b] += 1
            received[b] += sizes[k]
            if a == server:
                server_bytes += sizes[k]
                st.server_holds[b] -= 1
            else:
                sent[a] += sizes[k]
            if p.hop_delay > 0:
                _push(st, t + p.hop_delay, VISIBLE, b, k=k)
            else:
                st.visible[b] |= bit
                st.order[b].append(k)
            if st.has[b] == full and not st.complete[b]:
                st.complete[b] = True
                done[b] = t + p.end_delay
                remaining -= 1
            elif a != server:  # the connection goes on with b's next request to a, if it has one
                want = st.visible[a] & ~(st.has[b] | st.inflight[b])
                if want:
                    _start(st, t, a, b, _newest(st, a, want))
            _fill(st, b, t)
            if a == server:
                for w in st.server_waiters[:]:
                    _fill(st, w, t)
            else:
                _fill(st, a, t)
    if remaining:
        raise RuntimeError(f"{remaining} nodes never finished (events {st.events})")
    return Result(p, done, server_bytes, sent, received, st.events)


def _graph(n: int, degree: int, rng: random.Random) -> list[list[int]]:
    """Everyone with everyone up to `degree`, else a random graph where each node has ~degree."""
    if n - 1 <= degree:
        return [[j for j in range(n) if j != i] for i in range(n)]
    sets: list[set[int]] = [set() for _ in range(n)]
    for i in range(n):
        while len(sets[i]) < degree // 2:
            j = rng.randrange(n)
            if j != i:
                sets[i].add(j)
                sets[j].add(i)
    return [list(s) for s in sets]


def _push(st: _State, t: float, kind: int, a: int, *, b: int = 0, k: int = 0) -> None:
    st.seq += 1
    heapq.heappush(st.heap, (t, st.seq, kind, a, b, k))


def _start(st: _State, t: float, a: int, b: int, k: int) -> None:
    """Transfer piece k from a to b (a == st.server: the server)."""
    p = st.p
    rate_up = (p.server_link if a == st.server else p.link) / p.slots
    rate = min(rate_up, p.link / p.slots) * p.efficiency
    size = p.piece if k < p.pieces - 1 else p.size - p.piece * (p.pieces - 1)
    st.up_free[a] -= 1
    st.down_free[b] -= 1
    st.inflight[b] |= 1 << k
    _push(st, t + size / rate, DONE, a, b=b, k=k)


def _fill(st: _State, i: int, t: float) -> None:
    """Use node i's free download slots (server first for an owner, then peers) and its free
    upload slots; if something could be done but nothing was found, retry later."""
    p = st.p
    if not st.started[i]:
        return
    idle = not st.complete[i] and _download(st, i, t)
    if st.up_free[i] > 0 and st.visible[i]:
        _upload(st, i, t)
    if idle and not st.retry_pending[i]:
        st.retry_pending[i] = True
        _push(st, t + p.slots * p.piece / p.link, RETRY, i)


def _download(st: _State, i: int, t: float) -> bool:
    """Fill i's download slots; True when a slot stayed free although pieces are missing."""
    server = st.server
    while st.down_free[i] > 0:
        k = _server_piece(st, i)
        if k is not None:
            if st.up_free[server] > 0 and st.server_holds[i] < _server_share(st):
                st.server_holds[i] += 1
                st.unsent.discard(k)
                if st.own[i] and st.own[i][0] == k:
                    st.own[i].pop(0)
                _start(st, t, server, i, k)
                if i in st.server_waiters:
                    st.server_waiters.remove(i)
                continue
            if i not in st.server_waiters:
                st.server_waiters.append(i)
        if not _from_peer(st, i, t):
            return st.has[i] | st.inflight[i] != (1 << st.p.pieces) - 1
    return False


def _server_share(st: _State) -> int:
    """Server slots per owner: split evenly between the owners that still want the server."""
    wanting = sum(1 for i in range(st.p.owners) if _wants_server(st, i))
    return max(1, st.p.slots // max(1, wanting))


def _wants_server(st: _State, i: int) -> bool:
    return not st.complete[i] and (bool(st.own[i]) or bool(st.unsent)) and st.started[i]


def _server_piece(st: _State, i: int) -> int | None:
    """The owner's next stripe piece, or (helping) a piece the server has not sent yet."""
    if i >= st.p.owners:
        return None
    own = st.own[i]
    while own and (st.has[i] | st.inflight[i]) >> own[0] & 1:
        own.pop(0)
    if own:
        return own[0]
    taken = st.has[i] | st.inflight[i]
    for k in st.unsent:
        if not taken >> k & 1:
            return k
    return None


def _from_peer(st: _State, i: int, t: float) -> bool:
    """Start one transfer into i from a neighbour with a free upload slot; False if none."""
    nb = st.neighbours[i]
    taken = st.has[i] | st.inflight[i]
    size, pick = len(nb), st.rng.random
    for _ in range(min(SAMPLES, size)):
        j = nb[int(pick() * size)]
        if st.up_free[j] <= 0 or not st.started[j]:
            continue
        want = st.visible[j] & ~taken
        if want:
            _start(st, t, j, i, _newest(st, j, want))
            return True
    return False


def _upload(st: _State, j: int, t: float) -> None:
    """Fill j's upload slots with neighbours that miss one of its pieces (a few looks per slot)."""
    nb = st.neighbours[j]
    size, pick = len(nb), st.rng.random
    while st.up_free[j] > 0:
        found = False
        for _ in range(min(SAMPLES, size)):
            i = nb[int(pick() * size)]
            if st.down_free[i] <= 0 or st.complete[i] or not st.started[i]:
                continue
            want = st.visible[j] & ~(st.has[i] | st.inflight[i])
            if want:
                _start(st, t, j, i, _newest(st, j, want))
                found = True
                break
        if not found:
            return


def _newest(st: _State, j: int, want: int) -> int:
    order = st.order[j]
    for idx in range(len(order) - 1, max(-1, len(order) - 1 - NEWEST_SCAN), -1):
        k = order[idx]
        if want >> k & 1:
            return k
    return (want & -want).bit_length() - 1
