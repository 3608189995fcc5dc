"""Progress on a terminal (rich): bars for image create and pack, a bar for long waits, the live
table of `node status --watch`. Where stderr (or stdout, for the table) is not a terminal, the
commands print plain lines as before, so logs and pipes stay readable.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any


def on_terminal(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


class BuildProgress:
    """builder.progress.Reporter on a rich Progress: one line per stage (spinner, then ✓ and its
    time), a bar for each percentage (the torrent's pieces), messages printed above the bars."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._stages: dict[tuple[str, str], Any] = {}
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def stage_started(self, what: str, name: str, detail: str) -> None:
        label = f"{what}: {name}" + (f" [dim]({detail})[/]" if detail else "")
        with self._lock:
            self._stages[(what, name)] = self.progress.add_task(label, total=None)

    def stage_done(self, what: str, name: str, seconds: float) -> None:
        with self._lock:
            task = self._stages.pop((what, name), None)
        if task is not None:
            self.progress.update(
                task, total=1, completed=1, description=f"{what}: {name} [dim]{seconds:.1f} s[/]"
            )

    def percent(self, label: str, done: int, total: int) -> None:
        with self._lock:
            task = self._bars.get(label)
            if task is None:
                task = self._bars[label] = self.progress.add_task(f"  {label}", total=total)
        self.progress.update(task, completed=done, total=total)

    def message(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)


@contextlib.contextmanager
def build_progress() -> Iterator[None]:
    """Bars for the builds run inside the block, when stderr is a terminal."""
    if not on_terminal(sys.stderr):
        yield
        return
    from rich.console import Console

    from builder.progress import showing

    reporter = BuildProgress(Console(stderr=True))
    with reporter.progress, showing(reporter):
        yield


class WaitBar:
    """A bar of N things done out of a total, for long waits (`node wait`); plain lines elsewhere."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.last = label, total, -1
        self.progress: Any = None
        if on_terminal(sys.stderr):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(stderr=True),
            )
            self.task = self.progress.add_task(label, total=total, note="")

    def __enter__(self) -> WaitBar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, done: int, note: str = "") -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, note=note)
        elif done != self.last:
            print(
                f"{self.label}: {done}/{self.total}" + (f" ({note})" if note else ""),
                file=sys.stderr,
                flush=True,
            )
        self.last = done


STATE_STYLES = {
    "booted": "green",
    "provisioning": "blue",
    "handover": "magenta",
    "failed": "bold red",
    "silent": "yellow",
    "service": "dark_orange",
    "rescue": "dark_orange",
    "new": "dim",
}


def status_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], title: str) -> Any:
    """The rows of `node status` as a rich Table (cells as the plain table shows them)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", expand=False, header_style="bold")
    for _key, heading in columns:
        table.add_column(heading, no_wrap=heading != "FAILURE / MESSAGE")
    for row in rows:
        style = STATE_STYLES.get(str(row.get("state")), "")
        table.add_row(
            *[Text(str(row.get(key, "")), style=style if key == "state" else "") for key, _ in columns]
        )
    return table


@contextlib.contextmanager
def live_table() -> Iterator[Any]:
    """A rich Live display on stdout for tables that are redrawn in place."""
    from rich.console import Console
    from rich.live import Live

    with Live(console=Console(), auto_refresh=False, screen=False) as live:
        yield live
