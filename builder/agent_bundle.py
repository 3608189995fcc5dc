"""Freezing the agent (head node side): `swarmboot agent build` and `ensure_bundle()` for pack.

A PyInstaller onedir bundle: `bundle/swarmboot-agent` plus `bundle/_internal/` (libpython, the
extension modules, libtorrent, the stdlib as .pyc). It needs no Python in the image, only its C
library (glibc) at least as new as the newest GLIBC_x.y the bundle's binaries need: `check_image`.

Layout under settings.agent_dir:

    bundle/          the current bundle (pack binds it at /usr/lib/swarmboot/agent in the image)
    bundle.json      {"hash", "size", "files", "glibc", …}: rebuilt only when `source_hash()` changes
    .lock            flock while building

PyInstaller rather than Nuitka: it is a dependency already, needs no C compiler on the head node,
builds in about a minute, and its onedir output is plain files dracut can copy.

libtorrent: Debian's `python3-libtorrent` (2.0.8, linked against the shared libtorrent-rasterbar
and the system's OpenSSL) when the head node has it for this Python, else the PyPI wheel the
virtualenv has (2.1, with OpenSSL linked in statically). Debian's makes the bundle ~8 MB smaller
(23.6 MB instead of 31.4 MB) and the agent's download code works with both; `libtorrent="wheel"`
forces the wheel.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from builder import elf
from ground.contract.image import LIB_DIRS
from ground.errors import CommandError, SwarmbootError
from ground.run import run

if TYPE_CHECKING:
    from ground.config import Settings

NAME = "swarmboot-agent"
BUNDLE_FORMAT = 3
DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
LibtorrentChoice = Literal["auto", "debian", "wheel"]
# Not a layering blacklist (none of our packages is here: the layers keep them out of what the
# agent imports, and the bundle test checks it carries only bootagent and ground of ours). These are
# optional imports of the stdlib that PyInstaller follows although the agent
# never takes them: without this list the bundle is 25.6 MB instead of 23.2 MB (measured).
SIZE_EXCLUDES = (
    "tkinter",
    "unittest",
    "pydoc",
    "doctest",
    "sqlite3",
    "lib2to3",
    "xmlrpc",
    "curses",
    "readline",
    "pdb",
    "idlelib",
    "ensurepip",
    "venv",
    "distutils",
    "setuptools",
    "pkg_resources",
    "pip",
    "numpy",
    "matplotlib",
    "PIL",
    "yaml",
    "jinja2",
    "sqlalchemy",
    "alembic",
    "mako",
    "fastapi",
    "starlette",
    "pydantic",
    "uvicorn",
    "psycopg",
    "cryptography",
    "OpenSSL",
    "brotli",
    "brotlicffi",
    "zstandard",
    "socks",
    "h2",
    "simplejson",
    "chardet",
    "asyncio",
    "multiprocessing",
    "concurrent",
    "xml.dom",
    "xml.sax",
    "pyexpat",
    # (decimal stays: pyparted's Device uses it, for the disk mode)
    "lzma",
    "_lzma",
    "bz2",
    "_bz2",
    "_codecs_jp",
    "_codecs_hk",
    "_codecs_cn",
    "_codecs_kr",
    "_codecs_tw",
    "_codecs_iso2022",
    "_multibytecodec",
)
# Libraries the image provides (the dracut module installs what `ldd` lists for the bundle's
# binaries): not duplicated in the bundle. `check_image` makes sure the image has them.
FROM_IMAGE = ("libstdc++.so", "libgcc_s.so", "libz.so", "libudev.so", "libssl.so", "libcrypto.so")


class FreezeError(SwarmbootError):
    """The agent bundle could not be built."""


class GlibcTooOld(SwarmbootError):
    """The image's C library is older than what the frozen agent needs."""


@dataclass(frozen=True)
class BundleInfo:
    hash: str
    path: str
    size: int
    files: int
    glibc: str  # the newest GLIBC_x.y the bundle needs
    python: str
    libtorrent: str  # "debian /usr/lib/python3/dist-packages/libtorrent….so" or "wheel"
    built: str
    build_seconds: float
    format: int = BUNDLE_FORMAT
    packages: tuple[str, ...] = ()  # top-level packages of the Python modules frozen in


