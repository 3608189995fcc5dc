"""The node's own files in the booted system: hostname, /etc/hosts, machine-id, network
configuration for the image's network stack, the plan's per-node files, and the unit that reports
`booted` to the server once multi-user is reached.

Rendering is pure (strings from data, unit-tested); `write_node_files` puts them in place.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bootagent.errors import FilesError
from ground.contract.booted import AUTHORIZED_KEYS, with_keys
from ground.contract.cmdline import TOKEN_HEADER
from ground.contract.plan import BootPlan, NodeFile

NM, IFUPDOWN, NETWORKD, NONE = "networkmanager", "ifupdown", "networkd", "none"
BOOTED_UNIT = "swarmboot-booted.service"
REPORT_SCRIPT = "usr/local/lib/swarmboot/report-booted"
HOSTS_FIELD = re.compile(r"[A-Za-z0-9._:/-]*")  # names, domains, IPv4/IPv6 addresses (CIDR)


@dataclass(frozen=True)
class NetIface:
    """An interface to configure, its name resolved ("" address: DHCP)."""

    name: str
    mac: str
    address: str = ""
    gateway: str = ""
    dns: tuple[str, ...] = ()
    mtu: int = 0


def _exists(sysroot: Path, *candidates: str) -> bool:
    return any(os.path.lexists(sysroot / c) for c in candidates)


def detect_network_stack(sysroot: Path) -> str:
    """NetworkManager if installed, else ifupdown if installed, else systemd-networkd."""
    if _exists(sysroot, "usr/sbin/NetworkManager", "sbin/NetworkManager"):
        return NM
    if _exists(sysroot, "usr/sbin/ifup", "sbin/ifup"):
        return IFUPDOWN
    if _exists(sysroot, "usr/lib/systemd/systemd-networkd", "lib/systemd/systemd-networkd"):
        return NETWORKD
    return NONE


def render_networkd(ifaces: list[NetIface], network_root: bool = False) -> dict[str, str]:
    """One .network file per interface. `network_root` (the nfs mode: / is on the network):
    networkd keeps the address the initramfs configured instead of dropping it while it starts
    (systemd.network(5), KeepConfiguration: "useful for network root filesystems")."""
    files = {}
    for i, iface in enumerate(ifaces):
        lines = ["[Match]", f"MACAddress={iface.mac}", "", "[Network]"]
        if network_root:
            lines.append("KeepConfiguration=yes")
        if iface.address:
            lines.append(f"Address={iface.address}")
            if iface.gateway:
                lines.append(f"Gateway={iface.gateway}")
        else:
            lines.append("DHCP=yes")
        lines += [f"DNS={d}" for d in iface.dns]
        if iface.mtu:
            lines += ["", "[Link]", f"MTUBytes={iface.mtu}"]
        files[f"etc/systemd/network/{10 + i:02d}-swarmboot-{iface.name or i}.network"] = (
            "\n".join(lines) + "\n"
        )
    return files


def render_ifupdown(ifaces: list[NetIface]) -> dict[str, str]:
    blocks = ["# Written by the swarmboot agent at boot."]
    for iface in ifaces:
        if iface.address:
            block = [f"auto {iface.name}", f"iface {iface.name} inet static", f"    address {iface.address}"]
            if iface.gateway:
                block.append(f"    gateway {iface.gateway}")
            if iface.dns:
                block.append("    dns-nameservers " + " ".join(iface.dns))
        else:
            block = [f"auto {iface.name}", f"iface {iface.name} inet dhcp"]
        if iface.mtu:
            block.append(f"    mtu {iface.mtu}")
        blocks.append("\n".join(block))
    return {"etc/network/interfaces.d/swarmboot": "\n\n".join(blocks) + "\n"}


def render_networkmanager(ifaces: list[NetIface]) -> dict[str, str]:
    files = {}
    for iface in ifaces:
        name = iface.name or iface.mac.replace(":", "")
        lines = [
            "[connection]",
            f"id=swarmboot-{name}",
            "type=ethernet",
            "autoconnect=true",
            "",
            "[ethernet]",
            f"mac-address={iface.mac.upper()}",
        ]
        if iface.mtu:
            lines.append(f"mtu={iface.mtu}")
        lines += ["", "[ipv4]"]
        if iface.address:
            lines += [
                "method=manual",
                f"address1={iface.address}" + (f",{iface.gateway}" if iface.gateway else ""),
            ]
            if iface.dns:
                lines.append("dns=" + ";".join(iface.dns) + ";")
        else:
            lines.append("method=auto")
        lines += ["", "[ipv6]", "method=auto"]
        files[f"etc/NetworkManager/system-connections/swarmboot-{name}.nmconnection"] = (
            "\n".join(lines) + "\n"
        )
    return files


RENDERERS = {NM: render_networkmanager, IFUPDOWN: render_ifupdown, NETWORKD: render_networkd}


def render_hosts(hostname: str, domain: str, address: str) -> str:
    for what, value in (("hostname", hostname), ("domain", domain), ("address", address)):
        if not HOSTS_FIELD.fullmatch(value):  # a newline would add a line of its own to /etc/hosts
            raise FilesError(
                f"the plan's {what} {value[:60]!r} cannot go into /etc/hosts",
                hint="fix the node's name or its network's domain on the server",
            )
    fqdn = f"{hostname}.{domain}" if domain else hostname
    names = f"{fqdn} {hostname}" if domain else hostname
    own = address.split("/", maxsplit=1)[0] if address else "127.0.1.1"
    return (
        "127.0.0.1\tlocalhost\n"
        f"{own}\t{names}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )


def machine_id(node: str) -> str:
    """A stable machine-id per node: nodes booted from one image must not share one (DHCP DUIDs)."""
    return hashlib.sha256(f"swarmboot:{node}".encode()).hexdigest()[:32]


def render_booted_unit() -> str:
    return f"""[Unit]
