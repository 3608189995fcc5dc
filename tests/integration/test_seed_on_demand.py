"""Seeding again on demand (server/reseed.py, bootagent/seeder.py `seed_on_demand`) against a real
`swarmboot serve` on loopback without its own seeder: a booted node's seeding service stops by its
idle rule, keeps its image and asks the server; when the next node downloads that version, the
server tells it to seed again, and the next node gets every byte from it (no web seed answers)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import libtorrent as lt
import pytest
import requests

from bootagent.download import ImageDownload, sha256_file
from bootagent.seeder import Handover
from ground.config import Settings
from ground.store import Manifest
from lab.packed import make_version
from server.inventory import crud
from server.inventory.db import Database
from tests.helpers.server import ServerProcess, boot_token, running_server, wait_for

MiB = 1 << 20
IDLE = 2.0


@pytest.fixture
def manifest(settings: Settings) -> Manifest:
    return make_version(settings.images_dir, "compute", 1, size=3 * MiB, piece_size=256 * 1024)


@pytest.fixture
def server(settings: Settings, manifest: Manifest, swarmboot_home: Path) -> Any:
    db = Database.from_settings(settings, pool_size=2)
    crud.add(db, "group", "compute", {"image": "compute", "root": {"mode": "overlay"}})
    crud.add_nodes(db, ["b1"], {"group": "compute", "macs": ["52:54:00:00:02:01"]})
    db.close()
    with running_server(swarmboot_home, "--no-seeder") as srv:
        yield srv


def served_torrent(srv: ServerProcess, manifest: Manifest) -> bytes:
    """The server's .torrent with its web seed pointed nowhere: the swarm is all there is."""
    torrent = requests.get(f"{srv.url}/images/compute/1/{manifest.torrent.name}", timeout=10).content
    meta = lt.bdecode(torrent)
    meta[b"url-list"] = [f"{srv.url}/nowhere/image.squashfs".encode()]
    return bytes(lt.bencode(meta))


def test_a_booted_node_seeds_again_when_the_next_node_downloads_its_version(
    server: ServerProcess, manifest: Manifest, settings: Settings, tmp_path: Path
) -> None:
    held = tmp_path / "booted"  # the booted node's verified copy (an overlay root's squashfs)
    held.mkdir()
    image = held / manifest.image_file.name
    image.write_bytes((settings.images_dir / "compute/versions/1" / manifest.image_file.name).read_bytes())
    torrent = served_torrent(server, manifest)
    (tmp_path / "image.torrent").write_bytes(torrent)
    status = tmp_path / "seed-status.json"
    handover = Handover(
        torrent=str(tmp_path / "image.torrent"), dir=str(held), sha256=manifest.image_file.sha256,
        listen="127.0.0.1:0", status=str(status), max_seconds=120, idle_seconds=IDLE,
        events_urls=(server.url + "/api/v1/nodes/b1/events",), token=boot_token(server, "52:54:00:00:02:01"),
        image="compute", version=1, node="b1", servers=(server.url,), file=str(image),
    )
    (tmp_path / "seed-handover.json").write_text(handover.to_json())
    said = tmp_path / "agent.log"  # the service's console lines (bootagent/context.py's Console)
    log_path = tmp_path / "seed.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child's output
    proc = subprocess.Popen(
        [sys.executable, "-m", "bootagent", "seed", "--handover", str(tmp_path / "seed-handover.json")],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        # nobody needs it: the first seeding stops by its idle rule, and the service waits
        wait_for(lambda: said.exists() and "again when nodes boot" in said.read_text(), timeout=60,
                 what="the service's wait")
        assert proc.poll() is None, log_path.read_text()
        first = server.admin("stats")["tracker"]["swarms"].get(manifest.info_hash, {})
        assert first.get("seeders", 0) == 0, first  # it left the swarm
        # the next node downloads: the service is told to seed again at its next ask
        started = time.monotonic()
        with ImageDownload(torrent, tmp_path / "next", sha256=manifest.image_file.sha256,
                           listen_interfaces="127.0.0.1:0") as dl:
            dl.start()
            got = dl.wait(deadline=90, stall=60)
            st = dl.status()
        took = time.monotonic() - started
        assert sha256_file(got) == manifest.image_file.sha256
        assert st.from_peers == st.total == manifest.image_file.size, (st, said.read_text())
        assert took < 60, f"{took:.1f} s: the service asks every ~10 s"
        stats = server.admin("stats")
        assert stats["reseeding"]["told"] >= 1, stats["reseeding"]
        # then it stops again by the same rule, and goes on waiting
        wait_for(lambda: said.read_text().count("no node needed the image") >= 2, timeout=60,
                 what="the second round's end")
        assert proc.poll() is None, log_path.read_text()
        seeding = json.loads(status.read_text())
        assert seeding["stopped"] and seeding["round"] == 2, seeding
        assert seeding["served"].get("127.0.0.1", 0) >= manifest.image_file.size, seeding  # its counters
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            log.close()
    assert rc == 0, log_path.read_text()
    lines = said.read_text()
    assert f"seeding {image.name} again (round 2): 1 node(s) downloading this version" in lines, lines
    assert image.exists(), "the seeded image must stay (an overlay root reads it)"
