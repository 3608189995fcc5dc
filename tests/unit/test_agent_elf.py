"""ELF reading for the glibc check, against the host's real binaries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bootagent.libs import find_in_dirs
from builder import elf


def test_versions_needed_and_defined_on_the_host() -> None:
    libc = elf.find_libc(Path("/"))
    assert libc is not None
    defined = elf.defined_versions(libc)
    assert (2, 2) in {(a, b) for a, b in defined if a == 2 and b == 2} or min(defined) <= (2, 3)
    needed = elf.needed_versions(Path(sys.executable).resolve())
    assert needed and max(needed) <= max(defined)  # the host runs its own python


def test_needed_libraries_of_python() -> None:
    needed = elf.needed_libraries(Path(sys.executable).resolve())
    assert "libc.so.6" in needed


def test_non_elf_files_need_nothing(tmp_path: Path) -> None:
    (tmp_path / "x.so").write_text("not elf")
    assert elf.needed_versions(tmp_path / "x.so") == set() == elf.needed_libraries(tmp_path / "x.so")
    with pytest.raises(elf.NotElf):
        elf.defined_versions(tmp_path / "x.so")


def test_libc_found_through_symlinks_inside_the_root(tmp_path: Path) -> None:
    lib = tmp_path / "lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    real = elf.find_libc(Path("/"))
    assert real is not None
    (lib / "libc-2.99.so").write_bytes(real.read_bytes())
    (lib / "libc.so.6").symlink_to("/lib/x86_64-linux-gnu/libc-2.99.so")  # absolute: inside the root
    assert elf.find_libc(tmp_path) == lib / "libc-2.99.so"


def test_find_library_without_ldconfig(tmp_path: Path) -> None:
    (tmp_path / "libudev.so.1").write_text("")
    assert find_in_dirs("udev", [str(tmp_path / "missing"), str(tmp_path)]) == str(tmp_path / "libudev.so.1")
    assert find_in_dirs("nothere", [str(tmp_path)]) is None
