"""Events to the server (docs/design.md, "Events"): sent in order from one background thread, so
a slow or absent server never slows the boot; heartbeats while a stage runs long.

Before the plan is known, events go to `<server>/api/v1/nodes/<node>/events` when the command line
names the node, and are buffered otherwise until the plan gives `reporting.events_url`.
"""

from __future__ import annotations

import collections
import queue
import random
import threading
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

from bootagent.context import Console
from bootagent.http_client import Client, HttpError
from ground.contract.cmdline import TOKEN_HEADER

STOP = object()
MAX_BUFFER = 500


def heartbeat_delay(interval: float, rng: random.Random) -> float:
    """A random 0.3-0.6 of the interval, so a thousand nodes do not hit the server in step."""
    return interval * rng.uniform(0.3, 0.6)


def events_urls(events_url: str, servers: tuple[str, ...]) -> list[str]:
    """The events URL first, then the same path on the other servers (failover)."""
    if not events_url:
        return []
    if not urlsplit(events_url).scheme:
        return [urljoin(s + "/", events_url.lstrip("/")) for s in servers]
    path = urlsplit(events_url).path
    others = [urljoin(s + "/", path.lstrip("/")) for s in servers]
    return [events_url] + [u for u in others if u != events_url]


class Reporter:
    """Queue events; a daemon thread posts them. `close()` flushes within a bound."""

    def __init__(
        self,
        console: Console,
        servers: tuple[str, ...] = (),
        timeout: float = 3.0,
        heartbeat_seconds: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.console = console
        self.servers = servers
        self.timeout = timeout
        self.heartbeat_seconds = heartbeat_seconds
        self.rng = rng or random.Random()
        self.urls: list[str] = []
        self.token = ""  # this boot's token (swarmboot.token): every event carries it
        self.common: dict[str, Any] = {}
        self.current_stage = ""
        self.sent = 0
        self.failed = 0
        self._pending: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_BUFFER)
        self._queue: queue.Queue[object] = queue.Queue()
        self._lock = threading.Lock()
        self._last_event = time.monotonic()
        self._stop = threading.Event()
        self._sender: threading.Thread | None = None
        self._beater: threading.Thread | None = None

    # -- configuration -----------------------------------------------------------------------
    def set_events_url(self, events_url: str) -> None:
        """Where events go from now on; buffered events are sent there."""
        with self._lock:
            self.urls = events_urls(events_url, self.servers)
            while self._pending:
                self._queue.put(self._pending.popleft())

    def set_image(self, name: str, version: int) -> None:
        self.common = {"image": name, "version": version}

    def start(self) -> None:
        if self._sender is None:
            self._sender = threading.Thread(target=self._send_loop, name="events", daemon=True)
            self._sender.start()
            self._beater = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
            self._beater.start()

    # -- events ------------------------------------------------------------------------------
    def event(
        self,
        stage: str,
        status: str,
        *,
        duration: float | None = None,
        progress: float | None = None,
        message: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {"stage": stage, "status": status, "message": message, **self.common}
        if duration is not None:
            body["duration"] = round(duration, 3)
        if progress is not None:
            body["progress"] = round(progress, 4)
        if details:
            body["details"] = details
        self._last_event = time.monotonic()
        with self._lock:
            if self.urls:
                self._queue.put(body)
            else:
                self._pending.append(body)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (bounded by `timeout`), then stop the threads."""
        self._stop.set()
        self._queue.put(STOP)
        if self._sender is not None:
            self._sender.join(timeout)

    # -- threads -----------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(heartbeat_delay(self.heartbeat_seconds, self.rng)):
            idle = time.monotonic() - self._last_event
            if idle >= 0.3 * self.heartbeat_seconds and self.current_stage:
                self.event("heartbeat", "heartbeat", details={"stage": self.current_stage})

    def _send_loop(self) -> None:
        session = Client()
        while True:
            item = self._queue.get()
            if item is STOP:
                session.close()
                return
            assert isinstance(item, dict)
            try:
                self._post(session, item)
            except Exception as exc:  # the events thread must outlive any one event
                self.failed += 1
                self.console.debug(f"event not sent: {type(exc).__name__}: {exc}")

    def _post(self, session: Client, body: dict[str, Any]) -> None:
        with self._lock:
            urls = list(self.urls)
        for i, url in enumerate(urls):
            try:
                headers = {TOKEN_HEADER: self.token} if self.token else {}
                response = session.post(url, json=body, timeout=self.timeout, headers=headers)
            except HttpError as exc:
                self.console.debug(f"event to {url} failed: {exc.reason}")
                continue
            if response.status_code < 300:
                self.sent += 1
                if i:
                    with self._lock:  # the one that worked goes first
                        self.urls.insert(0, self.urls.pop(i))
                return
            self.console.debug(f"event to {url}: HTTP {response.status_code} {response.text[:200]}")
            if response.status_code < 500:
                break  # the server understood and refused: another server would too
        self.failed += 1
