"""Names that may become paths, URLs and apt arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.packages import BASE_PACKAGES, check_package_names, image_packages
from ground.errors import UsageError
from ground.store import check_name


@pytest.mark.parametrize("name", ["base", "compute-2", "gpu_a100", "a", "v1.2", "x" * 63])
def test_good_image_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "a..b", "../etc", "a/b", "-rf", ".hidden", "Upper", "x" * 64,
                                  "sp ace", "semi;colon", "ünï"])
def test_unsafe_image_names(name: str) -> None:
    with pytest.raises(UsageError, match="invalid image name"):
        check_name(name)


def test_package_names() -> None:
    assert check_package_names(["htop", "libc6", "g++", "linux-image-6.1.0-1-amd64=6.1.1-1"]) == [
        "htop", "libc6", "g++", "linux-image-6.1.0-1-amd64=6.1.1-1"]
    for bad in (["-y"], ["--allow-unauthenticated"], ["a b"], ["Pkg"], [""]):
        with pytest.raises(UsageError):
            check_package_names(bad)


def test_image_packages_keep_base_first_without_duplicates() -> None:
    packages = image_packages(["htop", "curl", "htop"])
    assert packages[: len(BASE_PACKAGES)] == list(BASE_PACKAGES)
    assert packages.count("curl") == 1 and packages.count("htop") == 1
    assert "linux-image-amd64" in BASE_PACKAGES and "dracut-network" in BASE_PACKAGES


def test_stale_staging_directories_of_dead_processes_are_removed(tmp_path: Path) -> None:
    import os

    tmp_path = tmp_path / "staging"
    tmp_path.mkdir()

    from builder.treeops import clean_stale_staging, staging_path

    gone_pid = _dead_pid()
    (tmp_path / f"img.{gone_pid}.abcd/rootfs").mkdir(parents=True)
    mine = staging_path(tmp_path, "img", "pack3")
    mine.mkdir()
    (tmp_path / "img.1.live").mkdir()  # pid 1 is alive
    (tmp_path / "unrelated").mkdir()
    assert clean_stale_staging(tmp_path) == [f"img.{gone_pid}.abcd"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "img.1.live", "unrelated"])
    assert mine.name == f"img.{os.getpid()}.pack3"


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait(timeout=10)
    return proc.pid
