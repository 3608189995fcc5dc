"""Packed image versions over HTTP: kernel, initramfs, the image file (HTTP Range: the torrents'
BEP 19 web seed), the torrent with our tracker and web seed added, and the manifest."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from ground.errors import NotFoundError
from ground.inputs import digits
from server.api.deps import state_of
from server.state import Counters

router = APIRouter()


class CountingFileResponse(FileResponse):
    """A FileResponse (with Range support) that adds the bytes it sends to a counter."""

    def __init__(self, *args: Any, counters: Counters, key: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counters = counters
        self._key = key

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                self._counters.add_bytes(self._key, len(message.get("body", b"")))
            await send(message)

        await super().__call__(scope, receive, counting_send)


@router.get("/images/{image}/{version}/{name}")
@router.head("/images/{image}/{version}/{name}")
async def image_file(request: Request, image: str, version: str, name: str) -> Response:
    state = state_of(request)
    found = state.catalog.get(image, int(version)) if digits(version) and len(version) < 10 else None
    if found is None:
        raise NotFoundError(f"no packed version {image}/{version}")
    if name not in found.file_names():
        raise NotFoundError(
            f"{image}/{version} has no file {name!r}", hint=", ".join(sorted(found.file_names()))
        )
    if name == found.manifest.torrent.name:
        return Response(state.catalog.torrent(found), media_type="application/x-bittorrent")
    media = "application/json" if name.endswith(".json") else "application/octet-stream"
    return CountingFileResponse(
        found.path(name), media_type=media, counters=state.counters, key=f"{image}/{version}/{name}"
    )
