"""The virtual cluster without virtual machines: requests made from inside its namespace, the real
server with dnsmasq on the bridge, and a teardown that leaves nothing behind, also on failure.
(The boots themselves are tests/e2e.)"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ground.run import output
from lab.lab import Lab, LabSpec
from lab.netns import NetLab
from lab.nshttp import NamespaceHttp, NamespaceHttpError

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _namespaces() -> set[str]:
    return {p.name for p in Path("/run/netns").glob("*")} if Path("/run/netns").is_dir() else set()


def test_requests_from_inside_a_namespace_reach_what_the_host_cannot(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("from inside\n")
    with NetLab() as lab:
        ns = lab.namespace("web")
        lab.bridge(ns, "br0")
        lab.address(ns, "br0", "10.79.0.1/24")
        server = ns.spawn([sys.executable, "-m", "http.server", "--bind", "10.79.0.1", "18079"],
                          cwd=tmp_path)
        http = NamespaceHttp(ns.name)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    status, body = http.request("http://10.79.0.1:18079/hello.txt", timeout=2)
                    break
                except NamespaceHttpError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert (status, body) == (200, b"from inside\n")
            assert http.request("http://10.79.0.1:18079/missing", timeout=2)[0] == 404
            # the test's own thread is still in the host's namespace: no route to the lab
            with pytest.raises((urllib.error.URLError, OSError)):
                urllib.request.urlopen("http://10.79.0.1:18079/hello.txt", timeout=2)
        finally:
            http.close()
            server.stop()


def test_the_lab_runs_the_server_with_dhcp_and_removes_everything_even_on_failure(tmp_path: Path) -> None:
    spec = LabSpec(home=tmp_path / "home", workdir=tmp_path / "work", subnet="10.78.0.0/24",
                   server_rate="50mbit")
    with pytest.raises(RuntimeError, match="the test fails here"), Lab(spec) as lab:
        lab.add_network()
        assert lab.start_server() == "http://10.78.0.1:8080"
        assert lab.healthy()
        stats = lab.admin("stats")
        assert stats["server_url"] == "http://10.78.0.1:8080"
        assert stats["seeder"]["listen_port"] == 6880
        inside = output(["ip", "netns", "pids", lab.namespace.name], timeout=60).split()
        assert "dnsmasq" in {_comm(pid) for pid in inside}, inside
        conf = (spec.home / "dnsmasq/dnsmasq.conf").read_text()
        assert "interface=br0" in conf and "dhcp-boot=tag:ipxe,http://10.78.0.1:8080/boot/start.ipxe" in conf
        qdisc = lab.namespace.run(["tc", "qdisc", "show", "dev", "br0"], timeout=60).stdout
        assert "tbf" in qdisc and "50Mbit" in qdisc
        lab.set_server_rate("")
        assert "tbf" not in lab.namespace.run(["tc", "qdisc", "show", "dev", "br0"], timeout=60).stdout
        server, tag = lab.server, lab.netlab.tag
        assert any(n.startswith(tag) for n in _namespaces())
        raise RuntimeError("the test fails here")
    assert server is not None and server.child.poll() is not None  # stopped
    assert not [n for n in _namespaces() if n.startswith(tag)]  # (others may run their own labs)
    assert "dnsmasq" not in {_comm(pid) for pid in inside}
