"""Node files: rendering for each network stack, the hosts file, the booted report, and writing
them (owners, modes, unsafe paths) into a sysroot tree."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bootagent.errors import FilesError
from bootagent.nodefiles import (
    IFUPDOWN,
    NETWORKD,
    NM,
    NONE,
    NetIface,
    detect_network_stack,
    machine_id,
    render_booted_unit,
    render_hosts,
    render_ifupdown,
    render_networkd,
    render_networkmanager,
    render_report_script,
    write_node_files,
)
from ground.contract.plan import BootPlan

STATIC = NetIface("eth0", "52:54:00:00:00:01", "10.0.0.5/24", "10.0.0.1", ("10.0.0.2", "10.0.0.3"), 9000)
DHCP = NetIface("eth1", "52:54:00:00:00:02")


def test_networkd_files_match_by_mac() -> None:
    files = render_networkd([STATIC, DHCP])
    assert list(files) == [
        "etc/systemd/network/10-swarmboot-eth0.network",
        "etc/systemd/network/11-swarmboot-eth1.network",
    ]
    static, dhcp = files.values()
    assert "MACAddress=52:54:00:00:00:01" in static and "Address=10.0.0.5/24" in static
    assert (
        "Gateway=10.0.0.1" in static and "DNS=10.0.0.2\nDNS=10.0.0.3" in static and "MTUBytes=9000" in static
    )
    assert "DHCP=yes" in dhcp and "\nAddress=" not in dhcp
    assert "KeepConfiguration" not in static + dhcp


def test_on_a_network_root_networkd_keeps_the_initramfs_address() -> None:
    """The nfs mode: / is on the network; networkd must not drop the address while it starts."""
    for text in render_networkd([STATIC, DHCP], network_root=True).values():
        assert "[Network]\nKeepConfiguration=yes\n" in text


def test_ifupdown_stanzas() -> None:
    text = render_ifupdown([STATIC, DHCP])["etc/network/interfaces.d/swarmboot"]
    assert "auto eth0\niface eth0 inet static\n    address 10.0.0.5/24\n    gateway 10.0.0.1" in text
    assert "dns-nameservers 10.0.0.2 10.0.0.3" in text and "mtu 9000" in text
    assert "auto eth1\niface eth1 inet dhcp" in text


def test_networkmanager_keyfiles() -> None:
    files = render_networkmanager([STATIC, DHCP])
    static = files["etc/NetworkManager/system-connections/swarmboot-eth0.nmconnection"]
    assert "mac-address=52:54:00:00:00:01".replace("52:54:00:00:00:01", "52:54:00:00:00:01".upper()) in static
    assert (
        "method=manual" in static
        and "address1=10.0.0.5/24,10.0.0.1" in static
        and "dns=10.0.0.2;10.0.0.3;" in static
    )
    assert "method=auto" in files["etc/NetworkManager/system-connections/swarmboot-eth1.nmconnection"]


@pytest.mark.parametrize(
    ("present", "stack"),
    [
        (["usr/sbin/NetworkManager", "usr/sbin/ifup", "usr/lib/systemd/systemd-networkd"], NM),
        (["usr/sbin/ifup", "usr/lib/systemd/systemd-networkd"], IFUPDOWN),
        (["lib/systemd/systemd-networkd"], NETWORKD),
        ([], NONE),
    ],
)
def test_detects_the_image_network_stack(tmp_path: Path, present: list[str], stack: str) -> None:
    for rel in present:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert detect_network_stack(tmp_path) == stack


def test_hosts_and_machine_id() -> None:
    hosts = render_hosts("n1", "cluster.local", "10.0.0.5/24")
    assert "10.0.0.5\tn1.cluster.local n1\n" in hosts and hosts.startswith("127.0.0.1\tlocalhost\n")
    assert "127.0.1.1\tn1\n" in render_hosts("n1", "", "")
    assert machine_id("n1") != machine_id("n2") and len(machine_id("n1")) == 32
    assert machine_id("n1") == machine_id("n1")


def test_the_report_script_is_valid_sh_and_sends_json(tmp_path: Path) -> None:
    script = tmp_path / "report"
    script.write_text(render_report_script(["http://a/api/v1/nodes/n1/events", "http://b/x"], "compute", 3))
    subprocess.run(["sh", "-n", str(script)], check=True)
    # Run it with a `curl` that records its arguments, to check the JSON it would send.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "curl").write_text(
        '#!/bin/sh\nfor a; do last="$a"; prev2="$prev"; prev="$a"; done\nprintf "%s" "$prev2" > "$OUT"\n'
    )
    os.chmod(bindir / "curl", 0o755)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "download.json").write_text('{"bytes": 5}\n')
    text = script.read_text().replace("run=/run/swarmboot", f"run={run_dir}")
    script.write_text(text)
    out = tmp_path / "body.json"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "OUT": str(out)}
    subprocess.run(["sh", str(script)], check=True, env=env, capture_output=True, timeout=30)
    body = json.loads(out.read_text())
    assert body["stage"] == "booted" and body["status"] == "done" and body["version"] == 3
    details = body["details"]
    assert {"root_fstype", "kernel", "uptime", "hostname"} <= set(details)
    assert details["download"] == {"bytes": 5} and details["seeder"] is None
    assert details["kernel"] == os.uname().release and details["uptime"] > 0


def test_booted_unit_runs_after_multi_user() -> None:
    unit = render_booted_unit()
    assert "After=network-online.target multi-user.target" in unit and "WantedBy=multi-user.target" in unit


def plan(**extra: Any) -> BootPlan:
    data: dict[str, Any] = {
        "version": 1,
        "node": {"name": "n1", "hostname": "n1", "group": "g", "domain": "lab"},
        "image": {
            "name": "c",
            "version": 2,
            "format": "squashfs",
            "size": 1,
            "sha256": "0" * 64,
            "torrent_url": "/t",
            "http_url": "/i",
        },
        "reporting": {"events_url": "http://s/api/v1/nodes/n1/events"},
    }
    data.update(extra)
    return BootPlan.from_dict(data)


def sysroot_with(tmp_path: Path, *present: str) -> Path:
    root = tmp_path / "sysroot"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nalice:x:1234:1234::/home/alice:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nusers:x:100:\n")
    for rel in present:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    return root


def test_write_node_files_into_a_networkd_image(tmp_path: Path) -> None:
    root = sysroot_with(tmp_path, "usr/lib/systemd/systemd-networkd")
    p = plan(
        files=[
            {"path": "/etc/app/conf", "content": "x=1\n", "mode": 0o600, "owner": "alice", "group": "users"}
        ]
    )
    done = write_node_files(p, root, "52:54:00:00:00:01", {"52:54:00:00:00:01": "ens3"}, ["http://s/e"])
    assert done["network_stack"] == NETWORKD
    assert (root / "etc/hostname").read_text() == "n1\n"
    assert "n1.lab n1" in (root / "etc/hosts").read_text()
    assert (root / "etc/machine-id").read_text() == machine_id("n1") + "\n"
    network = (root / "etc/systemd/network/10-swarmboot-ens3.network").read_text()
    assert "MACAddress=52:54:00:00:00:01" in network and "DHCP=yes" in network
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert os.readlink(wants / "systemd-networkd.service") == "/lib/systemd/system/systemd-networkd.service"
    assert os.readlink(wants / "swarmboot-booted.service") == "/etc/systemd/system/swarmboot-booted.service"
    conf = (root / "etc/app/conf").stat()
    assert (conf.st_uid, conf.st_gid, conf.st_mode & 0o777) == (1234, 100, 0o600)
    assert (root / "usr/local/lib/swarmboot/report-booted").stat().st_mode & 0o111


def test_ifupdown_image_gets_the_include(tmp_path: Path) -> None:
    root = sysroot_with(tmp_path, "usr/sbin/ifup")
    (root / "etc/network").mkdir(parents=True)
    (root / "etc/network/interfaces").write_text("auto lo\niface lo inet loopback\n")
    write_node_files(plan(), root, "52:54:00:00:00:01", {"52:54:00:00:00:01": "ens3"}, [])
    assert "source /etc/network/interfaces.d/*" in (root / "etc/network/interfaces").read_text()
    assert "iface ens3 inet dhcp" in (root / "etc/network/interfaces.d/swarmboot").read_text()


@pytest.mark.parametrize("path", ["etc/passwd", "/etc/../../escape", "/"])
def test_unsafe_paths_are_refused(tmp_path: Path, path: str) -> None:
    root = sysroot_with(tmp_path)
    with pytest.raises(FilesError, match="must be absolute"):
        write_node_files(plan(files=[{"path": path, "content": ""}]), root, "", {}, [])


def test_unknown_owner_is_named(tmp_path: Path) -> None:
    root = sysroot_with(tmp_path)
    with pytest.raises(FilesError, match="no user named 'bob'"):
        write_node_files(plan(files=[{"path": "/x", "content": "", "owner": "bob"}]), root, "", {}, [])


def test_secret_files_are_written_from_base64_and_the_report_carries_the_token(tmp_path: Path) -> None:
    import base64
    import stat

    root = sysroot_with(tmp_path)
    key = bytes(range(256))
    p = plan(
        minor=2,
        secret_files=[
            {"path": "/etc/munge/munge.key", "content": base64.b64encode(key).decode(), "mode": 0o400,
             "owner": "alice", "encoding": "base64"}
        ],
    )
    done = write_node_files(p, root, "", {}, ["http://s/e"], token="T" * 43)
    written = root / "etc/munge/munge.key"
    assert written.read_bytes() == key and stat.S_IMODE(written.stat().st_mode) == 0o400
    assert written.stat().st_uid == 1234 and done["secret_files"] == 1
    script = root / "usr/local/lib/swarmboot/report-booted"
    assert "X-Swarmboot-Token: " + "T" * 43 in script.read_text()
    assert stat.S_IMODE(script.stat().st_mode) == 0o700  # the token: root only
    bad = plan(minor=2, secret_files=[{"path": "/x", "content": "not base64!", "encoding": "base64"}])
    with pytest.raises(FilesError, match="not base64"):
        write_node_files(bad, root, "", {}, [])
    with pytest.raises(FilesError, match="unknown encoding"):
        write_node_files(plan(files=[{"path": "/x", "content": "", "encoding": "rot13"}]), root, "", {}, [])
