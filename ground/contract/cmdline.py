"""The kernel command line: the agent's contract with the iPXE scripts the server renders.

    root=swarmboot swarmboot.server=URL[,URL…] swarmboot.node=NAME swarmboot.mac=MAC
    [swarmboot.service=1] [swarmboot.break=STAGE] [swarmboot.debug=1]
    [swarmboot.plan_timeout=SECONDS] [swarmboot.rescue_timeout=SECONDS] [swarmboot.token=TOKEN]
    [swarmboot.lldp_wait=SECONDS] [swarmboot.ip=IP:NETMASK:GATEWAY:DNS]

`swarmboot.token` is the per-boot token the server put into this node's iPXE script: the agent
sends it (header TOKEN_HEADER) with the plan request, which then carries the node's secrets (once:
the first such request uses it up), and with every event (docs/security.md).

`swarmboot.ip` is the address iPXE got by DHCP a moment before (`IPXE_ADDRESS`: iPXE expands it
when it runs the script): the initramfs sets it on the boot NIC itself instead of asking DHCP
again (dracut-module/90swarmboot: no `ip=dhcp` then). Empty (iPXE had none), or with an `ip=` of
the node's own, dracut's DHCP runs as before.

`ARGUMENTS` is the one list of the agent's arguments: the server renders with `boot_arguments()`,
the agent parses with `parse_cmdline()` (called from the agent's main, never at import).

Forward compatible: a deployed initramfs lives for months while the server is upgraded, so an
argument a newer server adds must not strand it. An unknown `swarmboot.*` argument is a warning
(`AgentArgs.warnings`: shown on the console and sent in the cmdline stage's report) and the boot
goes on; a bad value of a known argument is a CmdlineError that names it. Other kernel arguments
are left alone. A later argument wins over an earlier one, like the kernel's own parameters.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ground.contract.sets import BREAKABLE
from ground.errors import SwarmbootError

PREFIX = "swarmboot."
MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
NODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
TOKEN_HEADER = "X-Swarmboot-Token"  # how the agent sends swarmboot.token to the server
MAX_SECONDS = 86400.0
HINT = "fix the node's kernel arguments (the group's kernel_args, or the iPXE script) and reboot"


class CmdlineError(SwarmbootError):
    """A swarmboot.* kernel argument is missing or has a bad value."""


@dataclass(frozen=True)
class Argument:
    name: str  # after "swarmboot."
    value: str  # what it takes, for messages and docs
    help: str


ARGUMENTS: tuple[Argument, ...] = (
    Argument("server", "URL[,URL…]", "the servers, tried in turn (failover, jittered backoff)"),
    Argument("node", "NAME", "the node's name (this or mac is required)"),
    Argument("mac", "MAC", "the boot NIC's MAC; also who the node is"),
    Argument("service", "1|0", "stop in the initramfs with a shell and SSH"),
    Argument("break", "STAGE", "stop the same way before STAGE"),
    Argument("debug", "1|0", "debug messages on the console too"),
    Argument("plan_timeout", "SECONDS", "how long to keep asking for the boot plan (default 300)"),
    Argument("rescue_timeout", "SECONDS", "how long a rescue or service shell waits (default 3600)"),
    Argument("token", "TOKEN", "this boot's token from the server: the plan's secrets (once) and events"),
    Argument("lldp_wait", "SECONDS", "wait for an LLDP frame before the plan (default 0: what came)"),
    Argument("ip", "IP:NETMASK:GATEWAY:DNS", "iPXE's address for the boot NIC: no second DHCP (empty: DHCP)"),
)
# iPXE's own settings of the NIC it booted from, expanded when the script runs (server/ipxe.py)
IPXE_ADDRESS = "${netX/ip}:${netX/netmask}:${netX/gateway}:${netX/dns}"


@dataclass(frozen=True)
class StaticAddress:
    """swarmboot.ip: the boot NIC's address, as iPXE got it."""

    interface: ipaddress.IPv4Interface  # address/prefix
    gateway: str = ""
    dns: str = ""
KNOWN = frozenset(a.name for a in ARGUMENTS)


@dataclass(frozen=True)
class AgentArgs:
    servers: tuple[str, ...]
    node: str = ""
    mac: str = ""
    service: bool = False
    break_at: str = ""
    debug: bool = False
    plan_timeout: float = 300.0
    rescue_timeout: float = 3600.0
    lldp_wait: float = 0.0
    root: str = ""
    warnings: tuple[str, ...] = ()  # unknown swarmboot.* arguments, ignored
    token: str = ""  # swarmboot.token: this boot's token (plan secrets, events)
    address: StaticAddress | None = None  # swarmboot.ip: set it, no DHCP (None: dracut's DHCP did)


def boot_arguments(
    server_url: str, node: str, mac: str, *, service: bool = False, token: str = "", lldp_wait: int = 0,
    ipxe_address: bool = False,
) -> list[str]:
    """What the server's iPXE script puts on the kernel command line for the agent (`ipxe_address`:
    iPXE's address, which the initramfs then sets without DHCP)."""
    args = ["root=swarmboot", f"{PREFIX}server={server_url}"]
    if node:
        args.append(f"{PREFIX}node={node}")
    args.append(f"{PREFIX}mac={mac}")
    if service:
        args.append(f"{PREFIX}service=1")
    if token:
        args.append(f"{PREFIX}token={token}")
    if lldp_wait > 0:
        args.append(f"{PREFIX}lldp_wait={lldp_wait}")
    if ipxe_address:
        args.append(f"{PREFIX}ip={IPXE_ADDRESS}")
    return args


