"""The one loopback HTTP fake of the tests: GET routes (bytes, a file with HTTP Range for the BEP 19
web seed, or a function of the request), a BEP 3/23 tracker at /announce, and a sink that records
every POST (events). The agent's tests talk to it over a real socket.

    with loopback_server() as srv:
        srv.routes["/api/v1/plan"] = json.dumps(plan).encode()
        ... srv.url ... srv.requests ... srv.posts ... srv.events
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
        route = self.server.routes.get(parts.path, self.server.fallback)
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
        try:
            data: Any = json.loads(body)
        except ValueError:
            data = body
        self.server.posts.append((self.path, data))
        if self.path.endswith("/events") and isinstance(data, dict):
            self.server.events.append({"path": self.path, **data})
        self._send(self.server.post_status, b"")


class LoopbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.fallback: Route | None = None  # what a GET of any other path gets (None: 404)
        self.requests: list[str] = []  # every request's path with its query, in order
        self.posts: list[tuple[str, Any]] = []  # (path, JSON body or raw bytes) of every POST
        self.events: list[dict[str, Any]] = []  # the POSTs to .../events, with their "path"
        self.post_status = 204
        self.peers: dict[bytes, dict[bytes, tuple[str, int]]] = {}
        self.left: dict[bytes, dict[bytes, int]] = {}  # the bytes each peer still lacks (its last announce)
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
        left = self.left.setdefault(info_hash, {})
        if params.get("event", [""])[0] == "stopped":
            swarm.pop(peer_id, None)
            left.pop(peer_id, None)
        else:
            swarm[peer_id] = (address, port)
            left[peer_id] = int(params.get("left", ["0"])[0])
        compact = b"".join(
            socket.inet_aton(ip) + p.to_bytes(2, "big") for pid, (ip, p) in swarm.items() if pid != peer_id
        )
        incomplete = sum(1 for n in left.values() if n > 0)
        return bencode({"interval": 30, "min interval": 5, "peers": compact,
                        "complete": len(left) - incomplete, "incomplete": incomplete})


@contextmanager
def loopback_server(**attrs: Any) -> Iterator[LoopbackServer]:
    """A LoopbackServer on 127.0.0.1 for the length of the block; `attrs` set its attributes
    (routes, fallback, post_status…)."""
    server = LoopbackServer()
    for key, value in attrs.items():
        setattr(server, key, value)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def dead_url() -> str:
    """An http:// URL on a loopback port that was free a moment ago (nothing listens there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
