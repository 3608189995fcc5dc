"""A switch's forwarding table over SNMP (pysnmp): which MAC was learned on which port.

Read with GETBULK walks of the standard MIBs, the way every managed switch answers:

    Q-BRIDGE-MIB dot1qTpFdbPort   .1.3.6.1.2.1.17.7.1.2.2.1.2.<fdb id>.<mac>  -> bridge port  (VLAN-aware)
    BRIDGE-MIB   dot1dTpFdbPort   .1.3.6.1.2.1.17.4.3.1.2.<mac>             -> bridge port  (fallback)
    BRIDGE-MIB   dot1dBasePortIfIndex .1.3.6.1.2.1.17.1.4.1.2.<port>         -> ifIndex
    IF-MIB       ifName .1.3.6.1.2.1.31.1.1.1.1.<ifIndex>, ifDescr .1.3.6.1.2.1.2.2.1.2.<ifIndex>

Entries whose status (dot1qTpFdbStatus / dot1dTpFdbStatus) is `self` (the switch's own MACs) are
left out. A port is known by all its names (ifName, ifDescr, the bridge port number), so an
inventory that says `--port Gi1/0/7`, `GigabitEthernet1/0/7` or `7` finds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ground.errors import SwarmbootError

DOT1Q_FDB_PORT = (1, 3, 6, 1, 2, 1, 17, 7, 1, 2, 2, 1, 2)
DOT1Q_FDB_STATUS = (1, 3, 6, 1, 2, 1, 17, 7, 1, 2, 2, 1, 3)
DOT1D_FDB_PORT = (1, 3, 6, 1, 2, 1, 17, 4, 3, 1, 2)
DOT1D_FDB_STATUS = (1, 3, 6, 1, 2, 1, 17, 4, 3, 1, 3)
DOT1D_PORT_IFINDEX = (1, 3, 6, 1, 2, 1, 17, 1, 4, 1, 2)
IF_NAME = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
STATUS_SELF = 4
AUTH = {
    "md5": "usmHMACMD5AuthProtocol",
    "sha": "usmHMACSHAAuthProtocol",
    "sha224": "usmHMAC128SHA224AuthProtocol",
    "sha256": "usmHMAC192SHA256AuthProtocol",
    "sha384": "usmHMAC256SHA384AuthProtocol",
    "sha512": "usmHMAC384SHA512AuthProtocol",
}
PRIV = {
    "des": "usmDESPrivProtocol",
    "3des": "usm3DESEDEPrivProtocol",
    "aes": "usmAesCfb128Protocol",
    "aes192": "usmAesCfb192Protocol",
    "aes256": "usmAesCfb256Protocol",
}


class SnmpError(SwarmbootError):
    """A switch did not give its forwarding table."""


@dataclass(frozen=True)
class FdbEntry:
    mac: str
    port: str  # the port's best name: ifName, else ifDescr, else the bridge port number
    names: tuple[str, ...]  # every name the port goes by
    vlan: int = 0  # the Q-BRIDGE fdb id (0 from BRIDGE-MIB)


def _mac(octets: Iterable[int]) -> str:
    return ":".join(f"{o:02x}" for o in octets)


def _target(settings: dict[str, Any], default_host: str) -> tuple[str, int]:
    address = settings.get("address") or default_host
    if not address:
        raise SnmpError(
            "the switch has no SNMP address", hint="swarmboot switch set NAME --snmp-address HOST[:PORT]"
        )
    host, sep, port = address.rpartition(":")
    return (host, int(port)) if sep else (address, 161)


def _auth(settings: dict[str, Any]) -> Any:
    from pysnmp.hlapi.v3arch import asyncio as hl

    if settings.get("version") == "3":
        auth = settings.get("auth_protocol", "")
        priv = settings.get("priv_protocol", "")
        return hl.UsmUserData(
            settings["user"],
            authKey=settings.get("auth_key") if auth else None,
            privKey=settings.get("priv_key") if priv else None,
            authProtocol=getattr(hl, AUTH[auth]) if auth else hl.usmNoAuthProtocol,
            privProtocol=getattr(hl, PRIV[priv]) if priv else hl.usmNoPrivProtocol,
        )
    return hl.CommunityData(settings.get("community", "public"), mpModel=1)


Rows = list[tuple[tuple[int, ...], Any]]


async def _walk(engine: Any, auth: Any, target: Any, context: str, root: tuple[int, ...]) -> Rows:
    from pysnmp.hlapi.v3arch import asyncio as hl

    rows: Rows = []
    async for error, status, index, binds in hl.bulk_walk_cmd(
        engine,
        auth,
        target,
        hl.ContextData(contextName=context),
        0,
        50,
        hl.ObjectType(hl.ObjectIdentity(root)),
        lexicographicMode=False,
        lookupMib=False,
    ):
        if error:
            raise SnmpError(str(error))
        if status:
            raise SnmpError(f"{status.prettyPrint()} at {binds[int(index) - 1][0] if index else '?'}")
        for oid, value in binds:
            suffix = tuple(oid)[len(root) :]
            if tuple(oid)[: len(root)] == root and suffix:
                rows.append((suffix, value))
    return rows


async def _table(settings: dict[str, Any], host: str, port: int, timeout: float) -> list[FdbEntry]:
    from pysnmp.hlapi.v3arch import asyncio as hl

    engine = hl.SnmpEngine()
    try:
        target = await hl.UdpTransportTarget.create((host, port), timeout=max(0.5, timeout / 3), retries=1)
        auth = _auth(settings)
        context = settings.get("context", "") if settings.get("version") == "3" else ""
        walk = lambda root: _walk(engine, auth, target, context, root)  # noqa: E731
        q_ports, q_status, d_ports, d_status, if_index, names, descrs = await asyncio.gather(
            walk(DOT1Q_FDB_PORT),
            walk(DOT1Q_FDB_STATUS),
            walk(DOT1D_FDB_PORT),
            walk(DOT1D_FDB_STATUS),
            walk(DOT1D_PORT_IFINDEX),
            walk(IF_NAME),
            walk(IF_DESCR),
        )
    finally:
        engine.close_dispatcher()
    return fdb_entries(
        q_ports=q_ports,
        q_status=q_status,
        d_ports=d_ports,
        d_status=d_status,
        if_index=if_index,
        if_names=names,
        if_descrs=descrs,
    )


def fdb_entries(
    *,
    q_ports: list[tuple[tuple[int, ...], Any]],
    q_status: list[tuple[tuple[int, ...], Any]],
    d_ports: list[tuple[tuple[int, ...], Any]],
    d_status: list[tuple[tuple[int, ...], Any]],
    if_index: list[tuple[tuple[int, ...], Any]],
    if_names: list[tuple[tuple[int, ...], Any]],
    if_descrs: list[tuple[tuple[int, ...], Any]],
) -> list[FdbEntry]:
    """The table from the walked columns (pure: unit-tested without a switch)."""
    to_ifindex = {suffix[0]: int(v) for suffix, v in if_index if len(suffix) == 1}
    name_of = {suffix[0]: str(v) for suffix, v in if_names if len(suffix) == 1}
    descr_of = {suffix[0]: str(v) for suffix, v in if_descrs if len(suffix) == 1}
    selfish = {s for s, v in q_status if int(v) == STATUS_SELF} | {
        s for s, v in d_status if int(v) == STATUS_SELF
    }
    learned: dict[str, tuple[int, int]] = {}  # mac -> (bridge port, vlan)
    for suffix, value in q_ports:
        if len(suffix) == 7 and suffix not in selfish and int(value) > 0:
            learned.setdefault(_mac(suffix[1:]), (int(value), suffix[0]))
    for suffix, value in d_ports:
        if len(suffix) == 6 and suffix not in selfish and int(value) > 0:
            learned.setdefault(_mac(suffix), (int(value), 0))
    entries = []
    for mac, (bridge_port, vlan) in sorted(learned.items()):
        index = to_ifindex.get(bridge_port, bridge_port)  # no dot1dBasePortIfIndex: port = ifIndex
        names = [n for n in (name_of.get(index), descr_of.get(index), str(bridge_port)) if n]
        unique = tuple(dict.fromkeys(names))
        entries.append(FdbEntry(mac, unique[0], unique, vlan))
    return entries


def forwarding_table(settings: dict[str, Any], default_host: str, timeout: float = 5.0) -> list[FdbEntry]:
    """Every MAC the switch learned and the port it learned it on. SnmpError if it does not answer."""
    if not settings.get("version"):
        raise SnmpError(
            "SNMP is not set up for this switch",
            hint="swarmboot switch set NAME --snmp-version 2c --snmp-community COMMUNITY",
        )
    host, port = _target(settings, default_host)
    try:
        return asyncio.run(asyncio.wait_for(_table(settings, host, port, timeout), timeout + 1))
    except SnmpError as exc:
        raise SnmpError(
            f"the switch at {host}:{port} did not answer SNMP: {exc.message}",
            hint="check its SNMP address, version and community or v3 user (swarmboot switch show NAME)",
        ) from None
    except TimeoutError:
        raise SnmpError(
            f"the switch at {host}:{port} did not answer SNMP within {timeout:.0f} s",
            hint="check its SNMP address, version and community (swarmboot switch show NAME)",
        ) from None
