"""The boot plan: the one contract between the server and the boot agent.

The server answers `GET /api/v1/plan?mac=…` (or `?node=NAME`) with `BootPlan.to_dict()` as JSON;
the agent turns that JSON back into a BootPlan with `BootPlan.from_dict()` and needs nothing else.
The server imports this module; this module imports nothing from the server (stdlib only: it is
frozen into the initramfs).

Compatibility rules:
- `version` is PLAN_VERSION. The agent refuses a plan whose major version it does not know.
- Unknown fields are ignored (a newer server may add fields).
- A missing required field, or a value of the wrong type, is a PlanError naming the field path.
- Optional fields have defaults here; the server may leave them out.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

PLAN_VERSION = 1

RootMode = Literal["overlay", "tmpfs", "nfs", "disk"]
ImageFormat = Literal["squashfs", "tar.zst"]


class PlanError(ValueError):
    """The plan document is not a valid boot plan. The message names the offending field."""


@dataclass(frozen=True)
class Interface:
    """A network interface of the node. `address` is CIDR ("10.0.0.5/24"); empty means DHCP."""

    mac: str
    name: str = ""  # the name in the booted system (e.g. "eth0"); empty: keep the kernel's name
    address: str = ""
    gateway: str = ""
    dns: tuple[str, ...] = ()
    mtu: int = 0  # 0: leave the default
    boot: bool = False  # the interface the node PXE-booted from


@dataclass(frozen=True)
class NodeInfo:
    name: str
    hostname: str
    group: str
    domain: str = ""


@dataclass(frozen=True)
class ImageRef:
    """One packed, immutable image version, and where to get it."""

    name: str
    version: int
    format: ImageFormat
    size: int
    sha256: str
    torrent_url: str
    http_url: str  # the image file itself over HTTP (also the torrent's BEP 19 web seed)
    info_hash: str = ""
    kernel_version: str = ""


@dataclass(frozen=True)
class Partition:
    """One partition of a declarative disk layout (used by the `disk` root mode)."""

    label: str
    size: str  # "512MiB", "20GiB", or "rest"
    fs: str = "ext4"  # ext4, xfs, vfat, swap, none
    mountpoint: str = ""
    keep: bool = False  # never reformat nor move this partition


@dataclass(frozen=True)
class RootSpec:
    """How the agent builds the root at /sysroot, with the mode's parameters."""

    mode: RootMode = "overlay"
    tmpfs_size: str = "75%"  # size of the tmpfs (tmpfs mode) or of the overlay's upper layer
    nfs_export: str = ""  # nfs mode: SERVER:/path of a read-only export of the unpacked image
    disk: str = ""  # disk mode: the target device ("/dev/sda", or "auto": the first disk)
    partitions: tuple[Partition, ...] = ()
    keep_cache: bool = True  # disk mode: reuse an image copy cached on disk when its hash matches


@dataclass(frozen=True)
class Scripts:
    """Shell scripts run by the agent; empty means nothing to run."""

    pre: str = ""
    part: str = ""
    post: str = ""
    timeout: int = 600  # seconds each script may run before the boot stops (agent: bounded waits)


@dataclass(frozen=True)
class NodeFile:
    """A file the agent writes into the booted system, already rendered for this node."""

    path: str
    content: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"


@dataclass(frozen=True)
class Reporting:
    """Where the agent reports its stages and heartbeats."""

    events_url: str
    heartbeat_seconds: int = 10


@dataclass(frozen=True)
class TorrentOptions:
    """Swarm behaviour the server may tune per group; defaults suit a LAN."""

    seed_until_switch_root: bool = True
    max_download_seconds: int = 1800  # give up (rescue shell) after this long
    stall_seconds: int = 120  # give up when nothing arrives for this long
    # The image's pieces are split into `stripes` stripes (0: no hint); this node fetches stripe
    # `stripe` from the server first and passes it on (-1: a leaf, it gets everything from peers).
    stripe: int = -1
    stripes: int = 0


@dataclass(frozen=True)
class BootPlan:
    version: int
    node: NodeInfo
    image: ImageRef
    reporting: Reporting
    interfaces: tuple[Interface, ...] = ()
    root: RootSpec = field(default_factory=RootSpec)
    scripts: Scripts = field(default_factory=Scripts)
    files: tuple[NodeFile, ...] = ()
    ssh_authorized_keys: tuple[str, ...] = ()
    kernel_args: str = ""
    torrent: TorrentOptions = field(default_factory=TorrentOptions)
    service: bool = False  # the server asks this node to stop in service mode

    @classmethod
    def from_dict(cls, data: Any) -> BootPlan:
        if not isinstance(data, dict):
            raise PlanError(f"the plan must be a JSON object, not {type(data).__name__}")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise PlanError("plan.version: required integer field is missing or not an integer")
        if version != PLAN_VERSION:
            raise PlanError(
                f"plan.version is {version}, this agent understands version {PLAN_VERSION}: "
                "rebuild the image's initramfs with the server's swarmboot version"
            )
        return _decode(cls, data, "plan")

    def to_dict(self) -> dict[str, Any]:
        return _encode(self)


# --- a small typed decoder for frozen dataclasses (stdlib only) -------------------------------


def _decode(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise PlanError(f"{path}: must be an object, not {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _decode(hints[f.name], value[f.name], f"{path}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise PlanError(f"{path}.{f.name}: required field is missing")
        return tp(**kwargs)
    if origin is Literal:
        if value not in get_args(tp):
            allowed = ", ".join(repr(a) for a in get_args(tp))
            raise PlanError(f"{path}: {value!r} is not one of {allowed}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise PlanError(f"{path}: must be a list, not {type(value).__name__}")
        (item,) = get_args(tp)[:1]
        return tuple(_decode(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (Union, types.UnionType):
        errors = []
        for option in get_args(tp):
            try:
                return _decode(option, value, path)
            except PlanError as exc:
                errors.append(str(exc))
        raise PlanError("; ".join(errors))
    if tp is type(None):
        if value is not None:
            raise PlanError(f"{path}: must be null")
        return None
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    raise PlanError(f"{path}: must be {getattr(tp, '__name__', tp)}, not {type(value).__name__} {value!r}")


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value