Description=Report to the swarmboot server that this node has booted
Wants=network-online.target
After=network-online.target multi-user.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/{REPORT_SCRIPT}

[Install]
WantedBy=multi-user.target
"""


def render_report_script(
    urls: list[str], image: str, version: int, run_dir: str = "/run/swarmboot", token: str = ""
) -> str:
    """A POSIX sh script (curl is in the image) that sends stage `booted`, status `done`, with
    this boot's token (the script is readable by root only)."""
    quoted = " ".join(shlex.quote(u) for u in urls)
    header = shlex.quote(f"{TOKEN_HEADER}: {token}") if token else "''"
    return f"""#!/bin/sh
# Written by the swarmboot agent: tells the server this node reached multi-user.
run={shlex.quote(run_dir)}
fstype=$(findmnt -n -o FSTYPE / 2>/dev/null || stat -f -c %T /)
# the overlay's lower layer (overlay and nfs modes): "squashfs /dev/loop0", "nfs4 SERVER:/PATH"
lower=$(findmnt -n -o FSTYPE,SOURCE -M "$run/mnt/lower" 2>/dev/null | tr -s ' ' | tr -d '"\\')
kernel=$(uname -r)
read -r uptime _ < /proc/uptime
host=$(hostname)
# where / came from: the agent built it (root=swarmboot) or the installed disk's bootloader did
case " $(cat /proc/cmdline) " in *" root=swarmboot "*) boot=agent ;; *) boot=disk ;; esac
part() {{ if [ -s "$run/$1" ]; then cat "$run/$1"; else echo null; fi; }}
body=$(printf '{{"stage":"booted","status":"done","duration":%s,"message":"","image":"%s",\
"version":%s,"details":{{"root_fstype":"%s","root_lower":"%s","kernel":"%s","uptime":%s,"hostname":"%s","boot":"%s",\
"download":%s,"seeder":%s,"agent":%s}}}}' \\
  "$uptime" {shlex.quote(image)} {int(version)} "$fstype" "$lower" "$kernel" "$uptime" "$host" "$boot" \\
  "$(part download.json)" "$(part seeder.json)" "$(part timings.json)")
i=0
while [ $i -lt 20 ]; do
  for url in {quoted}; do
    if curl -fsS -m 10 -H 'Content-Type: application/json' -H {header} --data-binary "$body" "$url" \
        >/dev/null; then
      echo "swarmboot: reported booted to $url"
      exit 0
    fi
  done
  i=$((i + 1))
  sleep 3
done
echo "swarmboot: could not report booted to {quoted}" >&2
exit 1
"""


