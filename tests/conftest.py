"""Fixtures shared by every part's tests.

Per test (autouse): `swarmboot_home` gives each test its own $SWARMBOOT_HOME in a temporary
directory (and no config file, no site hooks), so no test touches /var/lib/swarmboot.
`settings` is the Settings for that home.

Per test run: `base_image` bootstraps ONE Debian image with the default package set (kernel,
dracut, everything the boot agent needs: builder/packages.py) and returns (settings, name). It
is shared by all tests: do not change it in place — copy it into your own home with the
`clone_base` fixture (`clone_base(settings, "name")`) or use `image_from_base`; or pack it with
`packed_base_image` (session: packed once, default format and compression).
`settings_for(home)` gives the Settings of any other home (e.g. a module-scoped one).

SWARMBOOT_TEST_CACHE=DIR (development only; CI never sets it) keeps the bootstrapped tree
between runs as DIR/base-<key>.tar.zst, where the key hashes the package list, the release, the
mirror and the builder code that makes the tree; restored with owners, modes and xattrs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ground.config import Settings

BASE_NAME = "base"
CACHE_ENV = "SWARMBOOT_TEST_CACHE"
TAR_OPTIONS = ["--zstd", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"]


def make_settings(home: Path) -> Settings:
    """Settings for a test home: defaults, with no site hooks."""
    return Settings(home=home, hooks_dir=home / "site-hooks")


@pytest.fixture(autouse=True)
def swarmboot_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $SWARMBOOT_HOME for this test (subprocesses inherit it)."""
    home = tmp_path / "swarmboot-home"
    home.mkdir()
    monkeypatch.setenv("SWARMBOOT_HOME", str(home))
    monkeypatch.setenv("SWARMBOOT_HOOKS_DIR", str(home / "site-hooks"))
    monkeypatch.setenv("SWARMBOOT_CONFIG", str(tmp_path / "no-such-swarmboot.toml"))
    return home


@pytest.fixture
def settings(swarmboot_home: Path) -> Settings:
    return make_settings(swarmboot_home)


@pytest.fixture(scope="session")
def settings_for() -> Callable[[Path], Settings]:
    """settings_for(home): the test Settings of another home (e.g. a module-scoped one)."""
    return make_settings


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (mmdebstrap, mounts, namespaces)")


def base_cache_key() -> str:
    """Changes whenever the bootstrapped tree would: packages, release, mirrors, builder code."""
    import builder
    from builder.packages import BASE_PACKAGES
    from builder.sources import default_mirrors

    code = Path(builder.__file__).parent
    digest = hashlib.sha256()
    mirrors = default_mirrors("bookworm")
    digest.update(json.dumps([list(BASE_PACKAGES), "bookworm", mirrors.archive, mirrors.security]).encode())
    for name in ("bootstrap.py", "steps.py", "divert-dracut.sh", "packages.py", "sources.py", "create.py"):
        digest.update((code / name).read_bytes())
    return digest.hexdigest()[:16]


def _restore(tarball: Path, image_dir: Path) -> None:
    from ground.run import run

    image_dir.mkdir(parents=True)
    run(["tar", "--extract", *TAR_OPTIONS, "--same-permissions", "--same-owner",
         f"--file={tarball}", "-C", str(image_dir)], timeout=600)


def _save(image_dir: Path, cache: Path, key: str) -> None:
    from ground.run import run

    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".base-{key}.tar.zst.{os.getpid()}"
    run(["tar", "--create", *TAR_OPTIONS, f"--file={partial}", "-C", str(image_dir),
         "rootfs", "image.json"], timeout=600)
    for old in cache.glob("base-*.tar.zst"):
        old.unlink()
    partial.rename(cache / f"base-{key}.tar.zst")


@pytest.fixture(scope="session")
def base_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """(settings, "base"): one bootable Debian image per test run, in its own home. Read-only!"""
    _require_root()
    from builder.create import create_image
    from ground.store import ImageStore

    home = tmp_path_factory.mktemp("base-home")
    base_settings = make_settings(home)
    image_dir = ImageStore(base_settings).image_dir(BASE_NAME)
    cache_dir = os.environ.get(CACHE_ENV)
    key = base_cache_key()
    tarball = Path(cache_dir) / f"base-{key}.tar.zst" if cache_dir else None
    if tarball is not None and tarball.is_file():
        _restore(tarball, image_dir)
    else:
        create_image(base_settings, BASE_NAME, release="bookworm")
        if tarball is not None:
            _save(image_dir, tarball.parent, key)
    yield base_settings, BASE_NAME
    from builder.treeops import remove_tree

    remove_tree(home)


def _clone(base: tuple[Settings, str], settings: Settings, name: str) -> str:
    from builder.treeops import copy_tree
    from ground.store import ImageStore

    base_settings, base_name = base
    source = ImageStore(base_settings).image_dir(base_name)
    target = ImageStore(settings).image_dir(name)
    target.mkdir(parents=True)
    copy_tree(source / "rootfs", target / "rootfs")
    shutil.copy2(source / "image.json", target / "image.json")
    return name


@pytest.fixture(scope="session")
def clone_base(base_image: tuple[Settings, str]) -> Callable[[Settings, str], str]:
    """clone_base(settings, name): copy the base image (tree and image.json, no versions) into
    `settings`' home as `name` (a full copy: ~600 MB, 5-15 s) and return the name."""
    return functools.partial(_clone, base_image)


@pytest.fixture
def image_from_base(
    clone_base: Callable[[Settings, str], str], settings: Settings
) -> Iterator[tuple[Settings, str]]:
    """(settings, "work"): a private copy of the base image in this test's home (removed after)."""
    from builder.treeops import remove_tree

    yield settings, clone_base(settings, "work")
    remove_tree(settings.images_dir)


@pytest.fixture(scope="session")
def packed_base_image(base_image: tuple[Settings, str]) -> tuple[Settings, str]:
    """The base image packed once (default format and compression): (settings, name)."""
    from builder.pack import pack

    base_settings, name = base_image
    pack(base_settings, name)
    return base_settings, name
