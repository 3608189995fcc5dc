"""Talking to the server: a list of URLs with failover, bounded exponential backoff with jitter,
and explicit handling of each status code (the IPA `ironic_api_client` pattern).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bootagent.context import Console
from bootagent.errors import PlanRejected, ServerError, UnknownNodeError
from bootagent.http_client import Client, HttpError
from ground.contract.cmdline import TOKEN_HEADER
from ground.contract.plan import BootPlan, format_version
from ground.inputs import loads_json

RETRY_STATUSES = {408, 409, 423, 425, 429, 500, 502, 503, 504, 507}
MAX_PLAN_BYTES = 64 << 20  # a plan carries the node's files: generous, but bounded


def backoff_delays(base: float, cap: float, rng: random.Random) -> Iterator[float]:
    """Endless delays: exponential from `base`, capped at `cap`, each a random 50-100 % of that."""
    step = base
    while True:
        yield step * rng.uniform(0.5, 1.0)
        step = min(cap, step * 2)


@dataclass
class Attempt:
    server: str
    outcome: str  # "refused", "timeout", "HTTP 503", …


@dataclass
class ServerClient:
    servers: tuple[str, ...]
    console: Console
    request_timeout: float = 5.0
    base_delay: float = 1.0
    max_delay: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.order = list(self.servers)

    def fetch_plan(
        self,
        mac: str,
        node: str,
        deadline: float,
        extra: dict[str, str] | None = None,
        token: str = "",
    ) -> tuple[BootPlan, str]:
        """The boot plan and the server that gave it; retries every server until `deadline` seconds.
        `extra`: more parameters (what LLDP said of the node's switch port). With this boot's
        `token` the plan carries the node's secrets; the server takes a token once, so a refusal
        of it (used already: 409, not ours: 403) is final."""
        params = {k: v for k, v in (("mac", mac), ("node", node)) if v}
        params.update(extra or {})
        params["plan_version"] = format_version()  # the server renders for the version we speak
        headers = {TOKEN_HEADER: token} if token else {}
        response, server = self.get("/api/v1/plan", params, deadline, what="the boot plan", headers=headers)
        try:
            document = loads_json(response.content, max_bytes=MAX_PLAN_BYTES, what="the plan")
            return BootPlan.from_dict(document), server
        except ValueError as exc:  # PlanError and InputError (size, depth, bad JSON) are ValueErrors
            raise PlanRejected(
                f"the server {server} sent a boot plan this agent cannot read: {exc}",
                hint="the server and the image's initramfs come from different swarmboot versions; "
                "re-pack the image on this server",
            ) from exc

    def fetch_bytes(self, url: str, deadline: float, what: str) -> bytes:
        """A file by its URL, failing over to the same path on the other servers."""
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if parts.scheme:
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in self.order:
                self.order.insert(0, origin)
        response, _ = self.get(path, {}, deadline, what)
        return bytes(response.content)

    def get(
        self,
        path: str,
        params: dict[str, str],
        deadline: float,
        what: str,
        headers: dict[str, str] | None = None,
    ) -> tuple[Any, str]:
        """GET `path` from the servers in turn until one answers 200, within `deadline` seconds."""
        start = self.clock()
        delays = backoff_delays(self.base_delay, self.max_delay, self.rng)
        unknown = ""
        announced = False
        with Client() as session:
            while True:
                for server in list(self.order):
                    try:
                        response = session.get(
                            server + path, params=params, timeout=self.request_timeout, headers=headers
                        )
                    except HttpError as exc:
                        self._note(server, exc.reason)
                        continue
                    status = response.status_code
                    self._note(server, f"HTTP {status}")
                    if status == 200:
                        self._promote(server)
                        return response, server
                    if status == 409 and _code(response) == "token_used":
                        raise PlanRejected(
                            f"the server {server} refused this boot's token for {what}: {_detail(response)}",
                            hint="someone may have fetched this node's secrets before it: tell the "
                            "administrator (swarmboot node show); rebooting the node brings a new token",
                        )
                    if status == 404:
                        unknown = f"{server}: {_detail(response)}"
                    elif status not in RETRY_STATUSES and status < 500:
                        raise PlanRejected(
                            f"the server {server} refused the request for {what}: HTTP {status} "
                            f"{_detail(response)}",
                            hint="check swarmboot.node / swarmboot.mac on the kernel command line "
                            "and the node's entry on the server",
                        )
                if not announced:
                    self.console.info(f"waiting for {what}: " + self.summary())
                    announced = True
                delay = next(delays)
                if self.clock() - start + delay > deadline:
                    break
                self.console.debug(f"retrying in {delay:.1f} s ({self.summary()})")
                self.sleep(delay)
        elapsed = self.clock() - start
        if unknown:
            raise UnknownNodeError(
                f"the server does not know {what} for "
                f"{', '.join(f'{k}={v}' for k, v in params.items()) or path}: {unknown}",
                hint="add the node on the server (swarmboot node add NAME --mac MAC) or fix "
                f"swarmboot.node / swarmboot.mac (retried for {elapsed:.0f} s)",
            )
        raise ServerError(
            f"no server gave {what} within {deadline:.0f} s: {self.summary()}",
            hint="check that `swarmboot serve` runs, that this node reaches it (cable, VLAN, "
            "firewall) and the swarmboot.server= kernel argument",
        )

    def _note(self, server: str, outcome: str) -> None:
        self.attempts.append(Attempt(server, outcome))

    def _promote(self, server: str) -> None:
        self.order.remove(server)
        self.order.insert(0, server)

    def summary(self) -> str:
        last: dict[str, str] = {}
        for attempt in self.attempts:
            last[attempt.server] = attempt.outcome
        return "; ".join(f"{s}: {o}" for s, o in last.items()) or "no attempt yet"


def _code(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            if key in body:
                return str(body[key])[:200]
    return str(body)[:200]
