"""Names that may become paths, URLs and apt arguments."""

from __future__ import annotations

import pytest

from builder.packages import BASE_PACKAGES, check_package_names, image_packages
from builder.store import check_name
from swarmboot.errors import UsageError


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
