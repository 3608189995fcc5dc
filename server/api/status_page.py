"""The live status page: `/status` (server-rendered HTML, a little JavaScript) and its event stream.

- `GET /status` shows the counts of nodes by state, the filters (group, state, name), one page of
  the node table (rendered on the server, so it reads without JavaScript), the swarm and a node's
  timeline; `status.js` then follows `GET /status/events` (server-sent events) and updates the
  page in place.
- The stream is per view: the browser says which page it shows (`group`, `state`, `q`, `offset`,
  `limit`, and the `node` whose timeline is open). Once a second at most, the server sends the
  rows of that page that changed (`rows`), the whole page when its members changed (`view`), and
  the counts and the swarm when they changed (`summary`). What a browser receives is bounded by
  the page size, not by the cluster: 10,000 nodes cost what the 100 shown cost.
- Everything here needs the viewer or the admin token (server/api/access.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from server import events
from server.api import access
from server.api.deps import state_of
from server.state import ServerState
from server.status_hub import COLUMNS, STATES, StatusHub

HERE = Path(__file__).resolve().parent
STATIC = {"status.js": "text/javascript", "status.css": "text/css"}
TICK_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
PAGE_SIZES = (50, 100, 250, 500)
DEFAULT_LIMIT = 100

router = APIRouter(tags=["status page"])
Viewer = Annotated[access.Role, Depends(access.require_viewer)]
Credentials = Annotated[Any, Depends(access.bearer)]  # OpenAPI: a bearer token (or the session cookie)
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE / "templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


class Feed:
    """The hub and what wakes the streams up: one tick a second, off the event loop."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.hub = StatusHub(state.db)
        self.changed = asyncio.Event()
        self.summary: dict[str, Any] = {}
        self.summary_json = ""
        self.summary_seq = 0
        self.summary_changed = False
        self.streams = 0
        self.bytes_sent = 0
        self.messages_sent = 0

    async def run(self) -> None:
        while True:
            try:
                changed = await run_in_threadpool(self.hub.tick)
                self._summarize()
                if changed or self.summary_changed:
                    self.changed.set()
                    self.changed = asyncio.Event()
            except Exception:  # the page must keep following whatever happens; logged
                import logging

                logging.getLogger(__name__).exception("status feed tick failed")
            await asyncio.sleep(TICK_SECONDS)

    def _summarize(self) -> None:
        summary = {
            "counts": self.hub.counts,
            "groups": self.hub.by_group_and_state(),
            "swarm": swarm_summary(self.state, self.hub),
        }
        text = json.dumps(summary, separators=(",", ":"), sort_keys=True)
        self.summary_changed = text != self.summary_json
        if self.summary_changed:
            self.summary, self.summary_json = summary, text
            self.summary_seq += 1


def swarm_summary(state: ServerState, hub: StatusHub) -> list[dict[str, Any]]:
    """Per served version: peers the tracker knows, completions, and where the bytes came from."""
    seeded: dict[str, int] = {}
    if state.seeder is not None:
        with contextlib.suppress(Exception):  # the seeder's session may be stopping
            for torrent in state.seeder.stats()["torrents"]:
                seeded[torrent["info_hash"]] = torrent["uploaded"]
    node_bytes = hub.node_bytes()
    out = []
    for info_hash, version in sorted(state.catalog.by_info_hash.items(), key=lambda kv: kv[1].key):
        swarm = state.tracker.swarms.get(info_hash)
        seeders = len(swarm.seeds.items) if swarm else 0
        leechers = len(swarm.leechers.items) if swarm else 0
        web = state.counters.http_bytes.get(
            f"{version.image}/{version.number}/{version.manifest.image_file.name}", 0
        )
        out.append(
            {
                "image": version.image,
                "version": version.number,
                "seeders": seeders,
                "leechers": leechers,
                "completed": swarm.completed if swarm else 0,
                "seeder_sent": seeded.get(info_hash.hex(), 0),
                "web_seed_sent": web,
            }
        )
    if out:
        out[0]["nodes_from_peers"] = node_bytes["from_peers"]
        out[0]["nodes_from_web_seeds"] = node_bytes["from_web_seeds"]
    return out


def feed_of(request: Request) -> Feed:
    return request.app.state.status_feed  # type: ignore[no-any-return]


def _filters(group: str, state: str, q: str, offset: int, limit: int) -> dict[str, Any]:
    return {
        "group": group,
        "state": state if state in STATES else "",
        "q": q.strip().lower()[:63],
        "offset": max(0, offset),
        "limit": limit if limit in PAGE_SIZES else DEFAULT_LIMIT,
    }


