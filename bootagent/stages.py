"""The stage runner: runs the boot's stages in order, reports each (start, done with its
duration, or failed with the message), stops before `swarmboot.break=STAGE`, and turns any failure
into one clear console message, a `failed` event and the rescue shell, after which the stage is
tried again (bounded: `max_attempts`)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bootagent.context import BootContext, Failure
from ground.errors import SwarmbootError

StageResult = dict[str, Any] | None


def always(ctx: BootContext) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[BootContext], StageResult]
    when: Callable[[BootContext], bool] = always


class BootFailed(Exception):
    """A stage failed `max_attempts` times; the agent gives up (the node reboots)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"stage {stage} failed: {message}")
        self.stage = stage
        self.message = message


def failure_message(stage: str, error: BaseException, attempt: int, max_attempts: int) -> str:
    if isinstance(error, SwarmbootError):
        text = f"stage '{stage}' failed (attempt {attempt} of {max_attempts}): {error.message}"
        if error.hint:
            text += f"\n  what to check: {error.hint}"
    else:
        text = (
            f"stage '{stage}' failed (attempt {attempt} of {max_attempts}) with an internal error: "
            f"{type(error).__name__}: {error}\n  what to check: this is a bug in the swarmboot agent; "
            "the traceback is in the log"
        )
    for note in getattr(error, "__notes__", ()):  # e.g. mounts that could not be undone
        text += f"\n  also: {note}"
    return text


def pause(ctx: BootContext, kind: str, message: str) -> None:
    """Stop for a person (service mode, break) and report how long the stop lasted."""
    reporter = ctx.reporter
    if reporter is not None:
        reporter.current_stage = "service"
        reporter.event("service", "start", message=message)
    started = time.monotonic()
    ctx.rescue.stop(ctx, kind, message)
    if reporter is not None:
        reporter.event("service", "done", duration=time.monotonic() - started, message=message)


def run_stage(ctx: BootContext, stage: Stage, attempt: int, max_attempts: int) -> bool:
    """Run one stage once; True if it worked. A failure is shown, reported and rescued."""
    reporter = ctx.reporter
    if reporter is not None:
        reporter.current_stage = stage.name
        reporter.event(stage.name, "start")
    ctx.console.debug(f"stage {stage.name}: start")
    started = time.monotonic()
    try:
        details = stage.run(ctx)
    except Exception as error:
        duration = time.monotonic() - started
        message = failure_message(stage.name, error, attempt, max_attempts)
        if not isinstance(error, SwarmbootError):
            ctx.console.debug(traceback.format_exc())
        ctx.console.block(message)
        ctx.failures.append(Failure(stage.name, message))
        reporter = ctx.reporter  # the stage may have made it (cmdline)
        if reporter is not None:
            reporter.event(stage.name, "failed", duration=duration, message=message)
        kind = "failure" if attempt < max_attempts else "final"
        if reporter is not None:
            reporter.current_stage = "rescue"
            reporter.event("rescue", "start", message=f"after stage {stage.name} failed")
        rescued = time.monotonic()
        ctx.rescue.stop(ctx, kind, message)
        if reporter is not None:
            reporter.event("rescue", "done", duration=time.monotonic() - rescued)
        if kind == "final":
            raise BootFailed(stage.name, message) from error
        return False
    duration = time.monotonic() - started
    ctx.timings[stage.name] = round(duration, 3)
    ctx.console.info(f"stage {stage.name} done in {duration:.1f} s")
    reporter = ctx.reporter
    if reporter is not None:
        reporter.event(stage.name, "done", duration=duration, details=details or None)
    return True


def run_stages(ctx: BootContext, stages: Sequence[Stage], max_attempts: int = 3) -> None:
    for stage in stages:
        args = ctx.args
        if args is not None and args.break_at == stage.name:
            pause(ctx, "break", f"stopped before stage '{stage.name}' (swarmboot.break={stage.name})")
        if not stage.when(ctx):
            continue
        attempt = 1
        while not run_stage(ctx, stage, attempt, max_attempts):
            attempt += 1
