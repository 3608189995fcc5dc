"""The server's piece hand-out (server/piece_dispenser.py) and its header (ground/contract/pieces.py)."""

from __future__ import annotations

from collections.abc import Callable

from ground.contract.pieces import decode_seen, encode_seen, seen_test
from server.piece_dispenser import REGIVE_AFTER, ROUND_IDLE, PieceDispenser

KEY = ("compute", 1)


def seen(*pieces: int) -> Callable[[int], bool]:
    return lambda k: k in pieces


def test_seen_bitfield_round_trips_and_bad_values_mean_nothing_seen() -> None:
    bits = [k % 3 == 0 for k in range(1020)]
    assert list(decode_seen(encode_seen(bits), 1020)) == [int(b) for b in bits]
    test = seen_test(encode_seen(bits), 1020)
    assert [test(k) for k in range(1020)] == bits and not test(-1) and not test(1020)
    assert encode_seen([True] + [False] * 7 + [True]) == "gIA="  # piece 0 is the top bit
    assert decode_seen("not base64!", 4) == bytearray(4) and not seen_test("not base64!", 4)(0)
    assert decode_seen("", 4) == bytearray(4)
    assert decode_seen(encode_seen([True] * 4), 12) == bytearray([1] * 4 + [0] * 8)  # short: rest unseen


def take(d: PieceDispenser, pieces: int, asker: Callable[[int], bool], now: float) -> int | None:
    return d.take(KEY, pieces, asker, now)[0]


def test_each_piece_is_handed_out_once_in_order_skipping_what_the_asker_has_seen() -> None:
    d = PieceDispenser()
    assert take(d, 6, seen(), 0.0) == 0
    assert take(d, 6, seen(1, 2), 0.1) == 3  # 1 and 2 are in its swarm already
    assert take(d, 6, seen(), 0.2) == 1  # another owner's swarm may lack them
    assert [take(d, 6, seen(), 0.3 + i / 10) for i in range(3)] == [2, 4, 5]
    # all handed out: nothing for an asker whose peers have them or got them just now
    assert take(d, 6, seen(0, 1, 2, 3, 4, 5), 1.0) is None
    assert take(d, 6, seen(0, 1, 2, 3, 4), 1.0) is None  # 5 is on its way


def test_a_piece_that_did_not_reach_the_swarm_is_handed_out_again() -> None:
    d = PieceDispenser()
    assert [take(d, 3, seen(), t) for t in (0.0, 0.1, 0.2)] == [0, 1, 2]
    later = 0.1 + REGIVE_AFTER + 0.5
    assert take(d, 3, seen(0, 2), later) == 1  # its owner died with it: again, to one asker
    assert take(d, 3, seen(0, 2), later + 0.1) is None  # just handed out again: on its way
    # a piece whose file could not be read goes back into its round
    k, round_ = d.take(("compute", 2), 2, seen(), 0.0)
    d.give_back(round_, k)
    assert d.take(("compute", 2), 2, seen(), 0.1)[0] == k


def test_a_new_round_starts_after_the_last_one_has_been_idle() -> None:
    d = PieceDispenser()
    assert [take(d, 2, seen(), 0.0), take(d, 2, seen(1), 1.0)] == [0, None]  # 1 is in its swarm
    assert take(d, 2, seen(0, 1), 1.0 + ROUND_IDLE - 1) is None
    # a later boot: a new round, even though piece 1 was never handed out in the last one
    assert take(d, 2, seen(1), 1.0 + 2 * ROUND_IDLE) == 0
    assert take(d, 2, seen(), 1.0 + 2 * ROUND_IDLE) == 1
    assert d.take(("compute", 9), 2, seen(), 0.0)[0] == 0  # each version its own round
