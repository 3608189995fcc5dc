"""The repository's dracut modules (dracut-module/NNname/): installed into images, kept in sync.

`create` installs them at /usr/lib/dracut/modules.d/; `pack` re-syncs them when they changed (so
an edit takes effect without recreating the image) and hashes them into its inputs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

MODULES_D = "usr/lib/dracut/modules.d"


def repo_modules_dir() -> Path:
    """dracut-module/ beside the builder package (a source checkout or an editable install)."""
    return Path(__file__).resolve().parent.parent / "dracut-module"


def module_dirs(source: Path | None) -> list[Path]:
    """The dracut modules under `source`: directories holding a module-setup.sh."""
    if source is None or not source.is_dir():
        return []
    return sorted(p for p in source.iterdir() if p.is_dir() and (p / "module-setup.sh").is_file())


def dracut_name(module_dir: Path) -> str:
    """dracut's name for a module directory: '90swarmboot' → 'swarmboot'."""
    return module_dir.name.lstrip("0123456789")


def tree_hash(path: Path) -> str:
    """sha256 over the relative paths, modes and contents of every file under `path`."""
    digest = hashlib.sha256()
    for entry in sorted(_files(path)):
        full = path / entry
        info = full.lstat()
        digest.update(f"{entry}\0{info.st_mode:o}\0".encode())
        if full.is_symlink():
            digest.update(os.readlink(full).encode())
        elif full.is_file():
            digest.update(hashlib.sha256(full.read_bytes()).digest())
        digest.update(b"\n")
    return digest.hexdigest()


def _files(path: Path) -> list[str]:
    found = []
    for directory, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames + [d for d in dirnames if (Path(directory) / d).is_symlink()]:
            found.append(os.path.relpath(os.path.join(directory, name), path))
    return found


def modules_hash(source: Path | None) -> str:
    """One hash for all modules under `source` ('' when there are none)."""
    modules = module_dirs(source)
    if not modules:
        return ""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(f"{module.name}\0{tree_hash(module)}\n".encode())
    return digest.hexdigest()


def sync_modules(rootfs: Path, source: Path | None) -> list[str]:
    """Install or update each module of `source` in the image; return the names that changed."""
    changed = []
    for module in module_dirs(source):
        target = rootfs / MODULES_D / module.name
        if target.is_dir() and tree_hash(target) == tree_hash(module):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        incoming = target.with_name(f".{module.name}.new")
        shutil.rmtree(incoming, ignore_errors=True)
        shutil.copytree(module, incoming, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        _chown_tree(incoming)
        if target.exists():
            shutil.rmtree(target)
        incoming.rename(target)
        changed.append(module.name)
    return changed


def installed_modules(rootfs: Path, source: Path | None) -> list[str]:
    """dracut names of the repository's modules present in the image (for `dracut --add`)."""
    return [dracut_name(m) for m in module_dirs(source) if (rootfs / MODULES_D / m.name).is_dir()]


def _chown_tree(path: Path) -> None:
    for directory, dirnames, filenames in os.walk(path):
        for name in [directory, *(os.path.join(directory, n) for n in dirnames + filenames)]:
            os.lchown(name, 0, 0)
