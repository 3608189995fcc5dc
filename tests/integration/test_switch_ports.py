"""Where a node is plugged in: a real SNMP agent simulating a switch (snmpsim answering from a
recorded walk of BRIDGE-MIB, Q-BRIDGE-MIB and IF-MIB), real LLDP frames sent into a network
namespace and heard by the agent's listener there, and the real `swarmboot serve` naming nodes by
the port they are plugged into when they first ask for their boot script."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import requests

from ground.config import Settings
from lab.packed import make_version
from lab.switchsim import SwitchSim
from server.switches.snmp import SnmpError, forwarding_table
from tests.helpers.server import boot_token, cli, running_server, token_headers

MAC_N1 = "52:54:00:ee:00:01"
MAC_N2 = "52:54:00:ee:00:02"
MAC_X = "52:54:00:ee:00:99"
MAC_Y = "52:54:00:ee:00:98"
PORTS = {1: "ge-0/0/1", 2: "ge-0/0/2", 3: "ge-0/0/3", 4: "ge-0/0/4"}


@pytest.fixture
def switch(tmp_path: Path) -> SwitchSim:
    with SwitchSim(tmp_path / "switch", community="sw1-ro") as sim:
        yield sim


def test_forwarding_table_over_snmp_v2c_and_v3_maps_macs_to_port_names(tmp_path: Path) -> None:
    with SwitchSim(tmp_path / "v2", community="sw1-ro") as sim:
        sim.record(PORTS, [(MAC_N1, 1, 10), (MAC_N2, 3, 20)], own_macs=["02:00:00:00:00:01"])
        table = forwarding_table(sim.settings(), "", timeout=5)
        assert [(e.mac, e.port, e.vlan) for e in table] == [
            (MAC_N1, "ge-0/0/1", 10),
            (MAC_N2, "ge-0/0/3", 20),
        ]
        assert table[0].names == ("ge-0/0/1", "Simulated port ge-0/0/1", "1")
        # a switch without Q-BRIDGE-MIB: BRIDGE-MIB's dot1dTpFdbPort; the file is read again
        sim.record(PORTS, [(MAC_X, 4, 0)], q_bridge=False)
        assert [(e.mac, e.port) for e in forwarding_table(sim.settings(), "", timeout=5)] == [
            (MAC_X, "ge-0/0/4")
        ]
        wrong = {**sim.settings(), "community": "guess"}
        with pytest.raises(SnmpError, match="did not answer"):
            forwarding_table(wrong, "", timeout=1)
    with SwitchSim(
        tmp_path / "v3",
        community="sw3",
        v3_user="swarmboot",
        v3_auth_key="auth-key-1234",
        v3_priv_key="priv-key-1234",
    ) as sim:
        sim.record(PORTS, [(MAC_N2, 2, 1)])
        assert [(e.mac, e.port) for e in forwarding_table(sim.settings(), "", timeout=5)] == [
            (MAC_N2, "ge-0/0/2")
        ]


def test_switch_cli_takes_snmp_settings_and_lists_its_ports(swarmboot_home: Path, switch: SwitchSim) -> None:
    home = swarmboot_home
    cli(home, "group", "add", "compute", "--image", "compute")
    cli(
        home,
        "switch",
        "add",
        "sw1",
        "--address",
        "127.0.0.1",
        "--snmp-version",
        "2c",
        "--snmp-address",
        switch.address,
        "--snmp-community",
        "sw1-ro",
    )
    bad = cli(home, "switch", "set", "sw1", "--snmp-version", "3", check=False)
    assert bad.returncode != 0 and "needs a user" in bad.stderr
    cli(
        home,
        "node",
        "add",
        "n2",
        "--group",
        "compute",
        "--mac",
        MAC_N2,
        "--switch",
        "sw1",
        "--port",
        "ge-0/0/3",
    )
    cli(home, "node", "add", "n7", "--group", "compute", "--switch", "sw1", "--port", "3")
    switch.record(PORTS, [(MAC_N2, 3, 1), (MAC_X, 4, 1)])
    shown = cli(home, "switch", "show", "sw1").stdout
    assert "community: ********" in shown and "sw1-ro" not in shown  # credentials are not printed
    report = json.loads(cli(home, "switch", "ports", "sw1", "--json", SWARMBOOT_SNMP_TIMEOUT="20").stdout)
    rows = {r["mac"]: r for r in report["ports"]}
    assert report["error"] == "" and set(rows) == {MAC_N2, MAC_X}
    assert rows[MAC_N2]["port"] == "ge-0/0/3" and rows[MAC_N2]["node"] == "n2"
    assert rows[MAC_N2]["claimed_by"] == ["n2", "n7"] and rows[MAC_N2]["source"] == "snmp"
    assert rows[MAC_X]["node"] == "" and rows[MAC_X]["claimed_by"] == []
    table = cli(home, "switch", "ports", "sw1", SWARMBOOT_SNMP_TIMEOUT="20").stdout
    assert "ge-0/0/4" in table and "2 MAC(s) on switch sw1" in table
    # a MAC the switch no longer has is forgotten at the next reading
    switch.record(PORTS, [(MAC_N2, 3, 1)])
    report = json.loads(cli(home, "switch", "ports", "sw1", "--json", SWARMBOOT_SNMP_TIMEOUT="20").stdout)
    assert [r["mac"] for r in report["ports"]] == [MAC_N2]


def _script(url: str, mac: str) -> str:
    return requests.get(url + "/boot/ipxe", params={"mac": mac, "platform": "pcbios"}, timeout=30).text


def test_a_node_named_by_its_port_is_bound_at_first_boot_and_conflicts_are_never_rebound(
    swarmboot_home: Path, settings: Settings, switch: SwitchSim
) -> None:
    home = swarmboot_home
    make_version(settings.images_dir, "compute", 1, size=2**20)
    cli(home, "group", "add", "compute", "--image", "compute")
    cli(
        home,
        "switch",
        "add",
        "sw1",
        "--snmp-version",
        "2c",
        "--snmp-address",
        switch.address,
        "--snmp-community",
        "sw1-ro",
    )
    cli(home, "node", "add", "n1", "--group", "compute", "--switch", "sw1", "--port", "ge-0/0/1")
    cli(
        home,
        "node",
        "add",
        "n2",
        "--group",
        "compute",
        "--mac",
        MAC_N2,
        "--switch",
        "sw1",
        "--port",
        "ge-0/0/2",
    )
    cli(
        home, "node", "add", "n3", "--group", "compute", "--switch", "sw1", "--port", "3"
    )  # bridge port number
    switch.record(
        PORTS,
        [
            (MAC_N1, 1, 1),
            (MAC_X, 2, 1),
            (MAC_Y, 3, 1),
            (MAC_N2, 3, 1),
            ("52:54:00:ee:00:97", 3, 1),
            ("52:54:00:ee:00:96", 4, 1),
        ],
    )
    with running_server(home, SWARMBOOT_SNMP_POLL_SECONDS="0", SWARMBOOT_SNMP_TIMEOUT="20") as srv:
        # n1's port shows one MAC: the machine boots as n1, without the menu
        script = _script(srv.url, MAC_N1)
        assert "swarmboot.node=n1" in script and "menu" not in script, script
        node = json.loads(cli(home, "node", "show", "n1", "--json").stdout)
        assert node["macs"] == [MAC_N1]
        assert (
            node["log"][-1]["kind"] == "bound"
            and "switch sw1 port ge-0/0/1 (snmp)" in node["log"][-1]["message"]
        )
        assert node["state"]["stage"] == "ipxe"
        # n2 has its MAC; another machine on its port is reported, not rebound: it gets the menu
        menu = _script(srv.url, MAC_X)
        assert "swarmboot.node" not in menu and "menu swarmboot: unknown machine" in menu
        assert "not rebound" in menu
        n2 = json.loads(cli(home, "node", "show", "n2", "--json").stdout)
        assert n2["macs"] == [MAC_N2] and n2["log"][-1]["kind"] == "conflict"
        # port 3 shows several unknown MACs: which one is n3? nothing is bound
        menu = _script(srv.url, MAC_Y)
        assert "swarmboot.node" not in menu and "several unknown MACs" in menu
        assert json.loads(cli(home, "node", "show", "n3", "--json").stdout)["macs"] == []
        # a port no node claims: the menu, with n3 among the unassigned nodes
        menu = _script(srv.url, "52:54:00:ee:00:96")
        assert (
            "menu swarmboot: unknown machine" in menu and "item n3 n3" in menu and "Switch port" not in menu
        )
        # a MAC no switch sees: the menu
        assert "menu swarmboot" in _script(srv.url, "52:54:00:ee:00:55")
        # the bound node's next boot is an ordinary known-MAC boot
        assert "swarmboot.node=n1" in _script(srv.url, MAC_N1)
    assert len(json.loads(cli(home, "node", "show", "n1", "--json").stdout)["log"]) == 1


LISTENER = """
import json, sys
from bootagent.lldp import LldpListener
listener = LldpListener()
listener.open([sys.argv[1]])
print("listening", flush=True)
info = listener.wait(sys.argv[1], float(sys.argv[2]))
print(json.dumps(info.__dict__ if info else None), flush=True)
"""
SENDER = """
import sys, time
from scapy.all import sendp
from scapy.contrib import lldp as sl
from scapy.layers.l2 import Ether
frame = (Ether(dst="01:80:c2:00:00:0e", src="02:00:00:00:00:01") / sl.LLDPDU()
         / sl.LLDPDUChassisID(subtype=4, id="02:00:00:00:00:01")
         / sl.LLDPDUPortID(subtype=5, id=sys.argv[2].encode())
         / sl.LLDPDUTimeToLive(ttl=120) / sl.LLDPDUPortDescription(description=b"rack 1 slot 5")
         / sl.LLDPDUSystemName(system_name=b"leaf-1") / sl.LLDPDUEndOfLLDPDU())
