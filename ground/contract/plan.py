"""The boot plan: the one contract between the server and the boot agent.

The server answers `GET /api/v1/plan?mac=…&plan_version=MAJOR.MINOR` (or `?node=NAME…`) with
`BootPlan.to_dict(minor)` as JSON; the agent turns that JSON back into a BootPlan with
`BootPlan.from_dict()` and needs nothing else. Stdlib only: it is frozen into the initramfs.

Versions and compatibility (as Ironic's agent negotiates its API version):
- A plan version is MAJOR.MINOR. The document carries `version` (the major, an integer: what
  every agent checks) and `minor`. PLAN_MAJOR.PLAN_MINOR is the newest this code speaks.
- The agent sends the version it speaks (`plan_version=1.0`); an agent that sends none is an
  agent from before negotiation, which speaks 1.0. The server renders for min(asked, its own):
  fields added in a later minor (`since(N)` in their metadata) are left out, and a feature an
  older agent lacks (a root mode of a later minor: ROOT_MODE_SINCE) is refused with a message
  that says to re-pack the image.
- The agent accepts any minor of its major and ignores unknown fields (a newer server may add
  them); it refuses another major with a message naming both.
- A missing required field, or a value of the wrong type, is a PlanError naming the field path.
- Golden documents (tests/data/plan-v1.0-*.json) pin the wire format: changing a field means
  changing them on purpose.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from ground.contract.layout import DiskLayout, KeptPartition
from ground.contract.sets import ImageFormat, RootMode
from ground.inputs import digits

PLAN_MAJOR = 1
PLAN_MINOR = 4  # 1.1: the disk root mode (issue 10); 1.2: node secrets, file encoding, seeder port
# (issue 13); 1.3: the nfs root mode (issue 11); 1.4: seeding after boot (issue 12)
LEGACY_VERSION = (1, 0)  # what an agent that does not say which version it speaks gets
PLAN_VERSION = PLAN_MAJOR  # the `version` field: the major

# The minor of the plan format in which each root mode appeared: an agent that speaks an older
# minor cannot boot it (tests/unit/test_contract.py: every mode has an entry).
DISK_SINCE = 1  # the disk root mode and its fields
SECRETS_SINCE = 2  # secret_files, NodeFile.encoding, torrent.seeder_port
NFS_SINCE = 3  # the nfs root mode and root.nfs
SEED_AFTER_BOOT_SINCE = 4  # torrent.seed_after_boot_seconds, seed_idle_seconds, seed_rate_limit
ROOT_MODE_SINCE: dict[RootMode, int] = {
    RootMode.OVERLAY: 0, RootMode.TMPFS: 0, RootMode.DISK: DISK_SINCE, RootMode.NFS: NFS_SINCE,
}


def since(minor: int) -> dict[str, int]:
    """Field metadata: the field exists from plan version PLAN_MAJOR.minor on."""
    return {"since": minor}


def format_version(major: int = PLAN_MAJOR, minor: int = PLAN_MINOR) -> str:
    return f"{major}.{minor}"


def parse_version(text: str) -> tuple[int, int]:
    """'1.3' -> (1, 3); '1' -> (1, 0). PlanError for anything else."""
    major, dot, minor = text.strip().partition(".")
    if len(text) > 16 or not digits(major) or (dot and not digits(minor)):
        raise PlanError(f"plan version {text!r} is not MAJOR.MINOR (e.g. {format_version()})")
    return int(major), int(minor or 0)


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
    # the packed kernel and initramfs (a disk install puts them into the installed /boot)
    kernel_url: str = field(default="", metadata=since(DISK_SINCE))
    initramfs_url: str = field(default="", metadata=since(DISK_SINCE))


@dataclass(frozen=True)
class NfsExport:
    """Where the nfs root mode mounts the packed version from: rendered by the server, which
    exports the version read-only (server/nfs.py). `server` is an IP address; `options` are
    the mount options besides ro, addr and port (e.g. "vers=4.2,proto=tcp,hard,timeo=100")."""

    server: str
    path: str
    port: int = 2049
    options: str = ""

    @property
    def source(self) -> str:
        return f"{self.server}:{self.path}"


@dataclass(frozen=True)
class RootSpec:
    """How the agent builds the root at /sysroot, with the mode's parameters."""

    mode: RootMode = RootMode.OVERLAY
    tmpfs_size: str = "75%"  # size of the tmpfs (tmpfs mode) or of the overlay's upper layer
    # disk mode: the group's layout (ground/contract/layout.py), and the kept partitions as this
    # node reported them after its last install (the agent refuses to go on if one changed)
    layout: DiskLayout | None = field(default=None, metadata=since(DISK_SINCE))
    kept: tuple[KeptPartition, ...] = field(default=(), metadata=since(DISK_SINCE))
    nfs: NfsExport | None = field(default=None, metadata=since(NFS_SINCE))  # nfs mode: the export


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
    encoding: str = field(default="", metadata=since(SECRETS_SINCE))  # "": the text itself; "base64": bytes


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
    # The port the server's seeder listens on (0: unknown): where the agent connects to it again
    # after a server restart, whatever the tracker knows by then (bootagent/recovery.py).
    seeder_port: int = field(default=0, metadata=since(SECRETS_SINCE))
    # After switch_root the booted system keeps seeding the verified image (a unit running the
    # agent's seeder from /run): at most this long (0: the node leaves the swarm at switch_root),
    # and it stops earlier once the tracker has had no incomplete peer for `seed_idle_seconds`.
    # `seed_rate_limit`: the booted node's upload cap in bytes/s (0: none). An agent of an older
    # minor gets none of these and stops seeding at switch_root.
    seed_after_boot_seconds: int = field(default=1800, metadata=since(SEED_AFTER_BOOT_SINCE))
    seed_idle_seconds: int = field(default=60, metadata=since(SEED_AFTER_BOOT_SINCE))
    seed_rate_limit: int = field(default=0, metadata=since(SEED_AFTER_BOOT_SINCE))