def _ids(sysroot: Path, table: str, name: str) -> int:
    if name.isascii() and name.isdigit():
        return int(name)
    try:
        for line in (sysroot / "etc" / table).read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == name:
                return int(fields[2])
    except OSError:
        pass
    raise FilesError(
        f"the image has no {'user' if table == 'passwd' else 'group'} named {name!r}",
        hint="create it in the image (lchroot) or fix the node file's owner/group on the server",
    )


def safe_target(sysroot: Path, path: str) -> Path:
    """`path` inside sysroot; absolute, without '..'."""
    pure = PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts or len(pure.parts) < 2:
        raise FilesError(
            f"node file path {path!r} must be absolute, without '..'", hint="fix it on the server"
        )
    return sysroot.joinpath(*pure.parts[1:])


def write_file(
    sysroot: Path, rel: str, content: str | bytes, mode: int = 0o644, *, uid: int = 0, gid: int = 0
) -> Path:
    target = safe_target(sysroot, "/" + rel.lstrip("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, content.encode() if isinstance(content, str) else content)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return target


def write_plan_file(sysroot: Path, f: NodeFile) -> Path:
    safe_target(sysroot, f.path)  # the plan's paths must be absolute
    uid, gid = _ids(sysroot, "passwd", f.owner), _ids(sysroot, "group", f.group)
    return write_file(sysroot, f.path, file_content(f), f.mode, uid=uid, gid=gid)


def file_content(f: NodeFile) -> str | bytes:
    """A plan file's bytes: its text, or base64 decoded (the encoding of secret files)."""
    if f.encoding == "":
        return f.content
    if f.encoding != "base64":
        raise FilesError(f"node file {f.path}: unknown encoding {f.encoding!r}", hint="upgrade the agent")
    try:
        return base64.b64decode(f.content, validate=True)
    except ValueError:
        raise FilesError(f"node file {f.path}: its content is not base64", hint="fix it") from None


def write_authorized_keys(sysroot: Path, keys: tuple[str, ...]) -> int:
    """The group's SSH keys for root in the booted system, in swarmboot's block of
    /root/.ssh/authorized_keys (the image's own keys stay); how many."""
    path = sysroot / AUTHORIZED_KEYS
    old = path.read_text(errors="replace") if path.is_file() and not path.is_symlink() else ""
    text = with_keys(old, keys)
    if text == old:
        return len(keys)
    ssh_dir = path.parent
    if not ssh_dir.is_dir():
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_file(sysroot, AUTHORIZED_KEYS, text, 0o600)
    return len(keys)


def enable_unit(sysroot: Path, unit: str, target: str, source: str) -> None:
    wants = sysroot / "etc/systemd/system" / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if not os.path.lexists(link):
        link.symlink_to(source)


def network_files(
    sysroot: Path, ifaces: list[NetIface], network_root: bool = False
) -> tuple[str, dict[str, str]]:
    stack = detect_network_stack(sysroot)
    if stack == NONE:
        return stack, {}
    files = render_networkd(ifaces, network_root) if stack == NETWORKD else RENDERERS[stack](ifaces)
    if network_root and stack == NM:  # NetworkManager: keep what the initramfs set up (NM >= 1.26)
        files["etc/NetworkManager/conf.d/90-swarmboot-network-root.conf"] = (
            "# Written by the swarmboot agent: / is on the network (nfs root mode).\n"
            "[device]\nkeep-configuration=yes\n"
        )
    if stack == IFUPDOWN:
        main = sysroot / "etc/network/interfaces"
        text = main.read_text() if main.is_file() else "auto lo\niface lo inet loopback\n"
        if "interfaces.d" not in text:
            files["etc/network/interfaces"] = text.rstrip("\n") + "\n\nsource /etc/network/interfaces.d/*\n"
    return stack, files


def plan_interfaces(plan: BootPlan, boot_mac: str, names_by_mac: dict[str, str]) -> list[NetIface]:
    """The plan's interfaces with names resolved; without any, DHCP on the boot interface."""
    ifaces = []
    for i in plan.interfaces:
        name = i.name or names_by_mac.get(i.mac.lower(), "")
        ifaces.append(NetIface(name, i.mac.lower(), i.address, i.gateway, i.dns, i.mtu))
    if not ifaces and boot_mac:
        ifaces.append(NetIface(names_by_mac.get(boot_mac, ""), boot_mac))
    return ifaces


def write_node_files(
    plan: BootPlan,
    sysroot: Path,
    boot_mac: str,
    names_by_mac: dict[str, str],
    report_urls: list[str],
    *,
    resolv_conf: Path | None = None,
    token: str = "",
) -> dict[str, object]:
    """Write everything into the booted system; return what was done (for the event's details)."""
    node = plan.node
    ifaces = plan_interfaces(plan, boot_mac, names_by_mac)
    static = next((i.address for i in ifaces if i.address), "")
    write_file(sysroot, "etc/hostname", node.hostname + "\n")
    write_file(sysroot, "etc/hosts", render_hosts(node.hostname, node.domain, static))
    write_file(sysroot, "etc/machine-id", machine_id(node.name) + "\n", 0o444)
    stack, files = network_files(sysroot, ifaces, network_root=plan.root.mode == "nfs")
    for rel, content in files.items():
        write_file(sysroot, rel, content, 0o600 if rel.endswith(".nmconnection") else 0o644)
    if stack == NETWORKD:
        base = "/lib/systemd/system"
        enable_unit(
            sysroot, "systemd-networkd.service", "multi-user.target", f"{base}/systemd-networkd.service"
        )
        enable_unit(sysroot, "systemd-networkd.socket", "sockets.target", f"{base}/systemd-networkd.socket")
        enable_unit(
            sysroot,
            "systemd-networkd-wait-online.service",
            "network-online.target",
            f"{base}/systemd-networkd-wait-online.service",
        )
    resolv = sysroot / "etc/resolv.conf"
    image_has_none = not resolv.is_symlink() and (not resolv.is_file() or not resolv.read_text().strip())
    if resolv_conf is not None and resolv_conf.is_file() and image_has_none:
        write_file(sysroot, "etc/resolv.conf", resolv_conf.read_text())
    written = [write_plan_file(sysroot, f) for f in plan.files]
    secret = [write_plan_file(sysroot, f) for f in plan.secret_files]
    keys = write_authorized_keys(sysroot, plan.ssh_authorized_keys)
    if report_urls:
        write_file(
            sysroot,
            REPORT_SCRIPT,
            render_report_script(report_urls, plan.image.name, plan.image.version, token=token),
            0o700,
        )
        write_file(sysroot, f"etc/systemd/system/{BOOTED_UNIT}", render_booted_unit())
        enable_unit(sysroot, BOOTED_UNIT, "multi-user.target", f"/etc/systemd/system/{BOOTED_UNIT}")
    return {
        "network_stack": stack,
        "interfaces": [i.name or i.mac for i in ifaces],
        "files": [str(p.relative_to(sysroot)) for p in written],
        "secret_files": len(secret),  # how many, never which contents
        "ssh_keys": keys,
        "report": json.dumps(report_urls),
    }
