"""Admin endpoints (need `Authorization: Bearer <admin.token>`): status, swarm figures, refresh."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from server import auth, events
from server.api.deps import state_of
from server.inventory import crud


def require_admin(request: Request) -> None:
    if not auth.check(request.headers.get("authorization"), state_of(request).token):
        raise HTTPException(
            status_code=401,
            detail="admin token required (Authorization: Bearer …)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _bearer() -> object:
    from server.api.access import bearer  # OpenAPI: these routes take the admin token

    return bearer


router = APIRouter(
    prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(_bearer()), Depends(require_admin)]
)


@router.get("/nodes")
async def nodes(request: Request) -> list[dict[str, Any]]:
    state = state_of(request)
    return await run_in_threadpool(events.status, state.db, None, state.catalog)


@router.get("/nodes/{name}/alerts")
async def node_alerts(request: Request, name: str) -> list[dict[str, Any]]:
    return await run_in_threadpool(events.alerts, state_of(request).db, name)


@router.get("/inventory")
async def inventory(request: Request, secrets: bool = False) -> dict[str, Any]:
    return await run_in_threadpool(crud.export, state_of(request).db, secrets)


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    state = state_of(request)
    seeder = state.seeder.stats() if state.seeder is not None else {}
    return {
        "server_url": state.server_url,
        "versions": [
            {
                "image": v.image,
                "version": v.number,
                "info_hash": v.manifest.info_hash,
                "current": state.catalog.current.get(v.image) == v.number,
            }
            for v in sorted(state.catalog.versions.values(), key=lambda v: v.key)
        ],
        "tracker": {
            "announces": state.tracker.announces,
            "failures": state.tracker.failures,
            "swarms": state.tracker.stats(),
        },
        "seeder": seeder,
        "nfs": state.nfs.stats() if state.nfs is not None else {},
        "http_bytes": dict(state.counters.http_bytes),
        "handed_out_bytes": dict(state.counters.handed_out),  # pieces to stripe owners (piece_dispenser.py)
        "boot_peers": state.boot_peers.stats(),  # booted nodes serving boot files (server/boot_peers.py)
        "reseeding": state.reseeding.stats(),  # booted nodes waiting to seed again (server/reseed.py)
        "plans": {
            "built": state.counters.plans, "cache_hits": state.counters.plan_cache_hits,
            "ahead": state.plans_ahead.to_dict() if state.plans_ahead is not None else {},
        },
        "events": state.counters.events,
    }


@router.post("/refresh")
async def refresh(request: Request) -> dict[str, bool]:
    changed = await run_in_threadpool(state_of(request).refresh, True)
    return {"changed": changed}
