"""The agent's HTTP client (bootagent/http_client.py) against a real HTTP server on loopback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bootagent.http_client import CannotConnect, Client, HttpError, Timeout


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn answers
    seen: list[tuple[str, str, int]] = []  # method, path, client port (which connection)

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.seen.append(("GET", self.path, self.client_address[1]))
        if self.path.startswith("/moved"):
            self._answer(307, b"", Location="/plan?from=moved")
        elif self.path.startswith("/loop"):
            self._answer(302, b"", Location="/loop")
        elif self.path.startswith("/close"):
            self._answer(200, b"bye", Connection="close")
            self.close_connection = True
        elif self.path.startswith("/big"):
            self._answer(200, bytes(range(256)) * 4096)
        else:
            said = {"path": self.path, "token": self.headers.get("X-Token", "")}
            self._answer(200, json.dumps(said).encode())

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        Handler.seen.append(("POST", self.path, self.client_address[1]))
        self._answer(404 if self.path == "/nowhere" else 200, json.dumps({"got": body}).encode())


@pytest.fixture
def server() -> Iterator[str]:
    Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_get_with_params_and_headers_post_json_on_one_kept_alive_connection(server: str) -> None:
    with Client() as client:
        answer = client.get(f"{server}/plan", params={"mac": "52:54:00:00:00:01"}, headers={"X-Token": "t"})
        assert answer.status_code == 200
        assert answer.json() == {"path": "/plan?mac=52%3A54%3A00%3A00%3A00%3A01", "token": "t"}
        posted = client.post(f"{server}/events", json={"stage": "plan"}, timeout=5)
        assert posted.json() == {"got": {"stage": "plan"}}
        refused = client.post(f"{server}/nowhere", json={}, timeout=5)
        assert refused.status_code == 404  # a status is an answer, not an error
    assert len({port for _, _, port in Handler.seen}) == 1, Handler.seen


def test_redirects_are_followed_and_bounded(server: str) -> None:
    with Client() as client:
        answer = client.get(f"{server}/moved")
        assert answer.json()["path"] == "/plan?from=moved" and answer.url.endswith("/plan?from=moved")
        with pytest.raises(HttpError, match="more than 5 redirects"):
            client.get(f"{server}/loop")


def test_a_connection_the_server_closed_is_opened_again(server: str) -> None:
    with Client() as client:
        assert client.get(f"{server}/close").text == "bye"
        assert client.get(f"{server}/after").status_code == 200
    assert len({port for _, _, port in Handler.seen}) == 2


def test_a_stream_reads_the_body_in_chunks(server: str) -> None:
    with Client() as client, client.stream(f"{server}/big", timeout=5) as response:
        chunks = list(response.iter_content(65536))
    assert response.status_code == 200 and b"".join(chunks) == bytes(range(256)) * 4096
    assert len(chunks) == 16


def test_no_answer_says_why() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with Client() as client, pytest.raises(CannotConnect) as refused:
        client.get(f"http://127.0.0.1:{port}/plan", timeout=5)
    assert refused.value.reason == "connection refused"
    with socket.socket() as silent:  # accepts (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with Client() as client, pytest.raises(Timeout) as late:
            client.get(f"http://127.0.0.1:{silent.getsockname()[1]}/plan", timeout=0.5)
    assert late.value.reason == "timed out"
    with Client() as client, pytest.raises(HttpError, match="not an http"):
        client.get("ftp://127.0.0.1/x")


def test_an_answer_cut_off_while_its_body_is_read_is_an_http_error() -> None:
    """A server that promises 100 bytes and closes after 10: the callers catch HttpError (the
    reporter's thread, the plan's failover), never a bare IncompleteRead or reset."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)

        def serve(times: int) -> None:
            for _ in range(times):
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")

        thread = threading.Thread(target=serve, args=(2,), daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/plan"
        with Client() as client:
            with pytest.raises(HttpError, match="cut off"):
                client.get(url, timeout=5)
            with pytest.raises(HttpError, match="cut off"), client.stream(url, timeout=5) as response:
                list(response.iter_content(1 << 20))
        thread.join(10)
