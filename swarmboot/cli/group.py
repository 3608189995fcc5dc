"""`swarmboot group add|set|show|list|rm`: what a set of nodes boots and how."""

from __future__ import annotations

import argparse
from typing import Any

from ground.config import Settings
from ground.contract.sets import RootMode, names
from ground.errors import UsageError
from swarmboot.cli import add_object
from swarmboot.cli.inventory_verbs import add_read_verbs

COLUMNS = [
    ("name", "NAME"),
    ("image", "IMAGE"),
    ("image_version", "VERSION"),
    ("root", "ROOT"),
    ("network", "NETWORK"),
    ("kernel_args", "KERNEL ARGS"),
]


def _options(parser: argparse.ArgumentParser, adding: bool) -> None:
    parser.add_argument("--image", required=adding, help="the image nodes of this group boot")
    parser.add_argument("--image-version", help="pin a packed version (default: the image's current)")
    parser.add_argument(
        "--root", metavar="{" + ",".join(names(RootMode)) + "}", help="root mode (default overlay)"
    )
    parser.add_argument("--tmpfs-size", help="tmpfs size (tmpfs mode, overlay upper layer), e.g. 75%% or 8G")
    parser.add_argument("--disk", help="disk mode: target device (/dev/sda or auto)")
    parser.add_argument(
        "--partition",
        action="append",
        metavar="LABEL:SIZE[:FS[:MOUNTPOINT[:keep]]]",
        help="disk mode: a partition of the layout (repeat; replaces the layout)",
    )
    parser.add_argument("--layout", metavar="FILE",
                        help="disk mode: the disk layout (YAML file, '-' for stdin; docs/agent.md)")
    parser.add_argument("--reinstall", choices=("on-new-version", "manual"),
                        help="disk mode: install again when the group's version changes (default), "
                        "or only when told (node set NODE --reinstall)")
    parser.add_argument("--network", help="network the group's nodes get addresses from")
    for script in ("pre", "part", "post"):
        parser.add_argument(f"--{script}", metavar="FILE", help=f"{script} script (file, '-' for stdin)")
    parser.add_argument("--kernel-args", help="extra kernel arguments")
    parser.add_argument("--power", choices=("ipmi", "redfish", "wol", ""),
                        help="how `swarmboot power` reaches its nodes (default: IPMI with a BMC, else WoL)")
    parser.add_argument("--console", help="consoles for the kernel, e.g. 'ttyS0,115200 tty0' ('' for none)")
    parser.add_argument(
        "--file",
        action="append",
        metavar="PATH=TEMPLATE[:MODE]",
        help="per-node file PATH rendered from the Jinja2 template file TEMPLATE (repeat)",
    )
    parser.add_argument(
        "--secret-file",
        action="append",
        metavar="PATH=FILE[:MODE[:OWNER[:GROUP]]]",
        help="a secret file (e.g. /etc/munge/munge.key=munge.key:0400:munge:munge), sent only to a "
        "node with its boot token (repeat)",
    )
    parser.add_argument("--ssh-key", action="append", help="SSH public key for service mode (repeat)")
    parser.add_argument("--ssh-key-file", action="append", help="file of SSH public keys (repeat)")
    if not adding:
        parser.add_argument("--no-file", action="append", metavar="PATH", help="drop a per-node file")
        parser.add_argument("--no-secret-file", action="append", metavar="PATH", help="drop a secret file")
        parser.add_argument("--clear-ssh-keys", action="store_true", help="remove all SSH keys first")


def _partition(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) < 2 or len(parts) > 5:
        raise UsageError(f"invalid --partition {text!r}", hint="write LABEL:SIZE[:FS[:MOUNTPOINT[:keep]]]")
    entry: dict[str, Any] = {"label": parts[0], "size": parts[1]}
    if len(parts) > 2 and parts[2]:
        entry["fs"] = parts[2]
    if len(parts) > 3 and parts[3]:
        entry["mountpoint"] = parts[3]
    if len(parts) > 4:
        if parts[4] != "keep":
            raise UsageError(f"invalid --partition {text!r}: the fifth field can only be 'keep'")
        entry["keep"] = True
    return entry


def _file(text: str) -> dict[str, Any]:
    from server.cliutil import read_text

    path, sep, rest = text.partition("=")
    if not sep:
        raise UsageError(
            f"invalid --file {text!r}", hint="write PATH=TEMPLATE_FILE[:MODE], e.g. /etc/motd=motd.j2"
        )
    source, _, mode = rest.partition(":")
    entry: dict[str, Any] = {"path": path, "template": read_text(source, f"the template of {path}")}
    if mode:
        try:
            entry["mode"] = int(mode, 8)
        except ValueError:
            raise UsageError(
                f"invalid mode {mode!r} in --file {text!r}", hint="an octal mode like 0600"
            ) from None
    return entry


def _secret_file(text: str) -> dict[str, Any]:
    import base64
    from pathlib import Path

    path, sep, rest = text.partition("=")
    source, _, extra = rest.partition(":")
    if not sep or not source:
        raise UsageError(f"invalid --secret-file {text!r}", hint="write PATH=FILE[:MODE[:OWNER[:GROUP]]]")
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the secret file {source}: {exc.strerror}") from None
    entry: dict[str, Any] = {"path": path, "content": base64.b64encode(data).decode()}
    fields = extra.split(":") if extra else []
    if len(fields) > 3:
        raise UsageError(f"invalid --secret-file {text!r}", hint="write PATH=FILE[:MODE[:OWNER[:GROUP]]]")
    for key, value in zip(("mode", "owner", "group"), fields, strict=False):
        if not value:
            continue
        try:
            entry[key] = int(value, 8) if key == "mode" else value
        except ValueError:
            raise UsageError(f"invalid mode {value!r} in --secret-file", hint="octal, like 0400") from None
    return entry


