"""The one place that starts external processes.

Rules (see docs/design.md): argv lists only, never a shell string; a minimal environment
(LANG=C.UTF-8) unless the caller passes one; stdin closed unless input is given; the child is
terminated and reaped on Ctrl-C or timeout; a failure raises CommandError showing the exact
command and its stderr. Stdlib only: the frozen boot agent uses this module too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from swarmboot.errors import CommandError, MissingToolError, SwarmbootError

# The Debian package that provides each external program we call, for "not installed" messages.
TOOL_PACKAGES: dict[str, str] = {
    "mmdebstrap": "mmdebstrap",
    "debootstrap": "debootstrap",
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "zstd": "zstd",
    "tar": "tar",
    "cpio": "cpio",
    "unshare": "util-linux",
    "chroot": "coreutils",
    "mount": "mount",
    "umount": "mount",
    "losetup": "mount",
    "findmnt": "util-linux",
    "dnsmasq": "dnsmasq-base",
    "aria2c": "aria2",
    "transmission-show": "transmission-cli",
    "wrk": "wrk",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "ip": "iproute2",
    "tc": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "mkfs.ext4": "e2fsprogs",
    "sfdisk": "fdisk",
    "dracut": "dracut (inside the image)",
}

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal, predictable environment for child processes."""
    env = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PATH": os.environ.get("PATH", SYSTEM_PATH)}
    for key in ("HOME", "TERM", "SWARMBOOT_HOME", "SWARMBOOT_CONFIG", "http_proxy", "https_proxy"):
        if key in os.environ:
            env[key] = os.environ[key]
    if extra:
        env.update(extra)
    return env


def require_tool(name: str) -> str:
    """The absolute path of program `name`, or MissingToolError naming its Debian package."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":" + SYSTEM_PATH)
    if path is None:
        raise MissingToolError(name, TOOL_PACKAGES.get(name, name))
    return path


def _argv(argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(argv, str | bytes):
        raise TypeError("run() takes an argv list, not a string")
    return [os.fspath(a) for a in argv]


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    capture: bool = True,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion and return its result (text mode).

    capture=True collects stdout and stderr; capture=False lets them through to ours (progress
    bars), in which case a failure's message cannot show stderr. `env` replaces the environment
    completely; `extra_env` adds to the minimal one.
    """
    args = _argv(argv)
    if os.sep not in args[0]:
        require_tool(args[0])
    child_env = dict(env) if env is not None else base_env(extra_env)
    text_input = input.decode() if isinstance(input, bytes) else input
    out = stdout if stdout is not None else (subprocess.PIPE if capture else None)
    err = stderr if stderr is not None else (subprocess.PIPE if capture else None)
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if text_input is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=child_env,
            cwd=cwd,
            text=True,
            start_new_session=False,
        )
    except FileNotFoundError as exc:
        raise MissingToolError(args[0], TOOL_PACKAGES.get(Path(args[0]).name, args[0])) from exc
    try:
        output, errors = proc.communicate(text_input, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise CommandError(args, -1, f"timed out after {timeout} s") from None
    except BaseException:
        stop(proc)
        raise
    result = subprocess.CompletedProcess(args, proc.returncode, output or "", errors or "")
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, result.stderr, result.stdout)
    return result


def output(argv: Sequence[str | os.PathLike[str]], **kwargs: object) -> str:
    """Run a command and return its stdout, stripped."""
    return run(argv, **kwargs).stdout.strip()  # type: ignore[arg-type]


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdout: int | object | None = subprocess.DEVNULL,
    stderr: int | object | None = None,
    new_session: bool = True,
) -> subprocess.Popen[bytes]:
    """Start a long-running process (a server, a VM) and return it; pair with stop()."""
    args = _argv(argv)
    if os.sep not in args[0]:
        require_tool(args[0])
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=stdout,  # type: ignore[arg-type]
        stderr=stderr,  # type: ignore[arg-type]
        env=dict(env) if env is not None else base_env(extra_env),
        cwd=cwd,
        start_new_session=new_session,
    )


def stop(proc: subprocess.Popen, grace: float = 5.0) -> int | None:  # type: ignore[type-arg]
    """Terminate a process we started (by its PID, then its process group if it leads one), then reap it."""
    if proc.poll() is not None:
        return proc.returncode
    _signal(proc, signal.SIGTERM)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired as exc:
            raise SwarmbootError(f"process {proc.pid} ({proc.args!r}) did not exit after SIGKILL") from exc


def _signal(proc: subprocess.Popen, sig: int) -> None:  # type: ignore[type-arg]
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass
