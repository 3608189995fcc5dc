"""Finding the kernel of an image tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.kernel import image_kernel_version, kernel_versions, require_kernel
from ground.errors import NotFoundError


def add_kernel(root: Path, version: str, modules: bool = True) -> None:
    (root / "boot").mkdir(parents=True, exist_ok=True)
    (root / "boot" / f"vmlinuz-{version}").write_bytes(b"k")
    if modules:
        (root / "usr/lib/modules" / version).mkdir(parents=True)


def test_newest_kernel_with_modules_wins(tmp_path: Path) -> None:
    add_kernel(tmp_path, "6.1.0-9-amd64")
    add_kernel(tmp_path, "6.1.0-10-amd64")  # 10 > 9 numerically, not as text
    add_kernel(tmp_path, "6.5.0-1-amd64", modules=False)  # no modules: not usable
    assert kernel_versions(tmp_path) == ["6.1.0-9-amd64", "6.1.0-10-amd64"]
    assert image_kernel_version(tmp_path) == "6.1.0-10-amd64"


def test_no_kernel(tmp_path: Path) -> None:
    assert image_kernel_version(tmp_path) is None
    with pytest.raises(NotFoundError, match="has no kernel"):
        require_kernel(tmp_path, "img")
