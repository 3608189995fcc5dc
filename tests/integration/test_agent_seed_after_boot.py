"""The booted system's seeding service (`swarmboot-agent seed --handover`, bootagent/seeder.py) as
the unit runs it: a real process seeding a real file to a real libtorrent download through the
loopback tracker under its upload cap, reporting `seed start` and `seed done` to the loopback
events URL, and stopping by its idle rule once the tracker and its peers say nobody needs the
image any more."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from test_agent_support import make_image, wait_for

from bootagent.download import ImageDownload, sha256_file
from bootagent.seeder import Handover
from builder.torrent import make_torrent
from server.catalog import for_serving
from tests.helpers.loopback import loopback_server

MiB = 1 << 20
IDLE = 3.0
CAP = 4 * MiB  # the handover's upload cap, bytes/s


def test_the_booted_seeder_serves_the_next_node_then_stops_by_its_idle_rule(tmp_path: Path) -> None:
    held = tmp_path / "booted/image"  # the booted node's verified copy
    held.mkdir(parents=True)
    path = make_image(held / "image.squashfs", 6 * MiB + 4321)
    sha = sha256_file(path)
    info = make_torrent(path, piece_size=256 * 1024)
    freed = tmp_path / "booted/archive.tar.zst"  # what a tmpfs root frees when seeding ends
    freed.write_bytes(b"x")
    with loopback_server() as server:
        served = for_serving(info.data, server.url + "/announce", server.url + "/nowhere/image.squashfs")
        (tmp_path / "image.torrent").write_bytes(served)
        status = tmp_path / "booted/seed-status.json"
        handover = Handover(
            torrent=str(tmp_path / "image.torrent"), dir=str(held), sha256=sha, listen="127.0.0.1:0",
            status=str(status), max_seconds=120, idle_seconds=IDLE, rate_limit=CAP,
            events_urls=(server.url + "/api/v1/nodes/b1/events",), token="tok-b1", image="compute",
            version=3, remove_after=(str(freed),),
        )
        (tmp_path / "seed-handover.json").write_text(handover.to_json())
        log = open(tmp_path / "seed.log", "wb")  # noqa: SIM115 - the child's output
        proc = subprocess.Popen(
            [sys.executable, "-m", "bootagent", "seed", "--handover", str(tmp_path / "seed-handover.json")],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            assert wait_for(status.exists, timeout=30), (tmp_path / "seed.log").read_text()
            assert wait_for(lambda: any(r.startswith("/announce?") for r in server.requests), timeout=30)
            # the next node boots: everything comes from the booted node (no web seed answers)
            with ImageDownload(served, tmp_path / "next", sha256=sha, listen_interfaces="127.0.0.1:0") as dl:
                dl.start()
                got = dl.wait(deadline=60, stall=30)
                st = dl.status()
            assert sha256_file(got) == sha and st.from_peers == st.total
            # the cap holds (loosely: libtorrent's quota lets a burst through at the start)
            assert st.elapsed >= st.total / (2 * CAP), f"{st.total} bytes in {st.elapsed:.2f} s"
            left_at = time.monotonic()
            rc = proc.wait(timeout=60)
            took = time.monotonic() - left_at
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            log.close()
    output = (tmp_path / "seed.log").read_text()
    assert rc == 0, output
    # it stopped once idle (its last look at the swarm is at most one status period old), not at max
    assert took < 45, f"stopped {took:.1f} s after the last node left"
    seeds = [e for e in server.events if e["stage"] == "seed"]
    assert [e["status"] for e in seeds] == ["start", "done"], server.events
    assert all(e["path"] == "/api/v1/nodes/b1/events" for e in seeds)
    done = seeds[-1]
    assert done["image"] == "compute" and done["version"] == 3
    seeding = done["details"]["seeding"]
    assert seeding["stopped"] and "no node needed the image" in seeding["reason"], seeding
    assert seeding["served"].get("127.0.0.1", 0) >= path.stat().st_size, seeding
    assert seeding["uploaded"] >= path.stat().st_size
    assert "seeded 6 MiB to 1 peer(s)" in done["message"], done["message"]
    assert not freed.exists(), "the archive named in remove_after was not deleted"
    assert path.exists(), "the seeded image itself must stay (an overlay root reads it)"
