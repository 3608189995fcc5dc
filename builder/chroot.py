"""Run commands inside an image tree, every mount in a private mount namespace.

`run_in_image` runs a command and returns (hooks, dracut); `exec_in_image` replaces this process
with it (lchroot, keeping the image lock's file descriptor open so the lock lives exactly as long
as the command). Both start `unshare --mount --propagation private -- python -m builder.nsroot`,
which mounts, chroots and execs (see builder/nsroot.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from ground.run import SYSTEM_PATH, require_tool, run


@dataclass(frozen=True)
class ChrootSpec:
    """How to enter one image tree."""

    root: Path
    kernel_version: str | None = None  # what `uname -r` reports inside
    label: str = ""  # shown in the shell prompt (Debian's $debian_chroot)
    binds: tuple[tuple[Path, str], ...] = ()  # (host path, path inside), read-write
    binds_ro: tuple[tuple[Path, str], ...] = ()  # read-only
    env: Mapping[str, str] = field(default_factory=dict)


def chroot_env(spec: ChrootSpec, interactive: bool = False) -> dict[str, str]:
    """The environment of the command inside: minimal, plus the caller's additions."""
    env = {
        "PATH": SYSTEM_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": os.environ.get("TERM", "dumb") if interactive else "dumb",
        "debian_chroot": spec.label or spec.root.parent.name,
    }
    if not interactive:
        env["DEBIAN_FRONTEND"] = "noninteractive"
    env.update(spec.env)
    return env


def namespace_argv(spec: ChrootSpec, command: Sequence[str], contained: bool = False) -> list[str]:
    """`unshare … python -m builder.nsroot … -- COMMAND`. `contained`: also a private PID
    namespace whose first process dies with us (setpriv --pdeathsig: even when we are killed with
    SIGKILL; unshare --kill-child), and with it everything the command started (dracut's helpers
    included): no orphan survives an interrupted pack."""
    argv = [require_tool("unshare"), "--mount", "--propagation", "private"]
    if contained:
        argv = [require_tool("setpriv"), "--pdeathsig", "KILL", "--", *argv, "--pid", "--kill-child=SIGKILL"]
    argv += ["--", sys.executable, "-m", "builder.nsroot", "--root", str(spec.root)]
    if spec.kernel_version:
        argv += ["--kernel", spec.kernel_version]
    for host, inside in spec.binds:
        argv += ["--bind", f"{host}:{inside}"]
    for host, inside in spec.binds_ro:
        argv += ["--bind-ro", f"{host}:{inside}"]
    return [*argv, "--", *command]


def _python_env(env: dict[str, str]) -> dict[str, str]:
    """nsroot is Python: let it find this installation's packages whatever sys.path says."""
    here = str(Path(__file__).resolve().parent.parent)
    merged = dict(env)
    merged["PYTHONPATH"] = here
    merged["PYTHONDONTWRITEBYTECODE"] = "1"
    return merged


def run_in_image(
    spec: ChrootSpec,
    command: Sequence[str],
    *,
    timeout: float | None = 3600,
    capture: bool = True,
    check: bool = True,
    stdout: int | None = None,
    stderr: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `command` inside the image and wait for it."""
    return run(
        namespace_argv(spec, command, contained=True),
        env=_python_env(chroot_env(spec)),
        timeout=timeout,
        capture=capture,
        check=check,
        stdout=stdout,
        stderr=stderr,
    )


def exec_in_image(spec: ChrootSpec, command: Sequence[str], keep_fds: Sequence[int] = ()) -> NoReturn:
    """Become `command` inside the image; `keep_fds` (the lock) stay open in it."""
    for fd in keep_fds:
        os.set_inheritable(fd, True)
    argv = namespace_argv(spec, command)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, _python_env(chroot_env(spec, interactive=True)))
