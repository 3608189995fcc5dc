"""Per-node file templates: the sandboxed Jinja2 environment, and rendering in a child process
with bounded time, memory and output.

Jinja2's sandbox keeps a template from reaching Python internals, but not from working forever
or filling the memory: `{{ (7**12000000) % 10 }}` held the server's GIL for 5.5 s (everything
stopped), a loop of loops runs for hours, `'x' * 10**10` takes 10 GB. So templates are rendered
in a child process (`Renderer`, started on first use, restarted after a failure) that is killed
when a render takes longer than RENDER_SECONDS, runs under a memory limit, and stops a template
whose output grows past MAX_OUTPUT. The environment also refuses powers and repetitions whose
result would be huge before computing them, with a message that says so.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from ground import run as runmod

RENDER_SECONDS = 2.0  # for all the files of one node
MAX_OUTPUT = 1 << 20  # characters per file
MAX_RESULT_BITS = 1 << 16  # an integer a template computes: at most 65,536 bits
WORKER_MEMORY = 1 << 30  # the render process's address space
START_SECONDS = 30.0


class TemplateFailure(Exception):
    """A template could not be rendered; the message says why (for the admin)."""


class BoundedEnvironment(SandboxedEnvironment):
    """The sandbox, with `**` and `*` checked before they run (they run in C, holding the GIL)."""

    intercepted_binops = frozenset(("**", "*"))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        huge_power = (
            operator == "**" and _int(left) and _int(right) and right > 0 and abs(left) > 1
            and right * math.log2(abs(left)) > MAX_RESULT_BITS
        )
        if huge_power:
            raise jinja2.sandbox.SecurityError(f"{left} ** {right} has more than {MAX_RESULT_BITS} bits")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and _int(times) and len(seq) * times > MAX_OUTPUT:
                    raise jinja2.sandbox.SecurityError(
                        f"repeating a {type(seq).__name__} {times} times is larger than {MAX_OUTPUT}"
                    )
            if _int(left) and _int(right) and left.bit_length() + right.bit_length() > MAX_RESULT_BITS:
                raise jinja2.sandbox.SecurityError(f"a product of more than {MAX_RESULT_BITS} bits")
        return super().call_binop(context, operator, left, right)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_ENV = BoundedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def template_env() -> SandboxedEnvironment:
    """The sandboxed environment per-node file templates are checked and rendered in."""
    return _ENV


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


def render_here(templates: list[str], context: dict[str, Any], max_output: int = MAX_OUTPUT) -> list[Any]:
    """Render each template; for each, ("ok", text) or ("error", message). Runs in the worker."""
    results: list[Any] = []
    for text in templates:
        try:
            out: list[str] = []
            size = 0
            for chunk in _compiled(text).generate(context):
                size += len(chunk)
                if size > max_output:
                    raise TemplateFailure(f"its output is larger than {max_output} characters")
                out.append(chunk)
            results.append(("ok", "".join(out)))
        except TemplateFailure as exc:
            results.append(("error", str(exc)))
        except MemoryError:
            results.append(("error", "it needs more memory than a template may use"))
        except RecursionError:
            results.append(("error", "it recurses too deeply"))
        except Exception as exc:  # a template can raise anything (1/0, int('x'), …): the admin's error
            results.append(("error", f"{type(exc).__name__}: {exc}"))
    return results


def _send(stream: Any, data: Any) -> None:
    body = json.dumps(data).encode()
    stream.write(len(body).to_bytes(4, "big") + body)
    stream.flush()


def _recv(stream: Any) -> Any:
    head = stream.read(4)
    if len(head) < 4:
        raise EOFError("the other end closed the pipe")
    body = stream.read(int.from_bytes(head, "big"))
    return json.loads(body)


def worker_main() -> int:
    """The render process (`python -m server.templates`): requests on stdin, results on stdout."""
    import resource

    memory = int(os.environ.get("SWARMBOOT_TEMPLATE_MEMORY", WORKER_MEMORY))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _send(stdout, "ready")
    while True:
        try:
            jobs, max_output = _recv(stdin)  # [[templates, context], ...]: one node's files each
        except EOFError:
            return 0
        _send(stdout, [render_here(templates, context, max_output) for templates, context in jobs])


class Renderer:
    """The render process: one render at a time, restarted after a timeout or a crash."""

    def __init__(self, seconds: float = RENDER_SECONDS, memory: int = WORKER_MEMORY) -> None:
        self.seconds = seconds
        self.memory = memory
        self._lock = threading.Lock()
        self._child: runmod.Child | None = None
        self.restarts = 0

    def _start(self) -> runmod.Child:
        root = str(Path(__file__).resolve().parent.parent)
        child = runmod.spawn(
            [sys.executable, "-m", "server.templates"],
            extra_env={"PYTHONPATH": root, "SWARMBOOT_TEMPLATE_MEMORY": str(self.memory)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            new_session=False,
        )
        self._child = child
        if not self._ready(START_SECONDS) or _recv(child.proc.stdout) != "ready":
            self._kill()
            raise TemplateFailure(f"the template renderer did not start within {START_SECONDS:g} s")
        return child

    def _ready(self, seconds: float) -> bool:
        assert self._child is not None
        readable, _, _ = select.select([self._child.proc.stdout], [], [], seconds)
        return bool(readable)

    def _kill(self) -> None:
        if self._child is not None:
            child, self._child = self._child, None
            with contextlib.suppress(OSError):
                child.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(5)
            for stream in (child.proc.stdin, child.proc.stdout):
                with contextlib.suppress(OSError):
                    stream.close()  # type: ignore[union-attr]
            self.restarts += 1

    def render(
        self, templates: list[str], context: dict[str, Any], max_output: int = MAX_OUTPUT
    ) -> list[Any]:
        """Like render_here, in the render process; TemplateFailure when the time is up."""
        if not templates:
            return []
        return self.render_many([(templates, context)], max_output)[0]

    def render_many(
        self, jobs: list[tuple[list[str], dict[str, Any]]], max_output: int = MAX_OUTPUT
    ) -> list[list[Any]]:
        """render_here for each (templates, context) in one round trip to the render process (the
        plans built ahead: server/plan_ahead.py). The time bound is for all of them together;
        TemplateFailure when it is up (the process is restarted)."""
        if not jobs:
            return []
        with self._lock:
            child = self._child if self._child is not None and self._child.running() else None
            if child is None:
                self._kill()
                child = self._start()
            try:
                _send(child.proc.stdin, [[[list(t), c] for t, c in jobs], max_output])
                if self._ready(self.seconds):
                    return [[tuple(r) for r in results] for results in _recv(child.proc.stdout)]
            except (EOFError, OSError, ValueError):
                self._kill()
                raise TemplateFailure("the template renderer stopped (out of memory?)") from None
            self._kill()
            raise TemplateFailure(f"rendering took longer than {self.seconds:g} s")

    def close(self) -> None:
        with self._lock:
            self._kill()


_RENDERERS: list[Renderer] = []
_RENDERER_LOCK = threading.Lock()


def renderer() -> Renderer:
    """The process-wide renderer (its process starts on first use)."""
    with _RENDERER_LOCK:
        if not _RENDERERS:
            _RENDERERS.append(Renderer())
        return _RENDERERS[0]


if __name__ == "__main__":
    sys.exit(worker_main())
