"""The network stage. dracut (network-legacy) brings the network up; the agent finds the boot
interface by its MAC (pyudev) and waits, bounded, until it has an address."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bootagent.errors import NetworkError
from ground.contract.cmdline import StaticAddress
from ground.run import output, run


@dataclass(frozen=True)
class BootInterface:
    name: str
    mac: str
    addresses: tuple[str, ...]  # CIDR, IPv4 first
    gateway: str = ""
    from_ipxe: bool = False  # the agent set iPXE's address (swarmboot.ip); else dracut had set one


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str
    driver: str
    path: str


def list_nics(sys_net: Path = Path("/sys/class/net")) -> list[Nic]:
    """Network interfaces with a hardware address (loopback excluded), read from sysfs: what udev
    would list (tests/integration/test_agent_network.py compares with pyudev), without importing
    pyudev and loading libudev, which costs a TCG guest ~1 s of the network stage. `driver` is the
    PCI device's driver (a virtio NIC's is virtio-pci), else the parent device's."""
    nics = []
    for link in sorted(sys_net.iterdir()) if sys_net.is_dir() else []:
        name = link.name
        try:
            mac = (link / "address").read_text().strip().lower()
        except OSError:
            continue
        if name == "lo" or not mac or mac == "00:00:00:00:00:00":
            continue
        path = link.resolve()
        nics.append(Nic(name=name, mac=mac, driver=_driver(path), path=str(path)))
    return nics


def _driver(net_path: Path) -> str:
    """The driver of the nearest PCI ancestor of /sys/devices/…/net/NAME, else of its parent."""
    parent = net_path.parent.parent  # …/DEVICE/net/NAME -> …/DEVICE
    if not (net_path / "device").exists():
        return ""  # a virtual interface (bridge, veth, tun)
    ancestor = parent
    while ancestor != ancestor.parent and str(ancestor).startswith("/sys/devices"):
        subsystem = ancestor / "subsystem"
        if subsystem.is_symlink() and subsystem.resolve().name == "pci":
            return _link_name(ancestor / "driver")
        ancestor = ancestor.parent
    return _link_name(parent / "driver")


def _link_name(link: Path) -> str:
    return link.resolve().name if link.is_symlink() else ""


def addresses_of(name: str) -> tuple[str, ...]:
    """Global addresses of an interface, IPv4 first, as CIDR strings."""
    data = json.loads(output(["ip", "-j", "addr", "show", "dev", name], timeout=60) or "[]")
    found: list[tuple[int, str]] = []
    for link in data:
        for info in link.get("addr_info", []):
            if info.get("scope") != "global" or info.get("tentative"):
                continue
            family = 0 if info.get("family") == "inet" else 1
            found.append((family, f"{info['local']}/{info['prefixlen']}"))
    return tuple(addr for _, addr in sorted(found, key=lambda x: x[0]))


def link_up(name: str, sys_net: Path = Path("/sys/class/net")) -> bool:
    """Bring the link up (the pre-mount hook may have already); True once it has a carrier."""
    try:
        if (sys_net / name / "carrier").read_text().strip() == "1":
            return True
    except OSError:  # EINVAL while the link is down
        pass
    run(["ip", "link", "set", "dev", name, "up"], timeout=30)
    try:
        return (sys_net / name / "carrier").read_text().strip() == "1"
    except OSError:
        return False


def set_address(name: str, address: StaticAddress, resolv: Path = Path("/etc/resolv.conf")) -> None:
    """iPXE's address on the boot NIC, its default route and name server: what dracut's DHCP would
    have set, without asking the DHCP server a second time. No duplicate-address probe: the DHCP
    server gave this address to this MAC moments ago, for iPXE."""
    commands = [
        "link set dev lo up",  # dracut's network would have (ifup lo)
        f"addr replace {address.interface} dev {name}",
        *([f"route replace default via {address.gateway} dev {name}"] if address.gateway else []),
    ]
    run(["ip", "-batch", "-"], input="\n".join(commands) + "\n", timeout=30)  # one process (execs are slow)
    if address.dns and not resolv.exists():
        resolv.write_text(f"nameserver {address.dns}\n")


def set_hostname(name: str, proc_file: Path) -> bool:
    """The kernel's host name, from the plan: what dracut's DHCP set from option 12 before the
    agent took iPXE's address. The NFSv4 client names itself by it ("Linux NFSv4.1 <hostname>"):
    nodes left at "(none)" present one client to the server and take its state from each other,
    forever (the nfs mode hung after switch_root). `proc_file`: Paths.hostname. True when it
    changed."""
    try:
        if proc_file.read_text().strip() == name:
            return False
        proc_file.write_text(name + "\n")
    except OSError:
        return False
    return True


def default_route() -> tuple[str, str]:
    """(interface, gateway) of the IPv4 default route, or ("", "")."""
    data = json.loads(output(["ip", "-j", "-4", "route", "show", "default"], timeout=60) or "[]")
    for route in data:
        return route.get("dev", ""), route.get("gateway", "")
    return "", ""


def find_boot_interface(  # noqa: PLR0917
    mac: str,
    timeout: float = 60.0,
    poll: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    address: StaticAddress | None = None,
) -> BootInterface:
    """The interface with MAC `mac` (or, without one, the default route's), once it has an address.
    With `address` (swarmboot.ip: iPXE's), the NIC gets it here once its link is up, when dracut
    gave it none."""
    start = clock()
    seen: list[Nic] = []
    while True:
        seen = list_nics()
        candidates = [n for n in seen if n.mac == mac] if mac else []
        if not mac:
            dev, _ = default_route()
            candidates = [n for n in seen if n.name == dev] or [n for n in seen if addresses_of(n.name)]
        for nic in candidates:
            addrs = addresses_of(nic.name)
            if not addrs and address is not None and link_up(nic.name):
                set_address(nic.name, address)  # `ip` said nothing: what it set is what there is
                return BootInterface(nic.name, nic.mac, (str(address.interface),), address.gateway, True)
            if addrs:
                dev, gateway = default_route()
                return BootInterface(nic.name, nic.mac, addrs, gateway if dev == nic.name else "")
        if clock() - start >= timeout:
            break
        sleep(poll)
    listing = ", ".join(f"{n.name} ({n.mac}, {n.driver or 'no driver'})" for n in seen) or "none"
    if mac and not any(n.mac == mac for n in seen):
        raise NetworkError(
            f"no network interface has the MAC {mac} (swarmboot.mac); interfaces: {listing}",
            hint="the NIC's driver may be missing from the initramfs, or swarmboot.mac names another "
            "card of this node",
        )
    raise NetworkError(
        f"the boot interface got no address within {timeout:.0f} s; interfaces: {listing}",
        hint="check DHCP (the server's dnsmasq), the cable/VLAN, and the ip=dhcp rd.neednet=1 arguments",
    )
