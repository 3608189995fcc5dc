"""Forwarding tables from walked columns (server/switches/snmp.py fdb_entries), without a switch."""

from __future__ import annotations

from server.switches.snmp import fdb_entries

MAC_A = (0x52, 0x54, 0, 0xAA, 0, 1)
MAC_B = (0x52, 0x54, 0, 0xAA, 0, 2)
SELF = (2, 0, 0, 0, 0, 1)


def test_q_bridge_ports_map_through_base_port_to_ifname() -> None:
    entries = fdb_entries(
        q_ports=[((10, *MAC_A), 7), ((10, *SELF), 0), ((20, *MAC_B), 8)],
        q_status=[((10, *MAC_A), 3), ((10, *SELF), 4), ((20, *MAC_B), 3)],
        d_ports=[],
        d_status=[],
        if_index=[((7,), 107), ((8,), 108)],
        if_names=[((107,), "Gi1/0/7"), ((108,), "Gi1/0/8")],
        if_descrs=[((107,), "GigabitEthernet1/0/7")],
    )
    assert [(e.mac, e.port, e.vlan) for e in entries] == [
        ("52:54:00:aa:00:01", "Gi1/0/7", 10),
        ("52:54:00:aa:00:02", "Gi1/0/8", 20),
    ]
    assert entries[0].names == ("Gi1/0/7", "GigabitEthernet1/0/7", "7")


def test_bridge_mib_fallback_self_entries_dropped_port_number_when_no_names() -> None:
    entries = fdb_entries(
        q_ports=[],
        q_status=[],
        d_ports=[(MAC_A, 3), (SELF, 0), (MAC_B, 4)],
        d_status=[(MAC_A, 3), (SELF, 4), (MAC_B, 4)],
        if_index=[],
        if_names=[],
        if_descrs=[],
    )
    assert [(e.mac, e.port, e.names) for e in entries] == [("52:54:00:aa:00:01", "3", ("3",))]
