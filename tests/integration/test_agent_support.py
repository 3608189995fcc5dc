"""Real pieces the agent's integration tests run against: the loopback HTTP fake
(tests/helpers/loopback.py: plan, files with HTTP Range, events, a tracker) and a libtorrent
seeder. The helpers are tested here too."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.loopback import bencode, dead_url, loopback_server


def make_image(path: Path, size: int, seed: int = 1) -> Path:
    """A file of pseudo-random bytes (incompressible, reproducible)."""
    import random

    rng = random.Random(seed)
    with open(path, "wb") as handle:
        left = size
        while left:
            n = min(left, 1 << 20)
            handle.write(rng.randbytes(n))
            left -= n
    return path


@contextmanager
def seeder(image: Path, torrent: bytes) -> Iterator[Any]:
    """A libtorrent session seeding `image` (in its own directory) on loopback."""
    import libtorrent as lt

    from bootagent import lan_tuning

    session = lt.session(lan_tuning.session_settings("seed", "127.0.0.1:0"))
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(torrent))
    params.save_path = str(image.parent)
    params.flags = (
        (params.flags | lt.torrent_flags.seed_mode)
        & ~lt.torrent_flags.auto_managed
        & ~lt.torrent_flags.paused
    )
    handle = session.add_torrent(params)
    try:
        yield handle
    finally:
        session.remove_torrent(handle)
        del session


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# -- tests of the helpers themselves -----------------------------------------------------------


def test_bencode_is_canonical() -> None:
    assert bencode({"b": 1, "a": [b"x", "yz"]}) == b"d1:al1:x2:yze1:bi1ee"


def test_http_server_serves_ranges_and_tracks_peers(tmp_path: Path) -> None:
    data = os.urandom(1000)
    (tmp_path / "f").write_bytes(data)
    with loopback_server() as server:
        server.routes["/f"] = tmp_path / "f"
        request = urllib.request.Request(server.url + "/f", headers={"Range": "bytes=10-19"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 206
            assert response.read() == data[10:20]
        ih = "%01" * 20
        for peer, port in ((b"A" * 20, 1000), (b"B" * 20, 2000)):
            url = f"{server.url}/announce?info_hash={ih}&peer_id={peer.decode()}&port={port}"
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read()
        # B sees A only, in compact form
        assert body.endswith(b"6:" + socket.inet_aton("127.0.0.1") + (1000).to_bytes(2, "big") + b"e")


def test_dead_url_refuses() -> None:
    with pytest.raises(OSError):
        urllib.request.urlopen(dead_url(), timeout=2)
