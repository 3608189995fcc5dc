"""Finding shared libraries where `ldconfig` is missing (the initramfs).

pyudev loads libudev with ctypes.util.find_library, which on Linux asks `ldconfig -p`, gcc or ld:
none of them is in the initramfs, so it finds nothing. `ensure_find_library()` makes it fall back
to looking in the usual library directories (and the frozen bundle's own directory).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Callable, Sequence

from ground.contract.image import LIB_DIRS


def find_in_dirs(name: str, dirs: Sequence[str]) -> str | None:
    """The file name of lib<name>.so.N (or lib<name>.so) in the first directory that has one."""
    prefix = f"lib{name}.so"
    for directory in dirs:
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue
        versioned = [e for e in entries if e.startswith(prefix + ".")]
        if versioned:
            return os.path.join(directory, versioned[0])
        if prefix in entries:
            return os.path.join(directory, prefix)
    return None


def ensure_find_library() -> None:
    """Make ctypes.util.find_library fall back to a directory search (idempotent)."""
    original: Callable[[str], str | None] = ctypes.util.find_library
    if getattr(original, "swarmboot", False):
        return
    dirs = [getattr(sys, "_MEIPASS", ""), *os.environ.get("LD_LIBRARY_PATH", "").split(":"), *LIB_DIRS]

    def find_library(name: str) -> str | None:
        return original(name) or find_in_dirs(name, [d for d in dirs if d])

    find_library.swarmboot = True  # type: ignore[attr-defined]
    ctypes.util.find_library = find_library
    loaded = sys.modules.get("pyudev._ctypeslib.utils")  # it bound the name when imported
    if loaded is not None:
        loaded.find_library = find_library  # type: ignore[attr-defined]