@dataclass(frozen=True)
class BootPlan:
    version: int  # the major version (PLAN_MAJOR)
    node: NodeInfo
    image: ImageRef
    reporting: Reporting
    minor: int = 0  # the minor version the server rendered
    interfaces: tuple[Interface, ...] = ()
    root: RootSpec = field(default_factory=RootSpec)
    scripts: Scripts = field(default_factory=Scripts)
    files: tuple[NodeFile, ...] = ()
    ssh_authorized_keys: tuple[str, ...] = ()
    kernel_args: str = ""
    torrent: TorrentOptions = field(default_factory=TorrentOptions)
    service: bool = False  # the server asks this node to stop in service mode
    # The node's secrets (the group's secret files, its SSH host keys): only in the plan fetched
    # with this boot's token, which that fetch uses up (docs/security.md).
    secret_files: tuple[NodeFile, ...] = field(default=(), metadata=since(SECRETS_SINCE))

    @classmethod
    def from_dict(cls, data: Any) -> BootPlan:
        if not isinstance(data, dict):
            raise PlanError(f"the plan must be a JSON object, not {type(data).__name__}")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise PlanError("plan.version: required integer field is missing or not an integer")
        if version != PLAN_MAJOR:
            raise PlanError(
                f"plan.version is {version}, this agent understands version {PLAN_MAJOR} "
                f"({format_version()}): rebuild the image's initramfs with the server's swarmboot "
                "version (swarmboot image pack)"
            )
        return _decode(cls, data, "plan")

    def to_dict(self, minor: int = PLAN_MINOR) -> dict[str, Any]:
        """The document for an agent that speaks PLAN_MAJOR.minor: later fields left out."""
        document = _encode(self, minor)
        document["minor"] = min(minor, PLAN_MINOR)
        return document


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
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in tp)
            raise PlanError(f"{path}: {value!r} is not one of {allowed}") from None
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


def encode(value: Any, minor: int = PLAN_MINOR) -> Any:
    """A plan's part (a dataclass, a tuple of them) as JSON data for PLAN_MAJOR.minor."""
    return _encode(value, minor)


_SCALARS = (str, int, float, bool)


@functools.cache
def _fields_at(cls: type, minor: int) -> tuple[str, ...] | None:
    """The names of a dataclass's fields that PLAN_MAJOR.minor has (None: not a dataclass)."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("since", 0) <= minor)


def _encode(value: Any, minor: int) -> Any:
    if value is None or type(value) in _SCALARS:  # the type itself: a str or int Enum is encoded below
        return value
    if isinstance(value, tuple | list):
        return [_encode(v, minor) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    names = _fields_at(type(value), minor)
    if names is not None:
        return {name: _encode(getattr(value, name), minor) for name in names}
    return value
