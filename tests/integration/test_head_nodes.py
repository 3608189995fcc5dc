"""Two head nodes on one PostgreSQL: two real `swarmboot serve` in their own network namespaces,
sharing the inventory, each with its tracker and seeder; nodes (the agent's own plan client,
download module and event reporter, bench/swarm_node.py, in namespaces of their own) list both
servers. One server is killed (SIGKILL) while the swarm runs: every node completes through the
other, its plan, its events and its peers included.

Meanwhile headless Chromium has the surviving server's status page open (logged in by a token
link) and sees the rows change state as the events arrive, without a reload; its screenshot is
kept in test-artifacts/status-page.png."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lab import server_process
from lab.netns import NetLab
from lab.packed import make_version
from tests.helpers.browser import Browser, artifact, browser
from tests.helpers.postgres import postgres_server

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
N = 6
EARLY = 3  # nodes started before the kill; the others start after it
LINK = 8_000_000
SIZE = 6 * 2**20
SRV = ("10.77.0.1", "10.77.0.2")


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")


def _bench() -> Any:
    """bench/swarm_lab.py (not on sys.path: bench/server.py would shadow the server package)."""
    import importlib.util
    import sys

    if "swarm_lab" not in sys.modules:
        spec = importlib.util.spec_from_file_location("swarm_lab", ROOT / "bench" / "swarm_lab.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["swarm_lab"] = module
        spec.loader.exec_module(module)
    return sys.modules["swarm_lab"]


@contextlib.contextmanager
def _servers(homes: list[Path], topo: Any, env: dict[str, str]) -> Any:
    servers: list[server_process.ServerProcess] = []
    try:
        for home, ns, ip in zip(homes, (topo.server, topo.server2), SRV, strict=True):
            servers.append(
                server_process.start_server(
                    home,
                    listen=f"{ip}:8080",
                    namespace=ns,
                    timeout=60.0,
                    env={**env, "SWARMBOOT_SEEDER_LISTEN": f"{ip}:6880"},
                )
            )
        yield servers
    finally:
        for server in servers:
            server.stop()


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_swarm_completes_through_the_other_head_node_when_one_dies(tmp_path: Path) -> None:
    swarm_lab = _bench()
    homes = [tmp_path / "head1", tmp_path / "head2"]
    manifest = make_version(homes[0] / "images", "bench", 1, size=SIZE)
    shutil.copytree(homes[0] / "images", homes[1] / "images")  # what an rsync of the store does
    with postgres_server() as pg:
        pg.create_database("inventory")
        url = f"postgresql+psycopg://postgres@/inventory?host={pg.dir}&port={pg.port}"
        env = {"SWARMBOOT_DATABASE_URL": url}
        doc = swarm_lab.inventory(N, "bench")
        doc["networks"][0]["range"] = "10.77.1.1-10.77.1.250"
        (tmp_path / "inv.json").write_text(json.dumps(doc))
        server_process_cli(homes[0], env, "inventory", "import", str(tmp_path / "inv.json"))
        with NetLab() as lab:
            topo = swarm_lab.Topology(lab, N, LINK, LINK)
            topo.build()
            topo.server2 = lab.namespace("srv2")
            topo._port(topo.server2, "s2", f"{SRV[1]}/16", LINK)
            with _servers(homes, topo, env) as (one, two):
                _check_both_listed(one, two, manifest.info_hash)
                work = tmp_path / "work"
                work.mkdir()
                page = contextlib.ExitStack()
                b = page.enter_context(browser(tmp_path, netns=topo.server2.name))
                _open_page(b, two, homes[1])
                sampler = Sampler(b)
                sampler.start()
                both = type("Servers", (), {"url": f"{one.url},{two.url}"})()
                image = {
                    "name": "bench",
                    "version": 1,
                    "file": manifest.image_file.name,
                    "sha256": manifest.image_file.sha256,
                    "size": manifest.image_file.size,
                }
                drivers = swarm_lab.start_drivers(
                    topo, both, work, mode="swarm", image=image, extra=["--report", "--deadline", "240"]
                )
                try:
                    swarm_lab.wait_ready(drivers, timeout=120)
                    swarm_lab.go(drivers[:EARLY], work, "swarm")
                    _wait(lambda: _some_progress(two, EARLY), 60, "the early nodes to be downloading")
                    seen_remote = two.admin("stats")["tracker"]["swarms"][manifest.info_hash]["remote_peers"]
                    at_kill = two.admin("nodes")
                    os.kill(one.child.pid, signal.SIGKILL)  # the head node dies, mid-swarm
                    swarm_lab.go(drivers[EARLY:], work, "swarm")
                    results = swarm_lab.wait_results(drivers, timeout=240)
                    _wait(
                        lambda: all(r["state"] == "booted" for r in two.admin("nodes")),
                        30,
                        "every node's booted event",
                    )
                    rows = two.admin("nodes")
                    _wait(
                        lambda: sampler.last() and all(st == "booted" for st in sampler.last().values()),
                        20,
                        "the page to show every node booted",
                    )
                    sampler.stop()
                    timeline = _timeline_on_page(b, "n001")
                    b.call(lambda d: d.save_screenshot(str(artifact("status-page.png"))))
                    reloaded = b.call(lambda d: d.execute_script("return window.__sbMarker !== 42"))
                    final = swarm_lab.finish_drivers(drivers, work / "swarm.stop")
                finally:
                    sampler.stop()
                    swarm_lab.stop_drivers(drivers)
                    page.close()
                log = two.log()
                timelines = _timelines(homes[1], env)
    errors = {i: r["error"] for i, r in results.items() if "error" in r}
    assert not errors, errors
    # the page: rows changed state in place as events came (new or provisioning, then booted)
    assert not reloaded, "the page was reloaded"
    changed = [n for n, states in sampler.seen.items() if states[0] != "booted" and states[-1] == "booted"]
    assert len(changed) >= N - 1, sampler.seen
    assert any("provisioning" in states for states in sampler.seen.values()), sampler.seen
    assert "booted done" in timeline and "download done" in timeline, timeline
    for token_file in ("admin.token", "viewer.token"):
        assert (homes[1] / token_file).read_text().strip() not in log, f"{token_file} was logged"
    # the download module verified every image (sha256) before it wrote its result
    assert all(r.get("t_done") for r in results.values()), results
    assert any(r["state"] != "booted" and (r["progress"] or 0) < 1 for r in at_kill[:EARLY]), at_kill
    assert seen_remote >= 1, "the second tracker never learnt the first one's peers"
    for i, r in results.items():
        expected = one.url if i <= EARLY else two.url
        assert r["plan_server"] == expected, (i, r["plan_server"])
    assert [r["state"] for r in rows] == ["booted"] * N
    for name, events in timelines.items():
        booted = [e for e in events if e["stage"] == "booted"]
        assert booted and booted[-1]["server"] == two.url, (name, events)
    # the late nodes never needed the dead server for an event; the early ones failed over
    assert all(results[i]["events_failed"] == 0 for i in range(EARLY + 1, N + 1)), results
    assert all(results[i]["events_urls"][0].startswith(two.url) for i in results), results
    assert len(final) == N


class Sampler:
    """Reads the page's rows (name → state, as the page shows them) twice a second."""

    def __init__(self, b: Browser) -> None:
        self.b = b
        self.seen: dict[str, list[str]] = {}
        self.samples: list[dict[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def last(self) -> dict[str, str]:
        return self.samples[-1] if self.samples else {}

    def _run(self) -> None:
        script = (
            "return [...document.querySelectorAll('#rows tr')].map(t => [t.dataset.name, t.dataset.state])"
        )
        while not self._stop.wait(0.5):
            with contextlib.suppress(Exception):
                rows = dict(self.b.call(lambda d: d.execute_script(script), timeout=10))
                self.samples.append(rows)
                for name, state in rows.items():
                    states = self.seen.setdefault(name, [])
                    if not states or states[-1] != state:
                        states.append(state)


def _open_page(b: Browser, server: Any, home: Path) -> None:
    """Log in with a token link (the token stays in the URL fragment) and wait for the live feed."""
    token = (home / "viewer.token").read_text().strip()
    b.call(lambda d: d.get(f"{server.url}/status/login#token={token}"))
    _wait(
        lambda: b.call(
            lambda d: d.execute_script(
                "return location.pathname === '/status'"
                " && document.getElementById('live').textContent === 'live'"
            )
        ),
        30,
        "the status page to be live",
    )
    assert token not in b.call(lambda d: d.current_url)
    b.call(lambda d: d.execute_script("window.__sbMarker = 42"))
    rows = b.call(lambda d: d.execute_script("return document.querySelectorAll('#rows tr').length"))
    assert rows == N, rows


def _timeline_on_page(b: Browser, name: str) -> str:
    b.call(lambda d: d.execute_script(f"document.querySelector('#rows tr[data-name=\"{name}\"]').click()"))
    return _wait(
        lambda: b.call(
            lambda d: d.execute_script(
                "var t = document.getElementById('timeline');"
                "return t.hidden ? '' : document.getElementById('tl-events').textContent"
            )
        ),
        20,
        "the timeline",
    )


def server_process_cli(home: Path, env: dict[str, str], *args: str) -> str:
    from ground import run as runmod

    argv = [*server_process.swarmboot_command(), *args]
    return runmod.run(argv, env=server_process.home_env(home, **env), timeout=120).stdout


def _check_both_listed(one: Any, two: Any, info_hash: str) -> None:
    """Each server lists both in kernel command lines and torrents; each tracker has both seeders."""
    import libtorrent as lt

    for server, other in ((one, two), (two, one)):
        script = _wait(
            lambda s=server, o=other: _script_with(s, o), 30, "the other head node in iPXE scripts"
        )
        assert f"swarmboot.server={server.url},{other.url}" in script
        _status, body = server.request("/images/bench/1/image.torrent")
        meta = lt.bdecode(body)
        assert [t[0].decode() for t in meta[b"announce-list"]] == [
            f"{server.url}/announce",
            f"{other.url}/announce",
        ]
        assert len(meta[b"url-list"]) == 2
        _wait(
            lambda s=server: s.admin("stats")["tracker"]["swarms"][info_hash]["seeders"] >= 2,
            30,
            "both seeders in each tracker",
        )


def _script_with(server: Any, other: Any) -> str:
    _status, body = server.request("/boot/ipxe?mac=52:54:00:77:00:01")
    text = body.decode()
    return text if other.url in text else ""


def _some_progress(server: Any, early: int) -> bool:
    rows = server.admin("nodes")[:early]
    return any((r["progress"] or 0) >= 0.15 for r in rows)


def _timelines(home: Path, env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    from server import events
    from server.inventory.db import Database

    db = Database(env["SWARMBOOT_DATABASE_URL"], pool_size=2)
    try:
        return {f"n{i:03d}": events.timeline(db, f"n{i:03d}") for i in range(1, N + 1)}
    finally:
        db.close()
