"""IPMI over LAN (lanplus: IPMI 2.0, RMCP+) with pyghmi, in this process: hundreds of sessions
share one socket loop, so `power status` for 500 BMCs costs milliseconds of CPU each instead of an
ipmitool process each (bench/power.py measures both). The password stays in memory.

pyghmi keeps a process-wide table of sessions being set up; a session that was logged out stays
in it and would be handed to the next Command for the same BMC (then fails with a TypeError), so
a stale one is dropped before each new session (`_forget_stale`).
"""

from __future__ import annotations

import logging
import threading

from server.power.base import Action, Driver, PowerError, Target, require_address
from server.power.ipmitool import split_address

log = logging.getLogger(__name__)
_SETUP_LOCK = threading.Lock()
CHASSIS_NETFN, CHASSIS_CONTROL = 0x00, 0x02
POWER_CYCLE = 0x02


def _forget_stale(host: str, user: str, password: str, port: int) -> None:
    from pyghmi.ipmi.private.session import Session

    key = (host, user, password, port, None)
    session = Session.initting_sessions.get(key)
    if session is not None and not getattr(session, "logged", 0):
        Session.initting_sessions.pop(key, None)


class IpmiDriver(Driver):
    method = "ipmi"

    def act(self, target: Target, action: Action) -> tuple[str, str]:
        from pyghmi import exceptions
        from pyghmi.ipmi import command

        require_address(target)
        host, port = split_address(target.address)
        try:
            with _SETUP_LOCK:
                _forget_stale(host, target.user, target.password, port)
            bmc = command.Command(
                bmc=host, userid=target.user, password=target.password, port=port, keepalive=False
            )
        except (exceptions.IpmiException, OSError) as exc:
            raise PowerError(
                f"IPMI session with {target.address} failed: {target.redact(str(exc))}"
            ) from None
        try:
            return self._do(bmc, action)
        except (exceptions.IpmiException, OSError) as exc:
            raise PowerError(f"IPMI {action} on {target.address}: {target.redact(str(exc))}") from None
        finally:
            try:
                bmc.ipmi_session.logout()
            except (exceptions.IpmiException, OSError) as exc:
                log.debug("IPMI logout from %s: %s", target.address, target.redact(str(exc)))

    @staticmethod
    def _do(bmc: object, action: Action) -> tuple[str, str]:
        if action is Action.STATUS:
            state = str(bmc.get_power()["powerstate"])  # type: ignore[attr-defined]
            return state, f"Chassis Power is {state}"
        if action is Action.CYCLE:
            response = bmc.raw_command(  # type: ignore[attr-defined]
                netfn=CHASSIS_NETFN, command=CHASSIS_CONTROL, data=(POWER_CYCLE,)
            )
            if response.get("error"):
                raise PowerError(f"power cycle refused: {response['error']}")
            return "", "Chassis Power Control: Cycle"
        wanted = {Action.ON: "on", Action.OFF: "off", Action.RESET: "reset"}[action]
        result = bmc.set_power(wanted, wait=False)  # type: ignore[attr-defined]
        if isinstance(result, dict) and result.get("error"):
            raise PowerError(f"power {wanted} refused: {result['error']}")
        return {Action.ON: "on", Action.OFF: "off"}.get(action, ""), f"Chassis Power Control: {wanted}"
