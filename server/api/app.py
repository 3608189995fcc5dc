"""The ASGI application: a lean front for the hot paths, FastAPI for everything else.

Measured on a 2-core box (bench/server.py): FastAPI's per-request overhead caps a trivial route
near 3,700 requests/s, a bare ASGI callable near 10,800. Tracker announces (goal 5,000/s) and
cached boot plans (goal 2,000/s) are answered by `HotPath` directly; everything else (and plan
cache misses) goes to FastAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from ground import __version__
from ground.contract.cmdline import TOKEN_HEADER
from ground.errors import ConflictError, NotFoundError, SwarmbootError, UsageError
from server import plan_ahead
from server.api import admin, boot, images, nodes, operator
from server.api.metrics import MeasuredApp
from server.state import ServerState

log = logging.getLogger(__name__)
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
REFRESH_SECONDS = 1.0
PLANS_AHEAD_SECONDS = 0.5  # how often the plans-ahead loop looks for a change
TEXT = [(b"content-type", b"text/plain")]
JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
TOKEN_KEY = TOKEN_HEADER.lower().encode()  # a plan request with a token is never answered from the cache


def status_of(error: SwarmbootError) -> int:
    status = getattr(error, "status", None)
    if isinstance(status, int):
        return status
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, UsageError):
        return 422
    return 500


async def _refresh_loop(state: ServerState) -> None:
    while True:
        try:
            await run_in_threadpool(state.refresh)
        except SwarmbootError as exc:
            log.warning("refresh failed: %s", exc)
        except Exception:  # keep refreshing whatever happens; the error is logged
            log.exception("refresh failed")
        await asyncio.sleep(REFRESH_SECONDS)


async def _plans_ahead_loop(state: ServerState) -> None:
    """Build every node's public plan after each inventory or image change (server/plan_ahead.py)."""
    done = -1  # the epoch whose pass is over (complete, or failed: the next change tries again)
    while True:
        await asyncio.sleep(PLANS_AHEAD_SECONDS)
        if state.cache_epoch == done:
            continue
        try:
            result = await run_in_threadpool(plan_ahead.build_all, state)
        except SwarmbootError as exc:
            log.warning("plans ahead failed: %s", exc)
            done = state.cache_epoch
            continue
        except Exception:  # the plans are then built on demand; the error is logged
            log.exception("plans ahead failed")
            done = state.cache_epoch
            continue
        state.plans_ahead = result
        if result.complete or result.epoch == state.cache_epoch:
            done = result.epoch
        log.debug("plans ahead: %s", result.to_dict())


def create_api(state: ServerState) -> FastAPI:
    loops: list[operator.Loop] = []

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(state.refresh, True)
        tasks = [
            asyncio.create_task(_refresh_loop(state)), asyncio.create_task(_plans_ahead_loop(state)),
            *(asyncio.create_task(loop()) for loop in loops),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    api = FastAPI(
        title="swarmboot",
        version=__version__,
        description="The provisioning server: iPXE scripts, boot plans, images, the tracker, node events; "
        "the status page, metrics and the inventory (admin). docs/server.md has the details.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    api.state.sb = state
    for module in (boot, nodes, images, admin):
        api.include_router(module.router)
    loops.extend(operator.install(api, state))

    @api.exception_handler(SwarmbootError)
    async def swarmboot_error(_request: Request, exc: SwarmbootError) -> JSONResponse:
        body = {"error": exc.message, "hint": exc.hint}
        if getattr(exc, "code", ""):
            body["code"] = exc.code  # type: ignore[attr-defined]
        return JSONResponse(body, status_code=status_of(exc))

    @api.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    return api


class HotPath:
    """Answers /announce and cached /api/v1/plan without FastAPI; delegates the rest."""

    def __init__(self, state: ServerState, api: FastAPI) -> None:
        self.state = state
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            if path == "/announce":
                client = scope.get("client")
                body = self.state.tracker.announce(scope["query_string"], client[0] if client else "")
                await _respond(send, 200, TEXT, body)
                return
            query = scope["query_string"]
            # a token asks for secrets, an LLDP report is recorded: neither comes from the cache
            if path == "/api/v1/plan" and b"lldp_" not in query and not any(
                k == TOKEN_KEY for k, _ in scope["headers"]
            ):
                key = nodes.plan_key(query)
                cached = self.state.plan_cache.get(key) if key is not None else None
                if cached is not None:
                    self.state.counters.plan_cache_hits += 1
                    await _respond(send, 200, JSON, cached)
                    return
        await self.api(scope, receive, send)


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(state: ServerState) -> MeasuredApp:
    api = create_api(state)
    return MeasuredApp(HotPath(state, api), api.state.metrics)
