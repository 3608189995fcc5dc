"""The agent's LLDP decoder: real frames made by scapy's LLDP layer (an independent encoder)."""

from __future__ import annotations

import pytest
from scapy.contrib import lldp as sl
from scapy.layers.l2 import Dot1Q, Ether

from bootagent.lldp import LldpInfo, parse_frame
from ground.contract.cmdline import CmdlineError, parse_cmdline

MULTICAST = "01:80:c2:00:00:0e"


def frame(*tlvs: object, vlan: int = 0) -> bytes:
    eth = Ether(dst=MULTICAST, src="02:00:00:00:00:01")
    body = sl.LLDPDU()
    for tlv in tlvs:
        body = body / tlv
    return bytes(eth / Dot1Q(vlan=vlan) / body if vlan else eth / body)


def basic(*extra: object) -> tuple[object, ...]:
    return (
        sl.LLDPDUChassisID(subtype=sl.LLDPDUChassisID.SUBTYPE_MAC_ADDRESS, id="00:1b:21:aa:bb:cc"),
        sl.LLDPDUPortID(subtype=sl.LLDPDUPortID.SUBTYPE_INTERFACE_NAME, id=b"Gi1/0/7"),
        sl.LLDPDUTimeToLive(ttl=120),
        *extra,
        sl.LLDPDUEndOfLLDPDU(),
    )


def test_chassis_mac_port_name_description_and_system_name() -> None:
    info = parse_frame(
        frame(
            *basic(
                sl.LLDPDUPortDescription(description=b"rack 4 node 7"),
                sl.LLDPDUSystemName(system_name=b"leaf-04"),
            )
        )
    )
    assert info == LldpInfo("00:1b:21:aa:bb:cc", "Gi1/0/7", "rack 4 node 7", "leaf-04")
    assert info.params() == {
        "lldp_chassis": "00:1b:21:aa:bb:cc",
        "lldp_port": "Gi1/0/7",
        "lldp_port_desc": "rack 4 node 7",
        "lldp_system": "leaf-04",
    }


def test_a_vlan_tag_and_other_id_subtypes() -> None:
    tlvs = (
        sl.LLDPDUChassisID(subtype=sl.LLDPDUChassisID.SUBTYPE_LOCALLY_ASSIGNED, id=b"sw-17"),
        sl.LLDPDUPortID(subtype=sl.LLDPDUPortID.SUBTYPE_MAC_ADDRESS, id="00:1b:21:00:00:07"),
        sl.LLDPDUTimeToLive(ttl=120),
        sl.LLDPDUEndOfLLDPDU(),
    )
    info = parse_frame(frame(*tlvs, vlan=20))
    assert info is not None and (info.chassis, info.port) == ("sw-17", "00:1b:21:00:00:07")
    assert info.params() == {"lldp_chassis": "sw-17", "lldp_port": "00:1b:21:00:00:07"}


def test_not_lldp_truncated_or_without_a_port_is_none() -> None:
    good = frame(*basic())
    assert parse_frame(good[:12] + b"\x08\x00" + good[14:]) is None  # IPv4 ethertype
    assert parse_frame(good[:20]) is None  # cut inside the port TLV
    no_port = frame(
        sl.LLDPDUChassisID(subtype=4, id="00:1b:21:aa:bb:cc"),
        sl.LLDPDUTimeToLive(ttl=1),
        sl.LLDPDUEndOfLLDPDU(),
    )
    assert parse_frame(no_port) is None


def test_lldp_wait_on_the_kernel_command_line() -> None:
    base = "root=swarmboot swarmboot.server=http://10.0.0.1:8080 swarmboot.mac=52:54:00:00:00:01"
    assert parse_cmdline(base).lldp_wait == 0.0
    assert parse_cmdline(base + " swarmboot.lldp_wait=35").lldp_wait == 35.0
    assert parse_cmdline(base + " swarmboot.lldp_wait=0").lldp_wait == 0.0
    for bad in ("301", "-1", "soon"):
        with pytest.raises(CmdlineError, match="lldp_wait"):
            parse_cmdline(base + f" swarmboot.lldp_wait={bad}")
