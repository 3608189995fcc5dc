"""A node serves its version's kernel and initramfs to rebooting nodes (docs/swarm.md, "Boot files
from peers"): from its initramfs while it boots (`ServeWhileBooting`, the agent), then as part of
the booted seeding service (bootagent/seeder.py), which takes over the files the agent fetched.

1. `fetch`: ask the server where to get them (GET /api/v1/boot-files?node=NAME: a booted peer
   first when one holds them, the server last), stream each into `dir`, check its sha256, keep
   it only if it matches. Waits when the server says another node is fetching them from it.
2. `BootFileServer`: plain HTTP (GET and HEAD, the files' paths only: /boot-files/SHA256/NAME),
   at the lowest priority the service runs at, counting what it sent and to whom.
3. The service says `seed progress` with details `boot_files` (port, files, counters) when it
   starts serving, each time it has sent a node both files (`served_to`: the server frees that
   node's slot at this holder) and every `REPORT_EVERY` seconds (the server's holder list expires
   otherwise), and `seed done` when it stops; the server writes it into rebooting nodes' iPXE
   scripts (server/boot_peers.py), with the server after it (`||`).
"""

from __future__ import annotations

import hashlib
import json
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
STATUS_FILE = "boot-files.json"  # in the run dir: what the boot-files process served, once it stopped
FETCHED_FILE = "fetched.json"  # what the agent fetched, for the booted service to serve as it is


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

    def save(self, directory: Path) -> None:
        record = {"image": self.image, "version": self.version, "serve_seconds": self.serve_seconds,
                  "files": {n: {"path": str(p), "sha256": self.sha256[n]} for n, p in self.paths.items()},
                  "from_peers": self.from_peers, "from_server": self.from_server, "sources": self.sources}
        (directory / FETCHED_FILE).write_text(json.dumps(record) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Fetched | None:
        """What the agent fetched and checked in the initramfs (None: nothing usable)."""
        try:
            record = json.loads((directory / FETCHED_FILE).read_text())
            got = cls(str(record["image"]), int(record["version"]),
                      serve_seconds=float(record["serve_seconds"]), from_peers=int(record["from_peers"]),
                      from_server=int(record["from_server"]),
                      sources=[str(s) for s in record["sources"]])
            for name, entry in record["files"].items():
                got.paths[name], got.sha256[name] = Path(entry["path"]), str(entry["sha256"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return got if got.paths and all(p.is_file() for p in got.paths.values()) else None


class BootFilesError(Exception):
    pass


class Stopped(Exception):
    """The fetch was told to stop (the agent hands over to the booted system)."""


def _download(
    session: Client, url: str, target: Path, sha256: str, timeout: float, *,
    stop: threading.Event | None = None,
) -> int:
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
                    if stop is not None and stop.is_set():
                        raise Stopped(f"{url}: stopped after {size >> 20} MiB")
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
    stop: threading.Event | None = None, booting: bool = False,
) -> Fetched:
    """The node's version's boot files into `directory`, from a peer if the server names one
    (`stop`: give up between chunks and waits, raising `Stopped`; `booting`: from the initramfs)."""
    directory.mkdir(parents=True, exist_ok=True)
    got = Fetched()
    with Client() as session:
        for _ in range(MAX_WAITS):
            answer = _ask(session, servers, node, timeout, booting)
            got.image, got.version = str(answer["image"]), int(answer["version"])
            got.serve_seconds = float(answer.get("serve_seconds") or 0)
            if not answer.get("serve"):
                got.serve = False
                return got
            if answer.get("wait"):  # another node fetches them from the server right now: it will hold them
                if stop is not None:
                    if stop.wait(float(answer["wait"])):
                        raise Stopped("stopped while another node fetched the boot files")
                else:
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
                    size = _download(session, url, target, sha, timeout, stop=stop)
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


def _ask(
    session: Client, servers: tuple[str, ...], node: str, timeout: float, booting: bool = False
) -> dict[str, Any]:
    problems = []
    params = {"node": node, **({"booting": "true"} if booting else {})}
    for server in servers:
        try:
            response = session.get(f"{server}/api/v1/boot-files", params=params, timeout=timeout)
        except HttpError as exc:
            problems.append(str(exc))
            continue
        if response.status_code == HTTPStatus.OK:
            return dict(response.json())
        problems.append(f"{server}: HTTP {response.status_code}")
    raise BootFilesError("no server said where the boot files are: " + "; ".join(problems))


class Counters:
    def __init__(self, names: tuple[str, ...] = (), on_served: Callable[[str], None] | None = None) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.requests = 0
        self.by_address: dict[str, int] = {}
        self.names = frozenset(names)
        self.on_served = on_served
        self._whole: dict[str, set[str]] = {}  # address -> the files it has had whole, this round

    def add(self, address: str, n: int, name: str = "", whole: bool = False) -> None:
        served = False
        with self.lock:
            self.sent += n
            self.by_address[address] = self.by_address.get(address, 0) + n
            if whole and name in self.names:
                done = self._whole.setdefault(address, set())
                done.add(name)
                if done == self.names:  # both files: the node has its boot files
                    del self._whole[address]
                    served = True
        if served and self.on_served is not None:
            self.on_served(address)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"sent": self.sent, "requests": self.requests, "served": dict(self.by_address)}


class BootFileServer:
    """Serves the fetched files, and nothing else, on `port` (or a free one) in a daemon thread."""

    def __init__(
        self, files: dict[str, Path], sha256: dict[str, str], port: int = PORT, *, image: str = "",
        version: int = 0, on_served: Callable[[BootFileServer, str], None] | None = None, poll: float = 0.5,
    ) -> None:
        """`on_served(self, address)`: that node has had every file whole (in a server thread);
        `poll`: how soon `close` returns (the initramfs's is short: the handover waits for it)."""
        self.image, self.version = image, version
        self.paths = {f"/boot-files/{sha256[name]}/{name}": path for name, path in files.items()}
        self.files = dict(sha256)
        served = (lambda address: on_served(self, address)) if on_served else None
        self.counters = Counters(tuple(files), served)
        handler = _handler(self.paths, self.counters)
        try:
            self.httpd = ThreadingHTTPServer(("", port), handler)
        except OSError:
            self.httpd = ThreadingHTTPServer(("", 0), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(poll,), name="boot-files",
                                        daemon=True)

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
                        counters.add(self.client_address[0], sent, path.name, whole=sent == size)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # counted, not logged: a rack's reboot would fill the journal

    return Handler


Report = Callable[[str, str, dict[str, Any]], None]


def start_serving(got: Fetched, port: int, report: Report, poll: float = 0.5) -> BootFileServer:
    """Serve what `fetch` got; each node that had both files is reported (`served_to`: the
    server frees its slot at this holder)."""

    def served(server: BootFileServer, address: str) -> None:
        report("progress", f"sent the kernel and initramfs to {address}",
               {**server.details(), "served_to": address})

    return BootFileServer(got.paths, got.sha256, port, image=got.image, version=got.version,
                          on_served=served, poll=poll).start()


def fetched_details(got: Fetched) -> dict[str, Any]:
    return {"from_peers": got.from_peers, "from_server": got.from_server, "sources": got.sources}


def serve_after_boot(  # noqa: PLR0917
    servers: tuple[str, ...], node: str, directory: Path, port: int, stopping: threading.Event,
    report: Report, say: Callable[[str], None],
) -> None:
    """The service's boot-file thread: fetch (or take what the agent fetched in the initramfs),
    serve until `stopping`, report, remove the files."""
    got = Fetched.load(directory)
    if got is not None:
        say(f"boot files {', '.join(got.paths)}: fetched and checked in the initramfs")
    else:
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
    server = start_serving(got, port, report)
    started = time.monotonic()
    try:
        report("progress", f"serving the kernel and initramfs on port {server.port}",
               {**server.details(), "fetched": fetched_details(got)})
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


class ServeWhileBooting:
    """The initramfs's part: while the node boots, fetch its boot files again (from a peer the
    server names, or from the server), check them and serve them, so that a node serves the next
    ones some seconds after its kernel starts instead of after its whole boot. At the handover the
    server stops; the files stay for the booted service (`keep`), which serves them without
    fetching, or go. A daemon thread (in `swarmboot-agent boot-files`, its own process)."""

    def __init__(  # noqa: PLR0917
        self, servers: tuple[str, ...], node: str, directory: Path, report: Report,
        say: Callable[[str], None], port: int = PORT, *, stop: threading.Event | None = None,
    ) -> None:
        self.servers, self.node, self.directory, self.port = servers, node, directory, port
        self.report, self.say = report, say
        self.stop_event = stop or threading.Event()
        self.server: BootFileServer | None = None
        self.got: Fetched | None = None
        self.error = ""
        self.interrupted = False  # the stop came while it fetched (from the server, perhaps)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="boot-files", daemon=True)

    def start(self) -> ServeWhileBooting:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            got = fetch(self.servers, self.node, self.directory, say=self.say, stop=self.stop_event,
                        booting=True)
        except Stopped:
            self.interrupted = True
            return
        except (BootFilesError, OSError, ValueError, KeyError) as exc:
            self.error = str(exc)
            self.say(f"not serving boot files while booting: {exc}")
            return
        if not got.serve:
            return
        got.save(self.directory)
        with self._lock:
            if self.stop_event.is_set():
                return
            self.got = got
            server = self.server = start_serving(got, self.port, self.report, poll=0.05)
        self.report("progress", f"serving the kernel and initramfs on port {server.port} while booting",
                    {**server.details(), "fetched": fetched_details(got), "initramfs": True})

    def busy(self) -> bool:
        """Fetching, or serving."""
        return self._thread.is_alive() or self.server is not None

    def stop(self, keep: bool) -> dict[str, Any]:
        """The handover: stop serving (the server stops naming this node until its booted service
        says it serves); `keep` the fetched files for that service, or remove them."""
        self.stop_event.set()
        self._thread.join(0.2)  # a fetch stops at its next chunk; else its files are not kept
        with self._lock:
            server, self.server = self.server, None
        summary: dict[str, Any] = {"served": False, "error": self.error}
        if server is not None:
            details = server.details(stopped=True)
            server.close()
            self.report("done", f"stopped serving boot files for switch_root after "
                        f"{details['sent'] >> 20} MiB in {details['requests']} request(s)", details)
            summary = {"served": True, "sent": details["sent"], "requests": details["requests"],
                       "to": sorted(details["served"])}
        elif self.interrupted or self._thread.is_alive():  # the server may wait for this fetch: over
            self.report("done", "stopped fetching the boot files for switch_root",
                        {"stopped": True, "fetched": self.got is not None})
        if not keep or self.got is None or self._thread.is_alive():
            shutil.rmtree(self.directory, ignore_errors=True)
        return summary


MAX_SERVE_SECONDS = 4 * 3600.0  # bounded: the agent stops it at its handover, long before


def serve_while_booting_main(
    servers: tuple[str, ...], node: str, directory: Path, events_url: str, *, image: str = "",
    version: int = 0, max_seconds: float = MAX_SERVE_SECONDS,
) -> int:
    """`swarmboot-agent boot-files`: the agent's own process for it (bootagent/seed_handover.py
    starts it after the plan at the lowest CPU priority: no share of the agent's GIL or CPU).
    It serves until SIGTERM (the handover) and leaves the files for the booted service."""
    import signal

    from bootagent.context import Console, Paths
    from bootagent.report import Reporter, events_urls

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    reporter = Reporter(Console(Paths(run_dir=directory.parent)), servers, heartbeat_seconds=3600.0)
    reporter.urls = events_urls(events_url, servers)
    reporter.token = os.environ.get("SWARMBOOT_TOKEN", "")
    if image:
        reporter.set_image(image, version)
    reporter.start()

    def report(status: str, message: str, details: dict[str, Any]) -> None:
        reporter.event("seed", status, message=message, details={"boot_files": details})

    serving = ServeWhileBooting(servers, node, directory, report, print, stop=stopping).start()
    parent, deadline = os.getppid(), time.monotonic() + max_seconds
    # until the handover's SIGTERM; or nothing to serve (the fetch failed, or the server said no);
    # or its agent is gone without a word (a boot that failed: nothing serves without its agent)
    while not stopping.wait(0.5) and time.monotonic() < deadline and os.getppid() == parent:
        if not serving.busy():
            break
    summary = serving.stop(keep=True)
    reporter.close(timeout=1.0)
    status = json.dumps({**summary, "stopped": True})
    print(status, flush=True)
    (directory.parent / STATUS_FILE).write_text(status + "\n")  # the cleanup hook waits for this
    return 0
