"""The server's piece hand-out (server/piece_dispenser.py) and its header (ground/contract/pieces.py)."""

from __future__ import annotations

from ground.contract.pieces import decode_seen, encode_seen
from server.piece_dispenser import ROUND_IDLE, PieceDispenser

KEY = ("compute", 1)


def test_seen_bitfield_round_trips_and_bad_values_mean_nothing_seen() -> None:
    bits = [k % 3 == 0 for k in range(1020)]
    assert list(decode_seen(encode_seen(bits), 1020)) == [int(b) for b in bits]
    assert encode_seen([True] + [False] * 7 + [True]) == "gIA="  # piece 0 is the top bit
    assert decode_seen("not base64!", 4) == bytearray(4)
    assert decode_seen("", 4) == bytearray(4)
    assert decode_seen(encode_seen([True] * 4), 12) == bytearray([1] * 4 + [0] * 8)  # short: rest unseen


def test_each_piece_is_handed_out_once_in_order_skipping_what_the_asker_has_seen() -> None:
    d = PieceDispenser()
    none = bytearray(6)
    seen = bytearray([0, 1, 1, 0, 0, 0])
    assert d.take(KEY, 6, none, 0.0) == 0
    assert d.take(KEY, 6, seen, 0.1) == 3  # 1 and 2 are in its swarm already
    assert d.take(KEY, 6, none, 0.2) == 1  # another owner's swarm may lack them
    assert [d.take(KEY, 6, none, 0.3 + i) for i in range(4)] == [2, 4, 5, None]


def test_a_new_round_starts_only_after_the_last_one_has_been_idle() -> None:
    d = PieceDispenser()
    none = bytearray(2)
    assert [d.take(KEY, 2, none, 0.0), d.take(KEY, 2, none, 1.0)] == [0, 1]
    assert d.take(KEY, 2, none, 1.0 + ROUND_IDLE - 1) is None  # the round's pieces are on their way
    assert d.take(KEY, 2, bytearray([1, 0]), 1.0 + ROUND_IDLE + 1) == 1  # a later boot: a new round
    assert d.take(("compute", 2), 2, none, 0.0) == 0  # each version its own round


def test_a_piece_that_did_not_get_out_is_handed_out_again() -> None:
    d = PieceDispenser()
    none = bytearray(3)
    assert [d.take(KEY, 3, none, 0.0) for _ in range(3)] == [0, 1, 2]
    d.give_back(KEY, 1)
    assert d.take(KEY, 3, none, 0.5) == 1
    assert d.take(KEY, 3, none, 0.6) is None
