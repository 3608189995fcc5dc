"""The one process runner: argv lists only, clear errors, timeouts, missing tools."""

from __future__ import annotations

import sys
import time

import pytest

from swarmboot import run as runner
from swarmboot.errors import CommandError, MissingToolError


def test_runs_and_captures() -> None:
    result = runner.run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")
    assert runner.output(["echo", " padded "]) == "padded"


def test_strings_are_refused() -> None:
    with pytest.raises(TypeError):
        runner.run("echo hi")  # type: ignore[arg-type]


def test_failure_shows_the_command_and_stderr() -> None:
    with pytest.raises(CommandError) as caught:
        runner.run([sys.executable, "-c", "import sys; sys.stderr.write('broken thing\\n'); sys.exit(3)"])
    error = caught.value
    assert error.returncode == 3
    assert "exit code 3" in str(error) and "broken thing" in str(error) and sys.executable in str(error)
    assert runner.run(["false"], check=False).returncode == 1


def test_input_and_environment() -> None:
    assert runner.output(["cat"], input="fed in") == "fed in"
    env_out = runner.output([sys.executable, "-c", "import os; print(os.environ['LANG'], os.environ['X'])"],
                            extra_env={"X": "y"})
    assert env_out == "C.UTF-8 y"


def test_stdin_is_closed_by_default() -> None:
    assert runner.output(["cat"], timeout=10) == ""


def test_timeout_kills_the_child() -> None:
    started = time.monotonic()
    with pytest.raises(CommandError, match="timed out"):
        runner.run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - started < 20


def test_missing_tool_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.TOOL_PACKAGES, "swarmboot-no-such-tool", "swarmboot-pkg")
    with pytest.raises(MissingToolError) as caught:
        runner.run(["swarmboot-no-such-tool", "--help"])
    assert caught.value.package == "swarmboot-pkg"
    assert "apt-get install swarmboot-pkg" in str(caught.value)
    with pytest.raises(MissingToolError):
        runner.require_tool("swarmboot-no-such-tool")
    assert runner.require_tool("sh").endswith("/sh")


def test_spawn_and_stop() -> None:
    proc = runner.spawn(["sleep", "30"])
    assert proc.poll() is None
    runner.stop(proc, grace=5)
    assert proc.poll() is not None
