"""The lab's bridge as a managed switch: its taps are the ports nodes are plugged into.

- SNMP: snmpsim (lab/switchsim.py) in the lab's namespace answers from a walk that a recorder
  thread writes from the real bridge's forwarding table (`bridge fdb`, every 0.5 s): the MACs the
  bridge learned on each tap, as a switch's BRIDGE-MIB would show them. Nothing is made up: a
  machine's MAC appears on its tap once it has sent a frame (its DHCP request).
- LLDP: a sender in the namespace sends every tap an LLDP frame each second (scapy's LLDP layer:
  chassis ID, port ID = the tap's name, port description, system name), as a switch port does.

    sw = LabSwitch(lab, name="labsw"); sw.start()   # then: swarmboot switch add labsw …sw.cli_args()
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground import run as runmod
from ground.errors import SwarmbootError
from lab.netns import Namespace
from lab.switchsim import SwitchSim

CHASSIS_ID = "02:77:00:00:00:01"
SNMP_PORT = 1161
TAP_PREFIX = "sbtap"
SENDER = """
import sys, time, os
from scapy.all import sendp
from scapy.contrib import lldp as sl
from scapy.layers.l2 import Ether
chassis, system, prefix, until = sys.argv[1], sys.argv[2], sys.argv[3], time.monotonic() + float(sys.argv[4])
def frame(port):
    return (Ether(dst="01:80:c2:00:00:0e", src=chassis) / sl.LLDPDU()
            / sl.LLDPDUChassisID(subtype=4, id=chassis) / sl.LLDPDUPortID(subtype=5, id=port.encode())
            / sl.LLDPDUTimeToLive(ttl=120) / sl.LLDPDUPortDescription(description=f"lab port {port}".encode())
            / sl.LLDPDUSystemName(system_name=system.encode()) / sl.LLDPDUEndOfLLDPDU())
while time.monotonic() < until:
    for port in sorted(p for p in os.listdir("/sys/class/net") if p.startswith(prefix)):
        try:
            sendp(frame(port), iface=port, verbose=False)
        except OSError:
            pass  # a tap whose QEMU has gone
    time.sleep(1.0)
"""


@dataclass
class LabSwitch:
    namespace: Namespace
    workdir: Path
    server_ip: str
    bridge: str = "br0"
    name: str = "labsw"
    community: str = "lab-ro"
    lifetime_s: float = 7200.0  # the LLDP sender stops by itself after this long
    sim: SwitchSim | None = None
    recorded: list[tuple[str, str]] = field(default_factory=list)  # (mac, tap) as last written
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sender: runmod.Child | None = None

    def start(self) -> None:
        ns_argv = ("ip", "netns", "exec", self.namespace.name)
        self.sim = SwitchSim(
            self.workdir / "switch",
            community=self.community,
            host=self.server_ip,
            port=SNMP_PORT,
            namespace_argv=ns_argv,
        )
        self.sim.start()
        self._record()
        self._thread = threading.Thread(target=self._loop, name="lab-switch", daemon=True)
        self._thread.start()
        script = self.workdir / "lldp-sender.py"
        script.write_text(SENDER)
        log = open(self.workdir / "lldp-sender.log", "wb")  # noqa: SIM115
        self._sender = self.namespace.spawn(
            [sys.executable, str(script), CHASSIS_ID, self.name, TAP_PREFIX, str(self.lifetime_s)],
            stdout=log,
            stderr=log,
        )
        log.close()

    def cli_args(self) -> list[str]:
        """`swarmboot switch add NAME` options for this switch."""
        assert self.sim is not None
        return [
            "--chassis-id",
            CHASSIS_ID,
            "--snmp-version",
            "2c",
            "--snmp-address",
            self.sim.address,
            "--snmp-community",
            self.community,
            "--description",
            "the lab's bridge",
        ]

    def _ports_and_fdb(self) -> tuple[dict[int, str], list[tuple[str, int, int]]]:
        links: list[dict[str, Any]] = json.loads(
            runmod.run(
                ["ip", "-n", self.namespace.name, "-j", "link", "show", "master", self.bridge], timeout=30
            ).stdout
            or "[]"
        )
        ports = {int(link["ifindex"]): str(link["ifname"]) for link in links}
        index_of = {name: index for index, name in ports.items()}
        entries: list[dict[str, Any]] = json.loads(
            runmod.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.namespace.name,
                    "bridge",
                    "-j",
                    "fdb",
                    "show",
                    "br",
                    self.bridge,
                ],
                timeout=30,
            ).stdout
            or "[]"
        )
        fdb = []
        for entry in entries:
            port = index_of.get(str(entry.get("ifname", "")))
            if (
                port is None
                or "permanent" in str(entry.get("state", ""))
                or entry.get("mac", "").startswith("33:33")
            ):
                continue
            if int(entry["mac"].split(":")[0], 16) & 1:  # multicast
                continue
            fdb.append((str(entry["mac"]), port, 1))
        return ports, sorted(set(fdb))

    def _record(self) -> None:
        assert self.sim is not None
        ports, fdb = self._ports_and_fdb()
        now = sorted((mac, ports[port]) for mac, port, _ in fdb)
        if now != self.recorded:
            self.sim.record(ports, fdb, name=self.name, own_macs=[CHASSIS_ID])
            self.recorded = now

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(SwarmbootError, OSError, ValueError, KeyError):  # a tap gone meanwhile
                self._record()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sender is not None:
            self._sender.stop(grace=2)
        if self.sim is not None:
            self.sim.close()
