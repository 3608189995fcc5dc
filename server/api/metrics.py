"""Prometheus `/metrics` (prometheus_client, a registry of the app's own) and the file_sd target
list of booted nodes (`/api/v1/prometheus/targets`).

What is counted where:
- every HTTP request, the hot path's announces and cached plans included, by route template,
  method and status, and its duration: `MeasuredApp`, the outermost ASGI layer (a dict lookup and
  two clock reads per request; bench/server.py measures the hot path with it);
- node events as they arrive here (`observe_event`): events by stage and status, stage durations,
  boot durations (first iPXE script or agent start → booted);
- plan builds: the plan requests that reached FastAPI, i.e. missed the cache;
- at scrape time, from memory (no database query): nodes by group and state (the status hub),
  tracker swarms, peers and announces, bytes the server sent (seeder, web seed, other HTTP), what
  nodes report they got from peers and web seeds, head nodes alive, the status page's streams.

With two head nodes each exports what it saw; the node counts come from the shared database and
agree (take max() in queries), the event-driven counters add up (take sum()).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from ground import __version__
from server import events
from server.api import access
from server.api.deps import state_of
from server.state import ServerState
from server.status_hub import STATES

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
HOT_ROUTES = {"/announce": "/announce", "/api/v1/plan": "/api/v1/plan"}
STAGE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
BOOT_BUCKETS = (10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
PLAN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
STREAM_MEDIA = b"text/event-stream"

router = APIRouter(tags=["metrics"])


class Metrics:
    def __init__(self, state: ServerState, feed: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "swarmboot_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "swarmboot_http_request_duration_seconds",
            "Time to answer an HTTP request (streams excluded)",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.events = Counter("swarmboot_events", "Node events received", ["stage", "status"], registry=r)
        self.stage_seconds = Histogram(
            "swarmboot_stage_duration_seconds",
            "Duration of the agent's stages, as the nodes report them",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.boot_seconds = Histogram(
            "swarmboot_boot_duration_seconds",
            "From a node's iPXE script (or agent start) to its booted report",
            buckets=BOOT_BUCKETS,
            registry=r,
        )
        self.plan_seconds = Histogram(
            "swarmboot_plan_build_seconds",
            "Time to answer a boot-plan request that missed the cache",
            buckets=PLAN_BUCKETS,
            registry=r,
        )
        r.register(StateCollector(state, feed))
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def request_done(self, route: str, method: str, status: int, seconds: float, stream: bool) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.http_requests.labels(route, method, str(status)),
                self.http_seconds.labels(route),
            )
            self._children[key] = children
        children[0].inc()
        if not stream:
            children[1].observe(seconds)

    def observe_event(self, event: dict[str, Any], result: dict[str, Any]) -> None:
        stage, status = event["stage"], event["status"]
        self.events.labels(stage, status).inc()
        if status in ("done", "failed") and event.get("duration") is not None:
            self.stage_seconds.labels(stage).observe(float(event["duration"]))
        if stage == "booted" and status == "done" and result.get("boot_started"):
            started = dt.datetime.fromisoformat(result["boot_started"])
            self.boot_seconds.observe(max(0.0, (dt.datetime.now(dt.UTC) - started).total_seconds()))


class StateCollector(Collector):
    """Gauges and counters read from memory at scrape time."""

    def __init__(self, state: ServerState, feed: Any) -> None:
        self.state = state
        self.feed = feed

    def collect(self) -> Iterator[Any]:
        state, hub = self.state, self.feed.hub
        nodes = GaugeMetricFamily("swarmboot_nodes", "Nodes by group and state", labels=["group", "state"])
        for group, counts in sorted(hub.by_group_and_state().items()):
            for name in STATES:
                nodes.add_metric([group, name], counts.get(name, 0))
        yield nodes
        yield from self._tracker()
        yield from self._bytes()
        plans = CounterMetricFamily("swarmboot_plans_built", "Boot plans built from the inventory")
        plans.add_metric([], state.counters.plans)
        yield plans
        hits = CounterMetricFamily("swarmboot_plan_cache_hits", "Boot plans answered from the cache")
        hits.add_metric([], state.counters.plan_cache_hits)
        yield hits
        cluster = getattr(state, "cluster", None)
        heads = GaugeMetricFamily(
            "swarmboot_head_nodes", "Head nodes alive on this inventory, this one included"
        )
        heads.add_metric([], len(cluster.live_urls()) if cluster is not None else 1)
        yield heads
        streams = GaugeMetricFamily("swarmboot_status_streams", "Status pages following this server now")
        streams.add_metric([], self.feed.streams)
        yield streams
        sent = CounterMetricFamily(
            "swarmboot_status_stream_bytes", "Bytes the status page's event streams sent"
        )
        sent.add_metric([], self.feed.bytes_sent)
        yield sent
        info = GaugeMetricFamily("swarmboot_info", "This server", labels=["version", "server_url"])
        info.add_metric([__version__, state.server_url], 1)
        yield info

    def _tracker(self) -> Iterator[Any]:
        tracker, catalog = self.state.tracker, self.state.catalog
        swarms = GaugeMetricFamily("swarmboot_tracker_swarms", "Torrents the tracker has peers for")
        swarms.add_metric([], sum(1 for s in tracker.swarms.values() if s.peers))
        yield swarms
        peers = GaugeMetricFamily(
            "swarmboot_tracker_peers", "Peers the tracker knows", labels=["image", "version", "role"]
        )
        completed = CounterMetricFamily(
            "swarmboot_tracker_completed", "Downloads completed, as announced", labels=["image", "version"]
        )
        for info_hash, swarm in tracker.swarms.items():
            version = catalog.by_info_hash.get(info_hash)
            image, number = (version.image, str(version.number)) if version else ("", "")
            peers.add_metric([image, number, "seeder"], len(swarm.seeds.items))
            peers.add_metric([image, number, "leecher"], len(swarm.leechers.items))
            completed.add_metric([image, number], swarm.completed)
        yield peers
        yield completed
        announces = CounterMetricFamily(
            "swarmboot_tracker_announces", "Announces answered (failures included)"
        )
        announces.add_metric([], tracker.announces)
        yield announces
        failures = CounterMetricFamily("swarmboot_tracker_announce_failures", "Announces refused")
        failures.add_metric([], tracker.failures)
        yield failures

    def _bytes(self) -> Iterator[Any]:
        state = self.state
        image_files = {
            f"{v.image}/{v.number}/{v.manifest.image_file.name}" for v in state.catalog.versions.values()
        }
        web_seed = sum(n for key, n in state.counters.http_bytes.items() if key in image_files)
        other = sum(n for key, n in state.counters.http_bytes.items() if key not in image_files)
        seeder = 0
        if state.seeder is not None:
            try:
                seeder = sum(t["uploaded"] for t in state.seeder.stats()["torrents"])
            except (RuntimeError, AttributeError, TypeError):
                seeder = 0
        served = CounterMetricFamily(
            "swarmboot_served_bytes", "Bytes this server sent, by source", labels=["source"]
        )
        served.add_metric(["seeder"], seeder)
        served.add_metric(["web_seed"], web_seed)
        served.add_metric(["http"], other)
        served.add_metric(["handed_out"], sum(state.counters.handed_out.values()))
        yield served
        got = GaugeMetricFamily(
            "swarmboot_node_download_bytes",
            "What the nodes' latest downloads report, by source (peers include the head nodes' seeders)",
            labels=["source"],
        )
        reported = self.feed.hub.node_bytes()
        got.add_metric(["peers"], reported["from_peers"])
        got.add_metric(["web_seed"], reported["from_web_seeds"])
        yield got


class MeasuredApp:
    """The outermost ASGI layer: counts and times every HTTP request by route template."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = [500, False]

        async def send_measured(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer[0] = message["status"]
                for key, value in message.get("headers", ()):
                    if key == b"content-type" and value.startswith(STREAM_MEDIA):
                        answer[1] = True
            await send(message)

        try:
            await self.app(scope, receive, send_measured)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or HOT_ROUTES.get(scope["path"], "other")
            status = int(answer[0])
            self.metrics.request_done(template, scope["method"], status, seconds, bool(answer[1]))
            if route is not None and template == "/api/v1/plan" and status == 200:
                self.metrics.plan_seconds.observe(seconds)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/api/v1/prometheus/targets",
    summary="Booted nodes as a Prometheus file_sd / http_sd target list",
    description="Point Prometheus' `http_sd_configs` here (with the viewer token), or write it to a "
    "file for `file_sd_configs`: `swarmboot node targets --output FILE`.",
)
async def targets(
    request: Request,
    _role: Annotated[access.Role, Depends(access.require_viewer)],
    _bearer: Annotated[Any, Depends(access.bearer)],
    port: Annotated[
        int, Query(ge=1, le=65535, description="the port to scrape on each node (node_exporter: 9100)")
    ] = 9100,
) -> list[dict[str, Any]]:
    return await run_in_threadpool(events.booted_targets, state_of(request).db, port)
