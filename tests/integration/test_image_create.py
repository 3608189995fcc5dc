"""image create with the real tools: bad input changes nothing; recipes and hooks (site hooks
replacing a built-in, recipe hooks inside the image and on the host); a failing hook leaves
nothing behind. The bootstrap is replaced by a site hook that copies the session's base image,
which is exactly how a site swaps a built-in step, and keeps these tests fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.fingerprint import fingerprint
from ground.config import Settings
from ground.store import ImageStore

pytestmark = pytest.mark.root
VENV_BIN = Path(sys.executable).parent


def create(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """`swarmboot image create …` in this test's home (the autouse fixture set the environment)."""
    return subprocess.run([str(VENV_BIN / "swarmboot"), "image", "create", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def site_bootstrap(settings: Settings, base: tuple[Settings, str], copy: str) -> None:
    """A site hook named like the built-in install/10-bootstrap: it replaces it."""
    base_rootfs = ImageStore(base[0]).rootfs(base[1])
    hook = settings.hooks_dir / "install" / "10-bootstrap"
    hook.parent.mkdir(parents=True)
    hook.write_text(f'#!/bin/sh\nset -e\necho "site bootstrap into $SWARMBOOT_ROOTFS"\n'
                    f'cp {copy} "{base_rootfs}" "$SWARMBOOT_ROOTFS"\n')
    hook.chmod(0o755)


def leftovers(settings: Settings) -> list[str]:
    images = settings.images_dir
    staging = images / ".staging"
    found = [p.name for p in images.iterdir() if p.name != ".staging"] if images.is_dir() else []
    return found + ([f".staging/{p.name}" for p in staging.iterdir()] if staging.is_dir() else [])


def test_unsafe_names_are_refused(settings: Settings) -> None:
    for name in ("../evil", "Upper", "-rf", "a/b", ""):
        result = create("--release", "bookworm", "--", name)
        assert result.returncode == 2, (name, result.stderr)
        assert "invalid image name" in result.stderr
    assert leftovers(settings) == []


def test_a_taken_name_is_refused_and_the_image_untouched(settings: Settings) -> None:
    rootfs = ImageStore(settings).rootfs("taken")
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/marker").write_text("keep me\n")
    before = fingerprint(rootfs)
    result = create("taken")
    assert result.returncode == 1 and "exists already" in result.stderr
    assert fingerprint(rootfs) == before
    assert leftovers(settings) == ["taken"]


def test_bad_recipes_are_refused_before_anything_runs(settings: Settings, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('packages = ["--force-yes"]\n')
    result = create("good", "--recipe", str(recipe))
    assert result.returncode == 2 and "invalid package name" in result.stderr
    recipe.write_text('[[hooks.bogus]]\nname = "x"\nrun = "true"\n')
    result = create("good", "--recipe", str(recipe))
    assert result.returncode == 2 and "unknown hook phase 'bogus'" in result.stderr
    assert leftovers(settings) == []


def test_a_failing_hook_shows_its_name_and_output_and_leaves_nothing(
    settings: Settings, base_image: tuple[Settings, str], tmp_path: Path
) -> None:
    # Hard links are enough here: the failing hook runs before any step writes to the tree.
    site_bootstrap(settings, base_image, "-al")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[[hooks.packages]]\nname = "05-explode"\n'
                      'run = "echo boom in $SWARMBOOT_IMAGE on $(uname -r); exit 3"\n')
    base_tree = fingerprint(ImageStore(base_image[0]).rootfs(base_image[1]))
    result = create("broken", "--recipe", str(recipe))
    assert result.returncode == 1
    assert "hook packages/05-explode failed: exit code 3" in result.stderr
    assert "boom in broken on" in result.stderr
    assert "site bootstrap into" in result.stderr or "install/10-bootstrap (site" in result.stderr
    assert leftovers(settings) == []
    assert fingerprint(ImageStore(base_image[0]).rootfs(base_image[1])) == base_tree


def test_recipe_packages_files_and_hooks(
    settings: Settings, base_image: tuple[Settings, str], tmp_path: Path
) -> None:
    site_bootstrap(settings, base_image, "-a")
    (tmp_path / "files").mkdir()
    (tmp_path / "files/motd").write_text("welcome to the cluster\n")
    host_hook = tmp_path / "host-hook.sh"
    host_hook.write_text('#!/bin/sh\necho "$SWARMBOOT_PHASE" > "$SWARMBOOT_ROOTFS/etc/host-hook"\n')
    host_hook.chmod(0o755)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        'packages = ["hello"]\n'
        '[[files]]\nsource = "files/motd"\ndest = "/etc/motd"\nmode = "0640"\n'
        '[[hooks.configure]]\nname = "stamp"\nrun = "uname -r > /etc/recipe-ran"\n'
        '[[hooks.post-install]]\nname = "on-host"\nscript = "host-hook.sh"\nchroot = false\n'
    )
    result = create("custom", "--recipe", str(recipe))
    assert result.returncode == 0, result.stderr
    rootfs = ImageStore(settings).rootfs("custom")
    kernel = next(p.name for p in (rootfs / "usr/lib/modules").iterdir())
    assert (rootfs / "usr/bin/hello").is_file()  # installed by apt in the packages phase
    assert (rootfs / "etc/motd").read_text() == "welcome to the cluster\n"
    assert (rootfs / "etc/motd").stat().st_mode & 0o7777 == 0o640
    assert (rootfs / "etc/recipe-ran").read_text().strip() == kernel
    assert (rootfs / "etc/host-hook").read_text().strip() == "post-install"
    assert list((rootfs / "var/lib/apt/lists").glob("*_Packages")) == []  # cleaned
    assert os.access(rootfs / "usr/bin/dracut", os.X_OK)
    assert "swarmboot" not in subprocess.run(
        ["chroot", str(rootfs), "dpkg-divert", "--list"], capture_output=True, text=True, check=True,
        timeout=60).stdout
    assert leftovers(settings) == ["custom"]


def swarmboot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "swarmboot"), "image", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_clone_copies_everything_and_rm_removes(settings: Settings) -> None:
    store = ImageStore(settings)
    rootfs = store.rootfs("small")
    (rootfs / "usr/bin").mkdir(parents=True)
    (rootfs / "usr/bin/tool").write_text("#!/bin/sh\n")
    os.chmod(rootfs / "usr/bin/tool", 0o4755)
    os.chown(rootfs / "usr/bin/tool", 123, 456)
    os.link(rootfs / "usr/bin/tool", rootfs / "usr/bin/tool2")
    os.setxattr(rootfs / "usr/bin/tool", "security.capability",
                bytes.fromhex("0100000200200000000000000000000000000000"))
    (store.image_dir("small") / "image.json").write_text('{"name": "small", "release": "bookworm"}\n')
    result = swarmboot("clone", "small", "copy")
    assert result.returncode == 0, result.stderr
    copy = store.rootfs("copy")
    assert fingerprint(copy) == fingerprint(rootfs)
    assert (copy / "usr/bin/tool").stat().st_ino == (copy / "usr/bin/tool2").stat().st_ino
    assert os.getxattr(copy / "usr/bin/tool", "security.capability")[:4] == bytes.fromhex("01000002")
    assert '"cloned_from": "small"' in (store.image_dir("copy") / "image.json").read_text()
    again = swarmboot("clone", "small", "copy")
    assert again.returncode == 1 and "exists already" in again.stderr
    listed = swarmboot("list")
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["copy", "small"]
    assert swarmboot("rm", "copy").returncode == 0
    assert not store.image_dir("copy").exists() and store.exists("small")
    missing = swarmboot("rm", "copy")
    assert missing.returncode == 1 and "no image named 'copy'" in missing.stderr
    assert leftovers(settings) == ["small"]


