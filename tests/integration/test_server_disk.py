"""The server's side of the disk mode, with a real `swarmboot serve` and the CLI: a layout is
validated when it is set (and refused with a message), the plan carries it with the kept
partitions the node reported, and the iPXE script sends an installed node to its disk only while
its installed version is current (BIOS `sanboot`, UEFI `exit`), never after a failed install;
`node status` says "reinstall needed"; the reinstall policy and `node set --reinstall`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from ground.config import Settings
from lab.packed import make_version
from lab.server_process import token_in
from tests.helpers.server import ServerProcess, boot_token, cli, running_server, token_headers

MAC = "52:54:00:00:10:01"
LAYOUT = """
disks:
  - {name: main, min_size: 4GiB}
partitions:
  - {label: bios, size: 1MiB, kind: bios_grub}
  - {label: esp, size: 64MiB, kind: esp}
  - {label: cache, size: 1GiB, kind: image-cache}
  - {label: root, size: 3GiB, mountpoint: /}
  - {label: data, size: rest, fs: xfs, mountpoint: /data, keep: true, options: noatime}
"""
KEPT = [
    {"label": "cache", "disk": "main", "size": 1 << 30, "uuid": "c-1", "fs": "ext4"},
    {"label": "data", "disk": "main", "size": 5 << 30, "uuid": "d-1", "fs": "xfs"},
]


@pytest.fixture
def server(settings: Settings, swarmboot_home: Path, tmp_path: Path) -> Any:
    make_version(settings.images_dir, "compute", 1, size=1 << 20)
    layout = tmp_path / "layout.yaml"
    layout.write_text(LAYOUT)
    cli(
        swarmboot_home,
        "group",
        "add",
        "stateful",
        "--image",
        "compute",
        "--root",
        "disk",
        "--layout",
        str(layout),
    )
    cli(swarmboot_home, "node", "add", "d1", "--group", "stateful", "--mac", MAC)
    with running_server(swarmboot_home) as srv:
        yield srv


_TOKENS: dict[str, str] = {}


def script(srv: ServerProcess, platform: str = "pcbios") -> str:
    """The node's iPXE script; a script that boots the agent carries this boot's token, which the
    node's events must send (each script issues a new one)."""
    text = requests.get(f"{srv.url}/boot/ipxe", params={"mac": MAC, "platform": platform}, timeout=30).text
    if token := token_in(text):
        _TOKENS[srv.url] = token
    return text


def event(srv: ServerProcess, **body: Any) -> None:
    token = _TOKENS.get(srv.url) or boot_token(srv, MAC)
    _TOKENS[srv.url] = token
    response = requests.post(
        f"{srv.url}/api/v1/nodes/d1/events", json=body, headers=token_headers(token), timeout=10
    )
    assert response.status_code == 200, response.text


def install(srv: ServerProcess, version: int, sha256: str) -> None:
    event(srv, stage="part", status="start")
    event(
        srv,
        stage="handover",
        status="done",
        details={
            "install": {
                "image": "compute",
                "version": version,
                "sha256": sha256,
                "layout": {},
                "kept": KEPT,
                "firmware": "bios",
                "timings": {"write": 1.0},
            }
        },
    )


def status(srv: ServerProcess) -> dict[str, Any]:
    (row,) = json.loads(cli(srv.home, "node", "status", "d1", "--json").stdout)
    return row


