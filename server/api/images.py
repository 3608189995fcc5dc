"""Packed image versions over HTTP: kernel, initramfs, the image file (HTTP Range: the torrents'
BEP 19 web seed), the torrent with our tracker and web seed added, and the manifest."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ground.contract.pieces import HELD_HEADER, PATH, PIECE_HEADER, SEEN_HEADER, seen_test
from ground.errors import NotFoundError
from ground.inputs import digits
from server.api.deps import client_ip, state_of
from server.inventory.models import Node
from server.plan import image_version
from server.state import Counters, ServerState

router = APIRouter()

# how long a booted node serves its boot files (0: until it shuts down), told to its service
BOOT_FILES_SERVE_SECONDS = 0


class CountingFileResponse(FileResponse):
    """A FileResponse (with Range support) that adds the bytes it sends to a counter."""

    def __init__(
        self, *args: Any, counters: Counters, key: str, streams: Any = None, sent_to: str = "", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._sent_to = sent_to
        self._counters = counters
        self._key = key
        self._streams = streams  # BootPeers: a boot file's transfer counts while it runs

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        ended = False

        def end_stream() -> None:
            nonlocal ended
            if self._streams is not None and not ended:
                ended = True
                self._streams.stream_ended()
                if self._sent_to:
                    self._streams.server_sent(self._sent_to)

        length, sent = -1, 0

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal length, sent
            if message["type"] == "http.response.start":
                length = next((int(v) for k, v in message.get("headers", []) if k == b"content-length"), -1)
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                self._counters.add_bytes(self._key, len(message.get("body", b"")))
                if sent == length or not message.get("more_body", False):
                    end_stream()  # before the last bytes go: a client that has them all finds the slot free
            await send(message)

        if self._streams is not None:
            self._streams.stream_started()
        try:
            await super().__call__(scope, receive, counting_send)
        finally:
            end_stream()  # a transfer cut short


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
    m = found.manifest
    boot_file = name in (m.kernel.name, m.initramfs.name) and request.method == "GET"
    return CountingFileResponse(
        found.path(name), media_type=media, counters=state.counters, key=f"{image}/{version}/{name}",
        streams=state.boot_peers if boot_file else None,
        # the last boot file iPXE fetches: that node's slot on the server's link is free again
        sent_to=client_ip(request) if boot_file and name == m.initramfs.name else "",
    )


@router.get(PATH)
async def next_piece(request: Request, image: str, version: str) -> Response:
    """The next piece of the image for a stripe owner (server/piece_dispenser.py): 200 with the
    piece's bytes and its index in `X-Piece`, or 204 when this round has handed them all out.
    `X-Seen` (base64 bitfield): the pieces the owner and its peers have, not sent again. Nothing
    is handed out while booted nodes hold the version and are asked to seed it (a rolling reboot)."""
    state = state_of(request)
    found = state.catalog.get(image, int(version)) if digits(version) and len(version) < 10 else None
    if found is None:
        raise NotFoundError(f"no packed version {image}/{version}")
    m = found.manifest
    size, piece = m.image_file.size, m.piece_size
    pieces = (size + piece - 1) // piece
    if state.reseeding.holders((image, int(version))) > 0:
        # booted nodes hold it and will seed it: the owner takes its fixed stripe from the seeder.
        # Nodes seeding already are not asked about: the owner sees their pieces (X-Seen) within
        # a second, and nothing is left to hand out to it; the tracker's seeds may be stale
        # (nodes gone without a "stopped" announce: 1.22 and 1.38 x T_min, docs/swarm.md)
        return Response(status_code=204, headers={HELD_HEADER: "1"})
    seen = seen_test(request.headers.get(SEEN_HEADER, ""), pieces)
    k, round_ = state.pieces.take((image, int(version)), pieces, seen, time.monotonic())
    if k is None:
        return Response(status_code=204)
    start = k * piece
    try:
        data = await run_in_threadpool(
            _read_span, found.path(m.image_file.name), start, min(piece, size - start)
        )
    except OSError:
        state.pieces.give_back(round_, k)
        raise
    state.counters.add_handed_out(f"{image}/{version}", len(data))
    return Response(data, media_type="application/octet-stream", headers={PIECE_HEADER: str(k)})


def _read_span(path: Path, start: int, n: int) -> bytes:
    with path.open("rb") as f:
        f.seek(start)
        return f.read(n)


@router.get("/api/v1/boot-files")
async def boot_files(request: Request, node: str, booting: bool = False) -> dict[str, Any]:
    """Where a booted node's service gets its version's kernel and initramfs (bootagent/boot_files.py):
    from a booted peer when one holds them, else from here; `wait`: ask again in that many seconds,
    another node is fetching them from here and will hold them soon (server/boot_peers.py).
    `booting=true`: an agent's fetch from its initramfs (told to ask again sooner, and for at most
    `FIRST_FETCH_PRIORITY` s)."""
    state = state_of(request)
    return await run_in_threadpool(_boot_files_for, state, node, client_ip(request), booting)


def _boot_files_for(state: ServerState, name: str, address: str, booting: bool = False) -> dict[str, Any]:
    with state.db.read() as session:
        found = session.execute(select(Node).where(Node.name == name)).unique().scalar_one_or_none()
        if found is None:
            raise NotFoundError(f"no node {name!r}", hint="swarmboot node list")
        version = image_version(found.group, state.catalog)
    m = version.manifest
    if not state.settings.boot_files_from_peers:
        return {"serve": False, "image": m.image, "version": m.version, "files": [], "wait": 0}
    names = (m.kernel.name, m.initramfs.name)
    holder, wait = state.boot_peers.for_service(
        (m.image, m.version), name, state.ip_switch.get(address, ""), names, address, booting=booting
    )
    files = [
        {"name": e.name, "sha256": e.sha256, "size": e.size,
         "urls": ([holder.url(e.name)] if holder else []) + [state.catalog.url(version, e.name)]}
        for e in (m.kernel, m.initramfs)
    ]
    return {"serve": True, "image": m.image, "version": m.version, "files": files, "wait": wait,
            "serve_seconds": BOOT_FILES_SERVE_SECONDS}


@router.get("/api/v1/seed-wanted")
async def seed_wanted(request: Request, node: str, image: str, version: int) -> dict[str, Any]:
    """A booted node's seeding service, done seeding `image`/`version` but still holding it, asks
    whether to seed it again (server/reseed.py): `seed`, and `poll`, when to ask next (0: never)."""
    state = state_of(request)
    if not state.settings.seed_on_demand:
        return {"seed": False, "poll": 0, "leechers": 0, "seeds": 0,
                "why": "the server's seed_on_demand is off"}
    found = state.catalog.get(image, version)
    if found is None:
        raise NotFoundError(f"no packed version {image}/{version}",
                            hint="the version was deleted: the node no longer offers it")
    info_hash = found.manifest.info_hash
    swarm = state.tracker.swarms.get(bytes.fromhex(info_hash)) if len(info_hash) == 40 else None
    leechers, seeds = (len(swarm.leechers.items), len(swarm.seeds.items)) if swarm else (0, 0)
    answer = state.reseeding.ask((image, version), node, leechers, seeds,
                                 server_seeds=0 if state.seeder is None else 1)
    return asdict(answer)
