"""Server throughput: tracker announces/s and boot-plan requests/s, measured with `wrk` (a
separate process, Lua scripts generating varied requests) against a real `swarmboot serve`.

Side by side in one run:
- baseline: a bare ASGI app on the same uvicorn stack (the ceiling of any Python handler here);
- announces: random peer ids, ports and `left` on a real packed image's info-hash;
- plans (cached): random MACs of the nodes, as the agent asks (plan_version), whose plans the server
  built ahead (server/plan_ahead.py); junk query parameters never force a build (issue 13), so
  every request here is a cache hit.
And what a cold boot's plans cost: the plans-ahead pass (the seconds from the server's start until
every node's plan is in the cache) against building them one by one as a cache miss does (the
route's own `_plan_body`, in this process, on the same inventory: 1,000 nodes' plans timed).
Goals on a 2-core machine: >= 5,000 announces/s, >= 2,000 plans/s, the pass <= 2 s for 10,000 nodes.

    .venv/bin/python bench/server.py [--seconds 10] [--connections 50] [--nodes 1000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ground import run as runmod  # noqa: E402
from ground.config import Settings  # noqa: E402
from ground.contract.plan import format_version  # noqa: E402
from lab.packed import make_version  # noqa: E402
from lab.server_process import running_server  # noqa: E402
from server.inventory import crud  # noqa: E402
from server.inventory.db import Database  # noqa: E402

NODES = 1000
GOALS = {"announce": 5000.0, "plan (cached)": 2000.0}

ANNOUNCE_LUA = """
math.randomseed(os.time() + {seed})
local ih = "{info_hash}"
request = function()
  local pid = string.format("-WR0001-%06d%06d", math.random(0, 999999), math.random(0, 999999))
  local path = "/announce?info_hash=" .. ih .. "&peer_id=" .. pid .. "&port=" .. math.random(1024, 65535)
    .. "&uploaded=" .. math.random(0, 100000000) .. "&downloaded=" .. math.random(0, 100000000)
    .. "&left=" .. math.random(0, 67108864) .. "&compact=1&numwant=50"
  return wrk.format("GET", path)
end
"""

PLAN_LUA = """
math.randomseed(os.time() + {seed})
request = function()
  local i = math.random(0, {nodes} - 1)
  local path = string.format("/api/v1/plan?mac=52:54:00:%02x:%02x:%02x&plan_version={version}", 0,
    math.floor(i / 256), i % 256)
  return wrk.format("GET", path)
end
"""

BASELINE_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def wrk(url: str, lua: Path | None, seconds: int, connections: int) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if lua is not None:
        argv += ["-s", str(lua)]
    out = runmod.run([*argv, url], timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rate": rate,
        "requests": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else 0.0,
    }


def baseline(work: Path, seconds: int, connections: int) -> dict[str, float]:
    (work / "bare_app.py").write_text(BASELINE_APP)
    with runmod_free_port() as port:
        proc = runmod.spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_http(f"http://127.0.0.1:{port}/")
            return wrk(f"http://127.0.0.1:{port}/", None, seconds, connections)
        finally:
            runmod.stop(proc)


class runmod_free_port:
    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


def _plans_ahead(srv: Any, nodes: int, timeout: float = 120) -> dict[str, Any]:
    """The server's plans-ahead pass once it has built every node's plan."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ahead = srv.admin("stats")["plans"]["ahead"]
        if ahead.get("complete") and ahead.get("nodes") == nodes:
            return dict(ahead)
        time.sleep(0.2)
    raise TimeoutError(f"the plans-ahead pass did not cover {nodes} nodes in {timeout:.0f} s")


