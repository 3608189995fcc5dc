"""The status page's update cost with many nodes: bytes per second each open page receives and the
server's CPU, at a given event rate, side by side with the same event load and no page open.

A real `swarmboot serve` on loopback with N nodes (default 10,000); a paced generator posts node
events (download progress of random nodes, as agents send them) at RATE per second from threads
of this process; K pages follow `/status/events` (the default view: the first 100 rows), counted
byte by byte. Phases, each SECONDS long, one after the other on the same server:
  baseline   events, no page open
  pages      events, K pages on the default view (events hit random nodes: ~100/N of them land on
             the page)
  on-page    events only to the 100 nodes the pages show (the worst case for a view)
The server's CPU is read from /proc (its process, all threads). `--screenshot FILE` also renders
the page with headless Chromium.

    flock /tmp/swarmboot-heavy.lock .venv/bin/python bench/status_page.py [--nodes 10000] \
        [--rate 200] [--seconds 20] [--pages 3] [--screenshot FILE]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ground.contract.cmdline import TOKEN_HEADER  # noqa: E402
from lab.packed import make_version  # noqa: E402
from lab.server_process import running_server  # noqa: E402


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_inventory(home: Path, nodes: int) -> dict[str, str]:
    from ground.config import Settings
    from server.inventory import crud
    from server.inventory.db import Database

    db = Database.from_settings(Settings(home=home), pool_size=2)
    crud.import_(
        db,
        {
            "swarmboot_inventory": 1,
            "networks": [{"name": "net", "cidr": "10.0.0.0/16", "range": "10.0.0.10-10.0.255.250"}],
            "groups": [{"name": g, "image": "compute"} for g in ("compute", "gpu")],
            "nodes": [
                {"name": f"node{i:05d}", "group": "gpu" if i % 10 == 0 else "compute"} for i in range(nodes)
            ],
        },
    )
    tokens = issue_tokens(db)
    db.close()
    return tokens


def issue_tokens(db: Any) -> dict[str, str]:
    """Each node's boot token, as its iPXE script would bring it (server/tokens.py): events need
    it (the generator sends it like the agent does)."""
    import datetime as dt

    from sqlalchemy import select

    from server import tokens
    from server.inventory.models import Node

    now = dt.datetime.now(dt.UTC)
    with db.write() as session:
        nodes = session.execute(select(Node)).scalars().all()
        return {n.name: tokens.issue(session, n, n.address, now) for n in nodes}


class Events:
    """Posts events at `rate` per second (paced, several keep-alive connections)."""

    def __init__(self, url: str, tokens: dict[str, str], rate: float, threads: int = 4) -> None:
        self.parts = urlsplit(url)
        self.tokens, self.names, self.rate, self.threads = tokens, sorted(tokens), rate, threads
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def run(self, seconds: float) -> float:
        self._stop.clear()
        self.sent = self.errors = 0
        workers = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(self.threads)]
        start = time.monotonic()
        for w in workers:
            w.start()
        time.sleep(seconds)
        self._stop.set()
        for w in workers:
            w.join(timeout=10)
        return self.sent / (time.monotonic() - start)

    def _worker(self, index: int) -> None:
        rng = random.Random(index)
        conn = http.client.HTTPConnection(self.parts.hostname, self.parts.port, timeout=10)
        interval = self.threads / self.rate
        next_at = time.monotonic() + index * interval / self.threads
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval
            name = rng.choice(self.names)
            body = json.dumps(
                {
                    "stage": "download",
                    "status": "progress",
                    "progress": round(rng.random(), 3),
                    "details": {"peers": rng.randrange(50)},
                }
            )
            try:
                headers = {"Content-Type": "application/json", TOKEN_HEADER: self.tokens[name]}
                conn.request("POST", f"/api/v1/nodes/{name}/events", body, headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection(self.parts.hostname, self.parts.port, timeout=10)
                ok = False
            with self._lock:
                self.sent += ok
                self.errors += not ok


class Page(threading.Thread):
    """One browser's event stream (the default view), bytes counted."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.bytes = 0
        self.messages = 0
        self.ready = threading.Event()
        self._stop = threading.Event()

    def run(self) -> None:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request("GET", "/status/events?limit=100", headers={"Authorization": f"Bearer {self.token}"})
        response = conn.getresponse()
        self.ready.set()
        while not self._stop.is_set():
            chunk = response.read1(65536)
            if not chunk:
                break
            self.bytes += len(chunk)
            self.messages += chunk.count(b"\n\nevent:") + chunk.startswith(b"event:")
        conn.close()

    def stop(self) -> None:
        self._stop.set()