def agent_sources() -> list[Path]:
    """The files that make the agent: the bootagent package and the ground it stands on."""
    root = Path(__file__).resolve().parent.parent
    return sorted((root / "bootagent").rglob("*.py")) + sorted((root / "ground").rglob("*.py"))


def frozen_packages(build_dir: Path) -> tuple[str, ...]:
    """The top-level names of the Python modules PyInstaller put into the bundle (its PYZ table)."""
    import ast

    names: set[str] = set()
    for toc in build_dir.glob("PYZ-*.toc"):
        _name, entries = ast.literal_eval(toc.read_text())
        names.update(entry[0].split(".")[0] for entry in entries)
    return tuple(sorted(names))


def debian_libtorrent() -> Path | None:
    """Debian's libtorrent module for the running Python (python3-libtorrent), if installed and
    this Python is Debian's own (a module built for it loads only there)."""
    if Path(sys.base_prefix).resolve() != Path("/usr"):
        return None
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    found = sorted(DEBIAN_DIST_PACKAGES.glob(f"libtorrent.{tag}-*.so"))
    return found[0] if found else None


def libtorrent_source(choice: LibtorrentChoice = "auto") -> Path | None:
    """The libtorrent module file to freeze, or None for the virtualenv's wheel."""
    if choice == "wheel":
        return None
    module = debian_libtorrent()
    if module is None and choice == "debian":
        raise FreezeError(
            "Debian's libtorrent for this Python is not installed",
            hint="apt-get install python3-libtorrent (or build with the wheel)",
        )
    return module


def source_hash(choice: LibtorrentChoice = "auto") -> str:
    """Changes whenever the bundle would: the sources, the libraries' versions, the build options."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    module = libtorrent_source(choice)
    if module is not None:
        stat = module.stat()
        digest.update(f"debian libtorrent {module} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    root = Path(__file__).resolve().parent.parent
    for path in agent_sources():
        digest.update(f"{path.relative_to(root)}\0".encode() + hashlib.sha256(path.read_bytes()).digest())
    for dist in ("libtorrent", "pyudev", "pyparted", "pyinstaller"):
        digest.update(f"{dist}={version(dist)}\n".encode())
    digest.update(f"{sys.version}\n{SIZE_EXCLUDES}\n{FROM_IMAGE}\n{BUNDLE_FORMAT}\n".encode())
    return digest.hexdigest()


def _tree_size(path: Path) -> tuple[int, int]:
    size = files = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            size += p.stat().st_size
            files += 1
    return size, files


def bundle_glibc(bundle: Path) -> tuple[elf.Version, str]:
    """The newest GLIBC_x.y any binary of the bundle needs, and which file needs it."""
    newest: tuple[elf.Version, str] = ((2, 0), "")
    for path in bundle_binaries(bundle):
        needed = elf.needed_versions(path)
        if needed and max(needed) > newest[0]:
            newest = (max(needed), str(path.relative_to(bundle)))
    return newest


def bundle_binaries(bundle: Path) -> list[Path]:
    return [
        p
        for p in sorted(bundle.rglob("*"))
        if p.is_file() and not p.is_symlink() and (p.name == NAME or ".so" in p.name)
    ]


def libraries_from_image(bundle: Path) -> set[str]:
    """Sonames the bundle's binaries need that the bundle does not carry (the image must have them)."""
    carried = {p.name for p in bundle_binaries(bundle)}
    needed = {"libudev.so.1"}  # pyudev loads it with ctypes: no DT_NEEDED entry says so
    for path in bundle_binaries(bundle):
        needed |= elf.needed_libraries(path)
    return needed - carried


