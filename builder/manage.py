"""Image management: list, show, rm, clone, rollback, and entering an image (lchroot)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from builder.chroot import ChrootSpec, exec_in_image
from builder.create import check_new_name, image_json
from builder.kernel import image_kernel_version
from builder.treeops import copy_tree, remove_tree, staging_path
from ground.config import Settings
from ground.errors import NotFoundError
from ground.store import ImageStore


@dataclass(frozen=True)
class ImageSummary:
    name: str
    release: str
    kernel_version: str
    current: int | None
    versions: list[int]


def list_images(settings: Settings) -> list[ImageSummary]:
    store = ImageStore(settings)
    summaries = []
    for name in store.list_images():
        info = image_json(store, name)
        summaries.append(ImageSummary(
            name=name,
            release=str(info.get("release", "?")),
            kernel_version=image_kernel_version(store.rootfs(name)) or "-",
            current=store.current_version(name),
            versions=store.versions(name),
        ))
    return summaries


def show_json(settings: Settings, name: str, version: int | None = None) -> dict[str, Any]:
    """The manifest of a version (default: current) with the absolute path of each file."""
    store = ImageStore(settings)
    manifest = store.manifest(name, version)
    data = manifest.to_dict()
    data["paths"] = {key: str(store.file_path(manifest, key)) for key in manifest.files()}
    data["version_dir"] = str(store.version_dir(name, manifest.version))
    data["current"] = store.current_version(name) == manifest.version
    return data


def show_text(settings: Settings, name: str) -> str:
    store = ImageStore(settings)
    store.require(name)
    info = image_json(store, name)
    current = store.current_version(name)
    lines = [
        f"image     {name}",
        f"rootfs    {store.rootfs(name)}",
        f"release   {info.get('release', '?')} from {info.get('mirror', '?')}",
        f"origin    {describe_origin(info)}",
        f"kernel    {image_kernel_version(store.rootfs(name)) or '-'}",
        f"packages  {', '.join(info.get('packages', [])) or '(base only)'}",
        f"recipe    {info.get('recipe') or '-'}",
        f"created   {info.get('created', '?')}",
        f"current   {current if current is not None else '- (not packed yet)'}",
    ]
    grabbed = info.get("grabbed")
    if grabbed:
        lines.insert(4, f"grabbed   the root of node {grabbed.get('node')} ({grabbed.get('address')}) on "
                     f"{grabbed.get('grabbed')}: the tree, for the next pack")
    for version in store.versions(name):
        manifest = store.manifest(name, version)
        mark = "*" if version == current else " "
        lines.append(
            f"  {mark} v{version}  {manifest.created}  {manifest.format} {manifest.compression}  "
            f"{manifest.image_file.size / 2**20:.1f} MiB  kernel {manifest.kernel_version}  "
            f"info-hash {manifest.info_hash}"
        )
    return "\n".join(lines)


def describe_origin(info: dict[str, Any]) -> str:
    """Where the tree came from, for `image show` (images made before origins: a mirror)."""
    origin = info.get("origin") or {"kind": "mirror"}
    if origin.get("kind") == "oci":
        return f"container image {origin.get('source')} ({origin.get('digest') or 'digest unknown'})"
    if origin.get("kind") == "grab":
        return f"the root of node {origin.get('node')} ({origin.get('address')}) on {origin.get('grabbed')}"
    if origin.get("kind") == "image":
        return f"a copy of image {origin.get('base')} (as of {origin.get('base_created') or '?'})"
    return f"bootstrapped with {info.get('bootstrapper') or '?'}"


def remove_image(settings: Settings, name: str) -> None:
    """Delete an image and all its versions; refused while a shell or a pack holds its lock."""
    store = ImageStore(settings)
    store.require(name)
    with store.lock(name, "swarmboot image rm"):
        trash = staging_path(store.staging_dir, name, "rm" + uuid.uuid4().hex[:8])
        trash.parent.mkdir(parents=True, exist_ok=True)
        store.image_dir(name).rename(trash)  # gone at once for readers; deleted below
    remove_tree(trash)


def clone_image(settings: Settings, source: str, target: str) -> Path:
    """Copy an image's tree (not its packed versions) under a new name."""
    store = ImageStore(settings)
    store.require(source)
    check_new_name(store, target)
    staging = staging_path(store.staging_dir, target, uuid.uuid4().hex[:8])
    staging.mkdir(parents=True)
    try:
        with store.lock(source, f"swarmboot image clone {source} {target}"):
            copy_tree(store.rootfs(source), staging / "rootfs")
        info = image_json(store, source)
        info.update(name=target, cloned_from=source)
        (staging / "image.json").write_text(json.dumps(info, indent=2) + "\n")
        staging.rename(store.image_dir(target))
    except BaseException:
        remove_tree(staging)
        raise
    return store.image_dir(target)


def rollback(settings: Settings, name: str, to: int | None = None) -> int:
    """Make version `to` (default: the one before the current) current; return it."""
    store = ImageStore(settings)
    store.require(name)
    versions = store.versions(name)
    current = store.current_version(name)
    if to is None:
        older = [v for v in versions if current is not None and v < current]
        if not older:
            raise NotFoundError(
                f"image {name!r} has no version older than {current}",
                hint=f"versions: {', '.join(map(str, versions)) or 'none'}",
            )
        to = older[-1]
    with store.lock(name, "swarmboot image rollback"):
        store.set_current(name, to)
    return to


def shell(settings: Settings, name: str, command: list[str]) -> NoReturn:
    """Become `command` (default: a login shell) inside the image, holding its lock."""
    store = ImageStore(settings)
    store.require(name)
    rootfs = store.rootfs(name)
    if not command:
        command = ["/bin/bash", "-l"] if (rootfs / "bin/bash").exists() else ["/bin/sh", "-l"]
    spec = ChrootSpec(root=rootfs, kernel_version=image_kernel_version(rootfs), label=name)
    with store.lock(name, f"lchroot {name}") as fd:
        exec_in_image(spec, command, keep_fds=[fd])