def phase(name: str, server: Any, events: Events, seconds: float, pages: list[Page]) -> dict[str, Any]:
    time.sleep(2.0)  # let the hub settle
    before = [p.bytes for p in pages]
    cpu0, t0 = process_cpu(server.child.pid), time.monotonic()
    rate = events.run(seconds)
    elapsed = time.monotonic() - t0
    cpu = (process_cpu(server.child.pid) - cpu0) / elapsed
    per_page = [(p.bytes - b) / elapsed for p, b in zip(pages, before, strict=True)]
    result = {
        "phase": name,
        "events_per_s": round(rate, 1),
        "event_errors": events.errors,
        "server_cpu_percent_of_one_core": round(100 * cpu, 1),
        "bytes_per_s_per_page": round(sum(per_page) / len(per_page), 1) if per_page else 0.0,
    }
    print(json.dumps(result), flush=True)
    return result


def screenshot(url: str, token: str, path: Path) -> None:
    from tests.helpers.browser import browser

    with tempfile.TemporaryDirectory() as work, browser(Path(work)) as b:
        b.call(lambda d: d.get(f"{url}/status/login#token={token}"))
        time.sleep(4)
        b.call(lambda d: d.save_screenshot(str(path)))
    print(f"screenshot: {path}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=200.0, help="node events per second")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--pages", type=int, default=3)
    p.add_argument("--screenshot", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="swarmboot-bench-status.") as tmp:
        home = Path(tmp) / "home"
        make_version(home / "images", "compute", 1, size=2**20)
        t0 = time.monotonic()
        node_tokens = make_inventory(home, args.nodes)
        print(f"inventory of {args.nodes} nodes in {time.monotonic() - t0:.1f} s", flush=True)
        with running_server(home, env={"SWARMBOOT_SEEDER_LISTEN": "127.0.0.1:0"}) as server:
            viewer = (home / "viewer.token").read_text().strip()
            t0 = time.monotonic()
            conn = http.client.HTTPConnection(urlsplit(server.url).hostname, urlsplit(server.url).port)
            conn.request("GET", "/status", headers={"Authorization": f"Bearer {viewer}"})
            html = conn.getresponse().read()
            print(
                f"/status with {args.nodes} nodes: {len(html)} bytes in {time.monotonic() - t0:.3f} s",
                flush=True,
            )
            events = Events(server.url, node_tokens, args.rate)
            results = [phase("baseline", server, events, args.seconds, [])]
            pages = [Page(server.url, viewer) for _ in range(args.pages)]
            for page in pages:
                page.start()
                page.ready.wait(10)
            results.append(phase("pages", server, events, args.seconds, pages))
            first_rows = {n: node_tokens[n] for n in sorted(node_tokens)[:100]}  # the default view's
            results.append(
                phase("on-page", server, Events(server.url, first_rows, args.rate), args.seconds, pages)
            )
            if args.screenshot:
                screenshot(server.url, viewer, args.screenshot)
            for page in pages:
                page.stop()
        base = results[0]["server_cpu_percent_of_one_core"]
        for r in results[1:]:
            r["cpu_ratio_to_baseline"] = (
                round(r["server_cpu_percent_of_one_core"] / base, 3) if base else None
            )
        summary = {
            "nodes": args.nodes,
            "rate": args.rate,
            "pages": args.pages,
            "html_bytes": len(html),
            "phases": results,
        }
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(
            "status-page "
            + " ".join(
                f"{r['phase']}: {r['events_per_s']} ev/s cpu {r['server_cpu_percent_of_one_core']} % "
                f"page {r['bytes_per_s_per_page']} B/s"
                for r in results
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
