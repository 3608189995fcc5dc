"""Server throughput: tracker announces/s and boot-plan requests/s, measured with `wrk` (a
separate process, Lua scripts generating varied requests) against a real `swarmboot serve`.

Side by side in one run:
- baseline: a bare ASGI app on the same uvicorn stack (the ceiling of any Python handler here);
- announces: random peer ids, ports and `left` on a real packed image's info-hash;
- plans (cached): random MACs of 1,000 nodes (each plan built once, then served from the cache);
- plans (built): every request misses the cache (a unique query string): the database path.
Goals on a 2-core machine: >= 5,000 announces/s and >= 2,000 plans/s.

    .venv/bin/python bench/server.py [--seconds 10] [--connections 50]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ground import run as runmod  # noqa: E402
from ground.config import Settings  # noqa: E402
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
local counter = 0
request = function()
  local i = math.random(0, {nodes} - 1)
  local path = string.format("/api/v1/plan?mac=52:54:00:%02x:%02x:%02x", 0, math.floor(i / 256), i % 256)
  if {unique} == 1 then
    counter = counter + 1
    path = path .. "&n=" .. counter .. "-" .. math.random(0, 999999)
  end
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


def _warm_plans(url: str) -> None:
    """Fetch every node's plan once, so "plan (cached)" measures the steady state."""
    import requests

    with requests.Session() as http:
        for i in range(NODES):
            http.get(
                f"{url}/api/v1/plan", params={"mac": f"52:54:00:00:{i // 256:02x}:{i % 256:02x}"}, timeout=30
            ).raise_for_status()


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
    args = parser.parse_args()
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
                    for i in range(NODES)
                ],
            },
        )
        db.close()
        info_hash = "".join(f"%{b:02x}" for b in bytes.fromhex(manifest.info_hash))
        scripts = {
            "announce": ANNOUNCE_LUA.format(seed=1, info_hash=info_hash),
            "plan (cached)": PLAN_LUA.format(seed=2, nodes=NODES, unique=0),
            "plan (built)": PLAN_LUA.format(seed=3, nodes=NODES, unique=1),
        }
        results: dict[str, dict[str, float]] = {
            "baseline (bare ASGI)": baseline(work, args.seconds, args.connections)
        }
        env = {"SWARMBOOT_LOG_LEVEL": "warning", "SWARMBOOT_SEEDER_LISTEN": "127.0.0.1:0"}
        with running_server(home, env=env) as srv:
            _warm_plans(srv.url)
            for name, lua in scripts.items():
                path = work / (name.split()[0] + ".lua")
                path.write_text(lua)
                endpoint = "/announce" if name == "announce" else "/api/v1/plan"
                results[name] = wrk(srv.url + endpoint, path, args.seconds, args.connections)
            stats = srv.admin("stats")
    base = results["baseline (bare ASGI)"]["rate"]
    print(
        f"swarmboot server benchmark: wrk -t1 -c{args.connections} -d{args.seconds}s, {NODES} nodes, "
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
        f"tracker: {stats['tracker']['announces']} announces, {stats['tracker']['failures']} failures; "
        f"plans built {stats['plans']['built']}, cache hits {stats['plans']['cache_hits']}"
    )
    bad = stats["tracker"]["failures"] or any(r["non2xx"] or r["socket_errors"] for r in results.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
