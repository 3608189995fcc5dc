"""The agent sets iPXE's address (swarmboot.ip) on the boot NIC itself, in a real namespace: the
link comes up, the address and default route are set, and the node reaches its gateway; with no
swarmboot.ip it waits for dracut's (and says which NIC it found)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from lab.netns import NetLab

pytestmark = pytest.mark.root

FIND = """
import json, sys
from bootagent.network import find_boot_interface
from ground.contract.cmdline import parse_cmdline
args = parse_cmdline(sys.argv[1])
iface = find_boot_interface(args.mac, timeout=float(sys.argv[2]), poll=0.2, address=args.address)
print(json.dumps(iface.__dict__))
"""


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def test_ipxes_address_is_set_on_the_nic_found_by_its_mac_and_the_gateway_answers() -> None:
    with NetLab() as lab:
        head, node = lab.namespace("h"), lab.namespace("n")
        lab.veth(head, "eth0", node, "ens3")
        lab.address(head, "eth0", "10.66.0.1/24")
        node.ip("link", "set", "dev", "ens3", "down")
        mac = node.run(["cat", "/sys/class/net/ens3/address"], timeout=30).stdout.strip()
        cmdline = (f"root=swarmboot swarmboot.server=http://10.66.0.1:8080 swarmboot.mac={mac} "
                   "swarmboot.ip=10.66.0.17:255.255.255.0:10.66.0.1:")
        found = node.run([sys.executable, "-c", FIND, cmdline, "20"], timeout=60)
        iface = json.loads(found.stdout)
        assert iface["name"] == "ens3" and iface["mac"] == mac and iface["from_ipxe"] is True, iface
        assert iface["addresses"] == ["10.66.0.17/24"] and iface["gateway"] == "10.66.0.1", iface
        route = node.run(["ip", "-4", "route", "show", "default"], timeout=30).stdout
        assert "via 10.66.0.1 dev ens3" in route, route
        ping = node.run(["ping", "-c", "1", "-W", "5", "10.66.0.1"], check=False, timeout=30)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        # the same boot again (a retried stage): the address is there, nothing is set twice
        again = json.loads(node.run([sys.executable, "-c", FIND, cmdline, "5"], timeout=60).stdout)
        assert again["addresses"] == ["10.66.0.17/24"] and again["from_ipxe"] is False, again


def test_without_swarmboot_ip_the_agent_waits_for_dracuts_address_and_says_what_it_saw() -> None:
    with NetLab() as lab:
        head, node = lab.namespace("h"), lab.namespace("n")
        lab.veth(head, "eth0", node, "ens3")
        mac = node.run(["cat", "/sys/class/net/ens3/address"], timeout=30).stdout.strip()
        cmdline = f"root=swarmboot swarmboot.server=http://10.66.0.1:8080 swarmboot.mac={mac}"
        found = node.run([sys.executable, "-c", FIND, cmdline, "1"], check=False, timeout=60)
        assert found.returncode != 0
        assert "the boot interface got no address within 1 s" in found.stderr, found.stderr
        assert f"ens3 ({mac}" in found.stderr, found.stderr
