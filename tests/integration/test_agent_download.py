"""The download module against real libtorrent peers on loopback: a seeder, a BEP 3/23 tracker
and an HTTP web seed (BEP 19), with the whole file's sha256 checked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_agent_support import make_image, seeder

from bootagent.download import ImageDownload, sha256_file
from bootagent.errors import DownloadStalled, ImageHashMismatch
from builder.torrent import make_torrent
from server.catalog import for_serving
from tests.helpers.loopback import loopback_server

MiB = 1 << 20


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, str]:
    src = tmp_path_factory.mktemp("seed")
    path = make_image(src / "image.squashfs", 12 * MiB + 12345)
    info = make_torrent(path, piece_size=256 * 1024)
    return path, info.data, sha256_file(path)


def test_fetches_from_a_peer_through_the_tracker(image: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, torrent, sha = image
    with loopback_server() as server:
        served = for_serving(torrent, server.url + "/announce", server.url + "/nowhere/image.squashfs")
        with seeder(path, served):
            seen: list[float] = []
            with ImageDownload(
                served, tmp_path, sha256=sha, size=path.stat().st_size, listen_interfaces="127.0.0.1:0"
            ) as dl:
                dl.start()
                got = dl.wait(on_progress=lambda s: seen.append(s.progress), deadline=60, stall=20)
                status = dl.status()
    assert got == tmp_path / "image.squashfs"
    assert hashlib.sha256(got.read_bytes()).hexdigest() == sha
    assert status.from_peers > 0 and status.from_web_seeds == 0
    assert status.hashed == path.stat().st_size  # the sha256 was computed while pieces arrived
    assert not dl.rehashed
    assert seen and seen[-1] == 1.0
    assert any(r.startswith("/announce?") for r in server.requests)


def test_fetches_from_the_web_seed_alone(image: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, torrent, sha = image
    with loopback_server() as server:
        server.routes["/images/x/1/image.squashfs"] = path
        served = for_serving(torrent, server.url + "/announce", server.url + "/images/x/1/image.squashfs")
        with ImageDownload(served, tmp_path, sha256=sha, listen_interfaces="127.0.0.1:0") as dl:
            dl.start()
            got = dl.wait(deadline=60, stall=20)
            status = dl.status()
        assert server.served_bytes >= path.stat().st_size
    assert sha256_file(got) == sha
    # The split peers / web seed is sampled (approximate); the total is exact.
    assert status.from_peers + status.from_web_seeds == status.total


def test_a_wrong_expected_hash_is_rejected(image: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, torrent, _ = image
    wrong = hashlib.sha256(b"not the image").hexdigest()
    with loopback_server() as server:
        served = for_serving(torrent, server.url + "/announce", server.url + "/nowhere")
        with (
            seeder(path, served),
            ImageDownload(served, tmp_path, sha256=wrong, listen_interfaces="127.0.0.1:0") as dl,
        ):
            dl.start()
            with pytest.raises(ImageHashMismatch, match=wrong):
                dl.wait(deadline=60, stall=20)
            assert not dl.verified


def test_a_verified_copy_is_reused_without_transfer(image: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, torrent, sha = image
    (tmp_path / "image.squashfs").write_bytes(path.read_bytes())
    with loopback_server() as server:
        served = for_serving(torrent, server.url + "/announce", server.url + "/nowhere")
        with ImageDownload(served, tmp_path, sha256=sha, listen_interfaces="127.0.0.1:0") as dl:
            dl.start()
            assert dl.reused
            assert dl.wait(deadline=10, stall=5) == tmp_path / "image.squashfs"
            assert dl.status().from_peers == 0


def test_a_damaged_copy_is_not_reused(image: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, torrent, sha = image
    damaged = bytearray(path.read_bytes())
    damaged[5 * MiB] ^= 0xFF
    (tmp_path / "image.squashfs").write_bytes(bytes(damaged))
    with loopback_server() as server:
        served = for_serving(torrent, server.url + "/announce", server.url + "/nowhere")
        with (
            seeder(path, served),
            ImageDownload(served, tmp_path, sha256=sha, listen_interfaces="127.0.0.1:0") as dl,
        ):
            dl.start()
            assert not dl.reused
            got = dl.wait(deadline=60, stall=20)
    assert sha256_file(got) == sha


def test_no_source_stalls_within_the_bound(image: tuple[Path, bytes, str], tmp_path: Path) -> None:
    _, torrent, sha = image
    with loopback_server() as server:
        served = for_serving(torrent, server.url + "/announce", server.url + "/missing")
        with ImageDownload(served, tmp_path, sha256=sha, listen_interfaces="127.0.0.1:0") as dl:
            dl.start()
            with pytest.raises(DownloadStalled, match="nothing arrived for 2 s"):
                dl.wait(deadline=30, stall=2)
