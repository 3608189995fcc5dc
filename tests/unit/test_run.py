"""The one process runner: argv lists only, clear errors, timeouts, missing tools."""

from __future__ import annotations

import os
import sys
import time

import pytest

from ground import run as runner
from ground.errors import CommandError, CommandTimeout, MissingToolError


def test_runs_and_captures() -> None:
    script = "import sys; print('out'); print('err', file=sys.stderr)"
    result = runner.run([sys.executable, "-c", script], timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")
    assert runner.output(["echo", " padded "], timeout=60) == "padded"


def test_strings_are_refused() -> None:
    with pytest.raises(TypeError):
        runner.run("echo hi")  # type: ignore[arg-type]


def test_failure_shows_the_command_and_stderr() -> None:
    with pytest.raises(CommandError) as caught:
        script = "import sys; sys.stderr.write('broken thing\\n'); sys.exit(3)"
        runner.run([sys.executable, "-c", script], timeout=60)
    error = caught.value
    assert error.returncode == 3
    assert "exit code 3" in str(error) and "broken thing" in str(error) and sys.executable in str(error)
    assert runner.run(["false"], check=False, timeout=60).returncode == 1


def test_input_and_environment() -> None:
    assert runner.output(["cat"], input="fed in", timeout=60) == "fed in"
    env_out = runner.output([sys.executable, "-c", "import os; print(os.environ['LANG'], os.environ['X'])"],
                            extra_env={"X": "y"}, timeout=60)
    assert env_out == "C.UTF-8 y"


def test_stdin_is_closed_by_default() -> None:
    assert runner.output(["cat"], timeout=10) == ""


def test_a_timeout_stops_the_child_and_keeps_what_it_wrote() -> None:
    started = time.monotonic()
    script = "import sys, time; print('first', flush=True); sys.stderr.write('halfway\\n'); time.sleep(9)"
    with pytest.raises(CommandTimeout) as caught:
        runner.run([sys.executable, "-c", script], timeout=1.5)
    assert time.monotonic() - started < 20
    error = caught.value
    assert error.stdout == "first\n" and error.stderr == "halfway\n"
    assert "ran longer than 1.5 s and was stopped" in str(error) and "halfway" in str(error)
    assert isinstance(error, CommandError) and error.timeout == 1.5


def test_a_signal_kill_is_reported_as_one() -> None:
    with pytest.raises(CommandError) as caught:
        runner.run(["sh", "-c", "echo dying >&2; kill -KILL $$"], timeout=30)
    error = caught.value
    assert error.killed and error.returncode == -9
    assert "was killed by SIGKILL" in str(error) and "exit code" not in str(error) and "dying" in str(error)
    assert not isinstance(error, CommandTimeout)


def test_missing_tool_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.TOOL_PACKAGES, "swarmboot-no-such-tool", "swarmboot-pkg")
    with pytest.raises(MissingToolError) as caught:
        runner.run(["swarmboot-no-such-tool", "--help"], timeout=60)
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


def test_a_child_is_stopped_and_reaped_when_its_block_ends_even_on_an_error() -> None:
    with pytest.raises(RuntimeError), runner.spawn(["sleep", "30"]) as child:
        pid = child.pid
        assert child.running()
        raise RuntimeError("the caller failed")
    assert child.returncode is not None and not child.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: no zombie left behind


def test_a_detached_child_outlives_its_block() -> None:
    with runner.spawn(["sleep", "30"]) as child:
        child.detach()
    try:
        assert child.running()
    finally:
        runner.stop(child, grace=5)
    assert not child.running()
