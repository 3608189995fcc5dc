"""Checks of user input (names, MACs, addresses, ranges) and host-list expansion (`node[001-128]`).

Every function raises UsageError with a hint saying what a valid value looks like.
"""

from __future__ import annotations

import ipaddress
import itertools
import re

from ground.contract.sets import PLANNED_ROOT_MODES, RootMode, names
from ground.errors import UsageError
from ground.inputs import bad_text, digits

# Matched with fullmatch: `$` would also accept a trailing newline.
NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MAC_RE = re.compile(r"[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}")
DOMAIN_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MAX_EXPANSION = 100_000
MAX_TEXT = 1 << 20  # scripts, templates: 1 MiB each
MAX_LINE = 4096  # one-line values: kernel arguments, consoles, descriptions, …
_BRACKET = re.compile(r"\[([^\[\]]*)\]")


def text(value: str, what: str, *, multiline: bool = False) -> str:
    """Text that can be stored and put into generated files as it is: valid Unicode, no NUL and
    (unless multiline) no control character at all: a newline in a kernel argument or a domain
    would add a line of its own to an iPXE script, dnsmasq.conf or /etc/hosts."""
    problem = bad_text(value, multiline=multiline)
    if problem:
        raise UsageError(
            f"{what}: {value[:60]!r} is refused: {problem}",
            hint="give it as plain text" + ("" if multiline else " on one line, without control characters"),
        )
    limit = MAX_TEXT if multiline else MAX_LINE
    if len(value) > limit:
        raise UsageError(f"{what}: {len(value)} characters, at most {limit}")
    return value


def domain(value: str, what: str = "domain") -> str:
    """A DNS domain name (labels of letters, digits and '-', separated by dots), lower case."""
    text(value, what)
    name_ = value.strip().rstrip(".").lower()
    labels = name_.split(".")
    if len(name_) > 253 or not all(DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise UsageError(
            f"invalid {what} {value!r}",
            hint="a DNS name such as cluster.example.org: labels of letters, digits and '-', "
            "separated by dots",
        )
    return name_


def name(value: str, what: str = "node") -> str:
    """A hostname-like label: it becomes a hostname, a URL part and a file name."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise UsageError(
            f"invalid {what} name {value!r}",
            hint="use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit",
        )
    return value


def mac(value: str) -> str:
    """A MAC address in canonical form (lower case, colon separated)."""
    lowered = value.strip().lower() if isinstance(value, str) else ""
    if not MAC_RE.fullmatch(lowered):
        raise UsageError(f"invalid MAC address {value!r}", hint="write it as 52:54:00:12:34:56")
    hexdigits = lowered.replace(":", "").replace("-", "")
    return ":".join(hexdigits[i : i + 2] for i in range(0, 12, 2))


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
        if not digits(start) or (sep and not digits(end)):
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
        if len(start) > 9 or len(end) > 9 or hi - lo >= MAX_EXPANSION:
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
