"""The operator's side of the API, wired into the app in one place: the status page and its feed,
Prometheus metrics, the inventory write API, and the API's own documentation.

- `GET /openapi.json`: every route, the hot path's too: `/announce` and cached plans are answered
  by `HotPath` in front of FastAPI, but FastAPI has the same routes (the same code answers), so
  they are documented and still work if the front ever lets a request through.
- `GET /docs`: Swagger UI, from files served by this server (fastapi-offline's copy of Swagger UI
  5: the provisioning network has no route to a CDN); `GET /redoc`: the same document in ReDoc.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from server.api import inventory_write, metrics, status_page
from server.api.deps import client_ip, state_of
from server.state import ServerState

DOCS_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
Loop = Callable[[], Coroutine[Any, Any, None]]


def _docs_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _add_docs(api: FastAPI) -> None:
    @api.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="swarmboot API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon.png",
        )

    @api.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="swarmboot API",
            redoc_js_url="/docs/static/redoc.standalone.js",
            redoc_favicon_url="/docs/static/favicon.png",
            with_google_fonts=False,
        )

    @api.get("/docs/static/{name}", include_in_schema=False)
    async def docs_static(name: str) -> Response:
        if name not in DOCS_FILES:
            return JSONResponse({"error": f"no file {name!r}"}, status_code=404)
        return FileResponse(_docs_dir() / name, media_type=DOCS_FILES[name])


def _add_hot_path_routes(api: FastAPI) -> None:
    @api.get(
        "/announce",
        tags=["nodes"],
        summary="BitTorrent tracker announce (BEP 3, BEP 23 compact, BEP 7 peers6)",
        description="Answered by the lean ASGI front; a bencoded dictionary, also on errors "
        "(`failure reason`, HTTP 200). Query: info_hash, peer_id (20 bytes each, URL-encoded), port, "
        "uploaded, downloaded, left, event, numwant, compact, no_peer_id.",
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def announce(request: Request) -> Response:
        state = state_of(request)
        body = state.tracker.announce(request.scope["query_string"], client_ip(request))
        return Response(body, media_type="text/plain")


def install(api: FastAPI, state: ServerState) -> list[Loop]:
    """Add the operator's routes to `api`; return the background loops the lifespan runs."""
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # no `_created` series: this process has one registry of its own
    from server.cluster import Cluster
    from server.reload import Reloader

    state.cluster = Cluster(state)
    loops = [status_page.install(api, state), state.cluster.run]
    state.reloader = Reloader(state, api.state)  # SIGHUP (serve.py installs the handler)
    loops.append(state.reloader.run)
    api.state.metrics = metrics.Metrics(state, api.state.status_feed)
    api.include_router(metrics.router)
    api.include_router(inventory_write.router)
    _add_hot_path_routes(api)
    _add_docs(api)
    state.event_listeners.append(api.state.metrics.observe_event)
    return loops
