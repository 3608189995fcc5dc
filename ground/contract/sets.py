"""The closed sets the server and the agent share, defined once: root modes, image formats,
stages and event statuses. Inventory validation, the CLI's choices, the plan's decoder and the
agent's registries all derive from these (tests/unit/test_contract.py checks that the agent has an
implementation for every member, and no implementation outside them).

A member joins a set only together with its implementation in the agent; until then the
inventory refuses it with a message saying so (`PLANNED_ROOT_MODES`).
"""

from __future__ import annotations

from enum import StrEnum


class RootMode(StrEnum):
    """How the agent builds the booted system's root (docs/design.md, "Root modes")."""

    OVERLAY = "overlay"  # squashfs (loop) + overlayfs with a tmpfs upper layer
    TMPFS = "tmpfs"  # tar.zst unpacked into a tmpfs
    DISK = "disk"  # installed to the node's local disk (the group's layout), booted from it after
    NFS = "nfs"  # the server's read-only NFS export of the packed version + overlayfs, tmpfs upper


# Root modes on the roadmap that no agent can boot yet: the inventory names them in its refusal.
PLANNED_ROOT_MODES: dict[str, str] = {}


class ImageFormat(StrEnum):
    """How a packed version's image file is made (builder) and read (agent)."""

    SQUASHFS = "squashfs"
    TAR_ZST = "tar.zst"


# The image format each root mode reads.
ROOT_MODE_FORMATS: dict[RootMode, tuple[ImageFormat, ...]] = {
    RootMode.OVERLAY: (ImageFormat.SQUASHFS,),
    RootMode.TMPFS: (ImageFormat.TAR_ZST,),
    RootMode.DISK: (ImageFormat.SQUASHFS, ImageFormat.TAR_ZST),
    RootMode.NFS: (ImageFormat.SQUASHFS,),  # the server exports the squashfs, loop-mounted
}


class ReinstallPolicy(StrEnum):
    """When an installed node (root mode `disk`) installs again instead of booting its disk."""

    ON_NEW_VERSION = "on-new-version"  # when its group's image version is not the installed one
    MANUAL = "manual"  # only when told (swarmboot node set NODE --reinstall)


class Stage(StrEnum):
    """The agent's stages, in boot order. `service` runs only in service mode; `part` only with
    something to partition. `swarmboot.break=STAGE` stops before any but the first."""

    CMDLINE = "cmdline"
    NETWORK = "network"
    PLAN = "plan"
    SERVICE = "service"
    PRE = "pre"
    PART = "part"
    DOWNLOAD = "download"
    ROOT = "root"
    FILES = "files"
    POST = "post"
    HANDOVER = "handover"


BREAKABLE: tuple[Stage, ...] = tuple(s for s in Stage if s is not Stage.CMDLINE)


# What an event (POST /api/v1/nodes/NAME/events) may be about: the agent's stages and what
# happens around them, made from Stage so that every stage can be reported.
EventStage = StrEnum(
    "EventStage",
    [
        ("IPXE", "ipxe"),  # recorded by the server when a node fetches its iPXE script
        *((s.name, s.value) for s in Stage),
        ("RESCUE", "rescue"),  # the rescue shell after a failure
        ("HEARTBEAT", "heartbeat"),
        ("BOOTED", "booted"),  # sent by the booted system
        ("SEED", "seed"),  # the booted system's seeding service: start, then done with what it sent
    ],
)


class EventStatus(StrEnum):
    START = "start"
    PROGRESS = "progress"
    DONE = "done"
    FAILED = "failed"
    HEARTBEAT = "heartbeat"


def names(members: type[StrEnum]) -> tuple[str, ...]:
    """The values of a set, in its order (for choices, messages, validation)."""
    return tuple(m.value for m in members)
