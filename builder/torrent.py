"""Make the .torrent of an image file.

Packed torrents are BitTorrent v1 only (hybrid v1+v2 torrents do not interoperate with aria2c),
single-file, with no tracker: the server adds its own announce URL and its HTTP URL as a BEP 19
web seed when it serves them (server/catalog.py `for_serving`), outside the info dict, so the
info-hash stays the one recorded in the manifest. The info name is the image file's name
(`image.squashfs`), so the server's seeder can seed straight from the version directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024


TARGET_PIECES = 2048  # pieces per image: between 1,024 and 2,048 (docs/swarm.md, "Piece size")
MIN_PIECE = 64 * 1024
MAX_PIECE = 4 * MiB


def piece_size_for(size: int) -> int:
    """The smallest power of two that gives at most TARGET_PIECES pieces, within 64 KiB-4 MiB: an
    image gets 1,025-2,048 pieces (fewer below 128 MiB, more above 8 GiB). bench/swarm.py at the same
    T_min: 1,024 pieces 1.06 x T_min, 512 pieces 1.20 x (the previous policy, 1 MiB up to 1 GiB,
    gave a 235 MiB image 235 pieces)."""
    piece = MIN_PIECE
    while piece < MAX_PIECE and piece * TARGET_PIECES < size:
        piece *= 2
    return piece


@dataclass(frozen=True)
class TorrentInfo:
    data: bytes  # the bencoded .torrent
    info_hash: str  # v1 info-hash, hex
    piece_size: int
    num_pieces: int


def make_torrent(
    image_file: Path,
    piece_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    creator: str = "swarmboot",
) -> TorrentInfo:
    """Hash `image_file` into a v1-only single-file torrent (libtorrent, all cores)."""
    import libtorrent as lt

    size = image_file.stat().st_size
    piece = piece_size or piece_size_for(size)
    files = lt.list_files(str(image_file))
    torrent = lt.create_torrent(files, piece, lt.create_torrent.v1_only)
    torrent.set_creator(creator)
    torrent.set_creation_date(0)  # reproducible: the same file gives the same .torrent
    total = torrent.num_pieces()

    def on_piece(index: int) -> None:
        if progress is not None:
            progress(index + 1, total)

    lt.set_piece_hashes(torrent, str(image_file.parent), on_piece)
    entry = torrent.generate()
    data = lt.bencode(entry)
    info = lt.torrent_info(lt.bdecode(data))
    return TorrentInfo(data=data, info_hash=str(info.info_hash()), piece_size=piece, num_pieces=total)
