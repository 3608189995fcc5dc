"""Network namespaces, veth links, bridges, taps and tc shaping, torn down reliably.

A NetLab is a context manager: everything it creates carries its run tag and is removed in
reverse order on exit, on an exception and on Ctrl-C. It only ever removes what it created.
Traffic stays inside the namespaces (they have no route to the outside). Used by the swarm
benchmark (one namespace per node) and by the virtual-node lab (QEMU taps on a bridge).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ground import run as runmod
from ground.errors import SwarmbootError

IFNAME_MAX = 15


@dataclass
class Namespace:
    name: str
    # What spawn() started here, stopped by PID when the namespace is deleted: `ip netns pids`
    # misses a child that has not entered the namespace yet (`ip netns exec` still setting up).
    children: list[runmod.Child] = field(default_factory=list, repr=False)

    def argv(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *[os.fspath(a) for a in argv]]

    def run(
        self, argv: Sequence[str | os.PathLike[str]], **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        return runmod.run(self.argv(argv), **kwargs)  # type: ignore[arg-type]

    def spawn(self, argv: Sequence[str | os.PathLike[str]], **kwargs: object) -> runmod.Child:
        child = runmod.spawn(self.argv(argv), **kwargs)  # type: ignore[arg-type]
        self.children.append(child)
        return child

    def ip(self, *args: str) -> None:
        runmod.run(["ip", "-n", self.name, *args], timeout=60)


@dataclass
class NetLab:
    """Creates namespaces and links; undoes all of it on exit."""

    tag: str = field(default_factory=lambda: "sb" + secrets.token_hex(3))
    _undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def __enter__(self) -> NetLab:
        runmod.require_tool("ip")
        if os.geteuid() != 0:
            raise SwarmbootError("network namespaces need root", hint="run this as root")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        errors = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except (SwarmbootError, OSError) as error:
                errors.append(f"{what}: {error}")
        if errors:
            raise SwarmbootError("could not remove everything the lab created:\n" + "\n".join(errors))

    def on_close(self, what: str, undo: Callable[[], None]) -> None:
        """Register a clean-up step to run (in reverse order) when the lab closes."""
        self._undo.append((what, undo))

    # -- objects ------------------------------------------------------------------------------
    def namespace(self, suffix: str) -> Namespace:
        ns = Namespace(f"{self.tag}-{suffix}")
        # Registered before the side effect: a half-made namespace is removed too.
        self.on_close(f"namespace {ns.name}", lambda: _delete_namespace(ns))
        runmod.run(["ip", "netns", "add", ns.name], timeout=60)
        ns.ip("link", "set", "lo", "up")
        return ns

    def veth(self, a: Namespace, a_if: str, b: Namespace, b_if: str) -> None:
        """A veth pair with one end in each namespace (deleted with its namespace)."""
        for name in (a_if, b_if):
            _check_ifname(name)
        tmp_a, tmp_b = f"{self.tag}a{secrets.token_hex(2)}", f"{self.tag}b{secrets.token_hex(2)}"
        runmod.run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b], timeout=60)
        self.on_close(f"veth {tmp_a}", lambda: _delete_link(tmp_a))
        runmod.run(["ip", "link", "set", tmp_a, "netns", a.name], timeout=60)
        runmod.run(["ip", "link", "set", tmp_b, "netns", b.name], timeout=60)
        a.ip("link", "set", tmp_a, "name", a_if)
        b.ip("link", "set", tmp_b, "name", b_if)
        a.ip("link", "set", a_if, "up")
        b.ip("link", "set", b_if, "up")

    def bridge(self, ns: Namespace, name: str) -> None:
        _check_ifname(name)
        ns.ip("link", "add", name, "type", "bridge", "forward_delay", "0", "stp_state", "0")
        ns.ip("link", "set", name, "up")

    def attach(self, ns: Namespace, ifname: str, bridge: str) -> None:
        ns.ip("link", "set", ifname, "master", bridge)
        ns.ip("link", "set", ifname, "up")

    def tap(self, ns: Namespace, name: str) -> None:
        """A tap device for a QEMU guest (`-netdev tap,ifname=NAME,script=no,downscript=no`)."""
        _check_ifname(name)
        ns.ip("tuntap", "add", "dev", name, "mode", "tap")
        ns.ip("link", "set", name, "up")

    def address(self, ns: Namespace, ifname: str, cidr: str) -> None:
        ns.ip("addr", "add", cidr, "dev", ifname)

    def shape(
        self,
        ns: Namespace,
        ifname: str,
        rate_bit: int,
        burst_bytes: int | None = None,
        queue_seconds: float = 0.05,
    ) -> None:
        """Limit what leaves `ifname` to rate_bit bits/s with a token bucket (tbf) and a queue of
        `queue_seconds` of traffic (at least two bursts): what a switch port buffers."""
        burst = burst_bytes or max(32 * 1024, rate_bit // 8 // 100)  # about 10 ms of traffic
        limit = max(burst * 2, int(rate_bit / 8 * queue_seconds))
        runmod.run(
            ["tc", "-n", ns.name, "qdisc", "replace", "dev", ifname, "root", "tbf",
             "rate", f"{rate_bit}bit", "burst", str(burst), "limit", str(limit)]
        , timeout=60)


def link_counters(ns: Namespace, ifname: str) -> dict[str, int]:
    """The interface's kernel counters (rx_bytes, tx_bytes, rx_packets, tx_packets, …, drops)."""
    out = runmod.run(["ip", "-n", ns.name, "-s", "-j", "link", "show", "dev", ifname], timeout=60).stdout
    (link,) = json.loads(out)
    stats = link.get("stats64") or link.get("stats") or {}
    counters = {}
    for direction in ("rx", "tx"):
        for key, value in stats.get(direction, {}).items():
            counters[f"{direction}_{key}"] = int(value)
    return counters


def _check_ifname(name: str) -> None:
    if not 0 < len(name) <= IFNAME_MAX:
        raise SwarmbootError(f"interface name {name!r} must be 1-{IFNAME_MAX} characters")


def _delete_namespace(ns: Namespace) -> None:
    name = ns.name
    for child in ns.children:
        if child.running():
            child.stop(grace=2.0)
    if not Path(f"/run/netns/{name}").exists():
        return
    # Kill what still runs inside (only our own processes live in our namespaces).
    pids = runmod.run(["ip", "netns", "pids", name], check=False, timeout=60).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
    runmod.run(["ip", "netns", "delete", name], timeout=60)


def _delete_link(name: str) -> None:
    runmod.run(["ip", "link", "delete", name], check=False, timeout=60)


def parse_rate(text: str) -> int:
    """'100mbit', '25Mbit', '1gbit', '500kbit' or a number of bits/s -> bits/s."""
    value = text.strip().lower().removesuffix("/s").removesuffix("ps")
    units = {"gbit": 10**9, "mbit": 10**6, "kbit": 10**3, "bit": 1, "g": 10**9, "m": 10**6, "k": 10**3}
    number, factor = value, 1
    for suffix, multiplier in units.items():
        if value.endswith(suffix):
            number, factor = value[: -len(suffix)], multiplier
            break
    try:
        return int(float(number) * factor)
    except ValueError:
        raise SwarmbootError(f"not a rate: {text!r}", hint="use e.g. 100mbit, 1gbit or 25Mbit") from None
