"""The image's sha256, computed while it arrives (pure logic over two functions).

libtorrent verifies every piece (SHA-1); this hashes the whole file with sha256 in piece order as
pieces become available, reading back pieces libtorrent has verified and written, so the image is
checked against the plan the moment the last piece lands. `have(k)` can be true before
libtorrent's disk thread has written the piece (a hole in the sparse file reads as zeros), so a
piece read back is used only when its SHA-1 is the torrent's: then these are the final bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

HASH_CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path, chunk: int = HASH_CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class PieceReader:
    """Reads the image file back as libtorrent writes it: b"" while the file does not exist yet
    (a piece can be verified in libtorrent's cache before its disk thread has created the file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __call__(self, offset: int, length: int) -> bytes:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return b""
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StreamingHash:
    """sha256 of pieces 0, 1, 2, … fed in order, each checked against its SHA-1 first."""

    def __init__(
        self, num_pieces: int, piece_length: int, size: int, piece_sha1: Callable[[int], bytes]
    ) -> None:
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.size = size
        self.piece_sha1 = piece_sha1
        self.next_piece = 0
        self._digest = hashlib.sha256()

    def piece_size(self, k: int) -> int:
        return min(self.piece_length, self.size - k * self.piece_length)

    @property
    def hashed(self) -> int:
        """Bytes hashed so far."""
        return min(self.next_piece * self.piece_length, self.size)

    @property
    def complete(self) -> bool:
        return self.next_piece >= self.num_pieces

    def skip_all(self) -> None:
        """Nothing to hash (a file already verified: seed mode)."""
        self.next_piece = self.num_pieces

    def feed(self, have: Callable[[int], bool], read: Callable[[int, int], bytes], budget: int) -> int:
        """Hash the next pieces that are there and final, up to `budget` bytes; how many pieces.
        `read(offset, length)` reads the file."""
        done = 0
        while budget > 0 and self.next_piece < self.num_pieces and have(self.next_piece):
            length = self.piece_size(self.next_piece)
            data = read(self.next_piece * self.piece_length, length)
            if hashlib.sha1(data).digest() != self.piece_sha1(self.next_piece):
                break  # not on disk yet: try again at the next round
            self._digest.update(data)
            self.next_piece += 1
            budget -= length
            done += 1
        return done

    def hexdigest(self) -> str:
        """The sha256 of the whole file, or "" while pieces are missing."""
        return self._digest.hexdigest() if self.complete else ""
