"""Helpers the routers share."""

from __future__ import annotations

from fastapi import Request

from server.state import ServerState


def state_of(request: Request) -> ServerState:
    return request.app.state.sb  # type: ignore[no-any-return]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""
