"""The kernel command line: the agent's arguments, parsed by a function (never at import).

    root=swarmboot swarmboot.server=URL[,URL…] swarmboot.node=NAME swarmboot.mac=MAC
    [swarmboot.service=1] [swarmboot.break=STAGE] [swarmboot.debug=1]
    [swarmboot.plan_timeout=SECONDS] [swarmboot.rescue_timeout=SECONDS]

Unknown `swarmboot.*` keys are an error (a typo must not be silently ignored); other kernel
arguments are left alone.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bootagent.errors import CmdlineError

# The agent's stages, in boot order (docs/design.md). `swarmboot.break=STAGE` stops before one.
STAGES: tuple[str, ...] = (
    "cmdline",
    "network",
    "plan",
    "pre",
    "part",
    "download",
    "root",
    "files",
    "post",
    "handover",
)
BREAKABLE = STAGES[1:]

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
KNOWN = {"server", "node", "mac", "service", "break", "debug", "plan_timeout", "rescue_timeout"}
HINT = "fix the node's kernel arguments (the group's kernel_args, or the iPXE script) and reboot"


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
    root: str = ""


def read_cmdline(path: Path) -> AgentArgs:
    """Read and parse the kernel command line file (normally /proc/cmdline)."""
    try:
        text = path.read_text()
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
    raise CmdlineError(f"swarmboot.{key}={value!r}: must be 1 or 0", HINT)


def _seconds(key: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise CmdlineError(f"swarmboot.{key}={value!r}: must be a number of seconds", HINT) from None
    if not 0 < seconds <= 86400:
        raise CmdlineError(f"swarmboot.{key}={value!r}: must be between 0 and 86400 seconds", HINT)
    return seconds


def _server(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CmdlineError(f"swarmboot.server: {url!r} is not an http:// or https:// URL", HINT)
    return url.rstrip("/")


def parse_cmdline(text: str) -> AgentArgs:
    """Parse the swarmboot arguments out of a kernel command line; CmdlineError if one is bad."""
    values: dict[str, str] = {}
    root = ""
    for token in _split(text):
        key, _, value = token.partition("=")
        if key == "root":
            root = value
        if not key.startswith("swarmboot."):
            continue
        name = key[len("swarmboot.") :]
        if name not in KNOWN:
            raise CmdlineError(
                f"unknown kernel argument {key!r}", HINT + "; known: " + ", ".join(sorted(KNOWN))
            )
        values[name] = value  # the last one wins, like the kernel's own parameters
    if "server" not in values or not values["server"].strip(","):
        raise CmdlineError("swarmboot.server=URL is missing from the kernel command line", HINT)
    servers = tuple(_server(u) for u in values["server"].split(",") if u)
    node = values.get("node", "")
    if node and not NODE_RE.match(node):
        raise CmdlineError(f"swarmboot.node={node!r} is not a valid node name", HINT)
    mac = values.get("mac", "").lower().replace("-", ":")
    if mac and not MAC_RE.match(mac):
        raise CmdlineError(f"swarmboot.mac={values['mac']!r} is not a MAC address (aa:bb:cc:dd:ee:ff)", HINT)
    if not node and not mac:
        raise CmdlineError("neither swarmboot.node=NAME nor swarmboot.mac=MAC is given", HINT)
    break_at = values.get("break", "")
    if break_at and break_at not in BREAKABLE:
        raise CmdlineError(
            f"swarmboot.break={break_at!r} is not a stage", HINT + "; stages: " + " ".join(BREAKABLE)
        )
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
        root=root,
    )
