"""Start a real `swarmboot serve` on loopback for tests, and talk to it.

    with running_server(home) as srv:          # SWARMBOOT_HOME=home, --listen 127.0.0.1:0
        requests.get(srv.url + "/boot/ipxe", params={"mac": mac})
        srv.admin("stats")                      # GET /api/v1/admin/stats with the admin token

The server is a subprocess (its own event loop, its own seeder), started with the project's
`swarmboot` command, bound to a free port (port 0: the server prints the URL it got), and
stopped by PID at the end. Its log is kept in home/serve.log.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ground import run as runmod

URL_LINE = re.compile(r"swarmboot: serving on (http://\S+)")


def swarmboot_command() -> list[str]:
    script = Path(sys.executable).parent / "swarmboot"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from swarmboot.cli import main; sys.exit(main())"]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = runmod.base_env({"SWARMBOOT_HOME": str(home), "SWARMBOOT_CONFIG": str(home / "none.toml")})
    env.update(extra)
    return env


def cli(home: Path, *args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run `swarmboot ARGS…` against the inventory in `home`."""
    return runmod.run([*swarmboot_command(), *args], env=cli_env(home, **extra), check=check, timeout=120)


@dataclass
class ServerProcess:
    url: str
    home: Path
    proc: subprocess.Popen[bytes]

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def admin(self, path: str, method: str = "GET") -> Any:
        response = requests.request(
            method,
            f"{self.url}/api/v1/admin/{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def refresh(self) -> None:
        """Make the server pick up inventory/store changes now (it also does so every second)."""
        self.admin("refresh", method="POST")

    def log(self) -> str:
        return (self.home / "serve.log").read_text(errors="replace")


@contextlib.contextmanager
def running_server(home: Path, *extra_args: str, timeout: float = 60, **env: str) -> Iterator[ServerProcess]:
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "serve.log"
    log = log_path.open("wb")
    child_env = cli_env(home, SWARMBOOT_SEEDER_LISTEN="127.0.0.1:0", **env)
    proc = runmod.spawn(
        [*swarmboot_command(), "serve", "--listen", "127.0.0.1:0", *extra_args],
        env=child_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = _wait_for_url(proc, log_path, timeout)
        yield ServerProcess(url=url, home=home, proc=proc)
    finally:
        runmod.stop(proc, grace=10)
        log.close()


def _wait_for_url(proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log_path.read_text(errors="replace")
            raise RuntimeError(f"swarmboot serve exited ({proc.returncode}):\n{text}")
        if url is None:
            match = URL_LINE.search(log_path.read_text(errors="replace"))
            url = match.group(1) if match else None
        if url is not None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/healthz", timeout=2).text == "ok":
                    return url
        time.sleep(0.1)
    text = log_path.read_text(errors="replace")
    raise TimeoutError(f"swarmboot serve did not come up in {timeout} s:\n{text}")


def wait_for(predicate: Any, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll `predicate()` until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
