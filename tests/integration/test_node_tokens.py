"""Node tokens against a real `swarmboot serve` on loopback (server/tokens.py, docs/security.md):
the token comes in the node's iPXE script; without it a plan has its public part only; with it
the plan carries the node's secrets once; a replay is a 409 and an alert, another node's token a
403 (plans and events); old agents are still served the public plan."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from ground.config import Settings
from ground.contract.plan import BootPlan
from lab.packed import make_version
from server.inventory import crud
from server.inventory.db import Database
from tests.helpers.server import ServerProcess, boot_token, cli, running_server, token_headers

MAC_A, MAC_B, MAC_C = "52:54:00:00:14:01", "52:54:00:00:14:02", "52:54:00:00:14:03"
MAC_D = "52:54:00:00:14:04"
MUNGE = bytes(range(256)) * 4  # 1 KiB of binary, as a munge.key is


@pytest.fixture
def server(settings: Settings, swarmboot_home: Path, tmp_path: Path) -> Any:
    make_version(settings.images_dir, "compute", 1, size=2**20)
    db = Database.from_settings(settings, pool_size=2)
    crud.add(db, "network", "net", {"cidr": "10.14.0.0/24"})
    crud.add(db, "group", "g", {"image": "compute", "network": "net"})
    # a and b have no reserved address (they boot from 127.0.0.1 here); c has one
    crud.add_nodes(db, ["a"], {"group": "g", "macs": [MAC_A]})
    crud.add_nodes(db, ["b"], {"group": "g", "macs": [MAC_B]})
    crud.add_nodes(db, ["c"], {"group": "g", "macs": [MAC_C], "address": "10.14.0.30"})
    crud.add_nodes(db, ["d"], {"group": "g", "address": "10.14.0.40"})  # no MAC yet: named at its console
    db.close()
    key = tmp_path / "munge.key"
    key.write_bytes(MUNGE)
    cli(swarmboot_home, "group", "set", "g", "--secret-file", f"/etc/munge/munge.key={key}:0400:munge:munge")
    with running_server(swarmboot_home) as srv:
        yield srv


def plan(srv: ServerProcess, mac: str, token: str = "", version: str | None = "1.2") -> requests.Response:
    params = {"mac": mac, **({"plan_version": version} if version else {})}
    return requests.get(f"{srv.url}/api/v1/plan", params=params, timeout=30,
                        headers=token_headers(token) if token else {})


def event(srv: ServerProcess, node: str, token: str) -> requests.Response:
    return requests.post(f"{srv.url}/api/v1/nodes/{node}/events", json={"stage": "plan", "status": "start"},
                         headers=token_headers(token) if token else {}, timeout=10)


def test_without_a_token_a_plan_has_its_public_part_only(server: ServerProcess) -> None:
    boot_token(server, MAC_A)  # a token exists, the request just does not carry it
    for version in ("1.2", "1.0", None):  # this agent, an older one, one from before negotiation
        response = plan(server, MAC_A, version=version)
        assert response.status_code == 200, response.text
        doc = response.json()
        assert not doc.get("secret_files") and "munge" not in response.text, version
        assert BootPlan.from_dict(doc).node.name == "a"
    assert plan(server, MAC_A, version="1.0").json()["minor"] == 0


def test_the_token_brings_the_secrets_once_and_a_replay_is_a_409_and_an_alert(server: ServerProcess) -> None:
    token = boot_token(server, MAC_A)
    response = plan(server, MAC_A, token)
    assert response.status_code == 200, response.text
    assert response.headers.get("cache-control") == "no-store"
    secrets = {f.path: f for f in BootPlan.from_dict(response.json()).secret_files}
    munge = secrets["/etc/munge/munge.key"]
    assert base64.b64decode(munge.content) == MUNGE and (munge.mode, munge.owner) == (0o400, "munge")
    private = base64.b64decode(secrets["/etc/ssh/ssh_host_ed25519_key"].content).decode()
    public = base64.b64decode(secrets["/etc/ssh/ssh_host_ed25519_key.pub"].content).decode()
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----") and public.endswith("root@a\n")
    assert secrets["/etc/ssh/ssh_host_ed25519_key"].mode == 0o600
    replay = plan(server, MAC_A, token)
    assert replay.status_code == 409 and replay.json()["code"] == "token_used", replay.text
    assert plan(server, MAC_A, token).status_code == 409  # and again
    alerts = server.admin("nodes/a/alerts")
    assert [a["kind"] for a in alerts] == ["token-replayed", "token-replayed"]
    assert alerts[0]["address"] == "127.0.0.1" and "first used at" in alerts[0]["message"]
    row = next(r for r in server.admin("nodes") if r["name"] == "a")
    assert row["alerts"] == 2
    assert "token-replayed" in cli(server.home, "node", "show", "a").stdout
    # the token still carries the node's events for the rest of this boot
    assert event(server, "a", token).status_code == 200


def test_the_next_boot_gets_a_new_token_and_the_same_host_keys(server: ServerProcess) -> None:
    first = plan(server, MAC_A, boot_token(server, MAC_A)).json()["secret_files"]
    old = boot_token(server, MAC_A)
    new = boot_token(server, MAC_A)  # iPXE asked again: the newest script's token counts
    assert old != new
    assert plan(server, MAC_A, old).status_code == 403
    second = plan(server, MAC_A, new).json()["secret_files"]
    assert {f["path"]: f["content"] for f in first} == {f["path"]: f["content"] for f in second}


def test_another_nodes_token_is_a_403_for_plans_and_events(server: ServerProcess) -> None:
    token_a = boot_token(server, MAC_A)
    boot_token(server, MAC_B)
    response = plan(server, MAC_B, token_a)
    assert response.status_code == 403 and response.json()["code"] == "token_wrong", response.text
    assert "secret" not in response.text.lower() or "munge" not in response.text
    (alert,) = server.admin("nodes/b/alerts")
    assert alert["kind"] == "wrong-token" and "the token of node a" in alert["message"]
    assert event(server, "b", token_a).status_code == 403
    # A's own token is untouched by that: its secrets are still there for A
    assert plan(server, MAC_A, token_a).status_code == 200


def test_events_need_the_nodes_current_token(server: ServerProcess) -> None:
    assert event(server, "a", "").status_code == 401
    assert event(server, "a", "x" * 43).status_code == 403
    token = boot_token(server, MAC_A)
    assert event(server, "a", token).status_code == 200
    boot_token(server, MAC_A)  # a new boot: the old token no longer speaks for the node
    assert event(server, "a", token).status_code == 403
    state = json.loads(cli(server.home, "node", "status", "a", "--json").stdout)[0]
    assert state["stage"] == "ipxe"  # the refused event changed nothing


def test_a_node_with_a_reserved_address_gets_no_token_from_another_address(server: ServerProcess) -> None:
    script = requests.get(f"{server.url}/boot/ipxe", params={"mac": MAC_C}, timeout=30).text
    assert "swarmboot.node=c" in script and "swarmboot.token=" not in script
    assert plan(server, MAC_C).status_code == 200  # it still boots, with the public plan


def test_a_machine_named_in_this_request_gets_its_token_at_a_dynamic_address(server: ServerProcess) -> None:
    """Named by the boot menu (or its switch port) in this very request, the machine cannot have
    the node's reserved address yet: DHCP gave it a dynamic one. The naming is the evidence."""
    chosen = {"mac": MAC_D, "node": "d"}
    script = requests.get(f"{server.url}/boot/ipxe/choose", params=chosen, timeout=30).text
    assert "swarmboot.node=d" in script and "swarmboot.token=" in script, script
    again = requests.get(f"{server.url}/boot/ipxe", params={"mac": MAC_D}, timeout=30).text
    assert "swarmboot.node=d" in again and "swarmboot.token=" not in again  # later boots: its address only
