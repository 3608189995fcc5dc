"""A real `swarmboot serve` on loopback: iPXE scripts, boot plans, image files, events, tracker
failures and the admin token."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import stat
import threading
import time
from pathlib import Path
from typing import Any

import libtorrent as lt
import pytest
import requests

from ground.config import Settings
from ground.contract.plan import BootPlan
from ground.store import Manifest
from lab.packed import make_version
from server.inventory import crud
from server.inventory.db import Database
from tests.helpers.server import ServerProcess, boot_token, cli, running_server, token_headers

MAC = "52:54:00:00:00:01"
UNKNOWN = "52:54:00:99:99:99"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPdtest admin@head"


@pytest.fixture
def manifest(settings: Settings) -> Manifest:
    return make_version(settings.images_dir, "compute", 1, size=2 * 2**20)


@pytest.fixture
def server(settings: Settings, manifest: Manifest, swarmboot_home: Path) -> Any:
    db = Database.from_settings(settings, pool_size=2)
    crud.add(
        db,
        "network",
        "cluster",
        {
            "cidr": "10.5.0.0/24",
            "gateway": "10.5.0.1",
            "dns": ["10.5.0.2"],
            "domain": "hpc.test",
            "range": "10.5.0.10-10.5.0.250",
        },
    )
    crud.add(db, "switch", "sw1", {})
    crud.add(
        db,
        "group",
        "compute",
        {
            "image": "compute",
            "root": {"mode": "tmpfs", "tmpfs_size": "4G"},
            "scripts": {"pre": "echo pre\n", "post": "echo post\n"},
            "kernel_args": "quiet",
            "files": [
                {
                    "path": "/etc/motd",
                    "template": "{{ node.name }} at {{ node.address }} runs "
                    "{{ image.name }} v{{ image.version }} from {{ server_url }}\n",
                    "mode": 0o640,
                }
            ],
            "ssh_keys": [KEY],
        },
    )
    crud.add_nodes(db, ["n1"], {"group": "compute", "macs": [MAC, "52:54:00:00:00:02"], "switch": "sw1"})
    crud.add_nodes(db, ["spare[1-3]"], {"group": "compute"})
    db.close()
    # the seeding-after-boot settings reach the plans (plan 1.4)
    with running_server(swarmboot_home, SWARMBOOT_SEED_IDLE_SECONDS="45",
                        SWARMBOOT_SEED_AFTER_BOOT_RATE="1000000") as srv:
        yield srv


def get(srv: ServerProcess, path: str, **params: str) -> requests.Response:
    return requests.get(srv.url + path, params=params, timeout=30)


def kernel_args(script: str) -> dict[str, str]:
    assert script.startswith("#!ipxe\n"), script[:40]
    (line,) = [line for line in script.splitlines() if line.startswith("kernel ")]
    words = shlex.split(line.split(" || ")[0])
    return dict(w.partition("=")[::2] for w in words[2:])


def test_ipxe_scripts_for_known_unknown_and_rescue(server: ServerProcess, manifest: Manifest) -> None:
    start = get(server, "/boot/start.ipxe").text
    assert (
        start.startswith("#!ipxe\n") and f"chain --autofree {server.url}/boot/ipxe?mac=${{netX/mac}}" in start
    )

    bios = get(server, "/boot/ipxe", mac=MAC.upper(), platform="pcbios").text
    args = kernel_args(bios)
    assert args["root"] == "swarmboot" and args["swarmboot.server"] == server.url
    assert args["swarmboot.node"] == "n1" and args["swarmboot.mac"] == MAC
    # iPXE's address, expanded by iPXE: the initramfs sets it without asking DHCP again
    assert args["swarmboot.ip"] == "${netX/ip}:${netX/netmask}:${netX/gateway}:${netX/dns}", args
    assert "ip" not in args and "rd.neednet" not in args and "quiet" in args
    assert "initrd" not in args and "swarmboot.service" not in args
    assert f"kernel {server.url}/images/compute/1/vmlinuz " in bios
    assert f"initrd {server.url}/images/compute/1/initramfs.img" in bios
    assert bios.rstrip().splitlines()[-1].startswith("chain")  # a failure loops back to the server
    efi = kernel_args(get(server, "/boot/ipxe", mac=MAC, platform="efi").text)
    assert efi["initrd"] == manifest.initramfs.name == "initramfs.img"
    # the kernel and initramfs the script names are served
    assert get(server, "/images/compute/1/vmlinuz").content == (
        Path(server.home / "images/compute/versions/1/vmlinuz").read_bytes()
    )

    menu = get(server, "/boot/ipxe", mac=UNKNOWN, platform="efi").text
    assert menu.startswith("#!ipxe\n") and "kernel " not in menu
    items = [
        line.split()[1] for line in menu.splitlines() if line.startswith("item ") and "--gap" not in line
    ]
    assert items[:3] == ["spare1", "spare2", "spare3"] and "n1" not in items
    assert {"_name", "_rescue", "_local", "_retry"} <= set(items)
    assert "choose --timeout 30000 --default _local" in menu
    # EFI local boot: the chained script sets the flag, start.ipxe leaves iPXE failing (next device)
    assert "set swarmboot_local 1" in menu and "sanboot" not in menu
    assert "iseq ${swarmboot_local} 1 && goto local" in start and start.rstrip().endswith("exit 1")
    assert "sanboot --no-describe --drive 0x80" in get(server, "/boot/ipxe", mac=UNKNOWN).text

    # choosing a node binds this MAC to it and boots it
    chosen = get(server, "/boot/ipxe/choose", mac=UNKNOWN, node="spare2", platform="pcbios").text
    assert kernel_args(chosen)["swarmboot.node"] == "spare2"
    shown = json.loads(cli(server.home, "node", "show", "spare2", "--json").stdout)
    assert shown["macs"] == [UNKNOWN]
    assert kernel_args(get(server, "/boot/ipxe", mac=UNKNOWN).text)["swarmboot.node"] == "spare2"
    # a node that has a MAC already cannot be taken by another machine; an unknown name is refused
    taken = get(server, "/boot/ipxe/choose", mac="52:54:00:99:99:98", node="n1").text
    assert taken.startswith("#!ipxe\n") and "has a MAC already" in taken and "kernel " not in taken
    assert (
        "no node named 'ghost'"
        in get(server, "/boot/ipxe/choose", mac="52:54:00:99:99:98", node="ghost").text
    )
    assert json.loads(cli(server.home, "node", "show", "n1", "--json").stdout)["macs"][0] == MAC

    # rescue: service mode for a known node (menu entry and the node's service flag)
    assert kernel_args(get(server, "/boot/ipxe/rescue", mac=MAC).text)["swarmboot.service"] == "1"
    cli(server.home, "node", "set", "n1", "--service")
    assert kernel_args(get(server, "/boot/ipxe", mac=MAC).text)["swarmboot.service"] == "1"
    # an unknown machine's rescue boots an image in service mode without a node name
    rescue = kernel_args(get(server, "/boot/ipxe/rescue", mac="52:54:00:99:99:97").text)
    assert rescue["swarmboot.service"] == "1" and "swarmboot.node" not in rescue
    # bad input is a script that says so, never an error page
    bad = get(server, "/boot/ipxe", mac="nonsense")
    assert bad.status_code == 200 and bad.text.startswith("#!ipxe\n") and "not a MAC address" in bad.text


def test_plan_matches_the_inventory(server: ServerProcess, manifest: Manifest) -> None:
    response = get(server, "/api/v1/plan", mac="52:54:00:00:00:02")
    assert response.status_code == 200, response.text
    plan = BootPlan.from_dict(response.json())
    assert plan.node.name == "n1" and plan.node.group == "compute" and plan.node.domain == "hpc.test"
    assert plan.image.name == "compute" and plan.image.version == 1
    assert plan.image.sha256 == manifest.image_file.sha256 and plan.image.size == manifest.image_file.size
    assert plan.image.info_hash == manifest.info_hash
    assert plan.image.torrent_url == f"{server.url}/images/compute/1/image.torrent"
    assert plan.image.http_url == f"{server.url}/images/compute/1/image.squashfs"
    first, second = plan.interfaces
    assert (first.mac, first.address, first.gateway, first.dns) == (
        MAC,
        "10.5.0.10/24",
        "10.5.0.1",
        ("10.5.0.2",),
    )
    assert second.boot and not first.boot and second.address == ""
    assert plan.root.mode == "tmpfs" and plan.root.tmpfs_size == "4G"
    assert (plan.scripts.pre, plan.scripts.post) == ("echo pre\n", "echo post\n")
    assert plan.ssh_authorized_keys == (KEY,) and plan.kernel_args == "quiet"
    (motd,) = plan.files
    assert motd.path == "/etc/motd" and motd.mode == 0o640
    assert motd.content == f"n1 at 10.5.0.10 runs compute v1 from {server.url}\n"
    assert plan.reporting.events_url == f"{server.url}/api/v1/nodes/n1/events"
    assert BootPlan.from_dict(get(server, "/api/v1/plan", node="n1").json()).interfaces[0].boot
    t = BootPlan.from_dict(get(server, "/api/v1/plan", node="n1", plan_version="1.4").json()).torrent
    assert (t.seed_after_boot_seconds, t.seed_idle_seconds, t.seed_rate_limit) == (1800, 45, 1_000_000)
    older = get(server, "/api/v1/plan", node="n1", plan_version="1.3").json()["torrent"]
    assert "seed_idle_seconds" not in older  # an older agent stops seeding at switch_root

    # a change in the inventory shows up in the (cached) plan
    cli(server.home, "node", "set", "n1", "--address", "10.5.0.99", "--kernel-args", "debug")
    server.refresh()
    again = BootPlan.from_dict(get(server, "/api/v1/plan", mac="52:54:00:00:00:02").json())
    assert again.interfaces[0].address == "10.5.0.99/24" and again.kernel_args == "quiet debug"

    missing = get(server, "/api/v1/plan", mac=UNKNOWN)
    assert missing.status_code == 404 and "no node has MAC" in missing.json()["error"]
    assert get(server, "/api/v1/plan").status_code == 422
    # a template that uses an unknown variable is a clear error, not an empty file
    cli(
        server.home,
        "group",
        "set",
        "compute",
        "--file",
        f"/etc/x={_template(server.home, '{{ node.nope }}')}",
    )
    server.refresh()
    broken = get(server, "/api/v1/plan", node="n1")
    assert (
        broken.status_code == 409 and "/etc/x" in broken.json()["error"] and "nope" in broken.json()["error"]
    )


def _template(home: Path, text: str) -> Path:
    path = home / "template.j2"
    path.write_text(text)
    return path


def test_100_concurrent_plan_requests_all_succeed(server: ServerProcess, settings: Settings) -> None:
    db = Database.from_settings(settings, pool_size=2)
    crud.import_(
        db,
        {
            "swarmboot_inventory": 1,
            "nodes": [
                {"name": f"c{i:03d}", "group": "compute", "macs": [f"52:54:00:01:00:{i:02x}"]}
                for i in range(100)
            ],
        },
    )
    db.close()
    server.refresh()
    # plan 1.3 is not built ahead: 100 builds at once; then 1.4, which the server built ahead
    for round_, version in (("built on demand", "1.3"), ("built ahead", "1.4")):
        if version == "1.4":
            ahead = _plans_ahead(server, nodes=101)
            assert ahead["complete"] and ahead["plans"] == 102, ahead
            before = server.admin("stats")["plans"]
        barrier = threading.Barrier(100)
        results: dict[int, Any] = {}

        def fetch(
            i: int,
            barrier: threading.Barrier = barrier,
            results: dict[int, Any] = results,
            version: str = version,
        ) -> None:
            barrier.wait(timeout=30)
            try:
                r = requests.get(
                    f"{server.url}/api/v1/plan",
                    params={"mac": f"52:54:00:01:00:{i:02x}", "plan_version": version},
                    timeout=60,
                )
                results[i] = (r.status_code, r.json()["node"]["name"] if r.ok else r.text)
            except requests.RequestException as exc:
                results[i] = (0, str(exc))

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert results == {i: (200, f"c{i:03d}") for i in range(100)}, round_
    after = server.admin("stats")["plans"]
    assert after["built"] == before["built"] and after["cache_hits"] == before["cache_hits"] + 100


def _plans_ahead(server: ServerProcess, nodes: int, timeout: float = 30) -> dict[str, Any]:
    """The server's last plans-ahead pass once it covers `nodes` nodes (server/plan_ahead.py)."""
    deadline = time.monotonic() + timeout
    while True:
        ahead = server.admin("stats")["plans"]["ahead"]
        if ahead.get("nodes") == nodes or time.monotonic() > deadline:
            return ahead
        time.sleep(0.2)


