"""The dnsmasq configuration rendered from the inventory passes `dnsmasq --test` and says what
the boot chain needs: static leases per node, PXE loaders over TFTP, iPXE chained to the server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ground import run as runmod
from ground.config import Settings
from swarmboot.cli import main


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_config_passes_dnsmasq_test(capsys: pytest.CaptureFixture[str], settings: Settings) -> None:
    ok(
        capsys,
        "network",
        "add",
        "cluster",
        "--cidr",
        "10.8.0.0/24",
        "--gateway",
        "10.8.0.1",
        "--dns",
        "10.8.0.1",
        "--domain",
        "hpc.test",
        "--range",
        "10.8.0.10-10.8.0.99",
        "--dhcp-range",
        "10.8.0.100-10.8.0.199",
    )
    ok(capsys, "group", "add", "compute", "--image", "compute")
    ok(
        capsys,
        "node",
        "add",
        "n1",
        "--group",
        "compute",
        "--mac",
        "52:54:00:08:00:01",
        "--mac",
        "52:54:00:08:00:02",
    )
    ok(capsys, "node", "add", "n2", "--group", "compute", "--mac", "52:54:00:08:00:03")
    ok(capsys, "node", "add", "spare", "--group", "compute")
    out = ok(
        capsys,
        "dnsmasq",
        "config",
        "--interface",
        "sbtest0",
        "--server-url",
        "http://10.8.0.1:8080",
        "--check",
    )
    assert "syntax check OK" in out
    conf = (settings.home / "dnsmasq" / "dnsmasq.conf").read_text()
    lines = conf.splitlines()
    for expected in [
        "port=0",
        "interface=sbtest0",
        "bind-interfaces",
        f"dhcp-leasefile={settings.home}/dnsmasq/leases",
        "dhcp-range=set:net-cluster,10.8.0.100,10.8.0.199,255.255.255.0,1h",
        "dhcp-range=set:net-cluster,10.8.0.0,static,255.255.255.0,12h",
        "dhcp-option=tag:net-cluster,option:router,10.8.0.1",
        "enable-tftp",
        "tftp-root=/usr/lib/ipxe",
        "dhcp-boot=tag:ipxe,http://10.8.0.1:8080/boot/start.ipxe",
        "dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi",
        "dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe",
        "dhcp-match=set:ipxe,175",
    ]:
        assert expected in lines, expected
    assert not any(line.startswith(("conf-dir", "conf-file", "resolv-file")) for line in lines)
    hosts = (settings.home / "dnsmasq" / "hosts").read_text().splitlines()
    assert hosts == ["52:54:00:08:00:01,52:54:00:08:00:02,10.8.0.10,n1", "52:54:00:08:00:03,10.8.0.11,n2"]
    for loader in ("undionly.kpxe", "snponly.efi"):
        assert (settings.tftp_root / loader).is_file(), f"Debian's ipxe package provides {loader}"
    # dnsmasq rejects a broken file, so the check above is a real one
    broken = settings.home / "broken.conf"
    broken.write_text(conf + "dhcp-range=nonsense-here\n")
    result = runmod.run(["dnsmasq", "--test", f"--conf-file={broken}"], check=False, timeout=30)
    assert result.returncode != 0


def test_config_needs_an_interface_and_a_network(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dnsmasq", "config", "--output", "-"]) == 2
    assert "needs an interface" in capsys.readouterr().err
    assert main(["dnsmasq", "config", "--interface", "eth9", "--output", "-"]) == 2
    assert "has no network" in capsys.readouterr().err


def test_printed_config_is_the_written_one(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    ok(capsys, "network", "add", "n", "--cidr", "10.9.0.0/24")
    printed = ok(
        capsys, "dnsmasq", "config", "--interface", "eth1", "--server-url", "http://h:1", "--output", "-"
    )
    ok(capsys, "dnsmasq", "config", "--interface", "eth1", "--server-url", "http://h:1")
    assert (settings.home / "dnsmasq" / "dnsmasq.conf").read_text() == printed
    result = subprocess.run(
        ["dnsmasq", "--test", f"--conf-file={settings.home}/dnsmasq/dnsmasq.conf"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
