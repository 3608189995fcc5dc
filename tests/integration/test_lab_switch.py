"""The lab's bridge as a managed switch (lab/labswitch.py), without virtual machines: a "machine"
on a veth named like a node's tap sends frames, the bridge learns its MAC, snmpsim reports it
from the bridge's real forwarding table, and the real server in the lab names the machine by its
port when it asks for its iPXE script from inside the lab; the LLDP frame the tap gets is heard by
the agent's listener there. (The QEMU boot of the same path is tests/e2e/test_boot.py.)"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from ground.config import Settings
from lab.lab import BRIDGE, Lab, LabSpec
from lab.labswitch import CHASSIS_ID
from lab.packed import make_version

pytestmark = pytest.mark.root
MAC = "52:54:00:5b:77:01"
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=30).read().decode())"
LISTEN = ("import json, sys; from bootagent.lldp import LldpListener; l = LldpListener(); l.open(['eth0']); "
          "i = l.wait('eth0', 5); print(json.dumps(i.params() if i else None))")


def test_a_machine_on_a_lab_port_is_named_by_it(tmp_path: Path, settings: Settings) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    spec = LabSpec(home=settings.home, workdir=tmp_path / "work", port=8099)
    make_version(settings.images_dir, "compute", 1, size=2**20)
    with Lab(spec) as lab:
        lab.add_network()
        switch = lab.add_switch()
        lab.cli("switch", "add", "labsw", *switch.cli_args())
        lab.cli("group", "add", "compute", "--image", "compute")
        port = lab.tap_of("p1")
        lab.cli("node", "add", "p1", "--group", "compute", "--switch", "labsw", "--port", port)
        lab.start_server()
        machine = lab.netlab.namespace("p1")
        lab.netlab.veth(lab.namespace, port, machine, "eth0")
        # its MAC before the port joins the bridge: frames from the veth's random MAC sent in
        # between were learned too, and two unknown MACs on the port bind none (a CI run failed so)
        machine.ip("link", "set", "eth0", "address", MAC)
        lab.netlab.attach(lab.namespace, port, BRIDGE)
        machine.ip("addr", "add", "10.77.0.250/24", "dev", "eth0")
        heard = json.loads(machine.run([sys.executable, "-c", LISTEN], timeout=30).stdout)
        script = machine.run([sys.executable, "-c", FETCH, f"{spec.server_url}/boot/ipxe?mac={MAC}"],
                             timeout=60).stdout
        plan = machine.run([sys.executable, "-c", FETCH, f"{spec.server_url}/api/v1/plan?mac={MAC}&"
                            + "&".join(f"{k}={v.replace(' ', '+')}" for k, v in heard.items())],
                           timeout=60, check=False)
        node = json.loads(lab.cli("node", "show", "p1", "--json"))
    assert heard == {"lldp_chassis": CHASSIS_ID, "lldp_port": port, "lldp_port_desc": f"lab port {port}",
                     "lldp_system": "labsw"}
    assert "swarmboot.node=p1" in script and "swarmboot.lldp_wait=5" in script, script
    assert node["macs"] == [MAC]
    assert [e["kind"] for e in node["log"]] == ["bound"], node["log"]  # same port by LLDP: no move
    assert f"seen on switch labsw port {port} (snmp)" in node["log"][0]["message"]
    # the agent's plan request with what it heard: p1's plan (the LLDP port is p1's, nothing logged)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["node"]["name"] == "p1"
