"""A node's serial console over IPMI Serial-over-LAN: ipmitool's `sol activate` on this terminal
(the password in its environment, never on its command line). `~.` ends it."""

from __future__ import annotations

from ground import run as runmod
from ground.errors import UsageError
from server.power.base import Method, Target, require_address
from server.power.ipmitool import split_address


def sol_argv(target: Target, cipher_suite: int = 3) -> list[str]:
    host, port = split_address(target.address)
    argv = ["ipmitool", "-I", "lanplus", "-H", host, "-p", str(port)]
    if cipher_suite >= 0:
        argv += ["-C", str(cipher_suite)]
    if target.user:
        argv += ["-U", target.user]
    return [*argv, "-E", "sol", "activate"]


def console(target: Target, cipher_suite: int = 3) -> int:
    """Attach this terminal to the node's serial console until `~.`; ipmitool's exit code."""
    if target.method != Method.IPMI:
        raise UsageError(
            f"node {target.node} is reached by {target.method}: its console needs IPMI Serial-over-LAN",
            hint=f"give it a BMC: swarmboot node set {target.node} --power ipmi --bmc-address …",
        )
    require_address(target)
    env = runmod.base_env({"IPMI_PASSWORD": target.password})
    child = runmod.spawn(sol_argv(target, cipher_suite), env=env, stdin=None, stdout=None, stderr=None,
                         new_session=False)
    with child:
        return child.wait(timeout=7 * 86400)