def one_by_one(home: Path, nodes: int, sample: int = 1000) -> float:
    """Plans per second built one by one as a cache miss builds them (the route's `_plan_body`:
    the node's queries, its stripe rank, the template round trip, the JSON), on the inventory."""
    from server.api.nodes import _plan_body
    from server.state import ServerState

    state = ServerState(Settings(home=home), "http://127.0.0.1:8080", "t")
    state.refresh(True)
    macs = [f"52:54:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(0, nodes, max(1, nodes // sample))]
    started = time.monotonic()
    for mac in macs:
        _plan_body(state, mac, None, format_version())
    rate = len(macs) / (time.monotonic() - started)
    state.db.close()
    return rate


def _wait_http(url: str, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise TimeoutError(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=NODES, help=f"inventory (default {NODES}, max 65536)")
    args = parser.parse_args()
    nodes = args.nodes
    with tempfile.TemporaryDirectory(prefix="swarmboot-bench-") as tmp:
        work = Path(tmp)
        home = work / "home"
        settings = Settings(home=home)
        manifest = make_version(settings.images_dir, "compute", 1, size=2**20)
        db = Database.from_settings(settings, pool_size=2)
        crud.add(
            db,
            "network",
            "net",
            {"cidr": "10.0.0.0/20", "gateway": "10.0.0.1", "range": "10.0.1.1-10.0.15.250"},
        )
        crud.add(
            db,
            "group",
            "compute",
            {
                "image": "compute",
                "files": [{"path": "/etc/motd", "template": "{{ node.name }} {{ node.address }}\n"}],
            },
        )
        crud.import_(
            db,
            {
                "swarmboot_inventory": 1,
                "nodes": [
                    {
                        "name": f"node{i:04d}",
                        "group": "compute",
                        "macs": [f"52:54:00:00:{i // 256:02x}:{i % 256:02x}"],
                        "address": "",
                    }
                    for i in range(nodes)
                ],
            },
        )
        db.close()
        info_hash = "".join(f"%{b:02x}" for b in bytes.fromhex(manifest.info_hash))
        scripts = {
            "announce": ANNOUNCE_LUA.format(seed=1, info_hash=info_hash),
            "plan (cached)": PLAN_LUA.format(seed=2, nodes=nodes, version=format_version()),
        }
        results: dict[str, dict[str, float]] = {
            "baseline (bare ASGI)": baseline(work, args.seconds, args.connections)
        }
        env = {"SWARMBOOT_LOG_LEVEL": "warning", "SWARMBOOT_SEEDER_LISTEN": "127.0.0.1:0"}
        with running_server(home, env=env) as srv:
            ahead = _plans_ahead(srv, nodes)
            for name, lua in scripts.items():
                path = work / (name.split()[0] + ".lua")
                path.write_text(lua)
                endpoint = "/announce" if name == "announce" else "/api/v1/plan"
                results[name] = wrk(srv.url + endpoint, path, args.seconds, args.connections)
            stats = srv.admin("stats")
        built = one_by_one(home, nodes)  # the server has stopped: this process alone
    base = results["baseline (bare ASGI)"]["rate"]
    print(
        f"swarmboot server benchmark: wrk -t1 -c{args.connections} -d{args.seconds}s, {nodes} nodes, "
        f"2 cores shared with wrk"
    )
    print(
        f"{'test':22} {'req/s':>9} {'x baseline':>10} {'goal':>7} {'x goal':>7} {'p99 ms':>8} {'errors':>7}"
    )
    for name, r in results.items():
        goal = GOALS.get(name)
        errors = int(r["non2xx"] + r["socket_errors"])
        print(
            f"{name:22} {r['rate']:9.0f} {r['rate'] / base:10.2f} {goal or 0:7.0f} "
            f"{(r['rate'] / goal) if goal else 0:7.2f} {r['p99_ms']:8.1f} {errors:7d}"
        )
    print(
        f"plans ahead: {ahead['plans']} plans of {ahead['nodes']} nodes in {ahead['seconds']:.2f} s "
        f"({ahead['plans'] / max(ahead['seconds'], 1e-9):.0f}/s; goal <= {2 * nodes / 10_000:.2f} s); "
        f"built one by one at {built:.0f}/s they took {nodes / built:.1f} s"
    )
    print(
        f"tracker: {stats['tracker']['announces']} announces, {stats['tracker']['failures']} failures; "
        f"plans built {stats['plans']['built']}, cache hits {stats['plans']['cache_hits']}"
    )
    failed = any(r["non2xx"] or r["socket_errors"] for r in results.values())
    bad = stats["tracker"]["failures"] or ahead["skipped"] or failed
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
