"""Real pieces the agent's integration tests run against: an HTTP server on loopback (plan,
files with HTTP Range for the BEP 19 web seed, events, a BEP 3/23 tracker) and a libtorrent
seeder. The helpers are tested here too."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

Route = bytes | Path | Callable[["Handler"], tuple[int, bytes, str]]


def bencode(value: Any) -> bytes:
    if isinstance(value, bool):
        raise TypeError("no booleans in bencode")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(type(value))


class Handler(http.server.BaseHTTPRequestHandler):
    server: LoopbackServer  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.server.requests.append(self.path)
        if parts.path == "/announce":
            self._send(200, self.server.announce(parts.query, self.client_address[0]), "text/plain")
            return
        route = self.server.routes.get(parts.path)
        if route is None:
            self._send(404, b'{"detail": "not found"}', "application/json")
        elif callable(route):
            self._send(*route(self))
        elif isinstance(route, Path):
            self._send_file(route)
        else:
            self._send(
                200, route, "application/json" if route[:1] in (b"{", b"[") else "application/octet-stream"
            )

    def _send_file(self, path: Path) -> None:
        size = path.stat().st_size
        header = self.headers.get("Range", "")
        if header.startswith("bytes="):
            first, _, last = header[6:].split(",")[0].partition("-")
            start, end = int(first or 0), min(int(last) if last else size - 1, size - 1)
            with open(path, "rb") as handle:
                handle.seek(start)
                body = handle.read(end - start + 1)
            self.server.served_bytes += len(body)
            self._send(
                206, body, headers={"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"}
            )
            return
        body = path.read_bytes()
        self.server.served_bytes += len(body)
        self._send(200, body, headers={"Accept-Ranges": "bytes"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self.server.requests.append(self.path)
        if self.path.endswith("/events"):
            self.server.events.append({"path": self.path, **json.loads(body)})
            self._send(204 if self.server.events_status == 204 else self.server.events_status, b"")
            return
        self._send(404, b"")


class LoopbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.events_status = 204
        self.peers: dict[bytes, dict[bytes, tuple[str, int]]] = {}
        self.served_bytes = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up early (libtorrent's "stopped" announce) are not our business

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def announce(self, query: str, address: str) -> bytes:
        params = parse_qs(query, encoding="latin-1")
        info_hash = params["info_hash"][0].encode("latin-1")
        peer_id = params["peer_id"][0].encode("latin-1")
        port = int(params["port"][0])
        swarm = self.peers.setdefault(info_hash, {})
        if params.get("event", [""])[0] == "stopped":
            swarm.pop(peer_id, None)
        else:
            swarm[peer_id] = (address, port)
        compact = b"".join(
            socket.inet_aton(ip) + p.to_bytes(2, "big") for pid, (ip, p) in swarm.items() if pid != peer_id
        )
        return bencode({"interval": 30, "min interval": 5, "peers": compact})


@contextmanager
def http_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def dead_url() -> str:
    """A loopback URL where nothing listens (a port bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_image(path: Path, size: int, seed: int = 1) -> Path:
    """A file of pseudo-random bytes (incompressible, reproducible)."""
    import random

    rng = random.Random(seed)
    with open(path, "wb") as handle:
        left = size
        while left:
            n = min(left, 1 << 20)
            handle.write(rng.randbytes(n))
            left -= n
    return path


@contextmanager
def seeder(image: Path, torrent: bytes) -> Iterator[Any]:
    """A libtorrent session seeding `image` (in its own directory) on loopback."""
    import libtorrent as lt

    from bootagent import lan_tuning

    session = lt.session(lan_tuning.session_settings("seed", "127.0.0.1:0"))
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(torrent))
    params.save_path = str(image.parent)
    params.flags = (
        (params.flags | lt.torrent_flags.seed_mode)
        & ~lt.torrent_flags.auto_managed
        & ~lt.torrent_flags.paused
    )
    handle = session.add_torrent(params)
    try:
        yield handle
    finally:
        session.remove_torrent(handle)
        del session


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# -- tests of the helpers themselves -----------------------------------------------------------


def test_bencode_is_canonical() -> None:
    assert bencode({"b": 1, "a": [b"x", "yz"]}) == b"d1:al1:x2:yze1:bi1ee"


def test_http_server_serves_ranges_and_tracks_peers(tmp_path: Path) -> None:
    data = os.urandom(1000)
    (tmp_path / "f").write_bytes(data)
    with http_server() as server:
        server.routes["/f"] = tmp_path / "f"
        request = urllib.request.Request(server.url + "/f", headers={"Range": "bytes=10-19"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 206
            assert response.read() == data[10:20]
        ih = "%01" * 20
        for peer, port in ((b"A" * 20, 1000), (b"B" * 20, 2000)):
            url = f"{server.url}/announce?info_hash={ih}&peer_id={peer.decode()}&port={port}"
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read()
        # B sees A only, in compact form
        assert body.endswith(b"6:" + socket.inet_aton("127.0.0.1") + (1000).to_bytes(2, "big") + b"e")


def test_dead_url_refuses() -> None:
    with pytest.raises(OSError):
        urllib.request.urlopen(dead_url(), timeout=2)