def check_image(bundle: Path, image_root: Path) -> str:
    """Raise GlibcTooOld unless the image can run the bundle: its glibc is new enough and it has
    the libraries the bundle takes from it. Return a one-line summary."""
    need, who = bundle_glibc(bundle)
    libc = elf.find_libc(image_root)
    if libc is None:
        raise GlibcTooOld(
            f"no libc.so.6 found in the image at {image_root}: the frozen agent needs glibc "
            f">= {need[0]}.{need[1]}",
            hint="the image must be a glibc-based Linux (Debian, Ubuntu, RHEL...)",
        )
    have = max(elf.defined_versions(libc))
    if have < need:
        raise GlibcTooOld(
            f"the image's C library is glibc {have[0]}.{have[1]}, but the frozen agent needs "
            f"glibc {need[0]}.{need[1]} (for {who})",
            hint="build the agent on a head node whose release is not newer than the image's "
            "(`swarmboot agent build` there), or use a newer image release",
        )
    dirs = [str(image_root / d.lstrip("/")) for d in LIB_DIRS]
    missing = sorted(n for n in libraries_from_image(bundle) if not _in_dirs(n, dirs))
    if missing:
        raise GlibcTooOld(
            "the image lacks libraries the frozen agent takes from it: " + ", ".join(missing),
            hint="install them in the image (Debian: libssl3 libstdc++6 libudev1 zlib1g; curl pulls "
            "in libssl3) with lchroot, then pack again",
        )
    return f"image glibc {have[0]}.{have[1]} >= {need[0]}.{need[1]} needed by the agent; libraries present"


def _in_dirs(soname: str, dirs: list[str]) -> bool:
    return any(os.path.lexists(os.path.join(d, soname)) for d in dirs)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_info(agent_dir: Path) -> BundleInfo | None:
    try:
        data = json.loads((agent_dir / "bundle.json").read_text())
        data["packages"] = tuple(data.get("packages", ()))
        return BundleInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def build_bundle(
    agent_dir: Path, timeout: float = 1200.0, libtorrent: LibtorrentChoice = "auto"
) -> BundleInfo:
    """Run PyInstaller into a work directory, then put the bundle in place (atomically)."""
    wanted = source_hash(libtorrent)
    root = Path(__file__).resolve().parent.parent
    work = agent_dir / f".build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    lt_module = libtorrent_source(libtorrent)
    if lt_module is not None:
        # A directory with only Debian's module in it, searched before the virtualenv's.
        shim = work / "libtorrent-debian"
        shim.mkdir()
        (shim / lt_module.name).symlink_to(lt_module)
        paths = ["--paths", str(shim), "--paths", str(root)]
    else:
        paths = ["--paths", str(root), "--copy-metadata", "libtorrent"]
    started = time.monotonic()
    argv = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--onedir",
        "--noconfirm",
        "--log-level",
        "WARN",
        "--name",
        NAME,
        "--strip",
        "--distpath",
        str(work / "dist"),
        "--workpath",
        str(work / "build"),
        "--specpath",
        str(work),
        *paths,
    ]
    for module in SIZE_EXCLUDES:
        argv += ["--exclude-module", module]
    argv.append(str(root / "bootagent" / "__main__.py"))
    try:
        run(argv, timeout=timeout, cwd=work, extra_env={"PYTHONDONTWRITEBYTECODE": "1"})
    except CommandError as exc:
        raise FreezeError(f"PyInstaller could not freeze the agent:\n{exc}") from exc
    dist = work / "dist" / NAME
    packages = frozen_packages(work / "build" / NAME)
    for lib in dist.rglob("*"):
        if lib.is_file() and lib.name.startswith(FROM_IMAGE):
            lib.unlink()
    need, _ = bundle_glibc(dist)
    size, files = _tree_size(dist)
    info = BundleInfo(
        hash=wanted,
        path=str(agent_dir / "bundle"),
        size=size,
        files=files,
        glibc=f"{need[0]}.{need[1]}",
        python=sys.version.split()[0],
        libtorrent=f"debian {lt_module}" if lt_module is not None else "wheel",
        built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        build_seconds=round(time.monotonic() - started, 1),
        packages=packages,
    )
    target, old = agent_dir / "bundle", agent_dir / f".old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    dist.rename(target)
    (agent_dir / "bundle.json").write_text(json.dumps(asdict(info), indent=2) + "\n")
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return info


def ensure_bundle(settings: Settings, force: bool = False) -> Path:
    """The current bundle directory, built first when missing or out of date (what pack calls)."""
    agent_dir = settings.agent_dir
    with _locked(agent_dir):
        info = read_info(agent_dir)
        bundle = agent_dir / "bundle"
        if force or info is None or info.hash != source_hash() or not (bundle / NAME).is_file():
            build_bundle(agent_dir)
        return bundle
