"""Where an image's tree comes from: the install phase's built-in hook (install/10-bootstrap).

    mirror   mmdebstrap/debootstrap from a Debian mirror          `image create NAME`
    image    a copy of another image's tree                       recipe `base = "IMAGE"`
    oci      a container image's layers (builder/oci.py)          `image import NAME SOURCE`
    grab     a booted node's root, by rsync over SSH (grab.py)      `image grab NODE NAME --new`

Whatever the origin, the later phases are the same: the base packages that are missing are
installed with apt (kernel, dracut, the agent's tools), the recipe's files and hooks run, the
identity is reset; so every image can be packed and booted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from builder.bootstrap import bootstrap
from builder.treeops import copy_tree, remove_tree
from ground.errors import SwarmbootError
from ground.store import ImageStore

if TYPE_CHECKING:
    from builder.create import BuildContext
    from builder.grab import GrabFrom


@dataclass(frozen=True)
class Origin:
    kind: str  # "mirror", "image", "oci" or "grab"
    ref: str = ""  # the base image's name, the container image's SOURCE, or the node's name
    grab: GrabFrom | None = field(default=None, compare=False)  # kind grab: the node and its excludes
    tls_verify: bool = True  # kind oci, docker://: False for a registry over HTTP (image import --insecure)

    def describe(self, release: str, archive: str, bootstrapper: str) -> str:
        if self.kind == "image":
            return f"a copy of image {self.ref}"
        if self.kind == "oci":
            return f"the container image {self.ref}"
        if self.kind == "grab" and self.grab is not None:
            return f"the root of node {self.ref} ({self.grab.remote})"
        return f"{release} from {archive} with {bootstrapper}"


MIRROR = Origin("mirror")


def os_release(rootfs: Path) -> dict[str, str]:
    """/etc/os-release (or /usr/lib/os-release) of a tree, as a dict."""
    for name in ("etc/os-release", "usr/lib/os-release"):  # the first is mostly a link to the second
        path = rootfs / name
        if not path.is_symlink() and path.is_file():  # a link is not followed: it may point at the host's
            values = {}
            for line in path.read_text(errors="replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    values[key.strip()] = value.strip().strip('"')
            return values
    return {}


def debian_release(rootfs: Path, where: str) -> str:
    """The Debian codename of a tree that apt can extend; else a SwarmbootError saying why not."""
    info = os_release(rootfs)
    family = {info.get("ID", ""), *info.get("ID_LIKE", "").split()}
    codename = info.get("VERSION_CODENAME", "")
    hint = ("swarmboot installs the kernel, dracut and the boot agent's tools with apt: start from a "
            "Debian-based image (e.g. debian:bookworm)")
    if "debian" not in family:
        raise SwarmbootError(f"{where} is not Debian-based (/etc/os-release says ID={info.get('ID', '?')!r})",
                             hint=hint)
    if not codename:
        raise SwarmbootError(f"{where} has no VERSION_CODENAME in /etc/os-release (testing or sid?)",
                             hint=hint + ", a stable release")
    if not (rootfs / "usr/bin/apt-get").exists() or not (rootfs / "usr/bin/dpkg").exists():
        raise SwarmbootError(f"{where} has no apt-get or dpkg (a distroless or slim-to-the-bone image?)",
                             hint=hint)
    return codename


def fill_tree(ctx: BuildContext) -> None:
    """The built-in install/10-bootstrap: make ctx.rootfs from ctx.origin."""
    origin = ctx.origin
    if origin.kind == "mirror":
        bootstrap(ctx.bootstrapper, ctx.release, ctx.mirrors, ctx.rootfs, packages=ctx.packages,
                  workdir=ctx.staging)
    elif origin.kind == "image":
        copy_base_image(ctx)
    elif origin.kind == "oci":
        import_container_image(ctx)
    elif origin.kind == "grab":
        grab_node(ctx)
    else:  # pragma: no cover - Origin is built by create/import only
        raise ValueError(origin.kind)


def copy_base_image(ctx: BuildContext) -> None:
    from builder.create import image_json

    store = ImageStore(ctx.settings)
    store.require(ctx.origin.ref)
    with store.lock(ctx.origin.ref, f"swarmboot image create {ctx.name} (base {ctx.origin.ref})"):
        copy_tree(store.rootfs(ctx.origin.ref), ctx.rootfs)
    base = image_json(store, ctx.origin.ref)
    ctx.origin_info = {"base": ctx.origin.ref, "base_created": base.get("created"),
                       "base_origin": base.get("origin")}


def import_container_image(ctx: BuildContext) -> None:
    from builder.oci import import_layers

    work = ctx.staging / "oci"
    work.mkdir()
    try:
        imported = import_layers(ctx.origin.ref, work, ctx.origin.tls_verify)
        ctx.release = debian_release(imported.rootfs, f"the container image {ctx.origin.ref}")
        imported.rootfs.rename(ctx.rootfs)
    finally:
        remove_tree(work)
    ctx.origin_info = {
        "source": imported.source,
        "digest": imported.digest,
        "layers": imported.layers,
        **({"tls_verify": False} if not ctx.origin.tls_verify else {}),
    }


def grab_node(ctx: BuildContext) -> None:
    from builder.grab import fill_from_node, grab_origin_info

    node = ctx.origin.grab
    assert node is not None, "Origin('grab') is made with its node"
    seconds = fill_from_node(ctx.rootfs, node)
    ctx.release = debian_release(ctx.rootfs, f"the root of node {node.name}")
    ctx.origin_info = {**grab_origin_info(node), "seconds": round(seconds, 1)}
