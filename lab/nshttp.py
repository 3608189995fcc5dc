"""HTTP requests from inside a network namespace, without starting a process per request.

A network namespace belongs to a thread, not to the whole process: one worker thread enters the
lab's namespace (setns(2)) and makes every request; the rest of the program stays where it is.
The lab uses it to ask the server (which listens on the lab's bridge, unreachable from outside
the namespace) for its health and its admin statistics.

    http = NamespaceHttp("sb1234-lab")
    status, body = http.request("http://10.77.0.1:8080/healthz")
    http.close()
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import os
import urllib.error
import urllib.request
from typing import Any

from ground.errors import SwarmbootError

CLONE_NEWNET = 0x40000000


class NamespaceHttpError(SwarmbootError):
    """A request made inside the lab's namespace failed."""


def _enter(netns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into network namespace {netns}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def http_request(
    url: str, method: str, headers: dict[str, str], data: bytes | None, timeout: float
) -> tuple[int, bytes]:
    """(status, body) of one request from the calling thread's namespace; OSError if none came."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


class NamespaceHttp:
    """Makes HTTP requests from a thread that lives in network namespace `netns`."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"netns-{netns}", initializer=_enter, initargs=(netns,)
        )

    def request(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, bytes]:
        """(HTTP status, body); NamespaceHttpError when no answer came (refused, timeout…)."""
        future = self._pool.submit(http_request, url, method, headers or {}, data, timeout)
        try:
            return future.result(timeout=timeout + 5)
        except (OSError, concurrent.futures.TimeoutError, concurrent.futures.BrokenExecutor) as error:
            raise NamespaceHttpError(f"{method} {url} (in namespace {self.netns}): {error}") from None

    def json(self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
        status, body = self.request(url, headers=headers, timeout=timeout)
        if status != 200:
            raise NamespaceHttpError(f"GET {url}: HTTP {status}: {body[:200]!r}")
        return json.loads(body)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
