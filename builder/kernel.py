"""The kernel installed in an image tree."""

from __future__ import annotations

import re
from pathlib import Path

from ground.errors import NotFoundError


def _version_key(version: str) -> list[tuple[int, object]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", version) if part]


def kernel_versions(rootfs: Path) -> list[str]:
    """Versions V with both boot/vmlinuz-V and lib/modules/V in the tree, oldest first."""
    boot = rootfs / "boot"
    if not boot.is_dir():
        return []
    found = []
    for path in boot.glob("vmlinuz-*"):
        version = path.name.removeprefix("vmlinuz-")
        if (rootfs / "usr/lib/modules" / version).is_dir() or (rootfs / "lib/modules" / version).is_dir():
            found.append(version)
    return sorted(found, key=_version_key)


def image_kernel_version(rootfs: Path) -> str | None:
    """The newest kernel of the tree, or None when it has none."""
    versions = kernel_versions(rootfs)
    return versions[-1] if versions else None


def require_kernel(rootfs: Path, image: str) -> str:
    version = image_kernel_version(rootfs)
    if version is None:
        raise NotFoundError(
            f"image {image!r} has no kernel (no /boot/vmlinuz-* with its /lib/modules)",
            hint=f"install one: lchroot {image} apt-get install -y linux-image-amd64",
        )
    return version
