"""The one place that starts external processes.

Rules (see docs/design.md): argv lists only, never a shell string; a minimal environment
(LANG=C.UTF-8) unless the caller passes one; stdin closed unless input is given; every command
has a timeout (a required argument); the child is terminated and reaped on Ctrl-C or timeout. A
failure raises CommandError showing the exact command and its stderr; a timeout CommandTimeout,
with the output collected until then; a child killed by a signal says which signal.
Long-running children (`spawn`) are `Child` context managers that stop and reap them on exit.
Stdlib only: the frozen boot agent uses this module too.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import threading
import types
from collections.abc import Mapping, Sequence
from pathlib import Path

from ground.errors import CommandError, CommandTimeout, MissingToolError, SwarmbootError

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
    "setpriv": "util-linux",
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
# The children run() waits for right now (in any thread): stop_children() ends them, e.g. when the
# command is told to stop (SIGTERM) while a thread waits for dracut.
_RUNNING: set[subprocess.Popen[str]] = set()
_RUNNING_LOCK = threading.Lock()


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
    timeout: float,
    check: bool = True,
    capture: bool = True,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, at most `timeout` seconds, and return its result (text mode).

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
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    try:
        output, errors = proc.communicate(text_input, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        output, errors = _collected(proc)
        raise CommandTimeout(args, timeout, errors, output) from None
    except BaseException:
        stop(proc)
        raise
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    result = subprocess.CompletedProcess(args, proc.returncode, output or "", errors or "")
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, result.stderr, result.stdout)
    return result


def stop_children(grace: float = 2.0) -> int:
    """Stop every command run() is waiting for (in any thread); how many. For a SIGTERM handler:
    the threads waiting for them then see them fail and unwind."""
    with _RUNNING_LOCK:
        procs = list(_RUNNING)
    for proc in procs:
        with contextlib.suppress(SwarmbootError, OSError):
            stop(proc, grace)
    return len(procs)


def _collected(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """What a stopped child wrote before it was stopped (what `communicate` had read so far, and
    the rest of its pipes). A grandchild still holding a pipe open cannot make this block long."""
    try:
        output, errors = proc.communicate(timeout=5)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return "", ""
    return output or "", errors or ""


def output(argv: Sequence[str | os.PathLike[str]], *, timeout: float, **kwargs: object) -> str:
    """Run a command and return its stdout, stripped."""
    return run(argv, timeout=timeout, **kwargs).stdout.strip()  # type: ignore[arg-type]


class Child:
    """A long-running child process (a server, a VM, a seeder). As a context manager it is
    stopped and reaped on exit, whatever happens; `detach()` lets it outlive us on purpose."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._detached = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def args(self) -> list[str]:
        return list(self.proc.args)  # type: ignore[arg-type]

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def running(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        """Signal the child (e.g. SIGHUP: reload), unless it has exited already."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM (to its process group if it leads one), SIGKILL after `grace`, then reap."""
        return stop(self.proc, grace)

    def detach(self) -> int:
        """Leave the child running when this object goes out of scope; return its PID."""
        self._detached = True
        return self.proc.pid

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        if not self._detached:
            self.stop()

    def __repr__(self) -> str:
        state = "running" if self.proc.returncode is None else f"exited {self.proc.returncode}"
        return f"Child(pid={self.proc.pid}, {shlex.join(self.args)!r}, {state})"


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdout: int | object | None = subprocess.DEVNULL,
    stderr: int | object | None = None,
    new_session: bool = True,
    stdin: int | object | None = subprocess.DEVNULL,
) -> Child:
    """Start a long-running process; use the returned Child as a context manager (or stop() it).
    stdin is closed unless given (None: ours, for an interactive child such as a serial console);
    `stdin=subprocess.PIPE` (with stdout=PIPE) talks to it through `child.proc.stdin/stdout`."""
    args = _argv(argv)
    if os.sep not in args[0]:
        require_tool(args[0])
    try:
        proc = subprocess.Popen(
            args,
            stdin=stdin,  # type: ignore[arg-type]
            stdout=stdout,  # type: ignore[arg-type]
            stderr=stderr,  # type: ignore[arg-type]
            env=dict(env) if env is not None else base_env(extra_env),
            cwd=cwd,
            start_new_session=new_session,
        )
    except FileNotFoundError as exc:
        raise MissingToolError(args[0], TOOL_PACKAGES.get(Path(args[0]).name, args[0])) from exc
    return Child(proc)


def stop(proc: subprocess.Popen | Child, grace: float = 5.0) -> int | None:  # type: ignore[type-arg]
    """Terminate a process we started (by its PID, then its process group if it leads one), then reap it."""
    if isinstance(proc, Child):
        proc = proc.proc
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
