"""Networks, switches and groups: one spec dict per object, shared by the CLI, import and export.

`apply_*` validates a spec (a dict of the export format, complete or partial) and writes it onto a
row; `*_dict` turns a row back into that format. Unknown keys are errors, so a typo in an imported
file is caught instead of ignored.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import jinja2
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ground.errors import ConflictError, NotFoundError, UsageError
from server.inventory import validate
from server.inventory.models import Group, Network, Node, Switch
from server.templates import template_env

NETWORK_KEYS = ("name", "cidr", "gateway", "dns", "domain", "range", "dhcp_range", "mtu")
SWITCH_KEYS = ("name", "address", "description", "snmp", "chassis_id")
SNMP_KEYS = (
    "version", "address", "community", "user", "auth_protocol", "auth_key", "priv_protocol", "priv_key",
    "context",
)
SNMP_VERSIONS = ("2c", "3")
SNMP_AUTH = ("md5", "sha", "sha224", "sha256", "sha384", "sha512")
SNMP_PRIV = ("des", "3des", "aes", "aes192", "aes256")
POWER_METHODS = ("ipmi", "redfish", "wol")
GROUP_KEYS = (
    "name",
    "image",
    "image_version",
    "network",
    "root",
    "scripts",
    "kernel_args",
    "console",
    "files",
    "ssh_keys",
    "secret_files",
    "power",
)
ROOT_KEYS = ("mode", "tmpfs_size", "disk", "partitions", "keep_cache", "layout", "reinstall")
PARTITION_KEYS = ("label", "size", "fs", "mountpoint", "keep")
FILE_KEYS = ("path", "template", "mode", "owner", "group")
SECRET_FILE_KEYS = ("path", "content", "mode", "owner", "group")
MAX_SECRET_BYTES = 1 << 20
SCRIPT_KEYS = ("pre", "part", "post")
FS_TYPES = ("ext4", "xfs", "vfat", "swap", "none")
MAX_INT = 2**31 - 1  # every integer field fits a 32-bit column (SQLite and PostgreSQL alike)
MTU_RANGE = (68, 65535)


def check_keys(spec: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    if not isinstance(spec, dict):
        raise UsageError(f"{what}: must be a mapping, not {type(spec).__name__}")
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise UsageError(
            f"{what}: unknown field(s) {', '.join(unknown)}", hint="known: " + ", ".join(allowed)
        )


def _str(value: Any, what: str, *, multiline: bool = False) -> str:
    """A string field: valid Unicode, no NUL, and one line unless `multiline` (scripts, templates)."""
    if value is None:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise UsageError(f"{what}: must be a string, not {_short(value)}")
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise UsageError(f"{what}: must be a string, not a {value.bit_length()}-bit number")
    return validate.text(str(value), what, multiline=multiline)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _int(value: Any, what: str, minimum: int = 0, maximum: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UsageError(f"{what}: must be an integer, not {_short(value)}")
    try:
        if isinstance(value, str) and len(value) > 24:
            raise ValueError(value)
        number = int(value, 0) if isinstance(value, str) else value
    except ValueError:
        raise UsageError(f"{what}: must be an integer, not {_short(value)}") from None
    if number < minimum:
        raise UsageError(f"{what}: must be at least {minimum}, not {number}")
    if number > maximum:
        raise UsageError(f"{what}: must be at most {maximum}, not {_short(number)}")
    return number


def _strlist(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{what}: must be a list of strings, not {_short(value)}")
    return [validate.text(v, what) for v in value]


def by_name(session: Session, model: Any, name: str, what: str) -> Any:
    row = session.execute(select(model).where(model.name == name)).unique().scalar_one_or_none()
    if row is None:
        known = session.execute(select(model.name).order_by(model.name).limit(20)).scalars().all()
        raise NotFoundError(f"no {what} named {name!r}", hint=f"{what}s: {', '.join(known) or 'none yet'}")
    return row


def ensure_new(session: Session, model: Any, name: str, what: str) -> None:
    if session.execute(select(model.id).where(model.name == name)).first() is not None:
        raise ConflictError(f"{what} {name!r} exists already", hint=f"change it with: swarmboot {what} set")


# --- networks ---------------------------------------------------------------------------------


def apply_network(session: Session, row: Network, spec: dict[str, Any]) -> None:
    check_keys(spec, NETWORK_KEYS, f"network {row.name or spec.get('name')}")
    if "cidr" in spec:
        row.cidr = str(validate.cidr(_str(spec["cidr"], "cidr")))
    if not row.cidr:
        raise UsageError(f"network {row.name}: cidr is required", hint="e.g. --cidr 10.0.0.0/24")
    net = validate.cidr(row.cidr)
    if "gateway" in spec:
        gateway = _str(spec["gateway"], "gateway")
        row.gateway = validate.address(gateway, net, "gateway") if gateway else ""
    if "dns" in spec:
        row.dns = [validate.address(a, None, "dns server") for a in _strlist(spec["dns"], "dns")]
    if "domain" in spec:
        domain = _str(spec["domain"], "domain")
        where = f"network {row.name or spec.get('name')}: domain"
        row.domain = validate.domain(domain, where) if domain else ""
    for key, attrs in (("range", ("range_start", "range_end")), ("dhcp_range", ("dhcp_start", "dhcp_end"))):
        if key in spec:
            text = _str(spec[key], key)
            first, last = validate.ip_range(text, net, key.replace("_", " ")) if text else ("", "")
            setattr(row, attrs[0], first)
            setattr(row, attrs[1], last)
    if "mtu" in spec:
        mtu = _int(spec["mtu"] or 0, "mtu", maximum=MTU_RANGE[1])
        if mtu and mtu < MTU_RANGE[0]:
            raise UsageError(f"mtu: {mtu} is below {MTU_RANGE[0]}", hint="68-65535, or 0 for the default")
        row.mtu = mtu
    for attr in ("gateway", "range_start", "range_end", "dhcp_start", "dhcp_end"):
        value = getattr(row, attr)
        if value and ipaddress.IPv4Address(value) not in net:
            raise UsageError(f"network {row.name}: {attr.replace('_', ' ')} {value} is outside {net}")
    if row.range_start and row.dhcp_start and _overlap(row):
        raise UsageError(
            f"network {row.name}: the node range and the DHCP range overlap",
            hint="node addresses and the pool for unknown machines must not overlap",
        )


def _overlap(row: Network) -> bool:
    a0, a1 = ipaddress.IPv4Address(row.range_start), ipaddress.IPv4Address(row.range_end)
    b0, b1 = ipaddress.IPv4Address(row.dhcp_start), ipaddress.IPv4Address(row.dhcp_end)
    return a0 <= b1 and b0 <= a1


def network_dict(row: Network) -> dict[str, Any]:
    return {
        "name": row.name,
        "cidr": row.cidr,
        "gateway": row.gateway,
        "dns": list(row.dns),
        "domain": row.domain,
        "range": f"{row.range_start}-{row.range_end}" if row.range_start else "",
        "dhcp_range": f"{row.dhcp_start}-{row.dhcp_end}" if row.dhcp_start else "",
        "mtu": row.mtu,
    }


def network_in_use(session: Session, row: Network) -> list[str]:
    nodes = session.execute(select(func.count()).select_from(Node).where(Node.network_id == row.id)).scalar()
    groups = session.execute(select(Group.name).where(Group.network_id == row.id)).scalars().all()
    used = [f"group {g}" for g in groups]
    if nodes:
        used.append(f"{nodes} node(s)")
    return used


# --- switches ---------------------------------------------------------------------------------


def apply_switch(session: Session, row: Switch, spec: dict[str, Any]) -> None:
    check_keys(spec, SWITCH_KEYS, f"switch {row.name or spec.get('name')}")
    if "address" in spec:
        addr = _str(spec["address"], "address")
        row.address = validate.address(addr, None, "switch address") if addr else ""
    if "description" in spec:
        row.description = _str(spec["description"], "description")
    if "chassis_id" in spec:
        row.chassis_id = _str(spec["chassis_id"], "chassis_id").strip()
    if "snmp" in spec:
        snmp = spec["snmp"] or {}
        # a whole setting (export/import, or naming the version) replaces; a part changes those keys
        base = {} if not snmp or "version" in snmp else dict(row.snmp or {})
        row.snmp = snmp_settings(snmp, f"switch {row.name}.snmp", base)


def snmp_settings(spec: Any, what: str, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """A switch's SNMP settings, checked: version 2c needs a community, 3 a user (with keys of at
    least 8 characters for the protocols it names). Keys given as "" are removed; an empty
    version turns SNMP off."""
    check_keys(spec, SNMP_KEYS, what)
    merged = {**(current or {}), **{k: _str(v, f"{what}.{k}") for k, v in spec.items()}}
    merged = {k: v for k, v in merged.items() if v != ""}
    version = merged.get("version", "")
    if not version:
        return {}
    if version not in SNMP_VERSIONS:
        raise UsageError(f"{what}.version: {version!r} is not one of {', '.join(SNMP_VERSIONS)}")
    if "address" in merged:
        address = merged["address"]
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        validate.address(host, None, f"{what}.address")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise UsageError(f"{what}.address: {port!r} is not a UDP port", hint="e.g. 10.0.0.2:161")
    if version == "2c" and not merged.get("community"):
        raise UsageError(f"{what}: SNMP v2c needs a community", hint="e.g. --snmp-community public")
    if version == "3":
        if not merged.get("user"):
            raise UsageError(f"{what}: SNMP v3 needs a user", hint="--snmp-user NAME --snmp-auth sha:KEY")
        for proto_key, key_key, allowed in (("auth_protocol", "auth_key", SNMP_AUTH),
                                            ("priv_protocol", "priv_key", SNMP_PRIV)):
            proto = merged.get(proto_key, "")
            if proto and proto not in allowed:
                raise UsageError(f"{what}.{proto_key}: {proto!r} is not one of {', '.join(allowed)}")
            if proto and len(merged.get(key_key, "")) < 8:
                raise UsageError(f"{what}.{key_key}: SNMP v3 keys have at least 8 characters")
        if merged.get("priv_protocol") and not merged.get("auth_protocol"):
            raise UsageError(f"{what}: SNMP v3 privacy needs authentication too")
    return merged


def switch_dict(row: Switch) -> dict[str, Any]:
    return {
        "name": row.name,
        "address": row.address,
        "description": row.description,
        "chassis_id": row.chassis_id,
        "snmp": dict(row.snmp or {}),
    }


def power_method(value: Any, what: str) -> str:
    method = _str(value, what).strip().lower()
    if method and method not in POWER_METHODS:
        raise UsageError(
            f"{what}: {method!r} is not a power method", hint="one of: " + ", ".join(POWER_METHODS)
        )
    return method


def switch_in_use(session: Session, row: Switch) -> list[str]:
    count = session.execute(select(func.count()).select_from(Node).where(Node.switch_id == row.id)).scalar()
    return [f"{count} node(s)"] if count else []


# --- groups -----------------------------------------------------------------------------------

_TEMPLATES = template_env()

def _root(spec: Any, what: str) -> dict[str, Any]:
    if isinstance(spec, str):
        spec = {"mode": spec}
    check_keys(spec, ROOT_KEYS, what)
    root: dict[str, Any] = {"mode": validate.root_mode(_str(spec.get("mode", "overlay"), f"{what}.mode"))}
    for key in ("tmpfs_size", "disk"):
        if spec.get(key):
            root[key] = _str(spec[key], f"{what}.{key}")
    if "keep_cache" in spec:
        if not isinstance(spec["keep_cache"], bool):
            raise UsageError(f"{what}.keep_cache: must be true or false")
        root["keep_cache"] = spec["keep_cache"]
    parts = spec.get("partitions") or []
    if not isinstance(parts, list):
        raise UsageError(f"{what}.partitions: must be a list")
    root_parts = []
    for i, part in enumerate(parts):
        where = f"{what}.partitions[{i}]"
        check_keys(part, PARTITION_KEYS, where)
        if not part.get("label") or not part.get("size"):
            raise UsageError(f"{where}: label and size are required", hint="e.g. label: root, size: 20GiB")
        fs = _str(part.get("fs", "ext4"), f"{where}.fs")
        if fs not in FS_TYPES:
            raise UsageError(f"{where}.fs: {fs!r} is not one of {', '.join(FS_TYPES)}")
        entry = {"label": _str(part["label"], where), "size": _str(part["size"], where), "fs": fs}
        if part.get("mountpoint"):
            entry["mountpoint"] = _str(part["mountpoint"], where)
        if part.get("keep"):
            entry["keep"] = bool(part["keep"])
        root_parts.append(entry)
    if root_parts:
        root["partitions"] = root_parts
    _disk_layout(spec, root, what)
    return root


def _disk_layout(spec: dict[str, Any], root: dict[str, Any], what: str) -> None:
    """The disk mode's layout (ground/contract/layout.py), validated when it is set: from
    `layout` (the YAML form), or the shorthand `disk` + `partitions`; and the reinstall policy."""
    from ground.contract import layout as disk_layout
    from ground.contract.sets import ReinstallPolicy

    if spec.get("reinstall") is not None:
        policy = _str(spec["reinstall"], f"{what}.reinstall")
        if policy not in {p.value for p in ReinstallPolicy}:
            raise UsageError(f"{what}.reinstall: {policy!r} is not one of "
                             + ", ".join(p.value for p in ReinstallPolicy))
        root["reinstall"] = policy
    given = spec.get("layout")
    try:
        if given:
            if root.get("partitions"):
                raise disk_layout.LayoutError("give a layout or partitions (the shorthand), not both")
            root["layout"] = disk_layout.to_mapping(disk_layout.from_mapping(given))
        elif root.get("partitions"):
            disk_layout.shorthand(root.get("disk", ""), root["partitions"])
    except disk_layout.LayoutError as exc:
        raise UsageError(f"{what}: the disk layout is refused:\n  " + str(exc).replace("\n", "\n  "),
                         hint="fix the layout (docs/agent.md, \"The disk mode\") and set it again") from None
    if root["mode"] == "disk" and not (root.get("layout") or root.get("partitions")):
        raise UsageError(f"{what}: root mode disk needs a disk layout",
                         hint="--layout FILE (YAML), or --disk and --partition "
                         "LABEL:SIZE[:FS[:MOUNTPOINT[:keep]]]")


def layout_of(root: dict[str, Any]) -> Any:
    """The group's layout as typed values (None unless it has one)."""
    from ground.contract import layout as disk_layout

    if root.get("layout"):
        return disk_layout.from_mapping(root["layout"])
    if root.get("partitions"):
        return disk_layout.shorthand(root.get("disk", ""), root["partitions"])
    return None


