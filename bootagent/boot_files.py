"""A booted node serves its version's kernel and initramfs to rebooting nodes (docs/swarm.md,
"Boot files from peers"); part of the booted seeding service (bootagent/seeder.py).

1. `fetch`: ask the server where to get them (GET /api/v1/boot-files?node=NAME: a booted peer
   first when one holds them, the server last), stream each into `dir`, check its sha256, keep
   it only if it matches. Waits when the server says another node is fetching them from it.
2. `BootFileServer`: plain HTTP (GET and HEAD, the files' paths only: /boot-files/SHA256/NAME),
   at the lowest priority the service runs at, counting what it sent and to whom.
3. The service says `seed progress` with details `boot_files` (port, files, counters) when it
   starts serving and every `REPORT_EVERY` seconds (the server's holder list expires otherwise),
   and `seed done` when it stops; the server writes it into rebooting nodes' iPXE scripts
   (server/boot_peers.py), with the server after it (`||`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bootagent.http_client import Client, HttpError

PORT = 7480  # the service's port; another one if it is taken (the server is told which)
REPORT_EVERY = 60.0  # server/boot_peers.py's TTL is three of these
CHUNK = 1 << 20
MAX_WAITS = 60  # bounded: at most this many "another node is fetching" answers


@dataclass
class Fetched:
    """What `fetch` got: name -> path, and the bytes by where they came from."""

    image: str = ""
    version: int = 0
    paths: dict[str, Path] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    from_peers: int = 0
    from_server: int = 0
    sources: list[str] = field(default_factory=list)
    serve_seconds: float = 0.0
    serve: bool = True


class BootFilesError(Exception):
    pass


def _download(session: Client, url: str, target: Path, sha256: str, timeout: float) -> int:
    """`url` into `target` if its sha256 is `sha256`; the bytes read (raises on any failure)."""
    digest = hashlib.sha256()
    part = target.with_name(target.name + ".part")
    size = 0
    try:
        with session.stream(url, timeout=timeout) as response:
            if response.status_code != HTTPStatus.OK:
                raise BootFilesError(f"{url}: HTTP {response.status_code}")
            with part.open("wb") as out:
                for chunk in response.iter_content(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        if digest.hexdigest() != sha256:
            raise BootFilesError(f"{url}: sha256 {digest.hexdigest()[:12]}…, not {sha256[:12]}…")
        part.rename(target)
        return size
    finally:
        part.unlink(missing_ok=True)


def fetch(
    servers: tuple[str, ...], node: str, directory: Path, *, timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep, say: Callable[[str], None] = print,
) -> Fetched:
    """The node's version's boot files into `directory`, from a peer if the server names one."""
    directory.mkdir(parents=True, exist_ok=True)
    got = Fetched()
    with Client() as session:
        for _ in range(MAX_WAITS):
            answer = _ask(session, servers, node, timeout)
            got.image, got.version = str(answer["image"]), int(answer["version"])
            got.serve_seconds = float(answer.get("serve_seconds") or 0)
            if not answer.get("serve"):
                got.serve = False
                return got
            if answer.get("wait"):  # another node fetches them from the server right now: it will hold them
                sleep(float(answer["wait"]))
                continue
            break
        for entry in answer["files"]:
            name, sha = Path(entry["name"]).name, str(entry["sha256"])
            target = directory / sha / name
            target.parent.mkdir(exist_ok=True)
            urls: list[str] = list(entry["urls"])
            problems = []
            for i, url in enumerate(urls):
                peer = i < len(urls) - 1  # the server's URL is the last
                try:
                    size = _download(session, url, target, sha, timeout)
                except (BootFilesError, OSError) as exc:  # HttpError is an OSError
                    problems.append(str(exc))
                    continue
                if peer:
                    got.from_peers += size
                else:
                    got.from_server += size
                got.sources.append(url)
                break
            else:
                raise BootFilesError(f"could not fetch {name}: " + "; ".join(problems))
            got.paths[name], got.sha256[name] = target, sha
    say(f"boot files {', '.join(got.paths)}: {got.from_peers >> 20} MiB from peers, "
        f"{got.from_server >> 20} MiB from the server")
    return got


def _ask(session: Client, servers: tuple[str, ...], node: str, timeout: float) -> dict[str, Any]:
    problems = []
    for server in servers:
        try:
            response = session.get(f"{server}/api/v1/boot-files", params={"node": node}, timeout=timeout)
        except HttpError as exc:
            problems.append(str(exc))
            continue
        if response.status_code == HTTPStatus.OK:
            return dict(response.json())
        problems.append(f"{server}: HTTP {response.status_code}")
    raise BootFilesError("no server said where the boot files are: " + "; ".join(problems))


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.requests = 0
        self.by_address: dict[str, int] = {}

    def add(self, address: str, n: int) -> None:
        with self.lock:
            self.sent += n
            self.by_address[address] = self.by_address.get(address, 0) + n

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"sent": self.sent, "requests": self.requests, "served": dict(self.by_address)}


class BootFileServer:
    """Serves the fetched files, and nothing else, on `port` (or a free one) in a daemon thread."""

    def __init__(
        self, files: dict[str, Path], sha256: dict[str, str], port: int = PORT, *, image: str = "",
        version: int = 0,
    ) -> None:
        self.image, self.version = image, version
        self.paths = {f"/boot-files/{sha256[name]}/{name}": path for name, path in files.items()}
        self.files = dict(sha256)
        self.counters = Counters()
        handler = _handler(self.paths, self.counters)
        try:
            self.httpd = ThreadingHTTPServer(("", port), handler)
        except OSError:
            self.httpd = ThreadingHTTPServer(("", 0), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="boot-files", daemon=True)

    def start(self) -> BootFileServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def details(self, stopped: bool = False) -> dict[str, Any]:
        return {"image": self.image, "version": self.version, "port": self.port, "files": self.files,
                **self.counters.snapshot(), "stopped": stopped}


def _handler(paths: dict[str, Path], counters: Counters) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "swarmboot-boot-files"

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = paths.get(self.path.split("?", 1)[0])
            if path is None:
                self.send_error(HTTPStatus.NOT_FOUND, "not a boot file this node serves")
                return
            with counters.lock:
                counters.requests += 1
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if body:
                    sent = 0
                    try:
                        while chunk := f.read(CHUNK):
                            self.wfile.write(chunk)
                            sent += len(chunk)
                    finally:
                        counters.add(self.client_address[0], sent)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # counted, not logged: a rack's reboot would fill the journal

    return Handler


def serve_after_boot(  # noqa: PLR0917
    servers: tuple[str, ...], node: str, directory: Path, port: int, stopping: threading.Event,
    report: Callable[[str, str, dict[str, Any]], None], say: Callable[[str], None],
) -> None:
    """The service's boot-file thread: fetch, serve until `stopping`, report, remove the files."""
    try:
        got = fetch(servers, node, directory, say=say)
    except (BootFilesError, OSError, ValueError, KeyError) as exc:
        say(f"not serving boot files: {exc}")
        shutil.rmtree(directory, ignore_errors=True)
        return
    if not got.serve:
        say("not serving boot files: the server's boot_files_from_peers is off")
        shutil.rmtree(directory, ignore_errors=True)
        return
    server = BootFileServer(got.paths, got.sha256, port, image=got.image, version=got.version).start()
    fetched = {"from_peers": got.from_peers, "from_server": got.from_server, "sources": got.sources}
    started = time.monotonic()
    try:
        report("progress", f"serving the kernel and initramfs on port {server.port}",
               {**server.details(), "fetched": fetched})
        while not stopping.wait(REPORT_EVERY):
            if got.serve_seconds and time.monotonic() - started >= got.serve_seconds:
                break
            sent = server.counters.sent >> 20
            report("progress", f"served {sent} MiB of boot files so far", server.details())
    finally:
        details = server.details(stopped=True)
        server.close()
        shutil.rmtree(directory, ignore_errors=True)
        sent, requests = details["sent"] >> 20, details["requests"]
        report("done", f"served {sent} MiB of boot files in {requests} request(s)", details)
