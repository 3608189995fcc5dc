"""The image's .torrent as the server serves it: one file, the server's tracker (`announce`) and
the server's HTTP URL as a BEP 19 web seed (`url-list`, outside the info dict: taking it out
leaves the info-hash as it is)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bootagent.errors import DownloadError


@dataclass(frozen=True)
class TorrentMeta:
    info: Any  # libtorrent.torrent_info (what the session is given)
    web_seeds: tuple[str, ...]
    tracker_url: str
    name: str  # the single file's name (its path under the destination)
    size: int
    piece_length: int
    num_pieces: int

    def piece_sha1(self, k: int) -> bytes:
        return bytes(self.info.hash_for_piece(k))


def parse_torrent(lt: Any, torrent: bytes, *, keep_web_seeds: bool) -> TorrentMeta:
    """Decode a served .torrent. The web seeds stay in the torrent only when `keep_web_seeds`
    (otherwise libtorrent would use them from the start: web_seed.py adds them as a fallback)."""
    try:
        meta = lt.bdecode(torrent)
        if not isinstance(meta, dict):
            raise RuntimeError("not a dictionary")
        urls = meta.get(b"url-list") or []
        web_seeds = tuple(u.decode() for u in ([urls] if isinstance(urls, bytes) else urls))
        tracker_url = bytes(meta.get(b"announce") or b"").decode()
        if not keep_web_seeds:
            meta.pop(b"url-list", None)
        info = lt.torrent_info(meta)
    except (RuntimeError, UnicodeDecodeError, AttributeError, TypeError) as exc:
        raise DownloadError(f"the image's .torrent is not valid: {exc}") from exc
    if info.num_files() != 1:
        raise DownloadError(f"the image's .torrent has {info.num_files()} files, expected 1")
    return TorrentMeta(
        info=info,
        web_seeds=web_seeds,
        tracker_url=tracker_url,
        name=info.name(),
        size=int(info.total_size()),
        piece_length=int(info.piece_length()),
        num_pieces=int(info.num_pieces()),
    )