def test_bad_layouts_are_refused_when_set(swarmboot_home: Path, tmp_path: Path, settings: Settings) -> None:
    make_version(settings.images_dir, "compute", 1, size=1 << 20)
    bad = tmp_path / "bad.yaml"
    for text, message in [
        (
            "partitions: [{label: a, size: rest, mountpoint: /}, {label: b, size: rest}]",
            "two partitions take",
        ),
        ("partitions: [{label: r, size: 1G, mountpoint: /, fs: zfs}]", "'zfs' is not one of"),
        (
            "partitions: [{label: r, size: 1G, mountpoint: /, raid: md0}]\n"
            "raid: [{name: md0, disks: [main, b]}]",
            "member disk 'b' is not one of",
        ),
    ]:
        bad.write_text(text)
        result = cli(
            swarmboot_home,
            "group",
            "add",
            "g",
            "--image",
            "compute",
            "--root",
            "disk",
            "--layout",
            str(bad),
            check=False,
        )
        assert result.returncode != 0 and message in result.stderr, result.stderr
    result = cli(swarmboot_home, "group", "add", "g", "--image", "compute", "--root", "disk", check=False)
    assert result.returncode != 0 and "needs a disk layout" in result.stderr
    # the shorthand (today's inventory form) still works, and is checked the same way
    cli(
        swarmboot_home,
        "group",
        "add",
        "g",
        "--image",
        "compute",
        "--root",
        "disk",
        "--disk",
        "/dev/sda",
        "--partition",
        "root:20GiB:ext4:/",
        "--partition",
        "scratch:rest:xfs:/scratch:keep",
    )
    result = cli(swarmboot_home, "group", "set", "g", "--partition", "root:20GiB:ext4:/:keep", check=False)
    assert result.returncode != 0 and "cannot be kept" in result.stderr


def test_the_plan_carries_the_layout_and_the_reported_kept_partitions(server: ServerProcess) -> None:
    def plan(version: str) -> dict[str, Any]:
        response = requests.get(
            f"{server.url}/api/v1/plan", params={"mac": MAC, "plan_version": version}, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()

    doc = plan("1.1")
    assert doc["root"]["mode"] == "disk" and doc["root"]["kept"] == []
    assert [p["label"] for p in doc["root"]["layout"]["partitions"]] == [
        "bios",
        "esp",
        "cache",
        "root",
        "data",
    ]
    assert doc["root"]["layout"]["disks"][0]["min_size"] == "4GiB"
    assert doc["image"]["initramfs_url"].endswith("/images/compute/1/initramfs.img")
    install(server, 1, "x")
    assert plan("1.1")["root"]["kept"] == KEPT
    old = requests.get(f"{server.url}/api/v1/plan", params={"mac": MAC, "plan_version": "1.0"}, timeout=30)
    assert old.status_code == 409 and "re-pack" in old.json()["error"] + old.json().get("hint", "")


def test_only_a_current_finished_install_boots_from_disk(server: ServerProcess, settings: Settings) -> None:
    assert "kernel " in script(server)  # never installed: the agent installs
    assert status(server)["install"]["reinstall_needed"] is True
    sha1 = json.loads((settings.images_dir / "compute/versions/1/manifest.json").read_text())["image_file"][
        "sha256"
    ]
    event(server, stage="part", status="start")
    event(server, stage="root", status="failed", message="mkfs.ext4 failed")
    assert "kernel " in script(server), "a failed install must not be sent to its disk"
    assert status(server)["install"]["state"] == "failed"
    install(server, 1, sha1)
    bios, uefi = script(server, "pcbios"), script(server, "efi")
    assert "sanboot --no-describe --drive 0x80" in bios and "kernel " not in bios
    assert "set swarmboot_local 1" in uefi and "sanboot" not in uefi
    row = status(server)
    assert row["install"]["state"] == "installed" and row["install"]["reinstall_needed"] is False
    assert "compute:1" in cli(server.home, "node", "status").stdout
    make_version(settings.images_dir, "compute", 2, size=1 << 20)  # the group moves on
    server.admin("refresh", method="POST")
    assert "kernel " in script(server), "on-new-version: a node with an older install installs again"
    assert "reinstall needed" in cli(server.home, "node", "status").stdout
    cli(server.home, "group", "set", "stateful", "--reinstall", "manual")
    assert "sanboot" in script(server), "manual: the disk boots until told"
    assert "compute:1 reinstall needed (manual)" in cli(server.home, "node", "status").stdout
    cli(server.home, "node", "set", "d1", "--reinstall")
    assert "kernel " in script(server) and status(server)["install"]["reinstall"] is True
    cli(server.home, "node", "set", "d1", "--service")
    assert "kernel " in script(server)
