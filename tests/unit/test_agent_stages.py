"""The stage runner: order, durations reported to a real HTTP endpoint, break, failure → rescue →
retry, giving up after the last attempt, and internal errors rescued too."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootagent.context import AgentConfig, BootContext, Paths
from bootagent.errors import ServerError
from bootagent.main import boot, make_context, service_requested, stage_cmdline
from bootagent.rescue import Rescue
from bootagent.stages import Stage
from tests.helpers.loopback import loopback_server


class RecordingRescue(Rescue):
    """Stands in for the person at the console: records each stop and returns (leaves the shell)."""

    def __init__(self) -> None:
        self.stops: list[tuple[str, str]] = []
        self.order: list[str] = []  # stages run and stops made, in order

    def stop(self, ctx: BootContext, kind: str, message: str) -> None:
        self.stops.append((kind, message))
        self.order.append(f"rescue:{kind}")


@pytest.fixture
def events() -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    with loopback_server() as srv:
        yield srv.url, srv.posts


def make(tmp_path: Path, server: str, extra: str = "") -> tuple[BootContext, RecordingRescue]:
    (tmp_path / "cmdline").write_text(f"root=swarmboot swarmboot.server={server} swarmboot.node=n1 {extra}\n")
    paths = Paths(
        cmdline=tmp_path / "cmdline",
        sysroot=tmp_path / "sysroot",
        console=tmp_path / "console",
        run_dir=tmp_path / "run",
        hostname=tmp_path / "hostname",
        nfs_client_identifier=tmp_path / "nfs-client-identifier",
    )
    rescue = RecordingRescue()
    ctx = make_context(paths, rescue, AgentConfig(max_attempts=3))
    ctx.console.echo = io.StringIO()
    return ctx, rescue


def step(name: str, seconds: float = 0.0, fail_times: int = 0, error: Exception | None = None) -> Stage:
    calls = {"n": 0}

    def run(ctx: BootContext) -> dict[str, Any]:
        assert isinstance(ctx.rescue, RecordingRescue)
        ctx.rescue.order.append(name)
        calls["n"] += 1
        time.sleep(seconds)
        if calls["n"] <= fail_times:
            raise error or ServerError(f"{name} broke", hint=f"look at {name}")
        return {"calls": calls["n"]}

    return Stage(name, run)


def test_stages_run_in_order_and_report_durations(tmp_path: Path, events: Any) -> None:
    url, received = events
    ctx, rescue = make(tmp_path, url)
    stages = (Stage("cmdline", stage_cmdline), step("network", 0.05), step("plan"), step("handover"))
    assert boot(ctx, stages) == 0
    assert rescue.order == ["network", "plan", "handover"] and rescue.stops == []
    assert {p for p, _ in received} == {"/api/v1/nodes/n1/events"}
    pairs = [(e["stage"], e["status"]) for _, e in received]
    assert pairs == [(s, st) for s in ("cmdline", "network", "plan", "handover") for st in ("start", "done")]
    network_done = next(e for _, e in received if e["stage"] == "network" and e["status"] == "done")
    assert network_done["duration"] >= 0.05 and network_done["details"] == {"calls": 1}
    assert set(ctx.timings) == {"cmdline", "network", "plan", "handover"}


def test_break_stops_before_the_stage_then_goes_on(tmp_path: Path, events: Any) -> None:
    url, received = events
    ctx, rescue = make(tmp_path, url, "swarmboot.break=plan")
    assert boot(ctx, (Stage("cmdline", stage_cmdline), step("network"), step("plan"))) == 0
    assert rescue.order == ["network", "rescue:break", "plan"]
    assert "stopped before stage 'plan'" in rescue.stops[0][1]
    assert [(e["stage"], e["status"]) for _, e in received if e["stage"] == "service"] == [
        ("service", "start"),
        ("service", "done"),
    ]


def test_a_failure_is_shown_reported_rescued_and_retried(tmp_path: Path, events: Any) -> None:
    url, received = events
    ctx, rescue = make(tmp_path, url)
    assert boot(ctx, (Stage("cmdline", stage_cmdline), step("download", fail_times=1), step("root"))) == 0
    assert rescue.order == ["download", "rescue:failure", "download", "root"]
    kind, message = rescue.stops[0]
    assert kind == "failure"
    assert "stage 'download' failed (attempt 1 of 3): download broke" in message
    assert "what to check: look at download" in message
    console = (tmp_path / "console").read_text()  # on the console device, line by line
    assert all(line in console for line in message.splitlines())
    failed = [e for _, e in received if e["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["stage"] == "download" and "download broke" in failed[0]["message"]
    assert "duration" in failed[0]
    pairs = [(e["stage"], e["status"]) for _, e in received]
    i = pairs.index(("download", "failed"))
    assert pairs[i : i + 4] == [
        ("download", "failed"),
        ("rescue", "start"),
        ("rescue", "done"),
        ("download", "start"),
    ]


def test_the_last_failure_gives_up(tmp_path: Path, events: Any) -> None:
    url, _ = events
    ctx, rescue = make(tmp_path, url)
    assert boot(ctx, (Stage("cmdline", stage_cmdline), step("plan", fail_times=99), step("root"))) == 1
    assert [k for k, _ in rescue.stops] == ["failure", "failure", "final"]
    assert "root" not in rescue.order


def test_a_bad_command_line_goes_to_rescue_without_a_server(tmp_path: Path) -> None:
    ctx, rescue = make(tmp_path, "not-a-url")
    assert boot(ctx, (Stage("cmdline", stage_cmdline), step("network"))) == 1
    assert "swarmboot.server: 'not-a-url' is not an http:// or https:// URL" in rescue.stops[0][1]
    assert "network" not in rescue.order


def test_an_internal_error_is_rescued_too(tmp_path: Path, events: Any) -> None:
    url, _ = events
    ctx, rescue = make(tmp_path, url)
    assert boot(ctx, (Stage("cmdline", stage_cmdline), step("files", fail_times=1, error=KeyError("x")))) == 0
    assert "internal error: KeyError" in rescue.stops[0][1]
    assert "Traceback" in (tmp_path / "run/agent.log").read_text()


def test_service_mode_is_asked_by_the_command_line(tmp_path: Path, events: Any) -> None:
    url, _ = events
    ctx, _ = make(tmp_path, url, "swarmboot.service=1")
    assert not service_requested(ctx)
    stage_cmdline(ctx)
    assert service_requested(ctx)


def test_an_unknown_kernel_argument_is_shown_and_reported_and_the_boot_goes_on(
    tmp_path: Path, events: Any
) -> None:
    url, sent = events
    ctx, rescue = make(tmp_path, url, "swarmboot.from_a_newer_server=1")
    assert boot(ctx, (Stage("cmdline", stage_cmdline), step("network"))) == 0
    assert rescue.stops == [] and rescue.order == ["network"]
    assert "warning: unknown kernel argument 'swarmboot.from_a_newer_server' ignored" in (
        tmp_path / "console"
    ).read_text()
    done = [body for _, body in sent if body["stage"] == "cmdline" and body["status"] == "done"]
    assert "swarmboot.from_a_newer_server" in done[0]["details"]["warnings"][0]
