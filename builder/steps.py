"""The built-in hooks of `image create`, by phase (see builder/hooks.py for how they run).

    install       10-bootstrap            the tree from its origin (builder/origin.py): mmdebstrap (all
                                          packages, dracut diverted) or debootstrap; a base image's
                                          copy; a container image's layers
    packages      10-sources              full sources.list: RELEASE, -updates, -security
                  20-divert-dracut        /usr/bin/dracut a no-op (mmdebstrap did it already)
                  30-packages             apt-get install whatever is still missing
                  40-local-debs           the recipe's `debs` (local .deb files), with apt
    post-install  10-dracut-modules       the repository's dracut-module/* into modules.d
                  20-files                the recipe's [[files]]
    configure     10-policy-rc-d          /usr/sbin/policy-rc.d → /run/lchroot/policy-rc.d
                  20-identity             empty machine-id, hostname "localhost", empty resolv.conf,
                                          no SSH host keys
                  30-mount-points         /usr/lib/swarmboot/agent (where pack binds the agent)
                  80-undivert-dracut      the real dracut back
                  90-clean                apt caches and lists, /tmp, *-old files
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from builder.bootstrap import DIVERT_DRACUT
from builder.dracut_module import sync_modules
from builder.hooks import Builtin
from builder.origin import fill_tree
from builder.sources import render_sources_list
from ground.contract.image import AGENT_MOUNT_POINT
from ground.run import run

if TYPE_CHECKING:
    from builder.create import BuildContext

POLICY_LINK_TARGET = "/run/lchroot/policy-rc.d"
DIVERTED_DRACUT = "/usr/bin/dracut.swarmboot-real"
APT_TIMEOUT = 3600.0


def write_sources(ctx: BuildContext) -> None:
    if ctx.origin.kind == "grab":  # the node's own sources (components, extra repositories) stay
        return
    apt = ctx.rootfs / "etc/apt"
    (apt / "sources.list").write_text(render_sources_list(ctx.release, ctx.mirrors))
    # mmdebstrap's copy of its sources (and a deb822 default) would duplicate sources.list.
    for name in ("0000sources.list", "debian.sources"):
        (apt / "sources.list.d" / name).unlink(missing_ok=True)


def divert_dracut(ctx: BuildContext) -> None:
    run([str(DIVERT_DRACUT), str(ctx.rootfs)], timeout=120)


def installed_packages(ctx: BuildContext) -> set[str]:
    out = run(
        ["chroot", str(ctx.rootfs), "dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n"],
        timeout=120,
    ).stdout
    return {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}


def install_missing_packages(ctx: BuildContext) -> None:
    have = installed_packages(ctx)
    missing = [p for p in ctx.packages if p.split("=")[0].split("/")[0] not in have]
    if missing:
        apt_install(ctx, missing)


def apt_install(ctx: BuildContext, items: list[str]) -> None:
    """apt-get update, then install `items` (package names or .deb paths inside the image)."""
    from builder.chroot import run_in_image

    spec = ctx.chroot_spec()
    run_in_image(spec, ["apt-get", "update", "-q"], timeout=APT_TIMEOUT, stderr=-2)
    run_in_image(
        spec,
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *items],
        timeout=APT_TIMEOUT,
        stderr=-2,
    )


DEBS_INSIDE = "/tmp/swarmboot-debs"


def install_local_debs(ctx: BuildContext) -> None:
    """The recipe's `debs`: apt installs them with their dependencies (then they are removed)."""
    debs = ctx.recipe.debs if ctx.recipe else ()
    if not debs:
        return
    inside = ctx.rootfs / DEBS_INSIDE.lstrip("/")
    inside.mkdir(parents=True, exist_ok=True)
    try:
        for deb in debs:
            shutil.copy2(deb, inside / deb.name)
        apt_install(ctx, [f"{DEBS_INSIDE}/{deb.name}" for deb in debs])
    finally:
        shutil.rmtree(inside, ignore_errors=True)


def install_dracut_modules(ctx: BuildContext) -> None:
    sync_modules(ctx.rootfs, ctx.dracut_modules)


