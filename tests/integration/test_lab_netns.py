"""The namespace lab builds real namespaces, links and shaping, and removes all of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ground.errors import SwarmbootError
from lab.netns import NetLab, parse_rate

pytestmark = pytest.mark.root


def _namespaces() -> set[str]:
    return {p.name for p in Path("/run/netns").glob("*")} if Path("/run/netns").is_dir() else set()


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def test_two_namespaces_talk_over_a_bridge_and_everything_is_removed() -> None:
    before = _namespaces()
    with NetLab() as lab:
        switch = lab.namespace("sw")
        a, b = lab.namespace("a"), lab.namespace("b")
        lab.bridge(switch, "br0")
        for ns, port in ((a, "pa"), (b, "pb")):
            lab.veth(ns, "eth0", switch, port)
            lab.attach(switch, port, "br0")
        lab.address(a, "eth0", "10.88.0.1/24")
        lab.address(b, "eth0", "10.88.0.2/24")
        lab.shape(a, "eth0", parse_rate("50mbit"))
        ping = a.run(["ping", "-c", "1", "-W", "5", "10.88.0.2"], check=False, timeout=60)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        qdisc = a.run(["tc", "qdisc", "show", "dev", "eth0"], timeout=60).stdout
        assert "tbf" in qdisc and "50Mbit" in qdisc
        created = _namespaces() - before
        assert len(created) == 3
    assert _namespaces() == before


def test_lab_cleans_up_when_the_body_fails() -> None:
    before = _namespaces()
    with pytest.raises(RuntimeError), NetLab() as lab:
        lab.namespace("x")
        raise RuntimeError("boom")
    assert _namespaces() == before


def test_processes_left_in_a_namespace_are_stopped_on_close() -> None:
    with NetLab() as lab:
        ns = lab.namespace("p")
        proc = ns.spawn(["sleep", "300"])
    assert proc.wait(timeout=10) is not None


def test_parse_rate() -> None:
    assert parse_rate("100mbit") == 100_000_000
    assert parse_rate("1Gbit") == 1_000_000_000
    assert parse_rate("25Mbit/s") == 25_000_000
    assert parse_rate("500kbit") == 500_000
    assert parse_rate("1200") == 1200
    with pytest.raises(SwarmbootError):
        parse_rate("fast")


def test_interface_names_are_checked() -> None:
    before = _namespaces()
    with NetLab() as lab:
        ns = lab.namespace("n")
        with pytest.raises(SwarmbootError):
            lab.bridge(ns, "a-name-that-is-too-long")
        links = ns.run(["ip", "-o", "link", "show"], timeout=60).stdout
        assert "a-name-that" not in links
    assert _namespaces() == before
