"""Booted nodes that serve the packed kernel and initramfs (docs/swarm.md, "Boot files from peers").

A node's booted seeding service (bootagent/boot_files.py) fetches its version's boot files once,
from a peer the server names or from the server, checks them against the manifest's sha256, serves
them over HTTP, and says so (`seed` events whose details carry `boot_files`, again every
`REPORT_EVERY` seconds). The server keeps those holders here, in memory, and:
- writes a holder into a rebooting node's iPXE script, `kernel PEER || kernel SERVER`, so the head
  node's link carries a boot file only when no holder is free (or the peer fails: iPXE's `||`);
- names a holder to a booted service that fetches the files, so the cluster's copies come from
  one another, and the head node sends about one copy per version.

A node serves its files from its initramfs already, as soon as it has fetched them again (its
agent's `swarmboot-agent boot-files`, bootagent/boot_files.py `ServeWhileBooting`), and its
booted service takes over after switch_root; in between it is no holder (the agent says it
stopped, the service says it serves).

A holder is chosen on the asking node's switch when it can be (the switches' forwarding tables,
as the tracker uses them), then anywhere; a holder serves at most `PER_HOLDER` nodes at once: an
assignment ends when the holder says it sent that node both files (`served`: a 53 MB pair is
under a second on 1 GbE, minutes on the lab's slow links) or after `WINDOW` seconds (the node
fell back to the server, or the holder's word was lost).
In a cold start nobody holds the files yet: the server then sends the boot files to at most
`boot_files_server_streams` nodes at once (from the script that names it until that node's
initramfs is sent, by its address) and tells the nodes beyond them to ask
again in 5-15 s (`hold_back`), so that the first nodes get the whole link, boot, and serve the
next ones. A holder is dropped when its node reboots (its iPXE script), when it says it stopped, or when it
has not reported for `TTL` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

REPORT_EVERY = 60.0  # the service's own rhythm (bootagent/boot_files.py); the TTL leaves room for two misses
TTL = 3 * REPORT_EVERY + 10.0
PER_HOLDER = 4
WINDOW = 30.0
SERVER_FETCH_WAIT = 10  # seconds a booted service waits while another fetches its files from the server
BOOTING_FETCH_WAIT = 2  # the same for an agent's fetch from its initramfs (it serves the next nodes soon)
FIRST_FETCH_PRIORITY = 30.0  # while the first holder-to-be fetches them from the server, iPXE waits
PENDING_TTL = 120.0  # a node sent to the server's files that never fetched its initramfs frees its slot
HOLD_BACK_SECONDS = (5, 15)  # a held-back node's iPXE asks again after a random wait in this range


@dataclass
class Holder:
    node: str
    address: str
    port: int
    switch: str
    files: dict[str, str]  # file name -> sha256
    seen: float
    assigned: deque[tuple[float, str]] = field(default_factory=deque)  # (when, the node's address)

    @property
    def base_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/boot-files/{self.files[name]}/{name}"

    def load(self, now: float) -> int:
        while self.assigned and now - self.assigned[0][0] > WINDOW:
            self.assigned.popleft()
        return len(self.assigned)

    def done(self, address: str) -> bool:
        """The holder sent `address` its files: that assignment ends (the oldest one to it)."""
        for entry in self.assigned:
            if entry[1] == address:
                self.assigned.remove(entry)
                return True
        return False


Version = tuple[str, int]  # (image, version number)


class BootPeers:
    """The booted nodes holding each version's boot files. Thread-safe (the API's thread pool)."""

    def __init__(self, clock: type[time.monotonic] | None = None) -> None:
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._holders: dict[Version, dict[str, Holder]] = {}
        self._server_fetches: dict[Version, tuple[float, str]] = {}  # (when, who) last got the server
        self.assigned_ipxe = 0
        self.assigned_service = 0
        self.held_back = 0  # iPXE scripts that said "wait": the server's boot-file streams were full
        self.streams = 0  # boot-file transfers the server is sending now (server/api/images.py)
        self._pending: dict[str, float] = {}  # address -> when a script sent it to the server's files

    def hold(
        self, version: Version, node: str, address: str, port: int, files: dict[str, str], *, switch: str = ""
    ) -> None:
        now = self._clock()
        with self._lock:
            same = self._holders.get(version, {}).get(node)
            if same is not None and (same.address, same.port, same.files) == (address, port, files):
                same.seen, same.switch = now, switch  # its reports: the assignments it serves stay
                return
            self._forget(node)
            holder = Holder(node, address, port, switch, dict(files), now)
            self._holders.setdefault(version, {})[node] = holder

    def served(self, node: str, address: str) -> bool:
        """`node` says it sent its files to `address`: that assignment ends (False: none was open)."""
        with self._lock:
            return any(h.done(address) for holders in self._holders.values()
                       if (h := holders.get(node)) is not None)

    def drop(self, node: str) -> None:
        """The node reboots, or its service stopped: it serves nothing any more."""
        with self._lock:
            self._forget(node)

    def _forget(self, node: str) -> None:
        for holders in self._holders.values():
            holders.pop(node, None)
        for version in [v for v, (_, who) in self._server_fetches.items() if who == node]:
            del self._server_fetches[version]  # its fetch from the server ended without a holding

    def _live(self, version: Version, now: float, names: tuple[str, ...]) -> list[Holder]:
        holders = self._holders.get(version, {})
        for gone in [n for n, h in holders.items() if now - h.seen > TTL]:
            del holders[gone]
        return [h for h in holders.values() if all(n in h.files for n in names)]

    def pick(
        self, version: Version, node: str, switch: str, names: tuple[str, ...], *, busy_ok: bool = False,
        address: str = "",
    ) -> Holder | None:
        """A holder of `names` for `node` at `address` (never itself): on its switch first, the
        least loaded; one at its `PER_HOLDER` limit only when `busy_ok` (a service, off the boot's
        path)."""
        now = self._clock()
        with self._lock:
            live = [h for h in self._live(version, now, names) if h.node != node]
            if not busy_ok:
                live = [h for h in live if h.load(now) < PER_HOLDER]
            if not live:
                return None
            best = min(live, key=lambda h: (not (switch and h.switch == switch), h.load(now), h.seen, h.node))
            best.assigned.append((now, address))
            return best

    def for_ipxe(
        self, version: Version, node: str, switch: str, names: tuple[str, str], address: str = ""
    ) -> Holder | None:
        holder = self.pick(version, node, switch, names, address=address)
        if holder is not None:
            self.assigned_ipxe += 1
        return holder

    def for_service(
        self, version: Version, node: str, switch: str, names: tuple[str, ...], address: str = "",
        *, booting: bool = False,
    ) -> tuple[Holder | None, int]:
        """(holder, 0), or (None, 0): fetch from the server, or (None, seconds): wait, another node is
        fetching this version's files from the server and will hold them soon. `booting`: an
        agent's fetch from its initramfs, which serves the next nodes soon: told to ask again
        sooner. While that first fetch from the server runs and nobody holds the files, the
        server's other boot-file transfers wait (`hold_back`): it gets the head node's link."""
        holder = self.pick(version, node, switch, names, busy_ok=True, address=address)
        if holder is not None:
            self.assigned_service += 1
            return holder, 0
        now = self._clock()
        with self._lock:
            last = self._server_fetches.get(version)
            guard = FIRST_FETCH_PRIORITY if booting else TTL  # a fetcher that died without a word
            if last is not None and now - last[0] < guard:
                return None, BOOTING_FETCH_WAIT if booting else SERVER_FETCH_WAIT
            self._server_fetches[version] = (now, node)
        return None, 0

    def stream_started(self) -> None:
        with self._lock:
            self.streams += 1

    def stream_ended(self) -> None:
        with self._lock:
            self.streams -= 1

    def from_server(self, address: str) -> None:
        """A script naming the server for the boot files went to `address`: a slot is taken until
        its initramfs has been sent (`server_sent`), or for `PENDING_TTL` s at most."""
        with self._lock:
            self._pending[address] = self._clock()

    def server_sent(self, address: str) -> None:
        with self._lock:
            self._pending.pop(address, None)

    def hold_back(self, limit: int, address: str) -> bool:
        """A cold start: no booted peer is free and the server is already sending the boot files
        to `limit` nodes, or the first node to serve them is fetching them from the server (for at
        most `FIRST_FETCH_PRIORITY` s, until it holds them). This one waits and asks again (cheap:
        no token, no event) instead of sharing the head node's link with all the others; by then
        the first nodes up may serve it."""
        if limit <= 0:
            return False
        now = self._clock()
        with self._lock:
            for gone in [a for a, t in self._pending.items() if now - t > PENDING_TTL]:
                del self._pending[gone]
            # the first holder-to-be of a version nobody holds fetches from the server: it goes first
            first = any(now - t < FIRST_FETCH_PRIORITY and not self._holders.get(v)
                        for v, (t, _) in self._server_fetches.items())
            if address in self._pending or (len(self._pending) < limit and not first):
                return False
            self.held_back += 1
            return True

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def stats(self) -> dict[str, object]:
        now = self._clock()
        with self._lock:
            holders = {f"{image}/{number}": len(self._live((image, number), now, ()))
                       for image, number in self._holders}
        return {"holders": holders, "assigned_ipxe": self.assigned_ipxe,
                "assigned_service": self.assigned_service, "held_back": self.held_back,
                "server_streams": self.streams, "server_pending": len(self._pending)}