def copy_recipe_files(ctx: BuildContext) -> None:
    if ctx.recipe is None:
        return
    for item in ctx.recipe.files:
        target = ctx.rootfs / item.dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.source.is_dir():
            shutil.copytree(item.source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(item.source, target)
        for path in [target, *(target.rglob("*") if target.is_dir() else [])]:
            os.lchown(path, 0, 0)
        if item.mode is not None:
            target.chmod(item.mode)


def link_policy_rc_d(ctx: BuildContext) -> None:
    # Dangling outside lchroot (so inactive on nodes and in plain chroots); inside lchroot,
    # /run/lchroot is a tmpfs holding a policy that starts no daemon. Nothing is written to
    # the image while a command runs in it.
    link = ctx.rootfs / "usr/sbin/policy-rc.d"
    if not link.exists() and not link.is_symlink():
        link.symlink_to(POLICY_LINK_TARGET)


def reset_identity(ctx: BuildContext) -> None:
    reset_identity_of(ctx.rootfs)


def reset_identity_of(rootfs: Path) -> None:
    """No node's identity in the tree: every node gets its own at boot (the agent writes its
    machine-id and name; its SSH host keys come from the server, docs/security.md)."""
    etc = rootfs / "etc"
    _write(etc / "machine-id", "")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.is_file() and not dbus_id.is_symlink():
        dbus_id.unlink()
    for key in (etc / "ssh").glob("ssh_host_*"):  # openssh-server's install made them: one set for all
        if not key.is_dir():
            key.unlink()
    _write(etc / "hostname", "localhost\n")  # the agent writes the node's name
    resolv = etc / "resolv.conf"
    if resolv.is_symlink() or not resolv.exists():
        return
    _write(resolv, "")  # the node's DHCP fills it; lchroot binds the host's over it


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o644)


def make_mount_points(ctx: BuildContext) -> None:
    (ctx.rootfs / AGENT_MOUNT_POINT).mkdir(parents=True, exist_ok=True)


def undivert_dracut(ctx: BuildContext) -> None:
    root = ctx.rootfs
    listing = run(["chroot", str(root), "dpkg-divert", "--list", "/usr/bin/dracut"], timeout=60).stdout
    if "swarmboot-real" not in listing:
        return
    (root / "usr/bin/dracut").unlink(missing_ok=True)
    run(
        ["chroot", str(root), "dpkg-divert", "--local", "--rename", "--divert", DIVERTED_DRACUT,
         "--remove", "/usr/bin/dracut"],
        timeout=60,
    )


def clean_tree(ctx: BuildContext) -> None:
    clean_tree_of(ctx.rootfs)


def clean_tree_of(root: Path) -> None:
    run(["chroot", str(root), "apt-get", "clean"], timeout=300)
    for pattern in ("var/lib/apt/lists/*", "tmp/*", "var/tmp/*", "var/cache/debconf/*-old",
                    "var/lib/dpkg/*-old", "var/cache/apt/*.bin"):
        for path in root.glob(pattern):
            if path.name in ("lock", "partial", "auxfiles"):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


# The built-in hooks, by phase and name (site and recipe hooks of the same name replace them).
BUILTIN_HOOKS: tuple[Builtin, ...] = (
    Builtin("install", "10-bootstrap", fill_tree),
    Builtin("packages", "10-sources", write_sources),
    Builtin("packages", "20-divert-dracut", divert_dracut),
    Builtin("packages", "30-packages", install_missing_packages),
    Builtin("packages", "40-local-debs", install_local_debs),
    Builtin("post-install", "10-dracut-modules", install_dracut_modules),
    Builtin("post-install", "20-files", copy_recipe_files),
    Builtin("configure", "10-policy-rc-d", link_policy_rc_d),
    Builtin("configure", "20-identity", reset_identity),
    Builtin("configure", "30-mount-points", make_mount_points),
    Builtin("configure", "80-undivert-dracut", undivert_dracut),
    Builtin("configure", "90-clean", clean_tree),
)
