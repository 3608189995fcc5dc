"""main() end to end on the host: a real HTTP server on loopback serves the plan, the torrent (with
tracker and web seed), the image and takes the events; a libtorrent seeder seeds; the agent finds
the host's NIC, runs the scripts, downloads, mounts the root at a temporary sysroot, writes the
node files and hands over. Everything real, only not inside an initramfs."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_agent_support import make_image, seeder, wait_for

from bootagent.context import AgentConfig, BootContext, Paths
from bootagent.download import sha256_file
from bootagent.main import boot, make_context
from bootagent.network import default_route, list_nics
from bootagent.rescue import Rescue
from bootagent.seeder import signal_seeder
from builder.torrent import make_torrent
from ground.run import output, run
from server.catalog import for_serving
from tests.helpers.loopback import LoopbackServer, dead_url, loopback_server

pytestmark = pytest.mark.root


class RecordingRescue(Rescue):
    def __init__(self) -> None:
        self.stops: list[tuple[str, str]] = []

    def stop(self, ctx: BootContext, kind: str, message: str) -> None:
        self.stops.append((kind, message))


def host_mac() -> str:
    dev, _ = default_route()
    macs = [n.mac for n in list_nics() if n.name == dev]
    if not macs:
        pytest.skip("the host has no NIC on a default route")
    return macs[0]


def image_tree(root: Path) -> Path:
    for d in ("sbin", "etc", "usr/lib/systemd", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "sbin/init").write_text("#!/bin/sh\n")
    os.chmod(root / "sbin/init", 0o755)
    (root / "usr/lib/systemd/systemd-networkd").write_text("")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nsvc:x:500:500::/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nsvc:x:500:\n")
    make_image(root / "root/payload.bin", 6 << 20)  # something worth transferring
    return root


@pytest.fixture(autouse=True)
def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices, mounts)")


def plan_for(server: LoopbackServer, fmt: str, image: Path, mode: str, **extra: Any) -> dict[str, Any]:
    name = image.name
    info = make_torrent(image, piece_size=256 * 1024)
    server.routes[f"/images/c/1/{name}"] = image
    server.routes["/images/c/1/image.torrent"] = for_serving(
        info.data, server.url + "/announce", f"{server.url}/images/c/1/{name}"
    )
    plan = {
        "version": 1,
        "node": {"name": "n1", "hostname": "node1", "group": "compute", "domain": "lab"},
        "image": {
            "name": "c",
            "version": 1,
            "format": fmt,
            "size": image.stat().st_size,
            "sha256": sha256_file(image),
            "torrent_url": f"{server.url}/images/c/1/image.torrent",
            "http_url": f"{server.url}/images/c/1/{name}",
            "info_hash": info.info_hash,
        },
        "reporting": {"events_url": f"{server.url}/api/v1/nodes/n1/events", "heartbeat_seconds": 2},
        "root": {"mode": mode, "tmpfs_size": "64m"},
        "scripts": {
            "pre": 'echo "pre on $SWARMBOOT_NODE ($SWARMBOOT_ADDRESS)" > "$SWARMBOOT_RUN_DIR/pre-ran"\n',
            "post": 'echo "$SWARMBOOT_IMAGE v$SWARMBOOT_IMAGE_VERSION" > "$SYSROOT/etc/post-ran"\n',
        },
        "files": [
            {"path": "/etc/app.conf", "content": "id=n1\n", "mode": 0o640, "owner": "svc", "group": "svc"}
        ],
        "ssh_authorized_keys": ["ssh-ed25519 AAAAtest admin@head"],
        **extra,
    }
    server.routes["/api/v1/plan"] = json.dumps(plan).encode()
    return plan


@pytest.fixture
def booted(tmp_path: Path) -> Iterator[tuple[Path, LoopbackServer]]:
    """Yield (tmp dir, server); afterwards unmount what the boot mounted and stop its seeder."""
    contexts: list[BootContext] = []
    with loopback_server() as server:
        server.contexts = contexts  # type: ignore[attr-defined]
        yield tmp_path, server
    for ctx in contexts:
        if ctx.seeder_pid:
            try:
                os.kill(ctx.seeder_pid, signal.SIGTERM)
                wait_for(lambda pid=ctx.seeder_pid: not Path(f"/proc/{pid}").exists() or _reap(pid), 10)
            except ProcessLookupError:
                pass
        if ctx.mounts is not None:
            assert ctx.mounts.unwind() == []


def _reap(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def agent(tmp: Path, server: LoopbackServer, cmdline: str) -> tuple[BootContext, RecordingRescue]:
    (tmp / "cmdline").write_text(cmdline)
    paths = Paths(
        cmdline=tmp / "cmdline", sysroot=tmp / "sysroot", console=tmp / "console", run_dir=tmp / "run",
        hostname=tmp / "hostname", nfs_client_identifier=tmp / "nfs-client-identifier",
    )
    paths.hostname.write_text("(none)\n")  # the kernel's, in an initramfs without DHCP
    rescue = RecordingRescue()
    ctx = make_context(paths, rescue, AgentConfig(listen_interfaces="127.0.0.1:0", network_timeout=10))
    ctx.console.echo = io.StringIO()
    server.contexts.append(ctx)  # type: ignore[attr-defined]
    return ctx, rescue


def test_overlay_boot_end_to_end(booted: tuple[Path, LoopbackServer]) -> None:
    tmp, server = booted
    image = tmp / "src/image.squashfs"
    image.parent.mkdir()
    run(["mksquashfs", str(image_tree(tmp / "tree")), str(image), "-comp", "zstd", "-noappend", "-quiet"],
        timeout=600)
    plan = plan_for(server, "squashfs", image, "overlay")
    mac = host_mac()
    ctx, rescue = agent(tmp, server, f"root=swarmboot swarmboot.server={server.url} swarmboot.mac={mac}")
    with seeder(image, server.routes["/images/c/1/image.torrent"]):  # type: ignore[arg-type]
        assert boot(ctx) == 0, ctx.paths.log_file.read_text()
    assert rescue.stops == []
    sysroot = tmp / "sysroot"
    # the root: the overlay over the squashfs on a loop device, the image file kept for seeding
    assert output(["findmnt", "-n", "-o", "FSTYPE", str(sysroot)], timeout=60) == "overlay"
    assert (sysroot / "root/payload.bin").read_bytes() == (tmp / "tree/root/payload.bin").read_bytes()
    assert sha256_file(tmp / "run/image/image.squashfs") == plan["image"]["sha256"]
    # the plan fetched by MAC, the scripts with their environment, the node files
    assert any(r.startswith(f"/api/v1/plan?mac={mac.replace(':', '%3A')}") for r in server.requests)
    assert (tmp / "run/pre-ran").read_text().startswith("pre on n1 (")
    assert (sysroot / "etc/post-ran").read_text() == "c v1\n"
    assert (sysroot / "etc/hostname").read_text() == "node1\n"
    assert (tmp / "hostname").read_text() == "node1\n"  # the kernel's, before the root (NFSv4 names by it)
    conf = (sysroot / "etc/app.conf").stat()
    assert (conf.st_uid, conf.st_gid, conf.st_mode & 0o777) == (500, 500, 0o640)
    assert f"MACAddress={mac}" in next((sysroot / "etc/systemd/network").glob("*.network")).read_text()
    assert (sysroot / "etc/systemd/system/multi-user.target.wants/swarmboot-booted.service").is_symlink()
    # every stage reported, in order, with its duration; the image in every event after the plan
    done = [e for e in server.events if e["status"] == "done"]
    assert [e["stage"] for e in done] == [
        "cmdline",
        "network",
        "plan",
        "pre",
        "download",
        "root",
        "files",
        "post",
        "handover",
    ]
    assert all(e["duration"] >= 0 for e in done)
    assert all(e.get("image") == "c" for e in done[2:])
    download = next(e for e in done if e["stage"] == "download")["details"]
    assert download["bytes"] == image.stat().st_size and not download["reused"]
    timings = json.loads((tmp / "run/timings.json").read_text())
    assert timings["agent_seconds"] >= timings["without_transfer_seconds"] > 0
    # the seeder keeps seeding after the agent returned, and stops on SIGTERM (the dracut cleanup
    # hook); the handover asks it to stop only once it seeds (bootagent/seeder.py signal_seeder)
    pid = int((tmp / "run/seeder.pid").read_text())
    assert pid == ctx.seeder_pid
    assert os.getpriority(os.PRIO_PROCESS, pid) == 19  # the booted service's Nice=19: the agent first
    assert wait_for((tmp / "run/seeder.json").is_file, 20), (tmp / "run/seeder.log").read_text()
    assert signal_seeder(tmp / "run")
    assert wait_for(lambda: _reap(pid), 15)
    assert json.loads((tmp / "run/seeder.json").read_text())["stopped"] is True
    ctx.seeder_pid = None


def test_tmpfs_boot_end_to_end(booted: tuple[Path, LoopbackServer]) -> None:
    tmp, server = booted
    image = tmp / "src/image.tar.zst"
    image.parent.mkdir()
    run(
        ["tar", "--zstd", "-c", "--numeric-owner", "-f", str(image), "-C", str(image_tree(tmp / "tree")), "."]
    , timeout=600)
    plan_for(server, "tar.zst", image, "tmpfs", torrent={"seed_until_switch_root": False})
    ctx, rescue = agent(tmp, server, f"root=swarmboot swarmboot.server={server.url} swarmboot.node=n1")
    assert boot(ctx) == 0, ctx.paths.log_file.read_text()  # the web seed alone serves it
    assert rescue.stops == [] and ctx.seeder_pid is None
    assert output(["findmnt", "-n", "-o", "FSTYPE", str(tmp / "sysroot")], timeout=60) == "tmpfs"
    assert (tmp / "sysroot/root/payload.bin").stat().st_size == 6 << 20
    assert (tmp / "run/cleanup-files").read_text().strip() == str(tmp / "run/image/image.tar.zst")
    assert server.served_bytes >= image.stat().st_size


def test_unreachable_server_gives_up_within_the_bound(booted: tuple[Path, LoopbackServer]) -> None:
    tmp, server = booted

    ctx, rescue = agent(
        tmp,
        server,
        f"root=swarmboot swarmboot.server={dead_url()} swarmboot.node=n1 swarmboot.plan_timeout=2",
    )
    started = time.monotonic()
    assert boot(ctx) == 1
    assert time.monotonic() - started < 30
    assert [k for k, _ in rescue.stops] == ["failure", "failure", "final"]
    assert "stage 'plan' failed" in rescue.stops[0][1] and "connection refused" in rescue.stops[0][1]
    assert "swarmboot serve" in rescue.stops[0][1]
    assert "stage 'plan' failed" in (tmp / "console").read_text()
