"""What the server serves: every packed image version in the store, found by scanning it.

A version counts once its manifest.json exists (the builder writes it last). The scan reads a
manifest only when it is new or changed, so refreshing every second or two is cheap.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from ground.inputs import digits
from ground.store import Manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Version:
    manifest: Manifest
    dir: Path

    @property
    def image(self) -> str:
        return self.manifest.image

    @property
    def number(self) -> int:
        return self.manifest.version

    @property
    def key(self) -> tuple[str, int]:
        return (self.manifest.image, self.manifest.version)

    def path(self, name: str) -> Path:
        return self.dir / name

    def file_names(self) -> set[str]:
        return {e.name for e in self.manifest.files().values()} | {"manifest.json"}


class Catalog:
    def __init__(self, images_dir: Path, server_url: str) -> None:
        self.images_dir = images_dir
        self.server_url = server_url.rstrip("/")
        self._lock = threading.Lock()
        self._mtimes: dict[Path, tuple[float, Version]] = {}
        self.versions: dict[tuple[str, int], Version] = {}
        self.current: dict[str, int] = {}
        self.by_info_hash: dict[bytes, Version] = {}
        self._torrents: dict[tuple[str, int], bytes] = {}
        self.generation = 0
        self.other_servers: tuple[str, ...] = ()  # head nodes sharing the inventory (server/cluster.py)

    @property
    def server_list(self) -> str:
        """This server first, then the other head nodes: `swarmboot.server=` on kernel command lines."""
        return ",".join((self.server_url, *self.other_servers))

    def set_other_servers(self, urls: tuple[str, ...]) -> bool:
        """The other live head nodes; served torrents list their trackers and web seeds too."""
        urls = tuple(u.rstrip("/") for u in urls if u.rstrip("/") != self.server_url)
        if urls == self.other_servers:
            return False
        with self._lock:
            self.other_servers = urls
            self._torrents = {}
        return True

    def refresh(self) -> bool:
        """Rescan the store; return True when something changed."""
        versions: dict[tuple[str, int], Version] = {}
        current: dict[str, int] = {}
        seen: dict[Path, tuple[float, Version]] = {}
        root = self.images_dir
        image_dirs = sorted(p for p in root.iterdir() if (p / "versions").is_dir()) if root.is_dir() else []
        for image_dir in image_dirs:
            for vdir in (image_dir / "versions").iterdir():
                mpath = vdir / "manifest.json"
                if not digits(vdir.name):
                    continue
                try:
                    mtime = mpath.stat().st_mtime
                except FileNotFoundError:
                    continue
                cached = self._mtimes.get(mpath)
                if cached and cached[0] == mtime:
                    version = cached[1]
                else:
                    try:
                        version = Version(Manifest.from_dict(json.loads(mpath.read_text())), vdir)
                    except (OSError, ValueError, TypeError, KeyError) as exc:
                        log.warning("skipping %s: unreadable manifest: %s", mpath, exc)
                        continue
                seen[mpath] = (mtime, version)
                versions[version.key] = version
            try:
                number = int((image_dir / "current").read_text().strip())
            except (OSError, ValueError):
                continue
            if (image_dir.name, number) in versions:
                current[image_dir.name] = number
        with self._lock:
            changed = (
                versions.keys() != self.versions.keys()
                or current != self.current
                or any(self.versions[k] is not v for k, v in versions.items())
            )
            self._mtimes = seen
            if changed:
                self.versions = versions
                self.current = current
                self.by_info_hash = {
                    bytes.fromhex(v.manifest.info_hash): v
                    for v in versions.values()
                    if len(v.manifest.info_hash) == 40
                }
                self._torrents = {k: t for k, t in self._torrents.items() if k in versions}
                self.generation += 1
        return changed

    def get(self, image: str, number: int | None = None) -> Version | None:
        if number is None:
            number = self.current.get(image)
            if number is None:
                return None
        return self.versions.get((image, number))

    def knows(self, info_hash: bytes) -> bool:
        return info_hash in self.by_info_hash

    def url(self, version: Version, name: str) -> str:
        return f"{self.server_url}/images/{version.image}/{version.number}/{name}"

    def torrent(self, version: Version) -> bytes:
        """The version's torrent with our tracker and our HTTP URL as BEP 19 web seed."""
        data = self._torrents.get(version.key)
        if data is None:
            raw = version.path(version.manifest.torrent.name).read_bytes()
            servers = (self.server_url, *self.other_servers)
            path = f"/images/{version.image}/{version.number}/{version.manifest.image_file.name}"
            data = for_serving(raw, [f"{s}/announce" for s in servers], [s + path for s in servers])
            self._torrents[version.key] = data
        return data


def for_serving(torrent_data: bytes, announce_urls: str | list[str], web_seed_urls: str | list[str]) -> bytes:
    """The packed torrent with the servers' trackers and BEP 19 web seeds added: `announce` is the
    first tracker; with several head nodes, BEP 12 `announce-list` has one tier per tracker (this
    server's first: a client moves to the next tier when one fails)."""
    import libtorrent as lt

    trackers = [announce_urls] if isinstance(announce_urls, str) else list(announce_urls)
    seeds = [web_seed_urls] if isinstance(web_seed_urls, str) else list(web_seed_urls)
    meta = lt.bdecode(torrent_data)
    if not isinstance(meta, dict) or b"info" not in meta:
        raise ValueError("not a torrent file (no info dictionary)")
    meta[b"announce"] = trackers[0].encode()
    if len(trackers) > 1:
        meta[b"announce-list"] = [[t.encode()] for t in trackers]
    meta[b"url-list"] = [u.encode() for u in seeds]
    return lt.bencode(meta)
