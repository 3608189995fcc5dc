"""The piece hand-out between the server and a stripe owner (server/piece_dispenser.py,
bootagent/piece_fetch.py). Stdlib only: it is frozen into the initramfs.

    GET /api/v1/pieces/{image}/{version}/next     X-Seen: <base64 bitfield>
    -> 200, body: the piece's bytes, X-Piece: its index
    -> 204: nothing for this owner now (its swarm has what is left; ask again while it lacks
       pieces no peer has); with X-Held: 1, booted nodes hold the version: take the fixed stripe
       from the seeder instead

X-Seen is the pieces the owner and its peers have (piece 0 in the top bit of byte 0, as
BitTorrent's bitfield): the server does not send them again.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence

PATH = "/api/v1/pieces/{image}/{version}/next"
SEEN_HEADER = "X-Seen"
PIECE_HEADER = "X-Piece"
HELD_HEADER = "X-Held"


def encode_seen(bits: Sequence[bool | int]) -> str:
    """The X-Seen value for one flag per piece."""
    raw = bytearray((len(bits) + 7) // 8)
    for k, bit in enumerate(bits):
        if bit:
            raw[k >> 3] |= 0x80 >> (k & 7)
    return base64.b64encode(bytes(raw)).decode()


def seen_test(value: str, pieces: int) -> Callable[[int], bool]:
    """An X-Seen value as a test of piece k (decoded once, each bit read when asked); malformed or
    missing: nothing seen."""
    try:
        raw = base64.b64decode(value, validate=True) if value else b""
    except (binascii.Error, ValueError):
        raw = b""
    return lambda k: 0 <= k < pieces and (k >> 3) < len(raw) and bool(raw[k >> 3] & (0x80 >> (k & 7)))


def decode_seen(value: str, pieces: int) -> bytearray:
    """An X-Seen value as one byte per piece (1: seen); malformed or missing: nothing seen."""
    seen = bytearray(pieces)
    if not value:
        return seen
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return seen
    for k in range(min(pieces, len(raw) * 8)):
        if raw[k >> 3] & (0x80 >> (k & 7)):
            seen[k] = 1
    return seen
