"""Just enough ELF reading to answer "can this image's C library run the frozen agent?".

The bundle's binaries *need* symbol versions (GLIBC_2.x in .gnu.version_r); the image's libc.so.6
*defines* them (.gnu.version_d). Stdlib only, 32/64-bit, either byte order.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

SHT_DYNAMIC = 6
DT_NEEDED = 1
SHT_GNU_VERDEF = 0x6FFFFFFD
SHT_GNU_VERNEED = 0x6FFFFFFE
GLIBC_RE = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")

Version = tuple[int, int]


class NotElf(ValueError):
    pass


def _sections(data: bytes) -> tuple[str, list[tuple[int, int, int, int, int]]]:
    """(byte order, [(type, offset, size, link, info)]) of the section headers."""
    if data[:4] != b"\x7fELF":
        raise NotElf("not an ELF file")
    bits, order = data[4], "<" if data[5] == 1 else ">"
    if bits == 2:
        shoff, shentsize, shnum = (
            struct.unpack_from(order + "Q", data, 0x28)[0],
            *struct.unpack_from(order + "HH", data, 0x3A),
        )
        fmt, fields = order + "IIQQQQIIQQ", (1, 4, 5, 6, 7)
    else:
        shoff, shentsize, shnum = (
            struct.unpack_from(order + "I", data, 0x20)[0],
            *struct.unpack_from(order + "HH", data, 0x2E),
        )
        fmt, fields = order + "IIIIIIIIII", (1, 4, 5, 6, 7)
    sections = []
    for i in range(shnum):
        entry = struct.unpack_from(fmt, data, shoff + i * shentsize)
        sections.append(tuple(entry[f] for f in fields))
    return order, sections  # type: ignore[return-value]


def _string(data: bytes, strtab_offset: int, index: int) -> str:
    end = data.index(b"\0", strtab_offset + index)
    return data[strtab_offset + index : end].decode("ascii", "replace")


def _glibc(name: str) -> Version | None:
    m = GLIBC_RE.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def needed_versions(path: Path) -> set[Version]:
    """GLIBC_x.y versions the binary or library at `path` needs (empty for non-ELF files)."""
    data = path.read_bytes()
    try:
        order, sections = _sections(data)
    except (NotElf, struct.error):
        return set()
    found: set[Version] = set()
    for kind, offset, _size, link, count in sections:
        if kind != SHT_GNU_VERNEED:
            continue
        strtab = sections[link][1]
        pos = offset
        for _ in range(count):
            _, cnt, _, aux, nxt = struct.unpack_from(order + "HHIII", data, pos)
            apos = pos + aux
            for _ in range(cnt):
                _, _, _, name, anext = struct.unpack_from(order + "IHHII", data, apos)
                version = _glibc(_string(data, strtab, name))
                if version:
                    found.add(version)
                apos += anext
            if not nxt:
                break
            pos += nxt
    return found


def needed_libraries(path: Path) -> set[str]:
    """The DT_NEEDED sonames of an ELF binary or library (empty for non-ELF files)."""
    data = path.read_bytes()
    try:
        order, sections = _sections(data)
    except (NotElf, struct.error):
        return set()
    wide = data[4] == 2
    entry, fmt = (16, order + "qQ") if wide else (8, order + "iI")
    found = set()
    for kind, offset, size, link, _ in sections:
        if kind != SHT_DYNAMIC:
            continue
        strtab = sections[link][1]
        for pos in range(offset, offset + size, entry):
            tag, value = struct.unpack_from(fmt, data, pos)
            if tag == 0:
                break
            if tag == DT_NEEDED:
                found.add(_string(data, strtab, value))
    return found


def defined_versions(libc: Path) -> set[Version]:
    """GLIBC_x.y versions a libc.so.6 provides."""
    data = libc.read_bytes()
    order, sections = _sections(data)
    found: set[Version] = set()
    for kind, offset, _size, link, count in sections:
        if kind != SHT_GNU_VERDEF:
            continue
        strtab = sections[link][1]
        pos = offset
        for _ in range(count):
            _, _, _, cnt, _, aux, nxt = struct.unpack_from(order + "HHHHIII", data, pos)
            if cnt:
                name = struct.unpack_from(order + "I", data, pos + aux)[0]
                version = _glibc(_string(data, strtab, name))
                if version:
                    found.add(version)
            if not nxt:
                break
            pos += nxt
    return found


def resolve_in(root: Path, path: Path) -> Path:
    """Follow symlinks of `path` as if `root` were /, at most 20 hops."""
    for _ in range(20):
        if not path.is_symlink():
            return path
        target = Path(path.readlink())
        path = root / str(target).lstrip("/") if target.is_absolute() else path.parent / target
    raise NotElf(f"too many symlinks at {path}")


def find_libc(root: Path) -> Path | None:
    for rel in (
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libc.so.6",
        "usr/lib/aarch64-linux-gnu/libc.so.6",
        "lib/aarch64-linux-gnu/libc.so.6",
        "usr/lib64/libc.so.6",
        "lib64/libc.so.6",
        "usr/lib/libc.so.6",
        "lib/libc.so.6",
    ):
        candidate = root / rel
        if candidate.exists() or candidate.is_symlink():
            resolved = resolve_in(root, candidate)
            if resolved.is_file():
                return resolved
    return None
