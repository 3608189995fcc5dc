"""Checks of user input (names, MACs, addresses, ranges) and host-list expansion (`node[001-128]`).

Every function raises UsageError with a hint saying what a valid value looks like.
"""

from __future__ import annotations

import ipaddress
import itertools
import re

from ground.contract.sets import PLANNED_ROOT_MODES, RootMode, names
from ground.errors import UsageError

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAC_RE = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
MAX_EXPANSION = 100_000
_BRACKET = re.compile(r"\[([^\[\]]*)\]")


def name(value: str, what: str = "node") -> str:
    """A hostname-like label: it becomes a hostname, a URL part and a file name."""
    if not NAME_RE.match(value):
        raise UsageError(
            f"invalid {what} name {value!r}",
            hint="use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit",
        )
    return value


def mac(value: str) -> str:
    """A MAC address in canonical form (lower case, colon separated)."""
    text = value.strip().lower()
    if not MAC_RE.match(text):
        raise UsageError(f"invalid MAC address {value!r}", hint="write it as 52:54:00:12:34:56")
    digits = text.replace(":", "").replace("-", "")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def cidr(value: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise UsageError(f"invalid network {value!r}: {exc}", hint="write it as 10.0.0.0/24") from None
    if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 30:
        raise UsageError(f"unsupported network {value!r}", hint="an IPv4 network of /30 or larger")
    return net


def address(value: str, net: ipaddress.IPv4Network | None = None, what: str = "address") -> str:
    try:
        addr = ipaddress.IPv4Address(value)
    except ValueError:
        raise UsageError(f"invalid {what} {value!r}", hint="write an IPv4 address like 10.0.0.5") from None
    if net is not None and (addr not in net or addr in (net.network_address, net.broadcast_address)):
        raise UsageError(f"{what} {value} is not a host address of {net}", hint=f"pick one inside {net}")
    return str(addr)


def ip_range(value: str, net: ipaddress.IPv4Network, what: str = "range") -> tuple[str, str]:
    """START-END inside `net`."""
    start, sep, end = value.partition("-")
    if not sep:
        raise UsageError(f"invalid {what} {value!r}", hint="write it as 10.0.0.10-10.0.0.200")
    first = address(start.strip(), net, f"{what} start")
    last = address(end.strip(), net, f"{what} end")
    if ipaddress.IPv4Address(first) > ipaddress.IPv4Address(last):
        raise UsageError(f"{what} {value!r} ends before it starts", hint="write START-END, START <= END")
    return first, last


def root_mode(value: str) -> str:
    """One of the contract's root modes. A mode on the roadmap that no agent can boot yet is
    refused by name, so no node is sent to a rescue shell by its inventory."""
    modes = ", ".join(names(RootMode))
    if value in PLANNED_ROOT_MODES:
        raise UsageError(
            f"root mode {value!r} ({PLANNED_ROOT_MODES[value]}) is not implemented in this swarmboot yet",
            hint=f"use one of: {modes}",
        )
    if value not in names(RootMode):
        raise UsageError(f"invalid root mode {value!r}", hint=f"one of: {modes}")
    return value


def _expand_one(body: str, pattern: str) -> list[str]:
    items: list[str] = []
    for part in body.split(","):
        start, sep, end = part.partition("-")
        if not start.isdigit() or (sep and not end.isdigit()):
            raise UsageError(
                f"invalid range [{body}] in {pattern!r}",
                hint="write ranges as node[001-128] or node[1,3,5-7]",
            )
        if not sep:
            items.append(start)
            continue
        lo, hi = int(start), int(end)
        if lo > hi:
            raise UsageError(f"range [{part}] in {pattern!r} ends before it starts")
        if hi - lo >= MAX_EXPANSION:
            raise UsageError(f"range [{part}] in {pattern!r} is too large", hint=f"at most {MAX_EXPANSION}")
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        items.extend(str(i).zfill(width) for i in range(lo, hi + 1))
    return items


def expand(pattern: str) -> list[str]:
    """Expand a host list: `node[001-003]` → node001 node002 node003; several brackets multiply."""
    pieces: list[list[str]] = []
    pos = 0
    for match in _BRACKET.finditer(pattern):
        pieces.append([pattern[pos : match.start()]])
        pieces.append(_expand_one(match.group(1), pattern))
        pos = match.end()
    pieces.append([pattern[pos:]])
    if "[" in pattern[pos:] or "]" in pattern[pos:] or any("[" in p[0] or "]" in p[0] for p in pieces[::2]):
        raise UsageError(f"unbalanced brackets in {pattern!r}", hint="write ranges as node[001-128]")
    total = 1
    for piece in pieces:
        total *= len(piece)
    if total > MAX_EXPANSION:
        raise UsageError(f"{pattern!r} expands to {total} names", hint=f"at most {MAX_EXPANSION}")
    names = ["".join(combo) for combo in itertools.product(*pieces)]
    if len(set(names)) != len(names):
        raise UsageError(f"{pattern!r} expands to duplicate names")
    return names


def expand_all(patterns: list[str]) -> list[str]:
    names: list[str] = []
    for pattern in patterns:
        names.extend(expand(pattern))
    return names
