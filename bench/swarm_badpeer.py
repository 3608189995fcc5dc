"""A peer that sends damaged pieces (the swarm benchmark's corrupt-peer fault): libtorrent seeding a
damaged copy of the image in seed mode with its own hash checks off, so it serves what is on its
disk as it is. Runs in a namespace of its own until SIGTERM (bounded: --seconds).

    ip netns exec NS python bench/swarm_badpeer.py --torrent T --dir D --listen IP:PORT --ready FILE
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bootagent.lan_tuning import session_settings  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--torrent", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--listen", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--seconds", type=float, default=900.0)
    args = p.parse_args()
    import libtorrent as lt

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    session = lt.session(session_settings("seed", args.listen, disable_hash_checks=True))
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(Path(args.torrent).read_bytes()))
    params.save_path = args.dir
    flags = lt.torrent_flags
    params.flags = (params.flags | flags.seed_mode) & ~flags.auto_managed & ~flags.paused
    handle = session.add_torrent(params)
    Path(args.ready).write_text("ready\n")
    end = time.monotonic() + args.seconds
    while not stop and time.monotonic() < end:
        session.wait_for_alert(500)
        session.pop_alerts()
    Path(args.ready).write_text(f"uploaded {handle.status().total_payload_upload}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