def test_events_make_node_status(server: ServerProcess) -> None:
    url = f"{server.url}/api/v1/nodes/n1/events"
    cli(server.home, "node", "set", "n1", "--address", "")  # boots from 127.0.0.1: no reserved address
    server.refresh()
    auth = token_headers(boot_token(server, MAC))
    for event in [
        {"stage": "cmdline", "status": "start"},
        {"stage": "download", "status": "progress", "progress": 0.42, "image": "compute", "version": 1},
    ]:
        assert requests.post(url, json=event, timeout=10, headers=auth).status_code == 200
    (row,) = json.loads(cli(server.home, "node", "status", "n1", "--json").stdout)
    assert row["state"] == "provisioning" and row["stage"] == "download" and row["progress"] == 0.42
    assert row["image"] == "compute" and row["version"] == 1 and row["seen_seconds_ago"] < 60
    assert row["address"] == "127.0.0.1"
    failed = {"stage": "download", "status": "failed", "duration": 3.5, "message": "no peers and no web seed"}
    assert requests.post(url, json=failed, timeout=10, headers=auth).json()["state"] == "failed"
    table = cli(server.home, "node", "status").stdout
    assert "n1" in table and "failed" in table and "no peers and no web seed" in table and "42%" in table
    requests.post(url, json={"stage": "booted", "status": "done", "details": {"kernel": "6.1"}}, timeout=10,
                  headers=auth)
    (row,) = json.loads(cli(server.home, "node", "status", "n1", "--json").stdout)
    assert row["state"] == "booted" and row["message"] == "" and row["details"]["kernel"] == "6.1"
    watch = cli(
        server.home, "node", "status", "--watch", "--count", "2", "--interval", "0.2", "--json"
    ).stdout
    assert watch.count('"name": "n1"') == 2
    bad = requests.post(url, json={"stage": "download", "status": "progress", "progress": 7}, timeout=10,
                        headers=auth)
    assert bad.status_code == 422 and "between 0 and 1" in bad.json()["error"]
    assert requests.post(url, data=b"{not json", timeout=10, headers=auth).status_code == 422
    assert (
        requests.post(
            f"{server.url}/api/v1/nodes/ghost/events", json={"stage": "plan", "status": "start"}, timeout=10
        ).status_code
        == 404
    )


