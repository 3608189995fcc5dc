"""LLDP on the boot NIC: what the switch says about the port this node is plugged into.

A raw AF_PACKET socket for the LLDP ethertype (0x88cc), opened when the agent starts, so frames
that arrive while it sets up are kept; before the plan request the agent takes what came, waiting
at most `swarmboot.lldp_wait` seconds for a first frame (switches send one every ~30 s). The
frame's chassis ID, port ID, port description and system name go to the server with the plan
request (`lldp_*` parameters), which names the node by its port (docs/design.md).

Only the four TLVs read here are decoded (type 7 bits, length 9 bits, value): no LLDP stack.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass

ETH_P_LLDP = 0x88CC
LLDP_MULTICAST = bytes.fromhex("0180c200000e")
SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_MULTICAST = 263, 1, 0
TLV_END, TLV_CHASSIS, TLV_PORT, TLV_PORT_DESC, TLV_SYSTEM = 0, 1, 2, 4, 5
SUBTYPE_MAC = {TLV_CHASSIS: 4, TLV_PORT: 3}  # chassis ID / port ID subtypes that hold a MAC
SUBTYPE_ADDRESS = {TLV_CHASSIS: 5, TLV_PORT: 4}  # a network address (family byte, then the address)
MAX_TEXT = 255


@dataclass(frozen=True)
class LldpInfo:
    chassis: str
    port: str
    port_desc: str = ""
    system: str = ""
    interface: str = ""

    def params(self) -> dict[str, str]:
        """The plan request's parameters."""
        values = {
            "lldp_chassis": self.chassis,
            "lldp_port": self.port,
            "lldp_port_desc": self.port_desc,
            "lldp_system": self.system,
        }
        return {k: v for k, v in values.items() if v}


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip("\x00").strip()[:MAX_TEXT]


def _id(kind: int, value: bytes) -> str:
    if not value:
        return ""
    subtype, body = value[0], value[1:]
    if subtype == SUBTYPE_MAC[kind] and len(body) == 6:
        return ":".join(f"{b:02x}" for b in body)
    if subtype == SUBTYPE_ADDRESS[kind] and len(body) == 5 and body[0] == 1:  # IPv4
        return socket.inet_ntoa(body[1:])
    return _text(body)


def parse_frame(frame: bytes) -> LldpInfo | None:
    """Decode an Ethernet frame carrying LLDP (an 802.1Q tag is allowed); None if it is not one or
    lacks the chassis and port IDs."""
    if len(frame) < 16:
        return None
    offset, ethertype = 12, struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x8100:
        offset, ethertype = 16, struct.unpack_from("!H", frame, 16)[0]
    if ethertype != ETH_P_LLDP:
        return None
    return parse_tlvs(frame[offset + 2 :])


def parse_tlvs(data: bytes) -> LldpInfo | None:
    values: dict[int, str] = {}
    pos = 0
    while pos + 2 <= len(data):
        header = struct.unpack_from("!H", data, pos)[0]
        kind, length = header >> 9, header & 0x1FF
        value = data[pos + 2 : pos + 2 + length]
        if kind == TLV_END or len(value) < length:
            break
        if kind in (TLV_CHASSIS, TLV_PORT) and kind not in values:
            values[kind] = _id(kind, value)
        elif kind in (TLV_PORT_DESC, TLV_SYSTEM) and kind not in values:
            values[kind] = _text(value)
        pos += 2 + length
    if not values.get(TLV_CHASSIS) or not values.get(TLV_PORT):
        return None
    return LldpInfo(
        values[TLV_CHASSIS], values[TLV_PORT], values.get(TLV_PORT_DESC, ""), values.get(TLV_SYSTEM, "")
    )


class LldpListener:
    """LLDP frames arriving on any interface from `open()` on; `wait()` the first one on an
    interface. Nothing happens at import or construction."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.started = 0.0
        self.seen: dict[str, LldpInfo] = {}  # interface -> the last frame heard on it
        self.error = ""

    def open(self, interfaces: list[str] = ()) -> None:  # type: ignore[assignment]
        """Listen (needs CAP_NET_RAW; a failure is kept in `error` and the boot goes on)."""
        self.started = time.monotonic()
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_LLDP))
        except OSError as exc:
            self.error = f"cannot listen for LLDP: {exc.strerror}"
            return
        sock.setblocking(False)
        self.sock = sock
        for name in interfaces:
            self.join(name)

    def join(self, interface: str) -> None:
        """Ask the NIC for LLDP's multicast group (some drivers filter it otherwise)."""
        if self.sock is None:
            return
        try:
            index = socket.if_nametoindex(interface)
            mreq = struct.pack("iHH8s", index, PACKET_MR_MULTICAST, 6, LLDP_MULTICAST)
            self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except OSError:
            pass  # promiscuous or not: many NICs pass link-local multicast anyway

    def _drain(self) -> None:
        while self.sock is not None:
            try:
                frame, address = self.sock.recvfrom(9216)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error = f"LLDP: {exc.strerror}"
                return
            info = parse_frame(frame)
            if info is not None:
                interface = str(address[0])
                self.seen[interface] = LldpInfo(
                    info.chassis, info.port, info.port_desc, info.system, interface
                )

    def wait(self, interface: str, seconds: float) -> LldpInfo | None:
        """The frame heard on `interface`, waiting until `seconds` after `open()` for one."""
        deadline = self.started + max(0.0, seconds)
        while self.sock is not None:
            self._drain()
            if interface in self.seen:
                return self.seen[interface]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            select.select([self.sock], [], [], min(left, 0.5))
        return None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