def read_cmdline(path: Path) -> AgentArgs:
    """Read and parse the kernel command line file (normally /proc/cmdline)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise CmdlineError(f"cannot read the kernel command line {path}: {exc}", HINT) from exc
    return parse_cmdline(text)


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _bool(key: str, value: str) -> bool:
    if value in ("", "1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise CmdlineError(f"{PREFIX}{key}={value!r}: must be 1 or 0", HINT)


def _seconds(key: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise CmdlineError(f"{PREFIX}{key}={value!r}: must be a number of seconds", HINT) from None
    if not 0 < seconds <= MAX_SECONDS:  # also refuses nan and inf
        raise CmdlineError(f"{PREFIX}{key}={value!r}: must be between 0 and 86400 seconds", HINT)
    return seconds


def _wait(key: str, value: str) -> float:
    """Seconds, 0 allowed (do not wait), at most 300."""
    if value.strip() in ("0", "0.0"):
        return 0.0
    seconds = _seconds(key, value)
    if seconds > 300:
        raise CmdlineError(f"{PREFIX}{key}={value!r}: at most 300 seconds", HINT)
    return seconds


def _server(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise CmdlineError(f"{PREFIX}server: {url!r} is not a valid URL ({exc})", HINT) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CmdlineError(f"{PREFIX}server: {url!r} is not an http:// or https:// URL", HINT)
    return url.rstrip("/")


def _address(value: str) -> StaticAddress | None:
    """swarmboot.ip=IP:NETMASK:GATEWAY:DNS; None when iPXE had no address (IP empty)."""
    ip, _, rest = value.partition(":")
    if not ip.strip():
        return None
    netmask, _, rest = rest.partition(":")
    gateway, _, dns = rest.partition(":")
    try:
        interface = ipaddress.IPv4Interface(f"{ip}/{netmask or 32}")
        for other in (gateway, dns):
            if other:
                ipaddress.IPv4Address(other)
    except ValueError as exc:
        raise CmdlineError(f"{PREFIX}ip={value!r}: not IP:NETMASK:GATEWAY:DNS ({exc})", HINT) from None
    return StaticAddress(interface, gateway, dns)


def parse_cmdline(text: str) -> AgentArgs:
    """Parse the swarmboot arguments out of a kernel command line; CmdlineError if one is bad."""
    values: dict[str, str] = {}
    unknown: list[str] = []
    root = ""
    for token in _split(text):
        key, _, value = token.partition("=")
        if key == "root":
            root = value
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        if name in KNOWN:
            values[name] = value
        elif key not in unknown:
            unknown.append(key)
    warnings = tuple(
        f"unknown kernel argument {key!r} ignored (a newer server's? this agent knows: "
        + ", ".join(sorted(KNOWN))
        + ")"
        for key in unknown
    )
    if "server" not in values or not values["server"].strip(","):
        raise CmdlineError(f"{PREFIX}server=URL is missing from the kernel command line", HINT)
    servers = tuple(_server(u) for u in values["server"].split(",") if u)
    node = values.get("node", "")
    if node and not NODE_RE.fullmatch(node):
        raise CmdlineError(f"{PREFIX}node={node!r} is not a valid node name", HINT)
    mac = values.get("mac", "").lower().replace("-", ":")
    if mac and not MAC_RE.fullmatch(mac):
        raise CmdlineError(f"{PREFIX}mac={values['mac']!r} is not a MAC address (aa:bb:cc:dd:ee:ff)", HINT)
    if not node and not mac:
        raise CmdlineError(f"neither {PREFIX}node=NAME nor {PREFIX}mac=MAC is given", HINT)
    token = values.get("token", "")
    if token and not TOKEN_RE.fullmatch(token):
        raise CmdlineError(f"{PREFIX}token: not a token (16-128 of A-Z a-z 0-9 _ -)", HINT)
    break_at = values.get("break", "")
    if break_at and break_at not in names_of_breakable():
        raise CmdlineError(
            f"{PREFIX}break={break_at!r} is not a stage", HINT + "; stages: " + " ".join(names_of_breakable())
        )
    address = None
    if "ip" in values and not _has_ip(text):
        try:
            address = _address(values["ip"])
        except CmdlineError as exc:  # the initramfs's hook asked DHCP instead (90swarmboot)
            warnings = (*warnings, f"{exc.message}: dracut's DHCP instead")
    return AgentArgs(
        servers=servers,
        node=node,
        mac=mac,
        service=_bool("service", values["service"]) if "service" in values else False,
        break_at=break_at,
        debug=_bool("debug", values["debug"]) if "debug" in values else False,
        plan_timeout=_seconds("plan_timeout", values["plan_timeout"]) if "plan_timeout" in values else 300.0,
        rescue_timeout=(
            _seconds("rescue_timeout", values["rescue_timeout"]) if "rescue_timeout" in values else 3600.0
        ),
        lldp_wait=_wait("lldp_wait", values["lldp_wait"]) if "lldp_wait" in values else 0.0,
        root=root,
        warnings=warnings,
        token=token,
        address=address,
    )


def _has_ip(text: str) -> bool:
    """An `ip=` of the node's own (the group's or node's kernel_args): dracut configures the NIC."""
    return any(token.startswith("ip=") for token in _split(text))


def names_of_breakable() -> tuple[str, ...]:
    return tuple(s.value for s in BREAKABLE)

