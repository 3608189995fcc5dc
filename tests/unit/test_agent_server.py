"""Plan fetching against real HTTP servers on loopback: failover from a dead port to a live one,
bounded jittered backoff, and each status code handled explicitly."""

from __future__ import annotations

import io
import json
import random
from contextlib import AbstractContextManager
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from bootagent.context import Console, Paths
from bootagent.errors import PlanRejected, ServerError, UnknownNodeError
from bootagent.server import ServerClient, backoff_delays
from ground.contract.plan import format_version
from tests.helpers.loopback import dead_url, loopback_server

PLAN = {
    "version": 1,
    "node": {"name": "n1", "hostname": "n1", "group": "g"},
    "image": {
        "name": "c",
        "version": 1,
        "format": "squashfs",
        "size": 1,
        "sha256": "0" * 64,
        "torrent_url": "/t",
        "http_url": "/i",
    },
    "reporting": {"events_url": "/api/v1/nodes/n1/events"},
}


def responder(statuses: list[int]) -> Any:
    """A route answering each GET with the next status of `statuses` (the last one repeats): the
    plan for 200, a detail otherwise, and for 299 a 200 that is not a plan."""

    def answer(handler: Any) -> tuple[int, bytes, str]:
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        body = json.dumps(PLAN if status == 200 else {"detail": f"status {status} detail"}).encode()
        if status == 299:
            status, body = 200, b'{"version": 1}'
        return status, body, "application/json"

    return answer


def server(*statuses: int) -> AbstractContextManager[Any]:
    return loopback_server(fallback=responder(list(statuses)))


class FakeTime:
    """Virtual time for the backoff (sleeping is what it does; the HTTP is real)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def client(tmp_path: Path, servers: tuple[str, ...], t: FakeTime) -> ServerClient:
    console = Console(Paths(console=tmp_path / "console", run_dir=tmp_path / "run"), echo=io.StringIO())
    return ServerClient(
        servers, console, request_timeout=2, rng=random.Random(7), sleep=t.sleep, clock=t.clock
    )


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    delays = list(islice(backoff_delays(1.0, 30.0, random.Random(1)), 10))
    caps = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    assert all(cap * 0.5 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len(set(delays)) == len(delays)  # jittered: no two equal


def test_fails_over_from_a_dead_server_to_a_live_one(tmp_path: Path) -> None:
    t = FakeTime()
    with server(200) as live:
        c = client(tmp_path, (dead_url(), live.url), t)
        plan, used = c.fetch_plan("52:54:00:00:00:01", "n1", deadline=60)
        assert used == live.url and plan.node.name == "n1"
        assert t.sleeps == []  # failover within the round, no waiting
        assert c.order[0] == live.url  # the working server goes first next time
        want = f"/api/v1/plan?mac=52%3A54%3A00%3A00%3A00%3A01&node=n1&plan_version={format_version()}"
        assert live.requests == [want]
        assert "connection refused" in c.summary()


def test_retries_a_busy_server_with_backoff(tmp_path: Path) -> None:
    t = FakeTime()
    with server(503, 503, 200) as live:
        plan, _ = client(tmp_path, (live.url,), t).fetch_plan("", "n1", deadline=60)
    assert plan.image.name == "c"
    assert len(t.sleeps) == 2 and 0.5 <= t.sleeps[0] <= 1.0 and 1.0 <= t.sleeps[1] <= 2.0


def test_all_dead_gives_up_at_the_deadline(tmp_path: Path) -> None:
    t = FakeTime()
    c = client(tmp_path, (dead_url(), dead_url()), t)
    with pytest.raises(ServerError, match="no server gave the boot plan within 20 s") as info:
        c.fetch_plan("", "n1", deadline=20)
    assert "connection refused" in str(info.value) and "swarmboot serve" in info.value.hint
    assert sum(t.sleeps) <= 20 and len(t.sleeps) >= 3


def test_unknown_node_says_so(tmp_path: Path) -> None:
    t = FakeTime()
    with (
        server(404) as live,
        pytest.raises(UnknownNodeError, match="does not know the boot plan for node=n9") as info,
    ):
        client(tmp_path, (live.url,), t).fetch_plan("", "n9", deadline=10)
    assert "status 404 detail" in str(info.value)
    assert "swarmboot node add" in info.value.hint


def test_a_refusal_is_not_retried(tmp_path: Path) -> None:
    t = FakeTime()
    with server(403) as live:
        with pytest.raises(PlanRejected, match="HTTP 403 status 403 detail"):
            client(tmp_path, (live.url,), t).fetch_plan("", "n1", deadline=60)
        assert len(live.requests) == 1 and t.sleeps == []


def test_an_unreadable_plan_is_rejected(tmp_path: Path) -> None:
    with (
        server(299) as live,
        pytest.raises(PlanRejected, match=r"cannot read: plan\.node: required field is missing"),
    ):
        client(tmp_path, (live.url,), FakeTime()).fetch_plan("", "n1", deadline=5)


def test_fetch_bytes_fails_over_to_the_same_path(tmp_path: Path) -> None:
    t = FakeTime()
    with server(200) as live:
        c = client(tmp_path, (live.url,), t)
        data = c.fetch_bytes(dead_url() + "/images/c/1/image.torrent?x=1", deadline=10, what="the torrent")
        assert json.loads(data)["version"] == 1
        assert live.requests == ["/images/c/1/image.torrent?x=1"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested 100000 levels deep"),
        (b'{"version": 1, "node": {"name": "\\ud800"}}', "not valid Unicode"),
    ],
    ids=["deep", "surrogate"],
)
def test_a_hostile_plan_body_is_a_clear_rejection(tmp_path: Path, body: bytes, why: str) -> None:
    """Not a RecursionError or a UnicodeEncodeError later: PlanRejected, with what is wrong."""
    with loopback_server() as live:
        live.routes["/api/v1/plan"] = body
        with pytest.raises(PlanRejected, match=why):
            client(tmp_path, (live.url,), FakeTime()).fetch_plan("", "n1", deadline=5)


def test_the_token_goes_with_the_plan_request_and_its_refusal_is_final(tmp_path: Path) -> None:
    seen: list[str] = []

    def used(handler: Any) -> tuple[int, bytes, str]:
        seen.append(handler.headers.get("X-Swarmboot-Token", ""))
        return 409, json.dumps({"error": "n1's token was used already", "code": "token_used"}).encode(), \
            "application/json"

    t = FakeTime()
    with loopback_server(fallback=used) as live, pytest.raises(PlanRejected, match="refused this boot"):
        client(tmp_path, (live.url,), t).fetch_plan("", "n1", deadline=60, token="t" * 43)
    assert seen == ["t" * 43] and t.sleeps == []  # not retried
