"""Where images and their packed versions live, and what a version's manifest says.

This is the contract between the builder (which writes versions) and the server (which serves
them). Layout under settings.images_dir:

    <name>/rootfs/              the image's tree (the chroot lchroot enters)
    <name>/image.json           how the image was made (release, mirror, packages, recipe)
    <name>/.lock                flock taken by lchroot, pack and rm
    <name>/versions/<N>/        one immutable packed version, N = 1, 2, 3 …
        vmlinuz  initramfs.img  image.squashfs | image.tar.zst  image.torrent  manifest.json
    <name>/current              text file holding the current version number
    .staging/                   work directories; renamed into place only on success

A version directory is complete once manifest.json exists in it (written last, atomically).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ground.config import Settings
from ground.errors import ConflictError, NotFoundError, UsageError
from ground.inputs import digits

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")  # fullmatch: `$` accepts a trailing newline
MANIFEST_SCHEMA = 1
IMAGE_FILE = {"squashfs": "image.squashfs", "tar.zst": "image.tar.zst"}


def check_name(name: str, what: str = "image") -> str:
    """Return `name` if it is safe as a file name, URL part and hostname-like label."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        raise UsageError(
            f"invalid {what} name {name!r}",
            hint="use 1-63 characters: lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class FileEntry:
    name: str  # file name inside the version directory
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    image: str
    version: int
    format: str  # "squashfs" or "tar.zst"
    compression: str  # e.g. "zstd:3"
    kernel_version: str
    created: str  # ISO 8601, UTC
    tool_version: str
    inputs_hash: str  # sha256 over everything that produced this version
    info_hash: str  # BitTorrent v1 info-hash (hex) of image.torrent
    piece_size: int
    kernel: FileEntry
    initramfs: FileEntry
    image_file: FileEntry
    torrent: FileEntry
    inputs: dict[str, Any] = field(default_factory=dict)
    schema: int = MANIFEST_SCHEMA

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        data = dict(data)
        for key in ("kernel", "initramfs", "image_file", "torrent"):
            data[key] = FileEntry(**data[key])
        data.pop("paths", None)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def files(self) -> dict[str, FileEntry]:
        return {
            "kernel": self.kernel,
            "initramfs": self.initramfs,
            "image": self.image_file,
            "torrent": self.torrent,
        }


class ImageStore:
    """Read access to images and versions, plus the small state changes (current, lock)."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.images_dir

    # -- paths -----------------------------------------------------------------------------
    def image_dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def rootfs(self, name: str) -> Path:
        return self.image_dir(name) / "rootfs"

    def versions_dir(self, name: str) -> Path:
        return self.image_dir(name) / "versions"

    def version_dir(self, name: str, version: int) -> Path:
        return self.versions_dir(name) / str(version)

    @property
    def staging_dir(self) -> Path:
        return self.root / ".staging"

    # -- queries -----------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return self.rootfs(name).is_dir()

    def require(self, name: str) -> Path:
        if not self.exists(name):
            known = ", ".join(self.list_images()) or "none yet"
            raise NotFoundError(
                f"no image named {name!r}",
                hint=f"images: {known}; create one with: swarmboot image create {name} --release bookworm",
            )
        return self.image_dir(name)

    def list_images(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = (p.name for p in self.root.iterdir() if (p / "rootfs").is_dir())
        return sorted(name for name in names if NAME_RE.fullmatch(name))

    def versions(self, name: str) -> list[int]:
        """Complete versions of an image, oldest first."""
        vdir = self.versions_dir(name)
        if not vdir.is_dir():
            return []
        return sorted(
            int(p.name) for p in vdir.iterdir() if digits(p.name) and (p / "manifest.json").is_file()
        )

    def current_version(self, name: str) -> int | None:
        path = self.image_dir(name) / "current"
        try:
            version = int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return version if (self.version_dir(name, version) / "manifest.json").is_file() else None

    def manifest(self, name: str, version: int | None = None) -> Manifest:
        self.require(name)
        if version is None:
            version = self.current_version(name)
            if version is None:
                raise NotFoundError(
                    f"image {name!r} has no packed version yet",
                    hint=f"pack it with: swarmboot image pack {name}",
                )
        path = self.version_dir(name, version) / "manifest.json"
        if not path.is_file():
            have = ", ".join(map(str, self.versions(name))) or "none"
            raise NotFoundError(f"image {name!r} has no version {version}", hint=f"versions: {have}")
        return Manifest.from_dict(json.loads(path.read_text()))

    def file_path(self, manifest: Manifest, which: str) -> Path:
        """Absolute path of one of a version's files: kernel, initramfs, image or torrent."""
        entry = manifest.files()[which]
        return self.version_dir(manifest.image, manifest.version) / entry.name

    # -- state changes --------------------------------------------------------------------------
    def set_current(self, name: str, version: int) -> None:
        if not (self.version_dir(name, version) / "manifest.json").is_file():
            raise NotFoundError(f"image {name!r} has no version {version}")
        write_atomic(self.image_dir(name) / "current", f"{version}\n")

    @contextlib.contextmanager
    def lock(self, name: str, purpose: str) -> Iterator[int]:
        """Hold the image's lock; a second holder gets a ConflictError saying who has it.

        Yields the lock's file descriptor: a command exec'd with it inherited (lchroot) keeps
        the lock until it exits.
        """
        path = self.image_dir(name) / ".lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = Path(path).read_text().strip() or "another command"
                raise ConflictError(
                    f"image {name!r} is busy: {holder}",
                    hint="wait for that command to finish (a shell in the image: leave it) and retry",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{purpose} (pid {os.getpid()})\n".encode(), 0)
            yield fd
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write a file so readers see the old or the new content, never a part. `mode` (e.g. 0o600
    for a file with secrets) is set before any content is written."""
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            fd = -1
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    tmp.replace(path)
