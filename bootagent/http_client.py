"""The agent's HTTP client: the standard library's http.client, one kept-alive connection per server.

Why not `requests` (which the agent used before): in a TCG guest its import (urllib3, idna,
charset_normalizer, certifi, importlib.metadata…) cost the frozen agent ~0.5 s of its plan stage,
where http.client costs ~0.1 s; the agent asks a few plain JSON and file GETs and posts JSON
events, so http.client's features are the ones it needs: timeouts, keep-alive, HTTPS (checked
against the image's CA bundle, which the dracut module installs), redirects (get).

    with Client() as client:
        answer = client.get("http://10.0.0.1:8080/api/v1/plan", params={"mac": mac}, timeout=10)
        answer.status_code, answer.json()
        client.post(url, json={...}, headers={...}, timeout=10)
        with client.stream(url, timeout=60) as response:   # a large file, read in chunks
            for chunk in response.iter_content(1 << 20): ...

Failures to connect or to read raise `HttpError` (`Timeout`, `CannotConnect`), whose text says
which of the usual causes it was; any HTTP status is a response, not an error.
"""

from __future__ import annotations

import errno
import json as jsonlib
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

if TYPE_CHECKING:  # imported at the first request (with ssl: ~0.3 s in a TCG guest), not at start
    import http.client

MAX_REDIRECTS = 5
USER_AGENT = "swarmboot-agent"


CA_FILE = "/etc/ssl/certs/ca-certificates.crt"  # the image's (Debian's update-ca-certificates)


def tls_context() -> Any:
    """Certificates checked against the image's CA bundle when it is there (the initramfs has no
    OpenSSL default paths), else OpenSSL's defaults."""
    import os
    import ssl

    return ssl.create_default_context(cafile=CA_FILE if os.path.isfile(CA_FILE) else None)


class HttpError(OSError):
    """The request did not get an answer; `reason` says why in a few words."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url, self.reason = url, reason


class Timeout(HttpError):
    pass


class CannotConnect(HttpError):
    pass


def _failure(exc: OSError, url: str) -> HttpError:
    if isinstance(exc, TimeoutError | socket.timeout):
        return Timeout(url, "timed out")
    if isinstance(exc, socket.gaierror):
        return CannotConnect(url, "name not resolved")
    if isinstance(exc, ConnectionRefusedError):
        return CannotConnect(url, "connection refused")
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return CannotConnect(url, "no route to host")
    return CannotConnect(url, f"cannot connect ({exc.strerror or exc})")


class Response:
    """A whole answer (`content` read), or a streamed one (`iter_content`, then close)."""

    def __init__(self, url: str, raw: http.client.HTTPResponse, content: bytes | None) -> None:
        self.url = url
        self.status_code = raw.status
        self.headers = {k.lower(): v for k, v in raw.getheaders()}
        self._raw = raw
        self._content = content

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = self._raw.read()
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON (ValueError when it is not)."""
        return jsonlib.loads(self.content)

    def iter_content(self, chunk: int) -> Iterator[bytes]:
        while True:
            try:
                block = self._raw.read(chunk)
            except (OSError, http_exceptions()) as exc:
                raise _read_failure(exc, self.url) from exc
            if not block:
                if self._raw.length:  # http.client ends a short read(amt) quietly: bytes still owed
                    raise HttpError(self.url, f"the answer was cut off ({self._raw.length} bytes missing)")
                return
            yield block


def http_exceptions() -> type[Exception]:
    import http.client

    return http.client.HTTPException


def _read_failure(exc: BaseException, url: str) -> HttpError:
    """A failure while the body was read (a timeout, a reset, a cut-off answer)."""
    if isinstance(exc, OSError):
        return _failure(exc, url)
    return HttpError(url, f"the answer was cut off ({type(exc).__name__})")


class Client:
    """Keeps one connection per scheme://host:port; a connection the server closed is opened again
    once per request."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def get(
        self, url: str, *, params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Response:
        if params:
            url += ("&" if urlsplit(url).query else "?") + urlencode(params)
        for _ in range(MAX_REDIRECTS + 1):
            raw = self._send("GET", url, None, headers or {}, timeout)
            location = raw.getheader("location")
            body = self._body(url, raw)
            if raw.status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                continue
            return Response(url, raw, body)
        raise HttpError(url, f"more than {MAX_REDIRECTS} redirects")

    def post(
        self, url: str, *, json: Any, headers: Mapping[str, str] | None = None, timeout: float = 30.0
    ) -> Response:
        body = jsonlib.dumps(json, separators=(",", ":")).encode()
        sent = {**(headers or {}), "Content-Type": "application/json"}
        raw = self._send("POST", url, body, sent, timeout)
        return Response(url, raw, self._body(url, raw))

    def _body(self, url: str, raw: http.client.HTTPResponse) -> bytes:
        """The whole body; a failure drops the connection (it is in an unknown state)."""
        try:
            return raw.read()
        except (OSError, http_exceptions()) as exc:
            self._drop(self._key(url))
            raise _read_failure(exc, url) from exc

    @contextmanager
    def stream(self, url: str, *, timeout: float = 60.0) -> Iterator[Response]:
        """A GET whose body is read by the caller, in chunks (the connection is not kept; no
        redirects: the boot-file service's URLs answer directly)."""
        key = self._key(url)
        raw = self._send("GET", url, None, {}, timeout)
        try:
            yield Response(url, raw, None)
        finally:
            self._drop(key)

    # -- the connection ------------------------------------------------------------------------
    @staticmethod
    def _key(url: str) -> tuple[str, str]:
        parts = urlsplit(url)
        return parts.scheme, parts.netloc

    def _drop(self, key: tuple[str, str]) -> None:
        """Close and forget the connection to `key`'s origin (if any)."""
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    def _send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> http.client.HTTPResponse:
        import http.client

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(url, "not an http:// or https:// URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        key = self._key(url)
        for attempt in range(2):
            connection = self._connections.get(key)
            reused = connection is not None
            if connection is None:
                if parts.scheme == "https":
                    connection = http.client.HTTPSConnection(
                        parts.hostname, parts.port, timeout=timeout, context=tls_context()
                    )
                else:
                    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
                self._connections[key] = connection
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            try:
                connection.request(method, target, body=body, headers=sent)
                return connection.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop(key)
                if not reused or attempt:  # a fresh connection failed: the server's answer
                    raise _failure(exc, url) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                if isinstance(exc, OSError):
                    raise _failure(exc, url) from exc
                raise HttpError(url, f"{type(exc).__name__}: {exc}") from exc
        raise HttpError(url, "no answer")  # not reached: the loop returns or raises
