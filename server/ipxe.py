"""iPXE scripts from the Jinja2 templates in ipxe/: start, per-node boot, unknown-machine menu.

The kernel command line is the agent's contract (ground/contract/cmdline.py, docs/design.md):
    root=swarmboot swarmboot.server=URL swarmboot.node=NAME swarmboot.mac=MAC [swarmboot.service=1]
    swarmboot.ip=${netX/ip}:${netX/netmask}:${netX/gateway}:${netX/dns} (iPXE's address: no second
    DHCP; with the initramfs_dhcp setting `ip=dhcp rd.neednet=1` instead)
    [console=…] [initrd=initramfs.img under EFI] <group args> <node args>
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from ground.contract.cmdline import boot_arguments
from ground.errors import ConflictError
from ground.inputs import bad_text, printable
from server.boot_peers import Holder
from server.catalog import Catalog, Version
from server.inventory.models import Node

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "ipxe"
PLATFORMS = ("pcbios", "efi")


@functools.cache
def env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def platform_of(value: str | None) -> str:
    """iPXE's ${platform}: 'efi' or 'pcbios' (anything unknown is treated as BIOS)."""
    return "efi" if value == "efi" else "pcbios"


def cmdline(
    node: Node | None,
    version: Version,
    server_url: str,
    mac: str,
    *,
    platform: str,
    service: bool,
    token: str = "",
    lldp_wait: int = 0,
    initramfs_dhcp: bool = False,
) -> str:
    name = node.name if node is not None else ""
    args = boot_arguments(server_url, name, mac, service=service, token=token, lldp_wait=lldp_wait,
                          ipxe_address=not initramfs_dhcp)
    if initramfs_dhcp:
        args += ["ip=dhcp", "rd.neednet=1"]
    group_args = node.group.kernel_args if node is not None else ""
    node_args = node.kernel_args if node is not None else ""
    consoles = node.group.console if node is not None else "ttyS0,115200 tty0"
    if "console=" not in f"{group_args} {node_args}":
        args += [f"console={c}" for c in consoles.split()]
    if platform == "efi":
        args.append(f"initrd={version.manifest.initramfs.name}")
    args += [a for a in (group_args, node_args) if a]
    line = " ".join(args)
    problem = bad_text(line)
    if problem:  # the inventory refuses these; a row from before that check must not add script lines
        raise ConflictError(
            f"the kernel command line of {node.name if node else 'the rescue shell'} is refused: {problem}",
            hint="fix the group's and the node's kernel_args (swarmboot group set / node set --kernel-args)",
        )
    return line


def render_start(server_url: str) -> str:
    return env().get_template("start.ipxe.j2").render(server_url=server_url)


def render_node(
    node: Node | None,
    version: Version,
    catalog: Catalog,
    mac: str,
    *,
    platform: str,
    service: bool,
    group_name: str = "",
    token: str = "",
    lldp_wait: int = 0,
    peer: Holder | None = None,
    initramfs_dhcp: bool = False,
) -> str:
    """`peer`: a booted node serving this version's kernel and initramfs (server/boot_peers.py);
    the script tries it first and the server after it (iPXE's `||`)."""
    m = version.manifest
    return (
        env()
        .get_template("node.ipxe.j2")
        .render(
            node=node.name if node else "(rescue)",
            group=node.group.name if node else group_name,
            image=m.image,
            version=m.version,
            platform=platform,
            service=service,
            mac=mac,
            server_url=catalog.server_url,
            kernel_url=catalog.url(version, m.kernel.name),
            initrd_url=catalog.url(version, m.initramfs.name),
            peer_kernel_url=peer.url(m.kernel.name) if peer else "",
            peer_initrd_url=peer.url(m.initramfs.name) if peer else "",
            peer=peer.node if peer else "",
            # every head node sharing the inventory, this one first (the agent fails over)
            cmdline=cmdline(
                node, version, catalog.server_list, mac, platform=platform, service=service,
                token=token, lldp_wait=lldp_wait, initramfs_dhcp=initramfs_dhcp,
            ),
        )
    )


def render_menu(
    mac: str,
    platform: str,
    server_url: str,
    *,
    unassigned: list[str],
    unassigned_total: int,
    timeout: int,
    notices: list[str] = (),  # type: ignore[assignment]
) -> str:
    """The unknown-machine menu; `notices` (switch-port conflicts) are shown above the choices."""
    return (
        env()
        .get_template("menu.ipxe.j2")
        .render(
            mac=mac,
            platform=platform,
            server_url=server_url,
            unassigned=unassigned,
            unassigned_total=unassigned_total,
            timeout=timeout,
            notices=[n.replace("${", "$ {").replace("\n", " ") for n in notices],
        )
    )


def render_message(title: str, lines: list[str], mac: str, server_url: str, retry: int = 30) -> str:
    safe = [printable(line).replace("${", "$ {") for line in lines]
    return (
        env()
        .get_template("message.ipxe.j2")
        .render(title=printable(title).replace("${", "$ {"), lines=safe, mac=mac, server_url=server_url,
                retry=retry)
    )



def render_local(node: Node, version: Version, *, platform: str) -> str:
    """Boot from the local disk (a disk-mode node whose installed version is current): BIOS
    `sanboot --drive 0x80`, UEFI `exit` to the firmware's next boot entry."""
    return (
        env()
        .get_template("installed.ipxe.j2")
        .render(platform=platform, node=node.name, image=version.manifest.image,
                version=version.manifest.version)
    )
