"""`swarmboot serve` as a child process: the one helper the tests, the virtual lab and the
benchmarks start the real server with.

    with running_server(home, listen="127.0.0.1:0") as srv:     # on the host
        requests.get(srv.url + "/healthz")
    srv = start_server(home, listen="10.77.0.1:8080", namespace=ns, extra_args=("--dhcp-interface", "br0"))
    srv.admin("stats"); srv.stop()                                # inside a network namespace

The server runs the project's own `swarmboot` command with `home` as its SWARMBOOT_HOME and no
config file. It is ready when it printed its URL ("swarmboot: serving on URL") and `/healthz`
answers "ok" from where its clients are: the host, or inside the namespace (the host cannot reach
a namespace's addresses; a worker thread enters it, lab/nshttp.py). It is stopped by PID; its
output is kept in `log_path`.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground import run as runmod
from ground.contract.cmdline import PREFIX
from ground.errors import SwarmbootError
from lab.netns import Namespace
from lab.nshttp import NamespaceHttp, NamespaceHttpError, http_request

URL_LINE = re.compile(r"swarmboot: serving on (http://\S+)")
# the boot token on the kernel command line of a node's iPXE script (ground/contract/cmdline.py)
TOKEN_ARG = re.compile(rf"{re.escape(PREFIX)}token=([A-Za-z0-9_-]+)")


def token_in(script: str) -> str:
    """The boot token an iPXE script gives its node ("" for a script without one)."""
    match = TOKEN_ARG.search(script)
    return match.group(1) if match else ""


def urls_in(script: str, command: str) -> list[str]:
    """The URLs an iPXE script's `kernel` or `initrd` line tries, in order (`kernel A args ||
    kernel B args || goto failed`: a booted peer, then the server)."""
    lines = [line for line in script.splitlines() if line.startswith(command + " ")]
    if len(lines) != 1:
        raise ValueError(f"the iPXE script has {len(lines)} {command} lines:\n{script}")
    return [shlex.split(part)[1] for part in lines[0].split(" || ") if part.startswith(command + " ")]


class ServerProcessError(SwarmbootError):
    """`swarmboot serve` exited, did not come up in time, or did not answer a request."""


def swarmboot_command() -> list[str]:
    """The project's `swarmboot` command (beside this Python, or through it)."""
    script = Path(sys.executable).parent / "swarmboot"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from swarmboot.cli import main; sys.exit(main())"]


def home_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `swarmboot` command working on `home` (no config file, no site hooks)."""
    env = {
        "SWARMBOOT_HOME": str(home),
        "SWARMBOOT_CONFIG": str(home / "no-config-file.toml"),
        "SWARMBOOT_HOOKS_DIR": str(home / "no-site-hooks"),
    }
    return runmod.base_env({**env, **extra})


@dataclass
class ServerProcess:
    """A running `swarmboot serve`."""

    home: Path
    child: runmod.Child
    log_path: Path
    url: str = ""
    namespace: Namespace | None = None
    _nshttp: NamespaceHttp | None = field(default=None, repr=False)

    # -- requests from where the clients are -----------------------------------------------------
    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, bytes]:
        """(status, body) of a request to the server, from the host or from inside its namespace."""
        url = path if path.startswith("http") else self.url + path
        if self._nshttp is None:
            try:
                return http_request(url, method, headers or {}, data, timeout)
            except OSError as error:
                raise ServerProcessError(f"{method} {url}: {error}") from None
        try:
            return self._nshttp.request(url, method=method, headers=headers, data=data, timeout=timeout)
        except NamespaceHttpError as error:
            raise ServerProcessError(str(error)) from None

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def admin(self, path: str, method: str = "GET", timeout: float = 30.0) -> Any:
        """/api/v1/admin/PATH with the admin token; its JSON."""
        status, body = self.request(
            f"/api/v1/admin/{path}",
            method=method,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )
        if status != 200:
            raise ServerProcessError(f"{method} /api/v1/admin/{path}: HTTP {status}: {body[:300]!r}")
        return json.loads(body)

    def refresh(self) -> None:
        """Make the server pick up inventory/store changes now (it also does so every second)."""
        self.admin("refresh", method="POST")

    def healthy(self) -> bool:
        with contextlib.suppress(ServerProcessError):
            status, body = self.request("/healthz", timeout=2)
            return status == 200 and body.strip() == b"ok"
        return False

    # -- the process -----------------------------------------------------------------------------
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join("  | " + line for line in self.log().splitlines()[-lines:]) or "  | (no output)"

    def wait_ready(self, timeout: float) -> str:
        """Until the URL is printed and /healthz answers; the URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                raise ServerProcessError(f"swarmboot serve exited ({self.child.returncode}):\n{self.tail()}")
            if not self.url:
                match = URL_LINE.search(self.log())
                self.url = match.group(1) if match else ""
            if self.url and self.healthy():
                return self.url
            time.sleep(0.1)
        raise ServerProcessError(f"swarmboot serve did not come up in {timeout:.0f} s:\n{self.tail()}")

    def stop(self, grace: float = 15.0) -> None:
        """Stop the server by PID (SIGTERM, then SIGKILL after `grace`) and reap it."""
        self.child.stop(grace)
        if self._nshttp is not None:
            self._nshttp.close()
            self._nshttp = None


def start_server(
    home: Path,
    *,
    listen: str = "127.0.0.1:0",
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    namespace: Namespace | None = None,
    log_path: Path | None = None,
    timeout: float = 90.0,
) -> ServerProcess:
    """Start `swarmboot serve --listen LISTEN EXTRA_ARGS…` on `home` and wait until it is ready.
    `env` adds to home_env(home) (e.g. SWARMBOOT_SEEDER_LISTEN)."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = log_path or home / "serve.log"
    argv = [*swarmboot_command(), "serve", "--listen", listen, *extra_args]
    child_env = home_env(home, **(env or {}))
    with log_path.open("ab") as log:
        if namespace is not None:
            child = namespace.spawn(argv, env=child_env, stdout=log, stderr=subprocess.STDOUT)
        else:
            child = runmod.spawn(argv, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(
        home=home,
        child=child,
        log_path=log_path,
        namespace=namespace,
        _nshttp=NamespaceHttp(namespace.name) if namespace is not None else None,
    )
    try:
        server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running_server(
    home: Path, *extra_args: str, timeout: float = 90.0, **kwargs: Any
) -> Iterator[ServerProcess]:
    """start_server() for the length of a `with` block; stopped by PID at its end."""
    server = start_server(home, extra_args=extra_args, timeout=timeout, **kwargs)
    try:
        yield server
    finally:
        server.stop()