def test_image_files_torrent_and_range(server: ServerProcess, manifest: Manifest) -> None:
    path = server.home / "images/compute/versions/1/image.squashfs"
    data = path.read_bytes()
    part = requests.get(
        f"{server.url}/images/compute/1/image.squashfs", headers={"Range": "bytes=1000-1999"}, timeout=30
    )
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    whole = get(server, "/images/compute/1/image.squashfs").content
    assert hashlib.sha256(whole).hexdigest() == manifest.image_file.sha256
    torrent = lt.bdecode(get(server, "/images/compute/1/image.torrent").content)
    assert torrent[b"announce"] == f"{server.url}/announce".encode()
    assert torrent[b"url-list"] == [f"{server.url}/images/compute/1/image.squashfs".encode()]
    assert str(lt.torrent_info(torrent).info_hash()) == manifest.info_hash
    for bad in (
        "/images/compute/1/../../../admin.token",
        "/images/compute/1/rootfs",
        "/images/compute/9/vmlinuz",
        "/images/nope/1/vmlinuz",
        "/images/compute/x/vmlinuz",
    ):
        assert get(server, bad).status_code == 404, bad
    assert server.admin("stats")["http_bytes"]["compute/1/image.squashfs"] >= len(data) + 1000


def test_the_server_hands_out_each_piece_once_to_the_owners_asking(
    server: ServerProcess, manifest: Manifest
) -> None:
    """GET /api/v1/pieces/…/next (server/piece_dispenser.py) with the agent's own client
    (bootagent/piece_fetch.py): two owners taking pieces at once get every piece once between
    them, each with its bytes; pieces the asker says it has (X-Seen) are skipped; then 204."""
    from bootagent.piece_fetch import PieceFetch, dispenser_url
    from ground.contract.pieces import encode_seen

    data = (server.home / "images/compute/versions/1/image.squashfs").read_bytes()
    piece, pieces = manifest.piece_size, -(-len(data) // manifest.piece_size)
    url = dispenser_url(f"{server.url}/images/compute/1/image.squashfs")
    assert url == f"{server.url}/api/v1/pieces/compute/1/next"
    got: dict[int, bytes] = {}
    lock = threading.Lock()

    def add(k: int, body: bytes) -> None:
        with lock:
            assert k not in got, f"piece {k} handed out twice"
            got[k] = body

    seen = [k < 3 for k in range(pieces)]  # the first 3 are in the swarm already
    owners = [PieceFetch(url, piece, len(data), add, workers=2) for _ in range(2)]
    for fetch in owners:
        fetch.seen = encode_seen(seen)
        fetch.start()
    deadline = time.monotonic() + 60
    while any(f.busy for f in owners) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(f.finished and not f.failure and not f.held for f in owners), [f.failure for f in owners]
    for fetch in owners:
        fetch.close()
    assert sorted(got) == list(range(3, pieces))
    assert all(got[k] == data[k * piece:(k + 1) * piece] for k in got)
    assert all(f.fetched > 0 for f in owners)  # both took a share
    # the round is handed out: an asker whose peers have the first 3 gets nothing; one that has
    # not seen them gets them (it cannot know its peers have them)
    answer = requests.get(url, headers={"X-Seen": encode_seen(seen)}, timeout=30)
    assert answer.status_code == 204
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200 and answer.headers["x-piece"] == "0" and answer.content == data[:piece]
    # an older server (no hand-out): the fetch ends at once with what it was told
    old = PieceFetch(f"{server.url}/api/v1/pieces/nope/1/next", piece, len(data), add)
    old.start()
    while old.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not old.finished and "404" in old.failure and old.requests == 1


def test_bad_announces_get_bencoded_failures(server: ServerProcess, manifest: Manifest) -> None:
    for query in [
        "",
        "info_hash=short",
        "info_hash=%00&peer_id=x",
        "info_hash=" + "%01" * 20 + "&peer_id=" + "a" * 20 + "&port=1",
        "x=%ff%fe&&&=",
        "info_hash=" + "%zz" * 30,
    ]:
        response = requests.get(f"{server.url}/announce?{query}", timeout=10)
        assert response.status_code == 200
        assert b"failure reason" in lt.bdecode(response.content), query
    good = bytes.fromhex(manifest.info_hash)
    q = (
        "info_hash="
        + "".join(f"%{b:02x}" for b in good)
        + "&peer_id="
        + "b" * 20
        + "&port=7777&left=5&compact=1"
    )
    answer = lt.bdecode(requests.get(f"{server.url}/announce?{q}", timeout=10).content)
    assert answer[b"interval"] == 300 and b"failure reason" not in answer


def test_admin_endpoints_need_the_token(server: ServerProcess) -> None:
    token_file = server.home / "admin.token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600 and len(server.token) >= 32
    assert requests.get(f"{server.url}/api/v1/admin/stats", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * 43}
    assert requests.get(f"{server.url}/api/v1/admin/nodes", headers=wrong, timeout=10).status_code == 401
    assert requests.post(f"{server.url}/api/v1/admin/refresh", timeout=10).status_code == 401
    stats = server.admin("stats")
    assert stats["server_url"] == server.url and stats["versions"][0]["current"] is True
    assert [n["name"] for n in server.admin("nodes")][:2] == ["n1", "spare1"]
    # node-facing endpoints do not accept writes other than events
    assert requests.post(f"{server.url}/api/v1/plan", params={"node": "n1"}, timeout=10).status_code == 405


def test_plans_carry_stripe_hints_by_name_for_the_first_32_nodes_of_a_group(server: ServerProcess) -> None:
    def stripe(name: str) -> tuple[int, int]:
        plan = BootPlan.from_dict(get(server, "/api/v1/plan", node=name).json())
        return plan.torrent.stripe, plan.torrent.stripes

    # n1, spare1, spare2, spare3: four owners, ranked by name
    assert [stripe(n) for n in ("n1", "spare1", "spare3")] == [(0, 4), (1, 4), (3, 4)]
    cli(server.home, "node", "add", "x[01-30]", "--group", "compute")
    server.refresh()
    # 34 nodes: the first 32 by name own a stripe, the last two are leaves
    assert stripe("n1") == (0, 32) and stripe("x01") == (4, 32) and stripe("x28") == (31, 32)
    assert stripe("x29") == (-1, 32) and stripe("x30") == (-1, 32)
