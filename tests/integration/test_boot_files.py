"""Boot files from booted peers (server/boot_peers.py, bootagent/boot_files.py) against a real
`swarmboot serve` on loopback: booted services fetch the kernel and initramfs from each other, the
server writes a holder into rebooting nodes' iPXE scripts with itself after it, and the head node
sends one copy."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from bootagent import boot_files
from ground.config import Settings
from ground.store import Manifest
from lab.packed import make_version
from lab.server_process import urls_in
from server.inventory import crud
from server.inventory.db import Database
from tests.helpers.server import ServerProcess, boot_token, running_server, token_headers

NODES = 12


def mac(i: int) -> str:
    return f"52:54:00:00:01:{i:02x}"


@pytest.fixture
def manifest(settings: Settings) -> Manifest:
    return make_version(settings.images_dir, "compute", 1, size=2 * 2**20)


@pytest.fixture
def server(
    settings: Settings, manifest: Manifest, swarmboot_home: Path, request: pytest.FixtureRequest
) -> Any:
    db = Database.from_settings(settings, pool_size=2)
    crud.add(db, "group", "compute", {"image": "compute", "root": {"mode": "tmpfs", "tmpfs_size": "4G"}})
    for i in range(1, NODES + 1):
        crud.add_nodes(db, [f"n{i}"], {"group": "compute", "macs": [mac(i)]})
    db.close()
    env = getattr(request, "param", {})
    with running_server(swarmboot_home, **env) as srv:
        yield srv


def script(srv: ServerProcess, i: int) -> str:
    return requests.get(f"{srv.url}/boot/ipxe", params={"mac": mac(i)}, timeout=30).text


def head_bytes(srv: ServerProcess, manifest: Manifest) -> int:
    sent = srv.admin("stats")["http_bytes"]
    return sum(sent.get(f"compute/1/{e.name}", 0) for e in (manifest.kernel, manifest.initramfs))


class Service:
    """A booted node's boot-file part, as bootagent/boot_files.py's serve_after_boot runs it."""

    def __init__(self, srv: ServerProcess, i: int, tmp: Path, token: str) -> None:
        self.srv, self.node, self.token = srv, f"n{i}", token
        self.got = boot_files.fetch((srv.url,), self.node, tmp / self.node, say=lambda _: None)
        self.http = boot_files.BootFileServer(self.got.paths, self.got.sha256, port=0, image="compute",
                                              version=1).start()

    def say(self, status: str = "progress", details: dict[str, Any] | None = None) -> None:
        event = {"stage": "seed", "status": status, "details": {"boot_files": details or self.http.details()}}
        answer = requests.post(f"{self.srv.url}/api/v1/nodes/{self.node}/events", json=event, timeout=10,
                               headers=token_headers(self.token))
        assert answer.status_code == 200, answer.text


def test_booted_nodes_serve_the_boot_files_and_the_head_node_sends_one_copy(
    server: ServerProcess, manifest: Manifest, tmp_path: Path
) -> None:
    pair = manifest.kernel.size + manifest.initramfs.size
    tokens = [boot_token(server, mac(i)) for i in (1, 2)]  # n1 and n2 boot from the server
    plain = script(server, 5)
    assert urls_in(plain, "kernel") == [f"{server.url}/images/compute/1/{manifest.kernel.name}"], plain
    first = Service(server, 1, tmp_path, tokens[0])  # no holder yet: from the server
    assert (first.got.from_server, first.got.from_peers) == (pair, 0)
    for entry in (manifest.kernel, manifest.initramfs):
        assert hashlib.sha256(first.got.paths[entry.name].read_bytes()).hexdigest() == entry.sha256
    # n1 fetches from the server and holds nothing yet: the next service is told to wait
    told = requests.get(f"{server.url}/api/v1/boot-files", params={"node": "n2"}, timeout=10).json()
    assert told["wait"] > 0 and [len(f["urls"]) for f in told["files"]] == [1, 1]
    first.say()
    second = Service(server, 2, tmp_path, tokens[1])  # from n1 (which takes that as one of its 4)
    assert (second.got.from_server, second.got.from_peers) == (0, pair)
    assert second.got.sources[0].startswith(f"http://127.0.0.1:{first.http.port}/boot-files/")
    second.say()
    assert head_bytes(server, manifest) == pair  # one copy, for n1

    # rebooting nodes: a holder first, the server after it; at most PER_HOLDER each per window
    peers: dict[int, int] = {}
    for i in range(3, 3 + 7):
        text = script(server, i)
        kernel, initrd = urls_in(text, "kernel"), urls_in(text, "initrd")
        assert kernel[1] == f"{server.url}/images/compute/1/{manifest.kernel.name}", text
        assert initrd[1] == f"{server.url}/images/compute/1/{manifest.initramfs.name}", text
        port = int(kernel[0].split(":")[2].split("/")[0])
        peers[port] = peers.get(port, 0) + 1
        for url, entry in ((kernel[0], manifest.kernel), (initrd[0], manifest.initramfs)):
            assert hashlib.sha256(requests.get(url, timeout=30).content).hexdigest() == entry.sha256
    assert peers == {first.http.port: 3, second.http.port: 4}
    assert urls_in(script(server, 10), "kernel") == [f"{server.url}/images/compute/1/{manifest.kernel.name}"]
    assert head_bytes(server, manifest) == pair
    rows = {r["name"]: r for r in server.admin("nodes")}  # what `node status` shows of it
    assert rows["n3"]["details"]["boot_files_from"] in ("n1", "n2"), rows["n3"]["details"]
    assert rows["n10"]["details"]["boot_files_from"] == "server"  # both holders were busy
    assert first.http.counters.sent + second.http.counters.sent == 7 * pair + pair  # + n2's fetch
    stats = server.admin("stats")["boot_peers"]
    assert stats["holders"] == {"compute/1": 2} and stats["assigned_ipxe"] == 7

    # a node that reboots holds nothing; one that says it stopped neither
    script(server, 1)
    assert server.admin("stats")["boot_peers"]["holders"] == {"compute/1": 1}
    second.say("done", second.http.details(stopped=True))
    assert server.admin("stats")["boot_peers"]["holders"] == {"compute/1": 0}
    first.http.close()
    second.http.close()


def test_a_dead_holder_costs_a_retry_and_wrong_files_are_not_held(
    server: ServerProcess, manifest: Manifest, tmp_path: Path
) -> None:
    tokens = [boot_token(server, mac(i)) for i in (1, 2)]
    first = Service(server, 1, tmp_path, tokens[0])
    first.say()
    first.http.close()  # it dies without a word
    second = Service(server, 2, tmp_path, tokens[1])  # told n1, which refuses: from the server
    pair = manifest.kernel.size + manifest.initramfs.size
    assert (second.got.from_peers, second.got.from_server) == (0, pair)
    wrong = {**second.http.details(), "files": {manifest.kernel.name: "0" * 64,
                                                 manifest.initramfs.name: manifest.initramfs.sha256}}
    second.say("progress", wrong)
    assert server.admin("stats")["boot_peers"]["holders"] == {"compute/1": 1}  # n1 only (until its TTL)
    second.http.close()


def test_the_service_thread_fetches_serves_reports_and_cleans_up(
    server: ServerProcess, manifest: Manifest, tmp_path: Path
) -> None:
    said: list[tuple[str, str, dict[str, Any]]] = []
    stopping = threading.Event()
    directory = tmp_path / "boot-files"
    thread = threading.Thread(
        target=boot_files.serve_after_boot,
        args=((server.url,), "n1", directory, 0, stopping, lambda *a: said.append(a), lambda _: None),
    )
    thread.start()
    for _ in range(200):
        if said:
            break
        stopping.wait(0.05)
    status, message, details = said[0]
    assert status == "progress" and f"port {details['port']}" in message
    assert details["fetched"]["from_server"] == manifest.kernel.size + manifest.initramfs.size
    url = f"http://127.0.0.1:{details['port']}/boot-files/{manifest.kernel.sha256}/{manifest.kernel.name}"
    assert len(requests.get(url, timeout=10).content) == manifest.kernel.size
    assert requests.get(f"http://127.0.0.1:{details['port']}/etc/passwd", timeout=10).status_code == 404
    stopping.set()
    thread.join(10)
    assert not thread.is_alive() and not directory.exists()
    status, message, details = said[-1]
    assert status == "done" and details["sent"] == manifest.kernel.size and details["stopped"]


@pytest.mark.parametrize(
    "server", [{"SWARMBOOT_BOOT_FILES_SERVER_STREAMS": "2", "SWARMBOOT_TRUSTED_PROXIES": "127.0.0.1"}],
    indirect=True,
)
def test_a_cold_start_beyond_the_servers_streams_waits_for_a_slot_or_a_booted_peer(
    server: ServerProcess, manifest: Manifest
) -> None:
    def script_from(i: int) -> str:  # node i asking from its own address (X-Forwarded-For)
        return requests.get(f"{server.url}/boot/ipxe", params={"mac": mac(i)}, timeout=30,
                            headers={"X-Forwarded-For": f"10.9.0.{i}"}).text

    assert urls_in(script_from(1), "kernel") and urls_in(script_from(2), "kernel")
    held = script_from(3)
    assert "\nkernel " not in held and "waits for its kernel and initramfs" in held, held
    assert "sending them to 2 nodes now" in held and "\nsleep " in held and "/boot/ipxe?mac=" in held
    assert urls_in(script_from(1), "kernel")  # a node the server is sending to keeps its slot
    initrd = requests.get(f"{server.url}/images/compute/1/{manifest.initramfs.name}", timeout=30,
                          headers={"X-Forwarded-For": "10.9.0.1"})
    # n1 has its files: its slot is free (the test's initramfs is 2 x Starlette's 64 KiB chunks: the
    # client has every byte before the server sends the empty last one, and must find the slot free)
    assert len(initrd.content) == manifest.initramfs.size
    assert urls_in(script_from(3), "kernel")
    stats = server.admin("stats")["boot_peers"]
    assert stats["held_back"] == 1 and stats["server_pending"] == 2 and stats["server_streams"] == 0


@pytest.mark.parametrize("server", [{"SWARMBOOT_INITRAMFS_DHCP": "true"}], indirect=True)
def test_with_initramfs_dhcp_the_script_asks_dracut_for_dhcp_instead_of_ipxes_address(
    server: ServerProcess, manifest: Manifest
) -> None:
    script = requests.get(f"{server.url}/boot/ipxe", params={"mac": mac(1)}, timeout=30).text
    (line,) = [x for x in script.splitlines() if x.startswith("kernel ")]
    words = line.split(" || ")[0].split()
    assert "ip=dhcp" in words and "rd.neednet=1" in words, line
    assert not any(w.startswith("swarmboot.ip=") for w in words), line


def test_a_booting_node_serves_its_files_from_the_initramfs_and_its_booted_service_takes_them_over(
    server: ServerProcess, manifest: Manifest, tmp_path: Path
) -> None:
    """`swarmboot-agent boot-files`, as the agent starts it after the plan: it fetches the files
    again, serves them while the node boots, frees a rebooting node's slot once that node has both
    files, stops at SIGTERM (the handover), and its files go to the booted service unfetched."""
    import os
    import signal
    import subprocess
    import sys

    from tests.helpers.server import wait_for

    pair = manifest.kernel.size + manifest.initramfs.size
    token = boot_token(server, mac(1))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    directory = run_dir / "boot-files"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bootagent", "boot-files", "--servers", server.url, "--node", "n1",
         "--dir", str(directory), "--events-url", f"{server.url}/api/v1/nodes/n1/events",
         "--image", "compute", "--version", "1"],
        env={**os.environ, "SWARMBOOT_TOKEN": token}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: server.admin("stats")["boot_peers"]["holders"].get("compute/1") == 1, 60,
                 what="n1's initramfs holds the boot files")
        port = {int(urls_in(script(server, i), "kernel")[0].split(":")[2].split("/")[0]) for i in range(3, 7)}
        assert len(port) == 1, port  # n3-n6: all four slots of n1's
        from_server = f"{server.url}/images/compute/1/{manifest.kernel.name}"
        assert urls_in(script(server, 7), "kernel") == [from_server]
        base = f"http://127.0.0.1:{port.pop()}/boot-files"
        for entry in (manifest.kernel, manifest.initramfs):  # n3's iPXE fetches both: its slot is free
            got = requests.get(f"{base}/{entry.sha256}/{entry.name}", timeout=30).content
            assert hashlib.sha256(got).hexdigest() == entry.sha256
        wait_for(lambda: len(urls_in(script(server, 8), "kernel")) == 2, 30, what="n1's slot freed by n3")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    status = (run_dir / "boot-files.json").read_text()
    assert '"stopped": true' in status and '"served": true' in status, status
    assert server.admin("stats")["boot_peers"]["holders"] == {"compute/1": 0}  # until its service says so
    assert head_bytes(server, manifest) == pair  # the initramfs's fetch, from the server (no holder yet)

    said: list[tuple[str, str, dict[str, Any]]] = []
    stopping = threading.Event()
    thread = threading.Thread(
        target=boot_files.serve_after_boot,
        args=((server.url,), "n1", directory, 0, stopping, lambda *a: said.append(a), lambda _: None),
    )
    thread.start()
    wait_for(lambda: said, 30, what="the booted service serving")
    stopping.set()
    thread.join(10)
    assert said[0][2]["fetched"]["from_server"] == pair and said[-1][0] == "done"
    assert head_bytes(server, manifest) == pair  # taken over, not fetched again