def _files(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise UsageError(f"{what}: must be a list of files")
    files = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"{what}[{i}]"
        check_keys(item, FILE_KEYS, where)
        path = _str(item.get("path"), f"{where}.path")
        if not path.startswith("/") or ".." in path.split("/"):
            raise UsageError(f"{where}.path: {path!r} must be an absolute path without '..'")
        if path in seen:
            raise UsageError(f"{where}.path: {path} is given twice")
        seen.add(path)
        template = _str(item.get("template"), f"{where}.template", multiline=True)
        try:
            _TEMPLATES.parse(template)
        except jinja2.TemplateSyntaxError as exc:
            raise UsageError(
                f"{where}: template for {path} has a syntax error on line {exc.lineno}: {exc.message}",
                hint="per-node files are Jinja2 templates, e.g. 'hostname {{ node.name }}'",
            ) from None
        mode = _int(item.get("mode", 0o644), f"{where}.mode")
        if mode > 0o7777:
            raise UsageError(f"{where}.mode: {oct(mode)} is not a file mode")
        files.append(
            {
                "path": path,
                "template": template,
                "mode": mode,
                "owner": _str(item.get("owner", "root"), f"{where}.owner") or "root",
                "group": _str(item.get("group", "root"), f"{where}.group") or "root",
            }
        )
    return files


def _secret_files(value: Any, what: str) -> list[dict[str, Any]]:
    """A group's secret files: content in base64 (munge.key is bytes), only in plans fetched with
    the node's token (server/tokens.py)."""
    if not isinstance(value, list):
        raise UsageError(f"{what}: must be a list of files")
    files, seen = [], set()
    for i, item in enumerate(value):
        where = f"{what}[{i}]"
        check_keys(item, SECRET_FILE_KEYS, where)
        path = _str(item.get("path"), f"{where}.path")
        if not path.startswith("/") or ".." in path.split("/") or path in seen:
            raise UsageError(f"{where}.path: {path!r} must be an absolute path without '..', given once")
        seen.add(path)
        if "content" not in item:
            raise UsageError(
                f"{where}: no content (a file exported without --secrets?)",
                hint="export with: swarmboot inventory export FILE --secrets, or leave secret_files out "
                "of the file to keep the ones the inventory has",
            )
        content = _str(item["content"], f"{where}.content")
        try:
            raw = base64.b64decode(content, validate=True)
        except ValueError:
            raise UsageError(f"{where}.content: must be base64") from None
        if len(raw) > MAX_SECRET_BYTES:
            raise UsageError(f"{where}: {len(raw)} bytes, at most {MAX_SECRET_BYTES}")
        mode = _int(item.get("mode", 0o600), f"{where}.mode", maximum=0o7777)
        owner = _str(item.get("owner", "root"), f"{where}.owner") or "root"
        group = _str(item.get("group", "root"), f"{where}.group") or "root"
        files.append({"path": path, "content": content, "mode": mode, "owner": owner, "group": group})
    return files


def apply_group(session: Session, row: Group, spec: dict[str, Any]) -> None:
    what = f"group {row.name or spec.get('name')}"
    check_keys(spec, GROUP_KEYS, what)
    if "image" in spec:
        from ground.store import check_name

        row.image = check_name(_str(spec["image"], f"{what}.image"), "image")
    if not row.image:
        raise UsageError(f"{what}: an image is required", hint="e.g. --image compute")
    if "image_version" in spec:
        value = spec["image_version"]
        row.image_version = None if value in (None, "", "current") else _int(value, "image_version", 1)
    if "network" in spec:
        net_name = _str(spec["network"], f"{what}.network")
        row.network = by_name(session, Network, net_name, "network") if net_name else None
    if "root" in spec:
        row.root_options = _root(spec["root"], f"{what}.root")
        row.root_mode = row.root_options["mode"]
    elif not row.root_options:
        row.root_options = {"mode": row.root_mode or "overlay"}
    if "scripts" in spec:
        scripts = spec["scripts"] or {}
        check_keys(scripts, SCRIPT_KEYS, f"{what}.scripts")
        for key in SCRIPT_KEYS:
            if key in scripts:
                setattr(row, f"{key}_script", _str(scripts[key], f"{what}.scripts.{key}", multiline=True))
    if "kernel_args" in spec:
        row.kernel_args = _str(spec["kernel_args"], f"{what}.kernel_args").strip()
    if "console" in spec:
        row.console = " ".join(_str(spec["console"], f"{what}.console").split())
    if "files" in spec:
        row.files = _files(spec["files"] or [], f"{what}.files")
    if "ssh_keys" in spec:
        keys = [k.strip() for k in _strlist(spec["ssh_keys"], f"{what}.ssh_keys")]
        for key in keys:
            if not key.startswith(("ssh-", "ecdsa-", "sk-")) or len(key.split()) < 2:
                raise UsageError(
                    f"{what}: {key[:40]!r}… is not an SSH public key", hint="e.g. ssh-ed25519 AAAA… me@host"
                )
        row.ssh_keys = keys
    if "secret_files" in spec:
        row.secret_files = _secret_files(spec["secret_files"] or [], f"{what}.secret_files")
    if "power" in spec:
        row.power_method = power_method(spec["power"], f"{what}.power")


def group_dict(row: Group, secrets: bool = False) -> dict[str, Any]:
    """The group as its spec. Secret files: their content only with `secrets` (the export with
    --secrets); otherwise what they are (path, mode, owner, group, size)."""
    return {
        "name": row.name,
        "image": row.image,
        "image_version": row.image_version,
        "network": row.network.name if row.network else "",
        "root": dict(row.root_options or {"mode": row.root_mode}),
        "scripts": {"pre": row.pre_script, "part": row.part_script, "post": row.post_script},
        "kernel_args": row.kernel_args,
        "console": row.console,
        "files": [dict(f) for f in row.files],
        "ssh_keys": list(row.ssh_keys),
        "secret_files": [
            dict(f) if secrets else {**{k: v for k, v in f.items() if k != "content"},
                                      "bytes": len(base64.b64decode(f["content"]))}
            for f in row.secret_files or []
        ],
        "power": row.power_method,
    }


def group_in_use(session: Session, row: Group) -> list[str]:
    count = session.execute(select(func.count()).select_from(Node).where(Node.group_id == row.id)).scalar()
    return [f"{count} node(s)"] if count else []
