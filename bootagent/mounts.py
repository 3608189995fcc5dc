"""The agent's mounts and loop devices, undone newest first (the KIWI / diskimage-builder shape).

A MountStack sits on `contextlib.ExitStack`: each undo step is registered right after its side
effect succeeded, so a failure midway undoes exactly what was made. Unwinding tries every step,
collects the errors instead of stopping at the first (the caller shows them on the console and
in the report), and retries a busy unmount or loop detach within a bound before giving up (an
unmount still busy at the end is done lazily, and said so).

    stack = MountStack()
    with stack.guard():            # on an exception: unwind, errors added to it as notes
        stack.loop(file); stack.mount(...)
    ...                            # success: the mounts stay until stack.unwind()
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bootagent.errors import RootError
from ground.errors import CommandError
from ground.run import run

BUSY_RETRIES = 10
BUSY_DELAY = 0.3  # seconds, doubled each retry up to BUSY_DELAY_MAX: about 10 s in all
BUSY_DELAY_MAX = 2.0

# The root modes' own mounts (options the agent writes itself) go straight to mount(2), and their
# loop device is set up with two ioctls: in a TCG guest each `mount`/`losetup` process costs
# ~0.1 s, four of them in the overlay root. Other file systems (the disk mode's, with fstab
# options) go through mount(8), which knows every option.
DIRECT_TYPES = frozenset({"tmpfs", "overlay", "squashfs"})
FLAG_OPTIONS = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8}  # MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC
LOOP_SET_FD, LOOP_CTL_GET_FREE = 0x4C00, 0x4C82
LOOP_TRIES = 5  # another process may take the free loop device between the two ioctls


def mount_syscall(source: str, target: Path, fstype: str, options: str = "") -> None:
    """mount(2): `options` as mount(8)'s -o, of which ro/nosuid/nodev/noexec are flags and the rest
    the file system's data (OSError with the kernel's errno)."""
    flags, data = 0, []
    for option in filter(None, options.split(",")):
        if option in FLAG_OPTIONS:
            flags |= FLAG_OPTIONS[option]
        elif option != "rw":
            data.append(option)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    text = ",".join(data).encode() or None
    if libc.mount(source.encode(), str(target).encode(), fstype.encode(), flags, text) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def attach_loop(file: Path) -> str:
    """A free loop device with `file` behind it, read-only (what `losetup --find --show
    --read-only` does); its path."""
    backing = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for _ in range(LOOP_TRIES):
            control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
            try:
                device = f"/dev/loop{fcntl.ioctl(control, LOOP_CTL_GET_FREE)}"
            finally:
                os.close(control)
            loop = os.open(device, os.O_RDONLY | os.O_CLOEXEC)  # read-only: so is the loop device
            try:
                fcntl.ioctl(loop, LOOP_SET_FD, backing)
                return device
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
            finally:
                os.close(loop)
        raise OSError(errno.EBUSY, f"the free loop device was taken {LOOP_TRIES} times in a row")
    finally:
        os.close(backing)


def _busy(error: CommandError) -> bool:
    text = (error.stderr or "").lower()
    return "busy" in text or "resource temporarily unavailable" in text


def retry_busy(
    argv: list[str],
    *,
    retries: int = BUSY_RETRIES,
    delay: float = BUSY_DELAY,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run an unmount/detach, retrying while the kernel says busy; return how many retries it took."""
    for attempt in range(retries + 1):
        try:
            run(argv, timeout=60)
            return attempt
        except CommandError as error:
            if not _busy(error) or attempt == retries:
                raise
        sleep(delay)
        delay = min(BUSY_DELAY_MAX, delay * 2)
    raise AssertionError("not reached")


class MountStack:
    """Mounts and loop devices made so far, undone in reverse order."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._exit = contextlib.ExitStack()
        self._steps: list[str] = []
        self._errors: list[str] = []
        self._sleep = sleep

    def __len__(self) -> int:
        return len(self._steps)

    @property
    def steps(self) -> tuple[str, ...]:
        """What is in place, oldest first."""
        return tuple(self._steps)

    def push(self, what: str, undo: Callable[[], None]) -> None:
        """Register the undo step of a side effect that has just succeeded."""
        self._steps.append(what)
        self._exit.callback(self._undo, what, undo)

    def _undo(self, what: str, undo: Callable[[], None]) -> None:
        try:
            undo()
        except CommandError as error:
            self._errors.append(f"{what}: {error.stderr.strip() or error}")
        finally:
            self._steps.pop()  # steps are undone newest first

    def unwind(self) -> list[str]:
        """Undo everything, newest first; return the errors (every step is tried)."""
        self._exit.close()
        self._exit = contextlib.ExitStack()
        errors, self._errors = self._errors, []
        return errors

    @contextlib.contextmanager
    def guard(self) -> Iterator[MountStack]:
        """Unwind if the block fails, before the error propagates; its unwind errors become notes
        of the error (the stage runner shows them)."""
        try:
            yield self
        except BaseException as error:
            for problem in self.unwind():
                error.add_note(f"could not undo: {problem}")
            raise

    # -- the side effects ----------------------------------------------------------------------
    def mount(self, source: str, target: Path, fstype: str, options: str = "") -> None:
        target.mkdir(parents=True, exist_ok=True)
        hint = f"the initramfs may lack the {fstype} kernel module, or the image file is damaged"
        if fstype in DIRECT_TYPES:
            try:
                mount_syscall(source, target, fstype, options)
            except OSError as exc:
                what = f"cannot mount {fstype} {source} at {target}: {exc.strerror}"
                raise RootError(what, hint=hint) from exc
        else:
            argv = ["mount", "-t", fstype] + (["-o", options] if options else []) + [source, str(target)]
            try:
                run(argv, timeout=120)
            except CommandError as exc:
                what = f"cannot mount {fstype} at {target}: {exc.stderr.strip() or exc}"
                raise RootError(what, hint=hint) from exc
        self.push(f"mount {target}", lambda: self._unmount(target))

    def mounted(self, target: Path) -> None:
        """Take over the unmount of a mount made elsewhere (the nfs mode's, with its retries)."""
        self.push(f"mount {target}", lambda: self._unmount(target))

    def bind(self, source: Path, target: Path) -> None:
        """A recursive bind mount (e.g. /dev into an installed root for its bootloader)."""
        target.mkdir(parents=True, exist_ok=True)
        try:
            run(["mount", "--rbind", str(source), str(target)], timeout=60)
            run(["mount", "--make-rslave", str(target)], timeout=60)
        except CommandError as exc:
            raise RootError(f"cannot bind {source} at {target}: {exc.stderr.strip() or exc}") from exc
        self.push(f"bind {target}", lambda: self._unmount(target, recursive=True))

    def loop(self, file: Path) -> str:
        try:
            device = attach_loop(file)
        except OSError as exc:
            raise RootError(
                f"cannot attach {file} to a loop device: {exc.strerror}",
                hint="the initramfs may lack the loop kernel module",
            ) from exc
        self.push(f"loop {device}", lambda: retry_busy(["losetup", "-d", device], sleep=self._sleep))
        return device

    def _unmount(self, target: Path, recursive: bool = False) -> None:
        argv = ["umount", "--recursive", str(target)] if recursive else ["umount", str(target)]
        try:
            retry_busy(argv, sleep=self._sleep)
        except CommandError as error:
            if not _busy(error):
                raise
            run(["umount", "--lazy", str(target)], timeout=60)
            raise CommandError(
                error.argv, error.returncode, f"{target} stayed busy; unmounted lazily"
            ) from error
