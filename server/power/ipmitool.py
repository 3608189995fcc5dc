"""IPMI over LAN (lanplus: IPMI 2.0, RMCP+) through Debian's ipmitool, one process per node
(setting `ipmi_client = "ipmitool"`; the default is pyghmi, in process: server/power/ipmi.py).

The password goes to ipmitool in its environment (`-E` reads IPMI_PASSWORD), never on its
command line, where any user could read it in `ps`. Each call is one ipmitool process bounded by
the per-node timeout; ipmitool's own retries (-R) and per-try timeout (-N) fit inside it.
"""

from __future__ import annotations

import re

from ground import run as runmod
from ground.errors import CommandError, CommandTimeout
from server.power.base import Action, Driver, PowerError, Target, require_address

IPMI_ACTIONS = {
    Action.ON: "on",
    Action.OFF: "off",
    Action.CYCLE: "cycle",
    Action.RESET: "reset",
    Action.STATUS: "status",
}
STATUS_RE = re.compile(r"Chassis Power is (on|off)", re.IGNORECASE)


def split_address(address: str, default_port: int = 623) -> tuple[str, int]:
    """HOST, HOST:PORT or [IPv6]:PORT -> (host, port)."""
    host, port = address, default_port
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif address.count(":") == 1:
        host, _, text = address.partition(":")
        if not text.isdigit():
            raise PowerError(f"BMC address {address!r}: the port is not a number")
        port = int(text)
    return host, port


def ipmitool_argv(target: Target, action: Action, timeout: float, cipher_suite: int = 3) -> list[str]:
    """The command line (no password on it: `-E`). Naming the cipher suite spares ipmitool its
    cipher-suite discovery (which some BMCs, ipmi_sim among them, never answer)."""
    host, port = split_address(target.address)
    per_try = max(1, int(timeout // 3))
    argv = ["ipmitool", "-I", "lanplus", "-H", host, "-p", str(port), "-N", str(per_try), "-R", "2"]
    if cipher_suite >= 0:
        argv += ["-C", str(cipher_suite)]
    if target.user:
        argv += ["-U", target.user]
    argv += ["-E", "chassis", "power", IPMI_ACTIONS[action]]
    return argv


class IpmitoolDriver(Driver):
    method = "ipmitool"

    def act(self, target: Target, action: Action) -> tuple[str, str]:
        require_address(target)
        argv = ipmitool_argv(target, action, self.timeout, self.options.get("cipher_suite", 3))
        env = runmod.base_env({"IPMI_PASSWORD": target.password})
        try:
            result = runmod.run(argv, timeout=self.timeout, env=env)
        except CommandTimeout:
            raise PowerError(f"the BMC {target.address} did not answer within {self.timeout:.0f} s") from None
        except CommandError as exc:
            lines = (exc.stderr or exc.stdout).strip().splitlines()
            said = target.redact(lines[-1] if lines else f"exit code {exc.returncode}")
            raise PowerError(f"ipmitool {IPMI_ACTIONS[action]} on {target.address}: {said}") from None
        text = target.redact(result.stdout.strip())
        match = STATUS_RE.search(text)
        if action is Action.STATUS:
            if match is None:
                raise PowerError(f"ipmitool on {target.address} gave no power state: {text[:200]!r}")
            return match.group(1).lower(), text
        power = {Action.ON: "on", Action.OFF: "off"}.get(action, "")
        return power, text