for _ in range(20):
    sendp(frame, iface=sys.argv[1], verbose=False)
    time.sleep(0.5)
"""


@pytest.mark.root
def test_lldp_frames_in_a_namespace_reach_the_agents_listener_and_name_the_node(
    swarmboot_home: Path, settings: Settings, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces)")
    from lab.netns import NetLab

    home = swarmboot_home
    (tmp_path / "listener.py").write_text(LISTENER)
    (tmp_path / "sender.py").write_text(SENDER)
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": os.environ["PATH"]}
    with NetLab() as net:
        switch_ns, node_ns = net.namespace("sw"), net.namespace("node")
        net.veth(switch_ns, "swp5", node_ns, "eth0")
        with node_ns.spawn(
            [sys.executable, str(tmp_path / "listener.py"), "eth0", "20"],
            env=env,
            stdout=open(tmp_path / "heard.txt", "wb"),
        ) as listener:
            from tests.helpers.server import wait_for

            wait_for(lambda: "listening" in (tmp_path / "heard.txt").read_text(), 20, what="the listener")
            with switch_ns.spawn([sys.executable, str(tmp_path / "sender.py"), "swp5", "swp5"], env=env):
                listener.wait(timeout=30)
    heard = json.loads((tmp_path / "heard.txt").read_text().splitlines()[-1])
    assert heard == {
        "chassis": "02:00:00:00:00:01",
        "port": "swp5",
        "port_desc": "rack 1 slot 5",
        "system": "leaf-1",
        "interface": "eth0",
    }
    # What the agent heard goes with its plan request: the server binds the unknown MAC to the
    # node that claims that port (the switch is known by its LLDP chassis ID) and logs it.
    make_version(settings.images_dir, "compute", 1, size=2**20)
    cli(home, "group", "add", "compute", "--image", "compute")
    cli(home, "switch", "add", "leaf1", "--chassis-id", "02:00:00:00:00:01")
    cli(home, "node", "add", "n5", "--group", "compute", "--switch", "leaf1", "--port", "swp5")
    cli(
        home,
        "node",
        "add",
        "n6",
        "--group",
        "compute",
        "--mac",
        MAC_N2,
        "--switch",
        "leaf1",
        "--port",
        "swp6",
    )
    params = {f"lldp_{k}": v for k, v in heard.items() if k != "interface"}
    with running_server(home, SWARMBOOT_SNMP_POLL_SECONDS="0", SWARMBOOT_SNMP_TIMEOUT="20") as srv:
        answer = requests.get(srv.url + "/api/v1/plan", params={"mac": MAC_N1, **params}, timeout=30)
        assert answer.status_code == 404 and "bound to node n5" in answer.json()["error"]
        assert "swarmboot.node=n5" in _script(srv.url, MAC_N1)
        # a known node reporting another port is logged as moved; its inventory stays
        for _ in range(2):  # reported twice, logged once
            plan = requests.get(srv.url + "/api/v1/plan", params={"mac": MAC_N2, **params}, timeout=30)
            assert plan.status_code == 200 and plan.json()["node"]["name"] == "n6"
        # A named node's agent does not wait for LLDP before its plan: a frame heard later goes
        # with a stage's event (the boot NIC's MAC beside it), recorded as from a plan request.
        token = token_headers(boot_token(srv, MAC_N2))
        later = {**params, "lldp_port": "swp7", "mac": MAC_N2}
        for lldp in (later, {**later, "mac": MAC_N1}):  # the second: another node's MAC, dropped
            event = {"stage": "download", "status": "done", "details": {"lldp": lldp}}
            answer = requests.post(f"{srv.url}/api/v1/nodes/n6/events", json=event, headers=token, timeout=30)
            assert answer.status_code == 200, answer.text
        ports = json.loads(cli(home, "switch", "ports", "leaf1", "--json").stdout)["ports"]
        seen = {(p["mac"], p["port"]) for p in ports}
        assert (MAC_N2, "swp7") in seen and (MAC_N1, "swp7") not in seen, ports
    n5 = json.loads(cli(home, "node", "show", "n5", "--json").stdout)
    assert n5["macs"] == [MAC_N1] and "(lldp)" in n5["log"][-1]["message"]
    n6 = json.loads(cli(home, "node", "show", "n6", "--json").stdout)
    assert n6["port"] == "swp6" and [e["kind"] for e in n6["log"]] == ["moved", "moved"]
    assert "LLDP says switch leaf1 port swp5" in n6["log"][0]["message"]
    assert "LLDP says switch leaf1 port swp7" in n6["log"][1]["message"]