def _page(feed: Feed, f: dict[str, Any]) -> tuple[int, list[str]]:
    names = feed.hub.view(f["group"], f["state"], f["q"])
    offset = min(f["offset"], max(0, (len(names) - 1) // f["limit"] * f["limit"]))
    f["offset"] = offset
    return len(names), names[offset : offset + f["limit"]]


# -- the page ---------------------------------------------------------------------------------


@router.get("/status", response_class=HTMLResponse, summary="The live status page (HTML)")
async def status_page(
    request: Request,
    *,
    group: str = "",
    state: str = "",
    q: str = "",
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> Response:
    access.refuse_token_in_url(request)
    if access.role_of(request) is None:
        return RedirectResponse("/status/login", status_code=303)
    feed = feed_of(request)
    f = _filters(group, state, q, offset, limit)
    total, names = _page(feed, f)
    html = _templates.get_template("status.html.j2").render(
        server_url=state_of(request).server_url,
        columns=COLUMNS,
        states=STATES,
        page_sizes=PAGE_SIZES,
        f=f,
        total=total,
        rows=[dict(zip(COLUMNS, values, strict=True)) for values in feed.hub.values(names)],
        counts=feed.hub.counts,
        groups=feed.hub.groups(),
        swarm=feed.summary.get("swarm", []),
        now=time.time(),
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/status/static/{name}", include_in_schema=True, summary="The page's script and style sheet")
async def static(name: str) -> Response:
    if name not in STATIC:
        return JSONResponse({"error": f"no file {name!r}"}, status_code=404)
    return Response(
        (HERE / "static" / name).read_bytes(), media_type=STATIC[name], headers={"Cache-Control": "no-cache"}
    )


@router.get(
    "/status/login", response_class=HTMLResponse, summary="The login form (or a token link: #token=…)"
)
async def login_form(request: Request) -> HTMLResponse:
    access.refuse_token_in_url(request)
    return HTMLResponse(_templates.get_template("login.html.j2").render(error=""))


@router.post(
    "/status/login",
    summary="Log in with the viewer or admin token (form field `token`); sets a session cookie",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"token": {"type": "string"}},
                        "required": ["token"],
                    }
                }
            },
        }
    },
    responses={303: {"description": "logged in: to /status"}, 401: {"description": "wrong token"}},
)
async def login(request: Request) -> Response:
    access.refuse_token_in_url(request)
    body = (await request.body())[:4096].decode(errors="replace")
    token = (parse_qs(body).get("token") or [""])[0]
    tokens = access.tokens_of(request)
    role = tokens.role_of(token) if token else None
    if role is None:
        html = _templates.get_template("login.html.j2").render(error="That is not the viewer or admin token.")
        return HTMLResponse(html, status_code=401)
    response = RedirectResponse("/status", status_code=303)
    response.set_cookie(access.COOKIE, tokens.session(role), httponly=True, samesite="strict", path="/")
    return response


@router.post("/status/logout", summary="Forget the session cookie")
async def logout() -> Response:
    response = RedirectResponse("/status/login", status_code=303)
    response.delete_cookie(access.COOKIE, path="/")
    return response


# -- data --------------------------------------------------------------------------------------


@router.get("/status/api/nodes", summary="One page of the node table (the page's rows as arrays)")
async def nodes_page(
    request: Request,
    _role: Viewer,
    _bearer: Credentials,
    *,
    group: str = "",
    state: str = "",
    q: str = "",
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    feed = feed_of(request)
    f = _filters(group, state, q, offset, limit)
    total, names = _page(feed, f)
    return {"columns": COLUMNS, "total": total, **f, "rows": feed.hub.values(names), **feed.summary}


@router.get("/status/api/nodes/{name}", summary="A node: its state, details and timeline of events")
async def node_detail(
    request: Request,
    name: str,
    _role: Viewer,
    _bearer: Credentials,
) -> dict[str, Any]:
    db = state_of(request).db
    (row,) = await run_in_threadpool(events.status, db, [name]) or [None]
    if row is None:
        return JSONResponse({"error": f"no node named {name!r}"}, status_code=404)  # type: ignore[return-value]
    row["timeline"] = await run_in_threadpool(events.timeline, db, name)
    return row


@router.get(
    "/status/events",
    summary="Server-sent events for one view of the page: `view`, `rows`, `summary`",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    _role: Viewer,
    _bearer: Credentials,
    *,
    group: str = "",
    state: str = "",
    q: str = "",
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
    node: Annotated[
        str, Query(description="the node whose timeline is open: its row is sent when it changes")
    ] = "",
) -> StreamingResponse:
    feed = feed_of(request)
    f = _filters(group, state, q, offset, limit)
    return StreamingResponse(
        _events(feed, f, node),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _events(feed: Feed, f: dict[str, Any], node: str) -> AsyncIterator[str]:
    feed.streams += 1
    try:
        sent_names: list[str] = []
        seq = -1
        summary_seq = -1
        first = True
        while True:
            waiter = feed.changed
            hub = feed.hub
            current = hub.seq
            total, names = _page(feed, f)
            watched = [*names, node] if node and node not in names else names
            messages = []
            if first:
                messages.append("retry: 2000\n\n")
            if names != sent_names or first:
                messages.append(
                    _sse(
                        "view",
                        {
                            "now": time.time(),
                            "total": total,
                            "offset": f["offset"],
                            "limit": f["limit"],
                            "rows": hub.values(watched),
                        },
                    )
                )
                sent_names = names
            elif current != seq:
                rows = hub.changed_since(watched, seq)
                if rows:
                    messages.append(_sse("rows", {"now": time.time(), "total": total, "rows": rows}))
            if feed.summary_seq != summary_seq:
                messages.append(f"event: summary\ndata: {feed.summary_json}\n\n")
                summary_seq = feed.summary_seq
            seq, first = current, False
            if messages:
                text = "".join(messages)
                feed.bytes_sent += len(text)
                feed.messages_sent += 1
                yield text
            try:
                await asyncio.wait_for(waiter.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keepalive\n\n"
    finally:
        feed.streams -= 1


def install(api: FastAPI, state: ServerState) -> Callable[[], Coroutine[Any, Any, None]]:
    """Add the page's routes; return the feed's loop (the app's lifespan runs it)."""
    api.state.status_feed = Feed(state)
    access.load_viewer_token(api.state, state.settings.home)
    api.include_router(router)
    return api.state.status_feed.run  # type: ignore[no-any-return]
