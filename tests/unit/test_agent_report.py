"""The event reporter against real HTTP endpoints on loopback: buffering until a URL is known,
failover to another server, order kept, and the jittered heartbeat delay."""

from __future__ import annotations

import io
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootagent.context import Console, Paths
from bootagent.report import Reporter, events_urls, heartbeat_delay
from tests.helpers.loopback import dead_url, loopback_server


@pytest.fixture
def sink() -> Iterator[Any]:
    with loopback_server() as srv:
        yield srv


def console(tmp_path: Path) -> Console:
    return Console(Paths(console=tmp_path / "console", run_dir=tmp_path / "run"), echo=io.StringIO())


def test_heartbeat_delay_is_jittered_between_0_3_and_0_6() -> None:
    rng = random.Random(3)
    delays = [heartbeat_delay(10, rng) for _ in range(200)]
    assert min(delays) >= 3.0 and max(delays) <= 6.0
    assert max(delays) - min(delays) > 2.0  # spread, not one fixed value


def test_events_urls_fail_over_to_the_same_path() -> None:
    assert events_urls("/api/v1/nodes/n1/events", ("http://a:1", "http://b:2")) == [
        "http://a:1/api/v1/nodes/n1/events",
        "http://b:2/api/v1/nodes/n1/events",
    ]
    assert events_urls("http://a:1/api/v1/nodes/n1/events", ("http://a:1", "http://b:2")) == [
        "http://a:1/api/v1/nodes/n1/events",
        "http://b:2/api/v1/nodes/n1/events",
    ]
    assert events_urls("", ("http://a:1",)) == []


def test_buffered_until_a_url_then_sent_in_order_with_failover(tmp_path: Path, sink: Any) -> None:
    reporter = Reporter(console(tmp_path), servers=(dead_url(), sink.url), timeout=2)
    reporter.start()
    reporter.event("cmdline", "start")
    reporter.event("cmdline", "done", duration=0.01234, details={"node": "n1"})
    assert sink.posts == []  # no URL yet: kept
    reporter.set_image("compute", 3)
    reporter.set_events_url("/api/v1/nodes/n1/events")
    reporter.event("plan", "done", duration=1.0)
    reporter.close(timeout=10)
    assert [(p, e["stage"], e["status"]) for p, e in sink.posts] == [
        ("/api/v1/nodes/n1/events", "cmdline", "start"),
        ("/api/v1/nodes/n1/events", "cmdline", "done"),
        ("/api/v1/nodes/n1/events", "plan", "done"),
    ]
    assert sink.posts[1][1]["duration"] == 0.012 and sink.posts[1][1]["details"] == {"node": "n1"}
    assert sink.posts[2][1]["image"] == "compute" and sink.posts[2][1]["version"] == 3
    assert reporter.urls[0].startswith(sink.url)  # the server that answered is tried first now
    assert reporter.sent == 3 and reporter.failed == 0


def test_heartbeats_flow_while_a_stage_runs_long(tmp_path: Path, sink: Any) -> None:
    reporter = Reporter(console(tmp_path), servers=(sink.url,), heartbeat_seconds=0.2)
    reporter.set_events_url(sink.url + "/api/v1/nodes/n1/events")
    reporter.start()
    reporter.current_stage = "download"
    threading.Event().wait(1.5)
    reporter.close(timeout=5)
    beats = [e for _, e in sink.posts if e["status"] == "heartbeat"]
    assert beats and all(e["details"] == {"stage": "download"} for e in beats)