def _secrets(
    args: argparse.Namespace, name: str | None, settings: Settings | None
) -> list[dict[str, Any]] | None:
    """The group's secret files after --secret-file / --no-secret-file (None: unchanged)."""
    added, dropped = args.secret_file or [], getattr(args, "no_secret_file", None) or []
    if not added and not dropped:
        return None
    current: list[dict[str, Any]] = []
    if name is not None and settings is not None:
        from server import cliutil
        from server.inventory import crud

        current = crud.group_secret_files(cliutil.database(settings), name)
    files = {f["path"]: f for f in current}
    for path in dropped:
        if files.pop(path, None) is None:
            raise UsageError(f"the group has no secret file {path}")
    for text in added:
        entry = _secret_file(text)
        files[entry["path"]] = entry
    return list(files.values())


def _spec(args: argparse.Namespace, current: dict[str, Any] | None) -> dict[str, Any]:
    from server.cliutil import read_text

    spec: dict[str, Any] = {}
    for key in ("image", "image_version", "network", "kernel_args", "console", "power"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    root = dict(current["root"]) if current else {}
    changed = False
    if args.root is not None:
        if current and args.root != root.get("mode"):
            root = {}
        root["mode"] = args.root
        changed = True
    for key in ("tmpfs_size", "disk"):
        if getattr(args, key) is not None:
            root[key] = getattr(args, key)
            changed = True
    if args.partition:
        root["partitions"] = [_partition(p) for p in args.partition]
        root.pop("layout", None)
        changed = True
    if args.layout is not None:
        import yaml

        text = read_text(args.layout, "the disk layout")
        try:
            root["layout"] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"the layout {args.layout} is not YAML: {exc}") from None
        root.pop("partitions", None)
        changed = True
    if args.reinstall is not None:
        root["reinstall"] = args.reinstall
        changed = True
    if changed:
        spec["root"] = root
    scripts = {
        s: read_text(getattr(args, s), f"the {s} script")
        for s in ("pre", "part", "post")
        if getattr(args, s) is not None
    }
    if scripts:
        spec["scripts"] = scripts
    files = {f["path"]: f for f in (current["files"] if current else [])}
    for path in getattr(args, "no_file", None) or []:
        if path not in files:
            raise UsageError(f"the group has no file {path}")
        del files[path]
    for text in args.file or []:
        entry = _file(text)
        files[entry["path"]] = entry
    if args.file or getattr(args, "no_file", None):
        spec["files"] = list(files.values())
    keys = [] if (not current or getattr(args, "clear_ssh_keys", False)) else list(current["ssh_keys"])
    new_keys = list(args.ssh_key or [])
    for path in args.ssh_key_file or []:
        new_keys += [
            line.strip()
            for line in read_text(path, "SSH keys").splitlines()
            if line.strip() and not line.startswith("#")
        ]
    if new_keys or getattr(args, "clear_ssh_keys", False):
        spec["ssh_keys"] = keys + [k for k in new_keys if k not in keys]
    return spec


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_object(subparsers, "group", "groups of nodes: image, root mode, scripts, files")
    p = verbs.add_parser("add", help="add a group")
    p.add_argument("name")
    _options(p, adding=True)
    p.set_defaults(handler=cmd_add, remote=True)
    p = verbs.add_parser("set", help="change a group")
    p.add_argument("name")
    _options(p, adding=False)
    p.set_defaults(handler=cmd_set, remote=True)
    add_read_verbs(
        verbs, "group", "groups", COLUMNS, table_rows=_table_rows, rm_help="remove groups (without nodes)"
    )


def _inventory_for_secrets(args: argparse.Namespace, settings: Settings, secrets: object) -> Any:
    """The inventory the group verbs work on; secret files are set on the head node only (they are
    read from the local database and never leave it through the API)."""
    from swarmboot.cli.backend import Local, inventory

    inv = inventory(args, settings)
    if secrets and not isinstance(inv, Local):
        raise UsageError(
            "--secret-file / --no-secret-file change a group's secrets: not over the remote API",
            hint="run this `swarmboot group` command on the head node",
        )
    return inv


def cmd_add(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil

    spec = _spec(args, None)
    secrets = _secrets(args, None, None)
    if secrets is not None:
        spec["secret_files"] = secrets
    group = _inventory_for_secrets(args, settings, secrets).add("group", args.name, spec)
    cliutil.show(group, False)


def cmd_set(args: argparse.Namespace, settings: Settings) -> None:
    from server import cliutil

    changing = (getattr(args, "secret_file", None) or []) + (getattr(args, "no_secret_file", None) or [])
    inv = _inventory_for_secrets(args, settings, changing)
    current = inv.show("group", args.name)
    spec = _spec(args, current)
    secrets = _secrets(args, args.name, settings)
    if secrets is not None:
        spec["secret_files"] = secrets
    group = inv.update("group", args.name, spec)
    cliutil.show(group, False)


def _table_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        row["root"] = row["root"]["mode"]
        row["image_version"] = row["image_version"] or "current"
