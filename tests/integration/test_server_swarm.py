"""8 libtorrent clients (the agent's "node" settings) and one aria2c (an independent client) fetch
a real packed image through our tracker and seeder; the server sends less than they receive."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import libtorrent as lt
import pytest
import requests

from bootagent.lan_tuning import session_settings
from ground import run as runmod
from ground.config import Settings
from ground.store import Manifest
from lab.packed import make_version
from tests.helpers.server import ServerProcess, running_server

CLIENTS = 8
SIZE = 48 * 2**20
TIMEOUT = 240
# The head node's uplink is what a swarm relieves. On loopback nothing is a bottleneck, so the
# seeder would simply send every client everything; the test gives the seeder a 16 MiB/s uplink
# (the seeder_upload_rate setting; production default: unlimited) so sharing pays off, and
# measures how much the server sent.
SEED_RATE = 16 * 2**20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def without_web_seed(torrent: bytes) -> bytes:
    """The served torrent minus its BEP 19 web seed: data can only come from the swarm.

    On loopback the web seed is as fast as the seeder and libtorrent fetches 50-80 % of the image
    from it, which would hide whether peers share; the web seed has its own test below.
    """
    meta = lt.bdecode(torrent)
    assert meta[b"url-list"] and meta[b"announce"]
    del meta[b"url-list"]
    return bytes(lt.bencode(meta))


def start_client(torrent: bytes, dest: Path) -> tuple[Any, Any]:
    session = lt.session(session_settings("node", "127.0.0.1:0"))
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(torrent))
    params.save_path = str(dest)
    return session, session.add_torrent(params)


def aria2c(torrent_file: Path, dest: Path, log: Path) -> runmod.Child:
    return runmod.spawn(
        [
            "aria2c",
            f"--dir={dest}",
            "--seed-time=0",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            f"--listen-port={free_port()}",
            "--summary-interval=0",
            "--console-log-level=notice",
            "--file-allocation=none",
            "--bt-stop-timeout=120",
            "--check-certificate=false",
            str(torrent_file),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def manifest(settings: Settings) -> Manifest:
    return make_version(settings.images_dir, "compute", 1, size=SIZE, piece_size=256 * 1024)


@pytest.mark.slow
def test_swarm_download_through_our_tracker_and_seeder(
    manifest: Manifest, swarmboot_home: Path, tmp_path: Path
) -> None:
    with running_server(swarmboot_home, SWARMBOOT_SEEDER_UPLOAD_RATE=str(SEED_RATE)) as server:
        seeder = server.admin("stats")["seeder"]["torrents"]
        assert [t["info_hash"] for t in seeder] == [manifest.info_hash]
        served = requests.get(f"{server.url}/images/compute/1/image.torrent", timeout=30).content
        torrent = without_web_seed(served)
        torrent_file = tmp_path / "image.torrent"
        torrent_file.write_bytes(torrent)
        clients = [start_client(torrent, tmp_path / f"client{i}") for i in range(CLIENTS)]
        aria_dir = tmp_path / "aria2"
        aria = aria2c(torrent_file, aria_dir, tmp_path / "aria2c.log")
        try:
            _wait_all(clients, aria, tmp_path / "aria2c.log")
            stats = server.admin("stats")
            received = (
                sum(int(h.status().total_payload_download) for _s, h in clients) + manifest.image_file.size
            )
            uploaded_by_clients = sum(int(h.status().total_payload_upload) for _s, h in clients)
        finally:
            runmod.stop(aria)
            for session, handle in clients:
                session.remove_torrent(handle)
        _check(
            server=server,
            stats=stats,
            received=received,
            client_uploads=uploaded_by_clients,
            manifest=manifest,
            tmp_path=tmp_path,
            aria_dir=aria_dir,
        )


def _wait_all(clients: list[tuple[Any, Any]], aria: runmod.Child, aria_log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done = [h.status().is_seeding for _s, h in clients]
        if all(done) and aria.poll() is not None:
            assert aria.returncode == 0, aria_log.read_text(errors="replace")
            return
        time.sleep(0.5)
    states = [(str(h.status().state), round(h.status().progress, 2)) for _s, h in clients]
    raise AssertionError(
        f"swarm not done in {TIMEOUT} s: {states}, aria2c rc={aria.poll()}\n"
        + aria_log.read_text(errors="replace")[-3000:]
    )


def _check(
    *,
    server: ServerProcess,
    stats: dict[str, Any],
    received: int,
    client_uploads: int,
    manifest: Manifest,
    tmp_path: Path,
    aria_dir: Path,
) -> None:
    for i in range(CLIENTS):
        assert sha256(tmp_path / f"client{i}" / "image.squashfs") == manifest.image_file.sha256
    assert sha256(aria_dir / "image.squashfs") == manifest.image_file.sha256
    (seed,) = stats["seeder"]["torrents"]
    http = stats["http_bytes"].get("compute/1/image.squashfs", 0)
    served = seed["uploaded"] + http
    assert http == 0
    swarm = stats["tracker"]["swarms"][manifest.info_hash]
    print(
        f"\nswarm: {CLIENTS} libtorrent + 1 aria2c received {received / 2**20:.1f} MiB; server sent "
        f"{served / 2**20:.1f} MiB (seeder {seed['uploaded'] / 2**20:.1f} + web seed {http / 2**20:.1f}); "
        f"clients uploaded {client_uploads / 2**20:.1f} MiB; tracker saw {len(swarm['peers'])} peers, "
        f"{swarm['completed']} completed"
    )
    assert received >= (CLIENTS + 1) * manifest.image_file.size
    assert served < received, "the clients did not share: the server sent everything"
    assert served < 0.5 * received, "the clients hardly shared"
    assert client_uploads > 0
    # every client, aria2c included, found the swarm through our tracker
    assert swarm["completed"] >= CLIENTS and len(swarm["peers"]) >= CLIENTS + 1
    assert stats["tracker"]["failures"] == 0


def test_the_web_seed_alone_serves_a_client(manifest: Manifest, swarmboot_home: Path, tmp_path: Path) -> None:
    """Without the seeder (serve --no-seeder), a client completes from the BEP 19 web seed alone."""
    with running_server(swarmboot_home, "--no-seeder") as server:
        torrent = requests.get(f"{server.url}/images/compute/1/image.torrent", timeout=30).content
        session, handle = start_client(torrent, tmp_path / "client")
        try:
            deadline = time.monotonic() + TIMEOUT
            while not handle.status().is_seeding and time.monotonic() < deadline:
                time.sleep(0.3)
            assert handle.status().is_seeding, str(handle.status().state)
        finally:
            session.remove_torrent(handle)
        stats = server.admin("stats")
    assert stats["seeder"] == {}
    assert sha256(tmp_path / "client" / "image.squashfs") == manifest.image_file.sha256
    assert stats["http_bytes"]["compute/1/image.squashfs"] >= manifest.image_file.size
