"""A real `swarmboot serve` on loopback for tests, and the `swarmboot` CLI on a test's home.

    with running_server(home) as srv:          # SWARMBOOT_HOME=home, --listen 127.0.0.1:0
        requests.get(srv.url + "/boot/ipxe", params={"mac": mac})
        srv.admin("stats")                      # GET /api/v1/admin/stats with the admin token

The server process itself is lab/server_process.py's (the one helper tests, lab and benchmarks
share); here: loopback, the seeder on a free port, environment variables as keyword arguments.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ground import run as runmod
from lab import server_process
from lab.server_process import ServerProcess, home_env, swarmboot_command, token_in

__all__ = ["ServerProcess", "boot_token", "cli", "cli_env", "running_server", "token_headers", "wait_for"]


def boot_token(srv: ServerProcess, mac: str, address: str = "") -> str:
    """What a node gets when it boots: its iPXE script (from the server, as iPXE asks for it), and
    in it this boot's token (kernel argument swarmboot.token). The node must have no reserved
    address, or the script must be asked for from it: the server gives no token to another
    address. `address`: the node's own, sent as X-Forwarded-For (the server must trust loopback
    as a proxy: SWARMBOOT_TRUSTED_PROXIES=127.0.0.1)."""
    import requests

    headers = {"X-Forwarded-For": address} if address else {}
    script = requests.get(f"{srv.url}/boot/ipxe", params={"mac": mac}, headers=headers, timeout=30).text
    token = token_in(script)
    assert token, f"no swarmboot.token in the iPXE script of {mac}:\n{script}"
    return token


def token_headers(token: str) -> dict[str, str]:
    from ground.contract.cmdline import TOKEN_HEADER

    return {TOKEN_HEADER: token}


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    return home_env(home, **extra)


def cli(home: Path, *args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run `swarmboot ARGS…` against the inventory in `home`."""
    return runmod.run([*swarmboot_command(), *args], env=cli_env(home, **extra), check=check, timeout=120)


@contextlib.contextmanager
def running_server(home: Path, *extra_args: str, timeout: float = 60, **env: str) -> Iterator[ServerProcess]:
    """`swarmboot serve` on 127.0.0.1 (a free port; the seeder too) with `env` in its environment."""
    with server_process.running_server(
        home, *extra_args, timeout=timeout, env={"SWARMBOOT_SEEDER_LISTEN": "127.0.0.1:0", **env}
    ) as srv:
        yield srv


def wait_for(predicate: Any, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll `predicate()` until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
