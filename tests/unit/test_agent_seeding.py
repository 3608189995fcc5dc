"""Seeding after boot, the logic: when the booted seeder stops, what it counts per peer, the
handover file, and what the agent leaves in /run for the booted system (bootagent/seeder.py,
bootagent/seed_handover.py). tests/integration/test_agent_seed_after_boot.py runs the service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_agent_nodefiles import plan

from bootagent.context import AgentConfig, BootContext, Console, Paths
from bootagent.rescue import ConsoleRescue
from bootagent.seed_handover import (
    HANDOVER_FILE,
    UNIT,
    render_unit,
    stage_seed_handover,
    take_cleanup,
    why_not,
)
from bootagent.seeder import BLOCK, Handover, PeerCounts, StopRule
from ground.contract.cmdline import AgentArgs
from swarmboot.cli.node import seeded_column


def test_the_stop_rule_waits_for_idle_time_after_the_last_need() -> None:
    rule = StopRule(max_seconds=1000, idle_seconds=60, started=100.0)
    assert rule.observe(150.0, incomplete=2, downloading_peers=0) is None
    assert rule.observe(205.0, incomplete=0, downloading_peers=1) is None  # a peer still downloads
    assert rule.observe(264.0, incomplete=0, downloading_peers=0) is None  # 59 s since the need
    why = rule.observe(265.0, incomplete=0, downloading_peers=0)
    assert why is not None and "no node needed the image for 60 s" in why


def test_an_unknown_tracker_count_is_no_need_and_the_maximum_always_ends_it() -> None:
    rule = StopRule(max_seconds=1000, idle_seconds=30, started=0.0)
    assert rule.observe(29.0, incomplete=-1, downloading_peers=0) is None
    assert rule.observe(30.0, incomplete=-1, downloading_peers=0) is not None  # the server is gone
    busy = StopRule(max_seconds=100, idle_seconds=30, started=0.0)
    assert busy.observe(99.0, incomplete=5, downloading_peers=3) is None
    why = busy.observe(100.0, incomplete=5, downloading_peers=3)
    assert why is not None and "longest time allowed (100 s)" in why
    forever_idle = StopRule(max_seconds=100, idle_seconds=0, started=0.0)  # 0: no idle rule
    assert forever_idle.observe(99.0, incomplete=0, downloading_peers=0) is None


def test_peer_counts_add_blocks_per_address_and_the_last_block_is_short() -> None:
    piece = 4 * BLOCK
    total = 2 * piece + BLOCK + 100  # the last piece: one whole block and 100 bytes
    counts = PeerCounts(piece_size=piece, total_size=total)
    for block in range(4):
        counts.block("10.0.0.5", 0, block)
    counts.block("10.0.0.7", 2, 0)
    counts.block("10.0.0.7", 2, 1)  # the last block of the file
    counts.block("10.0.0.5", 1, 0)
    assert counts.by_address() == {"10.0.0.5": 5 * BLOCK, "10.0.0.7": BLOCK + 100}
    assert list(counts.by_address()) == ["10.0.0.5", "10.0.0.7"]  # the biggest first


def test_the_handover_file_round_trips_and_ignores_keys_it_does_not_know(tmp_path: Path) -> None:
    h = Handover(
        torrent="/run/swarmboot/image.torrent", dir="/run/swarmboot/image", sha256="a" * 64,
        listen="0.0.0.0:6881", status="/run/swarmboot/seed-status.json", max_seconds=900.0,
        idle_seconds=45.0, rate_limit=125_000_000, events_urls=("http://s/api/v1/nodes/n1/events",),
        token="t", image="c", version=2, remove_after=("/run/swarmboot/image/image.tar.zst",),
    )
    path = tmp_path / "h.json"
    path.write_text(h.to_json())
    assert Handover.read(path) == h
    data = json.loads(path.read_text())
    data["from_a_newer_agent"] = 1
    path.write_text(json.dumps(data))
    assert Handover.read(path) == h


def test_the_archive_moves_from_the_dracut_cleanup_to_the_seeding_service(tmp_path: Path) -> None:
    image = tmp_path / "image/image.tar.zst"
    (tmp_path / "cleanup-files").write_text(f"{image}\n/run/other\n")
    assert take_cleanup(tmp_path, image) == (str(image),)
    assert (tmp_path / "cleanup-files").read_text() == "/run/other\n"
    assert take_cleanup(tmp_path / "nowhere", image) == ()


def test_why_a_booted_system_would_not_seed(tmp_path: Path) -> None:
    sysroot = tmp_path / "sysroot"
    (sysroot / "usr/lib/systemd").mkdir(parents=True)
    image = tmp_path / "image.squashfs"
    image.write_bytes(b"x")
    p = plan()
    assert p.torrent.seed_after_boot_seconds > 0
    assert why_not(p, image, sysroot, seed_after=True) == "the image has no systemd to run the seeding unit"
    (sysroot / "usr/lib/systemd/systemd").write_bytes(b"")
    assert why_not(p, image, sysroot, seed_after=True) == ""
    assert "off" in why_not(p, image, sysroot, seed_after=False)
    assert "NFS" in why_not(p, None, sysroot, seed_after=True)
    assert "is gone" in why_not(p, tmp_path / "freed", sysroot, seed_after=True)
    off = plan(torrent={"seed_after_boot_seconds": 0})
    assert "seed_after_boot_seconds is 0" in why_not(off, image, sysroot, seed_after=True)


def test_the_unit_runs_the_carried_agent_at_low_priority_and_unmounts_it_after() -> None:
    unit = render_unit(Path("/run/swarmboot"))
    handover = "/run/swarmboot/seed-handover.json"
    assert f"ExecStart=/run/swarmboot/agent/swarmboot-agent seed --handover {handover}" in unit
    assert "ExecStopPost=-/bin/umount -l /run/swarmboot/agent" in unit
    assert "Nice=19" in unit and "IOSchedulingClass=idle" in unit and "CPUSchedulingPolicy=batch" in unit
    assert "Wants=network-online.target" in unit and f"ConditionPathExists={handover}" in unit


def test_the_handover_leaves_bundle_settings_and_a_runtime_unit_in_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    paths = Paths(sysroot=tmp_path / "sysroot", console=tmp_path / "console", run_dir=run / "swarmboot")
    (paths.sysroot / "usr/lib/systemd").mkdir(parents=True)
    (paths.sysroot / "usr/lib/systemd/systemd").write_bytes(b"")
    image = paths.image_dir / "image.tar.zst"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"archive")
    (paths.run_dir / "cleanup-files").write_text(f"{image}\n")
    bundle = tmp_path / "bundle"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "swarmboot-agent").write_bytes(b"#!")
    ctx = BootContext(paths=paths, console=Console(paths), rescue=ConsoleRescue(), config=AgentConfig())
    torrent = {"seed_after_boot_seconds": 900, "seed_idle_seconds": 45, "seed_rate_limit": 1 << 20}
    p: Any = plan(torrent=torrent)
    ctx.plan, ctx.image_file = p, image
    ctx.args = AgentArgs(servers=("http://10.0.0.1:8080",), token="tok")
    done = stage_seed_handover(ctx, bundle=bundle, mount_bundle=False)
    assert done == {"after_boot": True, "max_seconds": 900, "idle_seconds": 45, "rate_limit": 1 << 20}
    assert (paths.run_dir / "agent/swarmboot-agent").read_bytes() == b"#!"
    handover_file = paths.run_dir / HANDOVER_FILE
    assert handover_file.stat().st_mode & 0o777 == 0o600  # it carries the boot's token
    h = Handover.read(handover_file)
    assert (h.max_seconds, h.idle_seconds, h.rate_limit, h.token) == (900, 45, 1 << 20, "tok")
    assert h.dir == str(image.parent) and h.remove_after == (str(image),) and h.image == "c"
    assert h.events_urls and h.events_urls[0].endswith("/api/v1/nodes/n1/events")
    assert (paths.run_dir / "cleanup-files").read_text() == ""  # the service frees it, not dracut
    unit = run / "systemd/system" / UNIT
    assert unit.is_file()
    link = run / "systemd/system/multi-user.target.wants" / UNIT
    assert link.is_symlink() and link.resolve() == unit.resolve()
    assert not (paths.sysroot / "etc/systemd").exists()  # nothing in the image, nothing on a disk


def test_node_status_shows_what_a_booted_node_seeded() -> None:
    assert seeded_column({}) == "-"
    assert seeded_column({"seeding": {"after_boot": True}}) == "-"
    running = {"seeding": {"uploaded": 300 << 20, "served": {"10.0.0.5": 1, "10.0.0.6": 2}, "stopped": False}}
    assert seeded_column(running) == "300 MiB to 2 (seeding)"
    done = {"seeding": {"uploaded": 5 << 20, "served": {"10.0.0.5": 1}, "stopped": True}}
    assert seeded_column(done) == "5 MiB to 1"
    again = {"seeding": {"uploaded": 7 << 20, "served": {"10.0.0.7": 1}, "stopped": False, "round": 2}}
    assert seeded_column(again) == "7 MiB to 1 (seeding, round 2)"  # seeding again on demand
    third = {"seeding": {**again["seeding"], "stopped": True, "round": 3}}
    assert seeded_column(third) == "7 MiB to 1 (round 3)"


def test_only_interested_peers_that_are_not_seeds_count_as_downloading() -> None:
    from types import SimpleNamespace

    from bootagent.seeder import _downloading

    seed, interested = 1024, 4
    peers = [SimpleNamespace(flags=interested), SimpleNamespace(flags=seed | interested),
             SimpleNamespace(flags=0), SimpleNamespace(flags=64)]  # 64: still in its handshake
    assert _downloading(peers, seed, interested) == 1


def test_the_rule_says_what_kept_it_seeding() -> None:
    rule = StopRule(max_seconds=1000, idle_seconds=60, started=0.0)
    rule.observe(10.0, incomplete=3, downloading_peers=0)
    assert rule.needed_by == "the tracker: 3 incomplete" and rule.needed_at == 10.0
    rule.observe(20.0, incomplete=0, downloading_peers=2)
    assert rule.needed_by == "2 peer(s) downloading from it"
    rule.observe(21.0, incomplete=0, downloading_peers=0)
    rule.observe(22.0, incomplete=0, downloading_peers=0)
    assert rule.changes == [(10.0, 3, 0), (20.0, 0, 2), (21.0, 0, 0)]  # changes only
