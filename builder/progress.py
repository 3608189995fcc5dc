"""Stage reporting for long builds: each stage logged when it starts and timed when it ends.

By default every line goes to stderr. A front end may show it differently: `showing(reporter)`
routes the stages, the percentages and the messages of the builds run inside it to `reporter`
(the CLI's progress bars, swarmboot/cli/progress.py), for as long as the `with` block lasts.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("swarmboot.builder")


class Reporter(Protocol):
    def stage_started(self, what: str, name: str, detail: str) -> None: ...
    def stage_done(self, what: str, name: str, seconds: float) -> None: ...
    def percent(self, label: str, done: int, total: int) -> None: ...
    def message(self, text: str) -> None: ...


_reporters: list[Reporter] = []


@contextlib.contextmanager
def showing(reporter: Reporter) -> Iterator[Reporter]:
    """Route the progress of the builds run inside the block to `reporter`."""
    _reporters.append(reporter)
    try:
        yield reporter
    finally:
        _reporters.remove(reporter)


@dataclass
class Stages:
    """Names and times the stages of one build; `summary()` is printed at the end."""

    what: str
    times: list[tuple[str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        if _reporters:
            _reporters[-1].stage_started(self.what, name, detail)
            log.debug("%s: %s …", self.what, name)
        else:
            say(f"{self.what}: {name}" + (f" ({detail})" if detail else "") + " …")
        start = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - start
            self.times.append((name, elapsed))
        if _reporters:
            _reporters[-1].stage_done(self.what, name, elapsed)
            log.debug("%s: %s done in %.1f s", self.what, name, elapsed)
        else:
            say(f"{self.what}: {name} done in {elapsed:.1f} s")

    def parallel(self, jobs: list[tuple[str, str, Callable[[], None]]]) -> None:
        """Run (name, detail, function) stages at the same time, each timed; after all have
        ended, the first failure (in the order given) is raised."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = [pool.submit(self._run, name, detail, function) for name, detail, function in jobs]
            concurrent.futures.wait(futures)
        for future in futures:
            future.result()

    def sequential(self, jobs: list[tuple[str, str, Callable[[], None]]]) -> None:
        for name, detail, function in jobs:
            self._run(name, detail, function)

    def _run(self, name: str, detail: str, function: Callable[[], None]) -> None:
        with self.stage(name, detail):
            function()

    def total(self) -> float:
        return time.monotonic() - self.started

    def summary(self) -> str:
        parts = ", ".join(f"{name} {secs:.1f} s" for name, secs in self.times)
        return f"{self.what}: {self.total():.1f} s ({parts})"


def say(message: str) -> None:
    """One progress line on stderr (stdout stays for results such as --json)."""
    if _reporters:
        _reporters[-1].message(message)
    else:
        print(message, file=sys.stderr, flush=True)
    log.debug(message)


class Percent:
    """Prints "label: 10 % … 100 %" as a count grows, at most once per step."""

    def __init__(self, label: str, step: int = 10) -> None:
        self.label = label
        self.step = step
        self.next = step

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        if _reporters:
            _reporters[-1].percent(self.label, done, total)
            return
        percent = done * 100 // total
        if percent >= self.next:
            say(f"  {self.label}: {percent} %")
            while self.next <= percent:
                self.next += self.step
