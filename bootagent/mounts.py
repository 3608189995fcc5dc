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
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bootagent.errors import RootError
from ground.errors import CommandError
from ground.run import output, run

BUSY_RETRIES = 10
BUSY_DELAY = 0.3  # seconds, doubled each retry up to BUSY_DELAY_MAX: about 10 s in all
BUSY_DELAY_MAX = 2.0


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
        argv = ["mount", "-t", fstype] + (["-o", options] if options else []) + [source, str(target)]
        try:
            run(argv, timeout=120)
        except CommandError as exc:
            raise RootError(
                f"cannot mount {fstype} at {target}: {exc.stderr.strip() or exc}",
                hint=f"the initramfs may lack the {fstype} kernel module, or the image file is damaged",
            ) from exc
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
            device = output(["losetup", "--find", "--show", "--read-only", str(file)], timeout=60)
        except CommandError as exc:
            raise RootError(
                f"cannot attach {file} to a loop device: {exc.stderr.strip()}",
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
