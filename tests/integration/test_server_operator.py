"""The operator's side of a real `swarmboot serve` on loopback: /metrics checked by `promtool
check metrics`, the Grafana dashboard's queries against it, the file_sd targets, OpenAPI covering
every route (the write routes with their token), /docs served from this server, who may do what
(admin, viewer, cookie, token in a URL), SIGHUP, the journal's log format, the systemd unit, and
shell completion."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from ground import run as runmod
from ground.config import Settings
from lab.packed import make_version
from tests.helpers.server import ServerProcess, boot_token, cli, running_server, token_headers, wait_for

ROOT = Path(__file__).resolve().parents[2]
MAC = "52:54:00:15:00:01"
MAC2 = "52:54:00:15:00:02"


def _inventory(home: Path) -> None:
    make_version(Settings(home=home).images_dir, "compute", 1, size=2 * 2**20)
    cli(home, "network", "add", "net", "--cidr", "10.15.0.0/24", "--range", "10.15.0.10-10.15.0.99")
    cli(home, "group", "add", "compute", "--image", "compute")
    cli(home, "node", "add", "n1", "--group", "compute", "--mac", MAC)
    cli(home, "node", "add", "n2", "--group", "compute", "--mac", MAC2)
    cli(home, "node", "add", "n3", "--group", "compute")


def _event(url: str, node: str, token: str, **event: Any) -> None:
    response = requests.post(
        f"{url}/api/v1/nodes/{node}/events", json=event, headers=token_headers(token), timeout=10
    )
    assert response.status_code == 200, response.text


def _boot(server: ServerProcess) -> None:
    """n1 goes through a whole boot (iPXE script, stages with durations, booted); n2 fails. Each
    posts its events with the token of its boot, as the agent does."""
    url = server.url
    # n1 and n2 have reserved addresses: their scripts come "from" them, through loopback as a proxy
    one, two = boot_token(server, MAC, "10.15.0.10"), boot_token(server, MAC2, "10.15.0.11")
    for stage, seconds in (("network", 1.5), ("plan", 0.2), ("download", 12.0), ("root", 0.8)):
        _event(url, "n1", one, stage=stage, status="start")
        _event(url, "n1", one, stage=stage, status="done", duration=seconds)
    _event(url, "n1", one, stage="booted", status="done", details={"hostname": "n1"})
    _event(url, "n2", two, stage="download", status="failed", duration=3.0, message="no peers\nat all")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("operator-home")
    _inventory(home)
    config = home / "swarmboot.toml"
    config.write_text("boot_menu_timeout = 30\n")
    with running_server(home, SWARMBOOT_CONFIG=str(config), SWARMBOOT_TRUSTED_PROXIES="127.0.0.1") as server:
        _boot(server)
        # one cached plan (built once, then from the cache) and one announce
        for _ in range(2):
            assert (
                requests.get(f"{server.url}/api/v1/plan", params={"mac": MAC}, timeout=10).status_code == 200
            )
        requests.get(f"{server.url}/announce", params={"info_hash": "x"}, timeout=10)
        wait_for(
            lambda: _metrics(server.url).count('state="booted"} 1.0'), 10, what="the hub to see n1 booted"
        )
        yield server, home, config


def _metrics(url: str) -> str:
    return requests.get(f"{url}/metrics", timeout=10).text


def test_metrics_pass_promtool_and_count_what_happened(served: Any) -> None:
    server, _home, _config = served
    text = _metrics(server.url)
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    expected = [
        'swarmboot_nodes{group="compute",state="booted"} 1.0',
        'swarmboot_nodes{group="compute",state="failed"} 1.0',
        'swarmboot_nodes{group="compute",state="new"} 1.0',
        'swarmboot_stage_duration_seconds_count{stage="download"} 2.0',
        'swarmboot_stage_duration_seconds_bucket{le="20.0",stage="download"} 2.0',
        'swarmboot_stage_duration_seconds_bucket{le="10.0",stage="download"} 1.0',
        "swarmboot_boot_duration_seconds_count 1.0",
        'swarmboot_events_total{stage="download",status="failed"} 1.0',
        'swarmboot_http_requests_total{method="GET",route="/api/v1/plan",status="200"} 2.0',
        'swarmboot_http_requests_total{method="POST",route="/api/v1/nodes/{name}/events",status="200"} 10.0',
        "swarmboot_plan_build_seconds_count 1.0",
        "swarmboot_plan_cache_hits_total 1.0",
        "swarmboot_tracker_announce_failures_total 1.0",
        'swarmboot_served_bytes_total{source="web_seed"} 0.0',
        "swarmboot_head_nodes 1.0",
    ]
    missing = [line for line in expected if line not in text]
    assert not missing, f"{missing}\n{text}"
    # the seeder's own announce and ours (a failure: HTTP 200 with a failure reason)
    announces = r'swarmboot_http_requests_total\{method="GET",route="/announce",status="200"\} [2-9]'
    assert re.search(announces, text)
    assert re.search(r'swarmboot_tracker_peers\{image="compute",role="seeder",version="1"\} 1\.0', text), text


def test_the_grafana_dashboard_asks_for_metrics_the_server_has(served: Any) -> None:
    server, _home, _config = served
    names = set(re.findall(r"^(swarmboot_\w+?)(?:_bucket|_count|_sum)?[{ ]", _metrics(server.url), re.M))
    dashboard = json.loads((ROOT / "docs" / "grafana" / "swarmboot-dashboard.json").read_text())
    used = {
        m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"swarmboot_\w+", t["expr"])
    }
    used = {re.sub(r"_(bucket|count|sum)$", "", m) for m in used}
    assert used and used <= names, used - names


def test_booted_nodes_are_a_prometheus_target_list(served: Any) -> None:
    server, home, _config = served
    viewer = (home / "viewer.token").read_text().strip()
    response = requests.get(
        f"{server.url}/api/v1/prometheus/targets",
        params={"port": 9100},
        headers={"Authorization": f"Bearer {viewer}"},
        timeout=10,
    )
    assert response.json() == [{"targets": ["10.15.0.10:9100"], "labels": {"node": "n1", "group": "compute"}}]
    out = cli(home, "node", "targets", "--output", str(home / "targets.json")).stdout
    assert out == "wrote 1 target(s) to " + str(home / "targets.json") + "\n"
    assert json.loads((home / "targets.json").read_text()) == response.json()


def test_openapi_covers_every_route_and_the_write_routes_take_the_admin_token(served: Any) -> None:
    from server.api.app import create_api
    from server.state import ServerState

    server, home, _config = served
    doc = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    api = create_api(ServerState(Settings(home=home), "http://127.0.0.1:1", "t"))
    routes = {(r.path, m) for r in api.routes if getattr(r, "include_in_schema", False) for m in r.methods}
    documented = {(path, m.upper()) for path, ops in doc["paths"].items() for m in ops}
    assert routes <= documented, routes - documented
    assert ("/announce", "GET") in documented and ("/api/v1/plan", "GET") in documented
    writes = [("POST", f"/api/v1/admin/inventory/{k}") for k in ("networks", "switches", "groups", "nodes")]
    writes += [("PATCH", f"/api/v1/admin/inventory/{k}/{{name}}") for k in ("networks", "switches", "groups")]
    writes += [
        ("DELETE", f"/api/v1/admin/inventory/{k}") for k in ("networks", "switches", "groups", "nodes")
    ]
    writes += [("PATCH", "/api/v1/admin/inventory/nodes"), ("PUT", "/api/v1/admin/inventory")]
    for method, path in writes:
        op = doc["paths"][path][method.lower()]
        assert op.get("security") == [{"HTTPBearer": []}], (method, path, op)
        assert op.get("summary"), (method, path)
    network = doc["paths"]["/api/v1/admin/inventory/networks"]["post"]["requestBody"]["content"]
    schema = network["application/json"]["schema"]
    assert set(schema["properties"]) >= {"name", "cidr", "range", "dhcp_range"} and schema["required"] == [
        "name",
        "cidr",
    ]


def test_docs_are_served_from_this_server(served: Any) -> None:
    server, _home, _config = served
    page = requests.get(f"{server.url}/docs", timeout=10).text
    scripts = re.findall(r'src="([^"]+)"', page) + re.findall(r'href="([^"]+\.css)"', page)
    assert scripts and all(s.startswith("/docs/static/") for s in scripts), scripts
    for src in scripts:
        response = requests.get(server.url + src, timeout=10)
        assert response.status_code == 200 and len(response.content) > 10_000, src
    assert requests.get(f"{server.url}/redoc", timeout=10).status_code == 200


def test_who_may_look_and_who_may_write(served: Any) -> None:
    server, home, _config = served
    admin = {"Authorization": f"Bearer {server.token}"}
    viewer_token = (home / "viewer.token").read_text().strip()
    viewer = {"Authorization": f"Bearer {viewer_token}"}
    url = server.url
    assert requests.get(f"{url}/status/api/nodes", timeout=10).status_code == 401
    assert requests.get(f"{url}/status", allow_redirects=False, timeout=10).status_code == 303
    assert requests.get(f"{url}/status/api/nodes", headers=viewer, timeout=10).json()["total"] == 3
    # the viewer reads, it does not write; the cookie session reads too, never writes
    body = {"name": "sw9"}
    assert (
        requests.post(
            f"{url}/api/v1/admin/inventory/switches", json=body, headers=viewer, timeout=10
        ).status_code
        == 401
    )
    session = requests.Session()
    login = session.post(
        f"{url}/status/login", data={"token": server.token}, allow_redirects=False, timeout=10
    )
    assert login.status_code == 303 and server.token not in login.headers["set-cookie"]
    assert "HttpOnly" in login.headers["set-cookie"] and "SameSite=strict" in login.headers["set-cookie"]
    assert session.get(f"{url}/status", timeout=10).status_code == 200
    assert session.post(f"{url}/api/v1/admin/inventory/switches", json=body, timeout=10).status_code == 401
    assert requests.post(f"{url}/status/login", data={"token": "nope"}, timeout=10).status_code == 401
    # a token in a URL is refused, so it is never logged
    assert requests.get(f"{url}/status", params={"token": viewer_token}, timeout=10).status_code == 400
    # the admin writes with the inventory's own validation
    bad = requests.post(
        f"{url}/api/v1/admin/inventory/networks",
        json={"name": "x", "cidr": "10.0.0.0/33"},
        headers=admin,
        timeout=10,
    )
    assert bad.status_code == 422 and "invalid network" in bad.json()["error"]
    for token in (server.token, viewer_token):
        assert token not in server.log()


def test_sighup_reloads_the_live_settings(served: Any) -> None:
    server, _home, config = served
    unknown = "52:54:00:15:99:99"

    def menu_timeout() -> str:
        script = requests.get(f"{server.url}/boot/ipxe", params={"mac": unknown}, timeout=10).text
        match = re.search(r"--timeout (\d+)", script)
        return match.group(1) if match else script

    before = menu_timeout()
    assert before == "30000", before
    config.write_text('boot_menu_timeout = 7\nlisten = "127.0.0.1:9"\n')
    os.kill(server.child.pid, signal.SIGHUP)
    wait_for(lambda: menu_timeout() == "7000", 10, what="the new menu timeout")
    wait_for(
        lambda: "listen changed: restart the server to apply" in server.log(), 5, what="the restart note"
    )
    assert server.healthy()


def test_server_logs_carry_journal_priorities(tmp_path: Path) -> None:
    code = (
        "import logging, os, sys; st = os.fstat(2);"
        "os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}';"
        "from server import journal; journal.setup('info'); log = logging.getLogger('swarmboot.x');"
        "log.warning('two\\nlines'); log.info('ok'); log.debug('hidden')"
    )
    err = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT
    ).stderr
    assert err == "<4>swarmboot.x: two\n<4>lines\n<6>swarmboot.x: ok\n", err
    plain = subprocess.run(
        [sys.executable, "-c", code.replace("os.environ['JOURNAL_STREAM']", "_x")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    ).stderr
    assert plain.startswith("WARNING swarmboot.x: two\n"), plain


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (ROOT / "server" / "systemd" / "swarmboot.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit and "SyslogIdentifier=swarmboot" in unit
    swarmboot = Path(sys.executable).parent / "swarmboot"
    (tmp_path / "swarmboot.service").write_text(unit.replace("/usr/local/bin/swarmboot", str(swarmboot)))
    result = runmod.run(
        ["systemd-analyze", "verify", str(tmp_path / "swarmboot.service")], timeout=60, check=False
    )
    assert result.returncode == 0 and "swarmboot.service" not in result.stderr, result.stderr


def test_bash_completes_the_command_line(tmp_path: Path) -> None:
    """The completion `make setup` installs, loaded by bash, completes objects, verbs and options."""
    bash_dir, zsh_dir = tmp_path / "bash", tmp_path / "zsh"
    venv = Path(sys.executable).parent.parent
    runmod.run(
        [str(ROOT / "scripts" / "install-completion.sh"), str(venv), str(bash_dir), str(zsh_dir)], timeout=60
    )

    def complete(line: str) -> list[str]:
        script = (
            f"source {bash_dir / 'swarmboot'}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}};"
            f"read -ra COMP_WORDS <<< '{line}'; [[ '{line}' == *' ' ]] && COMP_WORDS+=('');"
            "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _python_argcomplete swarmboot;"
            "printf '%s\\n' \"${COMPREPLY[@]}\""
        )
        env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
        out = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60, check=True
        )
        return sorted(w.strip() for w in out.stdout.split())

    assert complete("swarmboot no") == ["node"]
    assert {"add", "status", "wait", "targets"} <= set(complete("swarmboot node "))
    assert "--watch" in complete("swarmboot node status --w")
    if shutil.which("zsh"):
        runmod.run(["zsh", "-n", str(zsh_dir / "_swarmboot")], timeout=30)
