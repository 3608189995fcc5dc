"""A real HTTP server on loopback for agent unit tests, and a port nobody listens on."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def loopback_server(handler: type[http.server.BaseHTTPRequestHandler], **state: Any) -> Iterator[Any]:
    """A threading HTTP server with `handler` on 127.0.0.1; `state` becomes its attributes (what
    the handler reads and appends to) and `url` its base URL. Shut down on exit."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for key, value in state.items():
        setattr(srv, key, value)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        srv.url = f"http://127.0.0.1:{srv.server_address[1]}"  # type: ignore[attr-defined]
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def dead_url() -> str:
    """An http:// URL on a loopback port that was free a moment ago (nothing listens there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
