"""Build a node's boot plan (ground.contract.plan.BootPlan) from the inventory and the packed image,
for the plan version the node's agent speaks (`negotiate`; docs/design.md, "The boot plan").

Per-node files are rendered here, in a sandboxed Jinja2 environment with StrictUndefined: a
template that uses an unknown variable is a clear error for the admin, not an empty file on the
node. Template variables: node, group, network, image, server_url (see docs/server.md).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import object_session

from ground.config import Settings
from ground.contract.plan import (
    LEGACY_VERSION,
    PLAN_MAJOR,
    PLAN_MINOR,
    PLAN_VERSION,
    ROOT_MODE_SINCE,
    SECRETS_SINCE,
    BootPlan,
    ImageRef,
    Interface,
    NfsExport,
    NodeFile,
    NodeInfo,
    PlanError,
    Reporting,
    RootSpec,
    Scripts,
    TorrentOptions,
    encode,
    format_version,
    parse_version,
)
from ground.contract.sets import ImageFormat, RootMode
from ground.errors import ConflictError, UsageError
from server.catalog import Catalog, Version
from server.inventory.models import Group, Node
from server.templates import TemplateFailure, renderer

HEARTBEAT_SECONDS = 10
# At most this many nodes of a group own a stripe of the image (fetch it from the server first and
# pass it on); the others get everything from peers. The server's link is split among the owners,
# so more of them means slower pieces from the server (docs/swarm.md).
STRIPES_MAX = 32


class PlanRenderError(ConflictError):
    """The inventory cannot produce a plan for this node (a template error, a missing image)."""


def image_version(group: Group, catalog: Catalog) -> Version:
    version = catalog.get(group.image, group.image_version)
    if version is None:  # 409, not 404: the agent reads 404 as "the server does not know this node"
        if group.image_version is not None:
            raise PlanRenderError(
                f"group {group.name}: image {group.image!r} has no packed version {group.image_version}",
                hint=f"pack it, or unpin: swarmboot group set {group.name} --image-version current",
            )
        raise PlanRenderError(
            f"group {group.name}: image {group.image!r} has no packed version",
            hint=f"pack it with: swarmboot image pack {group.image}",
        )
    return version


def interfaces(node: Node, boot_mac: str | None) -> tuple[Interface, ...]:
    net = node.network
    prefix = ipaddress.IPv4Network(net.cidr).prefixlen if net else 0
    boot = boot_mac or (node.macs[0].mac if node.macs else "")
    result = []
    for i, entry in enumerate(node.macs):
        first = i == 0
        result.append(
            Interface(
                mac=entry.mac,
                address=f"{node.address}/{prefix}" if first and node.address and net else "",
                gateway=net.gateway if first and net else "",
                dns=tuple(net.dns) if first and net else (),
                mtu=net.mtu if net else 0,
                boot=entry.mac == boot,
            )
        )
    return tuple(result)


def template_context(node: Node, version: Version, server_url: str) -> dict[str, Any]:
    from server.inventory.nodes import node_dict
    from server.inventory.objects import group_dict, network_dict

    node_vars = node_dict(node)
    node_vars["hostname"] = node.name
    node_vars.pop("bmc", None)  # credentials stay out of files unless asked for explicitly
    node_vars["bmc_address"] = node.bmc_address
    m = version.manifest
    return {
        "node": node_vars,
        "group": {k: v for k, v in group_dict(node.group).items() if k != "secret_files"},
        "network": network_dict(node.network) if node.network else {},
        "image": {"name": m.image, "version": m.version, "kernel_version": m.kernel_version},
        "server_url": server_url,
    }


def render_files(node: Node, version: Version, server_url: str) -> tuple[NodeFile, ...]:
    """The group's files rendered for this node, in the render process (server/templates.py:
    bounded time, memory and output); any template error is a PlanRenderError (HTTP 409)."""
    context = template_context(node, version, server_url)
    try:
        results = renderer().render([e["template"] for e in node.group.files], context)
    except TemplateFailure as exc:
        raise PlanRenderError(
            f"node {node.name}: the file templates of group {node.group.name} failed: {exc}",
            hint=f"simplify them: swarmboot group show {node.group.name}",
        ) from None
    return files_of(node, results)


def files_of(node: Node, results: list[Any]) -> tuple[NodeFile, ...]:
    """The node's files from the render process's results for its group's templates, in order
    (PlanRenderError for the first that failed)."""
    files = []
    for entry, (outcome, content) in zip(node.group.files, results, strict=True):
        if outcome != "ok":
            raise PlanRenderError(
                f"node {node.name}: the template of {entry['path']} (group {node.group.name}) failed: "
                f"{content}",
                hint="variables: node, group, network, image, server_url; fix it with: "
                f"swarmboot group set {node.group.name} --file {entry['path']}=TEMPLATE",
            )
        files.append(
            NodeFile(
                path=entry["path"],
                content=content,
                mode=entry["mode"],
                owner=entry["owner"],
                group=entry["group"],
            )
        )
    return tuple(files)


def with_secrets(public: bytes, secrets: tuple[NodeFile, ...], minor: int) -> bytes:
    """The plan with secrets from its cached public body: the same document `build(...,
    secret_files=secrets)` gives (secret_files is the plan's last field; older minors have none)."""
    document = json.loads(public)
    if minor >= SECRETS_SINCE:
        document["secret_files"] = encode(secrets, minor)
    return json.dumps(document, separators=(",", ":")).encode()


def cache_key(mac: str, node: str, minor: int) -> bytes:
    """The plan cache's key: what a public plan depends on besides the inventory (the MAC in
    canonical form, or the node's name, and the minor rendered)."""
    return f"{mac}|{node}|{minor}".encode()


def stripe_of(node: Node) -> tuple[int, int]:
    """(stripe, stripes): the node's rank by name in its group when it is among the first
    STRIPES_MAX, else -1 (a leaf); stripes = min(group size, STRIPES_MAX). (-1, 0): no hint."""
    session = object_session(node)
    if session is None:
        return -1, 0
    before = func.sum(case((Node.name < node.name, 1), else_=0))
    counts = select(func.count(), before).select_from(Node).where(Node.group_id == node.group_id)
    size, rank = (int(v or 0) for v in session.execute(counts).one())
    stripes = min(size, STRIPES_MAX)
    return (rank if rank < stripes else -1), stripes


def negotiate(asked: str | None) -> int:
    """The minor to render for an agent that speaks `asked` ('MAJOR.MINOR'; None: 1.0)."""
    if asked is None:
        major, minor = LEGACY_VERSION
    else:
        try:
            major, minor = parse_version(asked)
        except PlanError as exc:
            raise UsageError(str(exc), hint="the agent sends plan_version=MAJOR.MINOR") from None
    if major != PLAN_MAJOR:
        raise UsageError(
            f"the agent speaks boot plan version {major}.{minor}; this server renders {format_version()}",
            hint="build the image's initramfs with this server's swarmboot (swarmboot image pack), "
            "or upgrade the server",
        )
    return min(minor, PLAN_MINOR)


def root_spec(
    group: Group, minor: int, node: Node | None = None, *, version: Version | None = None,
    server_url: str = "", nfs_port: int = 0,
) -> RootSpec:
    opts = group.root_options or {}
    mode = RootMode(opts.get("mode", "overlay"))
    if ROOT_MODE_SINCE[mode] > minor:
        raise PlanRenderError(
            f"group {group.name}: root mode {mode} needs an agent that speaks boot plan version "
            f"{PLAN_MAJOR}.{ROOT_MODE_SINCE[mode]}; this node's initramfs speaks {PLAN_MAJOR}.{minor}",
            hint=f"re-pack the image with this server's swarmboot: swarmboot image pack {group.image}",
        )
    spec: dict[str, Any] = {"mode": mode}
    if opts.get("tmpfs_size"):
        spec["tmpfs_size"] = opts["tmpfs_size"]
    if mode is RootMode.DISK:
        from server import install
        from server.inventory.objects import layout_of

        spec["layout"] = layout_of(opts)
        if node is not None:
            spec["kept"] = install.kept_partitions(object_session(node), node)
    if mode is RootMode.NFS and version is not None:
        spec["nfs"] = nfs_export(group, version, server_url, nfs_port)
    return RootSpec(**spec)


def nfs_export(group: Group, version: Version, server_url: str, nfs_port: int) -> NfsExport:
    """Where a node of a group in nfs mode mounts its root from: this server's export of the
    version (server/nfs.py), when this server exports NFS roots."""
    from server import nfs

    if version.manifest.format != ImageFormat.SQUASHFS:
        raise PlanRenderError(
            f"group {group.name}: the nfs root mode exports a squashfs; {group.image} version "
            f"{version.number} is {version.manifest.format}",
            hint=f"pack it as squashfs (swarmboot image pack {group.image} --format squashfs), "
            f"or pin a squashfs version: swarmboot group set {group.name} --image-version N",
        )
    if not nfs_port:
        raise PlanRenderError(
            f"group {group.name} boots from NFS, and this server does not export NFS roots "
            "(swarmboot serve --no-nfs)",
            hint="run swarmboot serve without --no-nfs, or set another root mode: "
            f"swarmboot group set {group.name} --root overlay",
        )
    try:
        return nfs.plan_export(version.image, version.number, server_url, nfs_port)
    except nfs.NfsError as exc:
        raise PlanRenderError(str(exc), hint=exc.hint) from None


@dataclass(frozen=True)
class AfterBoot:
    """How long a booted node seeds its image (the seed_* settings; docs/swarm.md)."""

    seconds: int = 1800
    idle_seconds: int = 60
    rate_limit: int = 0

    @classmethod
    def of(cls, settings: Settings) -> AfterBoot:
        s = settings
        return cls(s.seed_after_boot_seconds, s.seed_idle_seconds, s.seed_after_boot_rate)


def build(
    node: Node,
    catalog: Catalog,
    server_url: str,
    boot_mac: str | None = None,
    *,
    minor: int = PLAN_MINOR,
    secret_files: tuple[NodeFile, ...] = (),
    seeder_port: int = 0,
    nfs_port: int = 0,
    after_boot: AfterBoot | None = None,
    stripe: tuple[int, int] | None = None,
    files: tuple[NodeFile, ...] | None = None,
) -> BootPlan:
    """The node's plan for an agent of plan version PLAN_MAJOR.minor (PlanRenderError: it cannot
    be built, e.g. a template error, or a feature that agent lacks). `secret_files`: the secrets
    of a request with the node's token (server/tokens.py); the public part has none. `stripe`
    and `files`: already worked out for a batch (server/plan_ahead.py), else queried and
    rendered here."""
    group = node.group
    version = image_version(group, catalog)
    m = version.manifest
    domain = node.network.domain if node.network else ""
    kernel_args = " ".join(a for a in (group.kernel_args, node.kernel_args) if a)
    stripe, stripes = stripe if stripe is not None else stripe_of(node)
    after = after_boot or AfterBoot()
    return BootPlan(
        version=PLAN_VERSION,
        minor=minor,
        node=NodeInfo(name=node.name, hostname=node.name, group=group.name, domain=domain),
        image=ImageRef(
            name=m.image,
            version=m.version,
            format=ImageFormat(m.format),
            size=m.image_file.size,
            sha256=m.image_file.sha256,
            torrent_url=catalog.url(version, m.torrent.name),
            http_url=catalog.url(version, m.image_file.name),
            info_hash=m.info_hash,
            kernel_version=m.kernel_version,
            kernel_url=catalog.url(version, m.kernel.name),
            initramfs_url=catalog.url(version, m.initramfs.name),
        ),
        reporting=Reporting(
            events_url=f"{server_url}/api/v1/nodes/{node.name}/events", heartbeat_seconds=HEARTBEAT_SECONDS
        ),
        interfaces=interfaces(node, boot_mac),
        root=root_spec(group, minor, node, version=version, server_url=server_url, nfs_port=nfs_port),
        scripts=Scripts(pre=group.pre_script, part=group.part_script, post=group.post_script),
        files=files if files is not None else render_files(node, version, server_url),
        ssh_authorized_keys=tuple(group.ssh_keys),
        kernel_args=kernel_args,
        torrent=TorrentOptions(
            stripe=stripe, stripes=stripes, seeder_port=seeder_port,
            seed_after_boot_seconds=after.seconds, seed_idle_seconds=after.idle_seconds,
            seed_rate_limit=after.rate_limit,
        ),
        service=node.service,
        secret_files=secret_files,
    )
