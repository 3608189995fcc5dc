"""What every power method shares: the actions, a node's target (address and credentials), the
result of one action on one node, and the registry of methods.

A Target's password never appears in its repr, in a Result or in an error message: `redact()`
takes it out of any text a method passes on (ipmitool's or a BMC's own words included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from ground.errors import SwarmbootError


class Action(StrEnum):
    ON = "on"
    OFF = "off"  # hard off (IPMI chassis power off, Redfish ForceOff)
    CYCLE = "cycle"  # off, then on
    RESET = "reset"  # hard reset (warm)
    STATUS = "status"


class Method(StrEnum):
    IPMI = "ipmi"
    REDFISH = "redfish"
    WOL = "wol"


class PowerError(SwarmbootError):
    """One node's power action failed (the message says why, without credentials)."""


@dataclass(frozen=True)
class Target:
    node: str
    method: str
    address: str = ""  # BMC address: HOST[:PORT] (IPMI), HOST[:PORT] or URL (Redfish)
    user: str = ""
    password: str = field(default="", repr=False)
    macs: tuple[str, ...] = ()  # Wake-on-LAN
    broadcast: str = ""  # Wake-on-LAN: the node network's broadcast address

    def redact(self, text: str) -> str:
        """`text` with the password (and the user's, if any) replaced by '***'."""
        if self.password:
            text = text.replace(self.password, "***")
        return text


@dataclass(frozen=True)
class Result:
    node: str
    method: str
    action: str
    ok: bool
    power: str = ""  # "on", "off" (status, and after an action when the method tells), "" unknown
    message: str = ""  # why it failed, or what the BMC said
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "method": self.method,
            "action": self.action,
            "ok": self.ok,
            "power": self.power,
            "message": self.message,
            "seconds": round(self.seconds, 3),
        }


class Driver:
    """One power method. Subclasses set `method` and implement `act`; they register themselves
    (`DRIVERS`), and `driver_for()` imports the module on lookup (no registration by import)."""

    method: ClassVar[str] = ""
    actions: ClassVar[tuple[Action, ...]] = tuple(Action)
    registry: ClassVar[dict[str, type[Driver]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.method:
            Driver.registry[cls.method] = cls

    def __init__(self, timeout: float, **options: Any) -> None:
        self.timeout = timeout
        self.options = options

    def act(self, target: Target, action: Action) -> tuple[str, str]:
        """Do `action`; return (power state after it or "" when unknown, a message)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the driver holds (HTTP sessions)."""


def require_address(target: Target) -> None:
    if not target.address:
        raise PowerError(
            f"node {target.node} has no BMC address",
            hint=f"swarmboot node set {target.node} --bmc-address ADDRESS --bmc-user USER --bmc-password …",
        )


MODULES: dict[str, str] = {
    Method.IPMI: "server.power.ipmi",
    "ipmitool": "server.power.ipmitool",
    Method.REDFISH: "server.power.redfish",
    Method.WOL: "server.power.wol",
}


def driver_class(method: str) -> type[Driver]:
    import importlib

    if method not in MODULES:
        raise PowerError(f"unknown power method {method!r}", hint="one of: " + ", ".join(MODULES))
    importlib.import_module(MODULES[method])
    return Driver.registry[method]