def test_a_recipe_with_a_base_image_and_local_debs(
    settings: Settings, clone_base: Callable[[Settings, str], str], tmp_path: Path
) -> None:
    clone_base(settings, "work")
    pkg = tmp_path / "site-tool"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "usr/share/site-tool").mkdir(parents=True)
    (pkg / "usr/share/site-tool/README").write_text("a local package\n")
    (pkg / "DEBIAN/control").write_text(
        "Package: site-tool\nVersion: 1.2\nArchitecture: all\nDepends: hello\n"
        "Maintainer: swarmboot tests <tests@example.org>\nDescription: local deb of the base-recipe test\n")
    (tmp_path / "debs").mkdir()
    deb = tmp_path / "debs/site-tool.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(deb)],
                   check=True, capture_output=True, timeout=60)
    recipe = tmp_path / "derived.toml"
    recipe.write_text('base = "work"\ndebs = ["debs/site-tool.deb"]\n')
    result = create("derived", "--recipe", str(recipe))
    assert result.returncode == 0, result.stderr
    assert "create derived: a copy of image work" in result.stderr + result.stdout
    store = ImageStore(settings)
    rootfs = store.rootfs("derived")
    assert (rootfs / "usr/share/site-tool/README").read_text() == "a local package\n"
    assert (rootfs / "usr/bin/hello").is_file()  # its dependency, from the mirror
    assert not (rootfs / "tmp/swarmboot-debs").exists()
    info = json.loads((store.image_dir("derived") / "image.json").read_text())
    assert info["origin"]["kind"] == "image" and info["origin"]["base"] == "work"
    assert info["release"] == "bookworm"
    assert not (store.rootfs("work") / "usr/share/site-tool").exists()  # the base is untouched
    missing = tmp_path / "missing.toml"
    missing.write_text('base = "nope"\n')
    refused = create("other", "--recipe", str(missing))
    assert refused.returncode != 0 and "nope" in refused.stderr, refused.stderr
    assert sorted(leftovers(settings)) == ["derived", "work"]
