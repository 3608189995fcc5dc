"""The download's pure parts: the stripe policy, the web-seed fallback, the streaming sha256 and the
served torrent's metadata (bootagent/stripes.py, web_seed.py, hashing.py, torrent_meta.py)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest

from bootagent.errors import DownloadError
from bootagent.hashing import PieceReader, StreamingHash, sha256_file
from bootagent.stripes import DEFAULT_PRIORITY, SERVER_FALLBACK, TOP_PRIORITY, StripePolicy
from bootagent.torrent_meta import parse_torrent
from bootagent.web_seed import WEB_SEED_NO_PEERS, WEB_SEED_STALL, WebSeedFallback

# -- stripes -------------------------------------------------------------------------------------


def test_an_owner_goes_off_the_server_with_its_whole_stripe_and_back_on_when_stuck() -> None:
    policy = StripePolicy((1, 4), num_pieces=10)
    assert policy.own_left == [1, 5, 9]
    prio = policy.priorities()
    assert prio is not None and [k for k, p in enumerate(prio) if p == TOP_PRIORITY] == [1, 5, 9]
    assert set(prio) == {TOP_PRIORITY, DEFAULT_PRIORITY}
    assert policy.start() is False  # an owner starts on the server
    have = {1, 5}
    assert policy.steer(have.__contains__, 0.0) is None and policy.own_left == [9]
    have.add(9)
    assert policy.steer(have.__contains__, 0.0) is True and policy.filtered
    assert policy.steer(have.__contains__, SERVER_FALLBACK - 0.1) is None  # not stuck yet
    assert policy.steer(have.__contains__, SERVER_FALLBACK + 0.1) is False
    assert policy.unfiltered and not policy.filtered
    assert policy.steer(have.__contains__, 0.0) is None, "back on the server for good"


def test_a_leaf_starts_off_the_server_and_no_hint_means_no_filter() -> None:
    leaf = StripePolicy((-1, 32), num_pieces=100)
    assert leaf.leaf and leaf.priorities() is None and leaf.own_left == []
    assert leaf.start() is True
    assert leaf.steer(lambda k: False, 1.0) is None
    assert leaf.steer(lambda k: False, SERVER_FALLBACK + 1) is False
    plain = StripePolicy(None, num_pieces=100)
    assert plain.priorities() is None and plain.start() is False
    assert plain.steer(lambda k: True, 99.0) is None


@pytest.mark.parametrize("stripe", [(4, 4), (-2, 4), (0, 0)])
def test_a_bad_stripe_hint_is_refused(stripe: tuple[int, int]) -> None:
    with pytest.raises(DownloadError, match="invalid stripe"):
        StripePolicy(stripe, num_pieces=10)


# -- the web seed ------------------------------------------------------------------------------


def test_the_web_seed_comes_when_no_peer_shows_up_or_nothing_arrives_once() -> None:
    lonely = WebSeedFallback("fallback", ("http://s/i",))
    assert not lonely.due(peers=0, done=0, elapsed=WEB_SEED_NO_PEERS - 0.5, since_progress=0)
    assert lonely.due(peers=0, done=0, elapsed=WEB_SEED_NO_PEERS + 0.5, since_progress=0)
    assert lonely.added and not lonely.due(peers=0, done=0, elapsed=99, since_progress=99)
    stalled = WebSeedFallback("fallback", ("http://s/i",))
    assert not stalled.due(peers=5, done=10, elapsed=60, since_progress=WEB_SEED_STALL - 1)
    assert stalled.due(peers=5, done=10, elapsed=60, since_progress=WEB_SEED_STALL + 1)
    assert not WebSeedFallback("never", ("http://s/i",)).due(0, 0, 99, 99)
    assert not WebSeedFallback("fallback", ()).due(0, 0, 99, 99)
    always = WebSeedFallback("always", ("http://s/i",))
    assert always.added and not always.due(0, 0, 99, 99)


# -- the streaming sha256 ------------------------------------------------------------------------


def test_the_streaming_hash_takes_final_pieces_in_order_within_its_budget() -> None:
    data = bytes(range(256)) * 40 + b"tail"  # 10,244 bytes: 10 pieces of 1,024 and one of 4
    piece = 1024
    hashes = [hashlib.sha1(data[k : k + piece]).digest() for k in range(0, len(data), piece)]
    on_disk = bytearray(len(data))  # what libtorrent has written so far
    have: set[int] = set()
    h = StreamingHash(len(hashes), piece, len(data), hashes.__getitem__)

    def read(offset: int, length: int) -> bytes:
        return bytes(on_disk[offset : offset + length])

    have |= {0, 1, 3}
    on_disk[0 : 2 * piece] = data[0 : 2 * piece]
    assert h.feed(have.__contains__, read, budget=10**6) == 2 and h.next_piece == 2  # 2 is missing
    have.add(2)  # libtorrent says it has piece 2, but the bytes are not on disk yet
    assert h.feed(have.__contains__, read, budget=10**6) == 0 and h.hashed == 2 * piece
    on_disk[:] = data
    have |= set(range(len(hashes)))
    assert h.feed(have.__contains__, read, budget=piece) == 1  # the budget bounds a round
    assert h.hexdigest() == "", "incomplete: no digest"
    h.feed(have.__contains__, read, budget=10**6)
    assert h.complete and h.hashed == len(data)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()


def test_the_image_file_reads_as_not_there_yet_until_libtorrent_creates_it(tmp_path: Path) -> None:
    # a CI run: a node verified a piece in libtorrent's cache, the server died before the file was
    # written, and the hash's read raised FileNotFoundError instead of the stall naming the server
    image = tmp_path / "image.squashfs"
    data = b"x" * 1024
    h = StreamingHash(1, 1024, 1024, lambda k: hashlib.sha1(data).digest())
    read = PieceReader(image)
    assert h.feed(lambda k: True, read, budget=10**6) == 0 and not h.complete
    image.write_bytes(data)
    assert h.feed(lambda k: True, read, budget=10**6) == 1 and h.complete
    read.close()


def test_sha256_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 5_000_000)
    assert sha256_file(tmp_path / "f", chunk=1 << 20) == hashlib.sha256(b"x" * 5_000_000).hexdigest()


# -- the served torrent ----------------------------------------------------------------------------


def make_torrent(tmp_path: Path, files: int = 1) -> bytes:
    import libtorrent as lt

    root = tmp_path / "payload"
    root.mkdir()
    for i in range(files):
        (root / f"f{i}.bin").write_bytes(bytes([i]) * 70_000)
    target = root / "f0.bin" if files == 1 else root
    torrent = lt.create_torrent(lt.list_files(str(target)), 16384, lt.create_torrent.v1_only)
    lt.set_piece_hashes(torrent, str(target.parent))
    return bytes(lt.bencode(torrent.generate()))


def test_the_served_torrent_gives_its_tracker_web_seed_and_file(tmp_path: Path) -> None:
    import libtorrent as lt

    from server.catalog import for_serving

    raw = make_torrent(tmp_path)
    served = for_serving(raw, "http://10.0.0.1:8080/announce", "http://10.0.0.1:8080/images/c/1/f0.bin")
    meta = parse_torrent(lt, served, keep_web_seeds=False)
    assert meta.tracker_url == "http://10.0.0.1:8080/announce"
    assert meta.web_seeds == ("http://10.0.0.1:8080/images/c/1/f0.bin",)
    assert (meta.name, meta.size, meta.piece_length, meta.num_pieces) == ("f0.bin", 70_000, 16384, 5)
    assert meta.piece_sha1(0) == hashlib.sha1(b"\0" * 16384).digest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # web_seeds(): the only accessor there is
        assert not meta.info.web_seeds(), "the web seed is left out of the session: a fallback only"
        kept = parse_torrent(lt, served, keep_web_seeds=True)
        assert kept.info.web_seeds() and str(kept.info.info_hash()) == str(meta.info.info_hash())


def test_a_bad_torrent_is_a_download_error(tmp_path: Path) -> None:
    import libtorrent as lt

    with pytest.raises(DownloadError, match="not valid"):
        parse_torrent(lt, b"this is not bencode", keep_web_seeds=False)
    with pytest.raises(DownloadError, match="has 2 files, expected 1"):
        parse_torrent(lt, make_torrent(tmp_path, files=2), keep_web_seeds=False)


# -- getting the server back (recovery.py) and the web seed around it --------------------------

from bootagent.recovery import (  # noqa: E402
    RECONNECT_AFTER,
    RECONNECT_EVERY,
    SEEDER_UNREACHABLE,
    Reachability,
    SeederWatch,
)

SERVER = "10.77.0.1"


def test_the_seeder_is_connected_to_again_while_it_is_needed_at_a_steady_pace() -> None:
    watch = SeederWatch(SERVER, started=0.0)
    # the seeder connected to us (a passing port): no endpoint learnt; we connected to it: learnt
    watch.observe(0.5, [(SERVER, 40123, False, False), ("10.77.1.2", 6881, False, True)])
    assert watch.connected and watch.endpoints == set()
    watch.observe(1.0, [(SERVER, 6880, False, True), (SERVER, 8080, True, True)])  # + the web seed
    assert watch.endpoints == {(SERVER, 6880)}
    watch.observe(10.0, [("10.77.1.2", 6881, False, True)])  # the server went away
    assert not watch.connected and watch.missing_for(10.0) == 9.0
    assert watch.reconnect_due(10.0, needed=False) is False  # peers have what we need: leave it
    assert watch.reconnect_due(10.0, needed=True) is True
    assert watch.reconnect_due(10.0 + RECONNECT_EVERY / 2, needed=True) is False  # not every round
    assert watch.reconnect_due(10.0 + RECONNECT_EVERY, needed=True) is True
    assert watch.reannounce_due(10.0, needed=True) is True and watch.reannounce_due(10.1, True) is False
    assert "not reached for" in watch.describe(12.0) and "2 attempts" in watch.describe(12.0)
    watch.observe(13.0, [(SERVER, 6880, False, True)])
    assert watch.connected and watch.attempts == 0 and watch.reconnect_due(20.0, True) is False


def test_a_seeder_never_seen_is_not_dialled_but_counts_as_missing_from_the_start() -> None:
    watch = SeederWatch(SERVER, started=0.0)
    watch.observe(RECONNECT_AFTER + 1, [("10.77.1.2", 6881, False, True)])
    assert watch.reconnect_due(RECONNECT_AFTER + 1, needed=True) is False  # no endpoint known
    assert watch.reannounce_due(RECONNECT_AFTER + 1, needed=True) is True  # but ask the tracker
    assert not watch.unreachable(SEEDER_UNREACHABLE - 0.1, needed=True)
    assert watch.unreachable(SEEDER_UNREACHABLE + 0.1, needed=True)
    assert not watch.unreachable(SEEDER_UNREACHABLE + 0.1, needed=True, tracker_answers=False)  # all down
    assert watch.describe(5.0) == "never reached"


def test_a_stall_says_which_part_of_the_server_is_unreachable() -> None:
    reach = Reachability("http://10.77.0.1:8080/announce", SERVER, ("http://10.77.0.1:8080/images/x/1/i",))
    watch = SeederWatch(SERVER, started=0.0)
    watch.observe(1.0, [(SERVER, 6880, False, True)])
    watch.observe(5.0, [])
    reach.tracker_ok()
    assert reach.tracker_answers
    reach.tracker_failed("connection refused")
    reach.seeder_failed("Connection refused")
    reach.web_seed_added()
    reach.web_seed_failed("url seed: connection refused")
    text = reach.summary(watch, 65.0)
    assert "tracker http://10.77.0.1:8080/announce: connection refused" in text
    assert "seeder 10.77.0.1:6880: not reached for 64 s" in text and "Connection refused" in text
    assert "web seed http://10.77.0.1:8080/images/x/1/i: url seed: connection refused" in text
    assert not reach.tracker_answers


def test_a_web_seed_for_an_unreachable_seeder_goes_with_the_stripe_or_when_the_seeder_is_back() -> None:
    fb = WebSeedFallback("fallback", ("http://s/i",))
    assert fb.due(peers=3, done=1000, elapsed=1.0, since_progress=0.0, seeder_unreachable=True)
    assert fb.reason == "seeder" and fb.added
    assert not fb.retire_due(seeder_connected=False, own_stripe_done=False)
    assert fb.retire_due(seeder_connected=False, own_stripe_done=True) and not fb.added
    # its stripe done, the owner does not take the web seed for the seeder again; only a stall does
    assert not fb.due(peers=3, done=2000, elapsed=9.0, since_progress=0.0, seeder_unreachable=True)
    assert fb.due(peers=3, done=2000, elapsed=20.0, since_progress=WEB_SEED_STALL + 1)
    assert fb.reason == "stall"
    assert not fb.retire_due(seeder_connected=False, own_stripe_done=True)  # a stall's web seed stays
    assert fb.retire_due(seeder_connected=True, own_stripe_done=True)  # until the seeder is back
    assert fb.retired == 2
    never = WebSeedFallback("never", ("http://s/i",))
    assert not never.due(peers=0, done=0, elapsed=99.0, since_progress=99.0, seeder_unreachable=True)


def test_an_announce_without_an_answer_says_so() -> None:
    reach = Reachability("http://s/announce", SERVER, ("http://s/i",))
    reach.tracker_ok()
    reach.announce_sent(10.0)
    reach.web_seed_added()
    text = reach.summary(SeederWatch(SERVER, started=0.0), 20.0)
    assert "tracker http://s/announce: no answer for 10 s (last: answered)" in text
    assert "seeder 10.77.0.1: never reached" in text and "web seed http://s/i: added, nothing came" in text


def test_the_owners_left_share_out_a_stripe_that_stops_growing_while_the_others_grow() -> None:
    from bootagent.stripes import ADOPT_AFTER

    # 4 owners, 32 pieces: stripe s is pieces k with k % 4 == s. What each owner sees, at 0 s and
    # twice later: stripes 0, 2 and 3 grow, stripe 1 stops at piece 1 (its owner is gone)
    seen = [(0.0, {0, 1, 2, 3}), (ADOPT_AFTER - 0.1, {4, 6, 7}), (ADOPT_AFTER + 0.1, {8, 10, 11})]
    shares: dict[int, list[int] | None] = {}
    for index in (0, 2, 3):
        policy = StripePolicy((index, 4), num_pieces=32)
        have: set[int] = set()
        available: set[int] = set()
        for when, more in seen:
            available |= more
            have |= {k for k in more if k % 4 == index}
            counts = [int(k in available) for k in range(32)]
            shares[index] = policy.adopt_due(when, have.__contains__, counts)
        assert policy.adopted == [1] and set(shares[index] or ()) <= set(policy.own_left)
        assert policy.adopted_at == [ADOPT_AFTER + 0.1]  # for the benchmark's records
        assert policy.adopt_due(99.0, have.__contains__, counts) is None  # once
    # the survivors 0, 2, 3 split stripe 1's missing 5, 9, ..., 29 by k // 4 % 3: each piece once
    assert shares[2] == [5, 17, 29]
    assert sorted(k for share in shares.values() for k in share or ()) == list(range(5, 32, 4))


def test_a_done_owner_goes_back_to_the_server_for_its_share_and_off_it_once_that_is_in() -> None:
    from bootagent.stripes import ADOPT_AFTER

    policy = StripePolicy((0, 2), num_pieces=8)  # owns 0, 2, 4, 6; stripe 1: 1, 3, 5, 7
    have = {0, 2, 4, 6}
    assert policy.own_done_at is None
    assert policy.steer(have.__contains__, 0.0, now=5.0) is True and policy.filtered
    assert policy.own_done_at == 5.0  # when its stripe was in (the benchmark's records)
    availability = [0, 1, 0, 0, 0, 0, 0, 0]
    assert policy.adopt_due(0.0, have.__contains__, availability) is None
    # stripe 1 stops at one piece; this node's own stripe is complete: that counts as flowing
    assert policy.adopt_due(ADOPT_AFTER + 0.1, have.__contains__, availability) == [3, 5, 7]
    assert not policy.filtered and not policy.unfiltered
    have |= {3, 5, 7}
    assert policy.steer(have.__contains__, 0.0) is True and policy.filtered


def test_nothing_is_adopted_when_every_stripe_stops_or_nobody_lacks_a_piece() -> None:
    from bootagent.stripes import ADOPT_AFTER

    down = StripePolicy((0, 3), num_pieces=9)
    availability = [0, 1, 1, 0, 0, 0, 0, 0, 0]
    down.adopt_due(0.0, {0}.__contains__, availability)
    # the server is down: no stripe grows, so no owner is gone
    assert down.adopt_due(10 * ADOPT_AFTER, {0}.__contains__, availability) is None
    done = StripePolicy((0, 2), num_pieces=4)
    done.adopt_due(0.0, {0, 2}.__contains__, [0, 1, 0, 1])
    assert done.adopt_due(50.0, {0, 2}.__contains__, [0, 1, 0, 1]) is None  # peers have all of it
    never = StripePolicy((0, 2), num_pieces=4)
    never.adopt_due(0.0, {0}.__contains__, [0] * 4)
    assert never.adopt_due(50.0, {0, 2}.__contains__, [0] * 4) is None  # stripe 1 never began
    leaf = StripePolicy((-1, 2), num_pieces=4)
    assert leaf.adopt_due(50.0, set().__contains__, [0] * 4) is None


def test_a_tracker_that_fails_or_does_not_answer_means_the_server_is_down() -> None:
    reach = Reachability("http://s/announce", SERVER)
    assert not reach.tracker_down(0.0)  # not asked yet
    reach.tracker_ok(1.0)
    assert not reach.tracker_down(2.0)
    reach.announce_sent(3.0)
    assert not reach.tracker_down(4.0) and reach.tracker_down(3.0 + 3.5)
    reach.tracker_failed('abc (http://s/announce)[10.0.0.2:6881-v1] Connection refused "" (3)')
    assert reach.tracker == "Connection refused (3)" and reach.tracker_down(7.0)


def test_a_recheck_comes_only_after_a_hash_failure_a_stall_and_with_a_source_at_hand() -> None:
    from bootagent.recovery import RECHECK_AFTER, RECHECK_EVERY, RecheckWatch

    watch = RecheckWatch()
    stalled = RECHECK_AFTER + 0.1
    assert not watch.due(100.0, stalled, 0, True)  # no hash failure: a slow swarm, not a lost piece
    assert not watch.due(100.0, stalled, 1, False)  # nobody has what is missing: the seeder's matter
    assert not watch.due(100.0, RECHECK_AFTER - 0.1, 1, True)
    assert watch.due(100.0, stalled, 1, True) and watch.rechecks == 1
    assert not watch.due(100.0 + RECHECK_EVERY - 1, stalled, 1, True)  # at most every RECHECK_EVERY
    assert watch.due(100.0 + RECHECK_EVERY, stalled, 2, True) and watch.rechecks == 2


# -- pieces handed out by the server (bootagent/piece_fetch.py) ---------------------------------
def test_an_owner_taking_handed_out_pieces_has_no_fixed_stripe_and_keeps_off_the_seeder() -> None:
    p = StripePolicy((2, 4), num_pieces=16)
    p.dispense = True
    assert p.start() and p.filtered and p.own_left == [] and p.priorities() is None
    assert p.adopt_due(5.0, lambda k: False, [0] * 16) is None  # no stripe to adopt: the server hands out
    assert p.steer(lambda k: False, since_progress=0.5, now=1.0) is None
    p.dispensed(30.0)
    p.dispensed(31.0)
    assert p.own_done_at == 30.0 and p.filtered
    # the hand-out failed (an older server): back to the seeder, rarest first
    q = StripePolicy((2, 4), num_pieces=16)
    q.dispense = True
    q.start()
    have = {2}
    assert q.dispense_failed(lambda k: k in have) and not q.filtered and not q.dispense
    assert q.own_left == [6, 10, 14] and q.priorities() == [TOP_PRIORITY if k % 4 == 2 else DEFAULT_PRIORITY
                                                              for k in range(16)]
    assert not q.dispense_failed(lambda k: k in have)  # once: it is on the seeder already
    assert q.steer(lambda k: True, since_progress=0.0, now=9.0) is True  # its stripe in: off again
    # a leaf never asks for handed-out pieces
    leaf = StripePolicy((-1, 4), num_pieces=16)
    leaf.dispense = True
    assert leaf.start() and not leaf.dispense


def test_the_hand_out_url_and_the_requests_in_flight() -> None:
    from bootagent.piece_fetch import dispenser_url, workers_for

    assert dispenser_url("http://10.0.0.1:8080/images/compute/12/image.squashfs") == (
        "http://10.0.0.1:8080/api/v1/pieces/compute/12/next"
    )
    assert dispenser_url("https://head/images/compute/3/image.tar.zst") == "https://head/api/v1/pieces/compute/3/next"
    assert dispenser_url("http://mirror/pub/image.squashfs") == ""  # not our server: the seeder as before
    assert dispenser_url("http://head/images/compute/x/image.squashfs") == ""
    assert [workers_for(n) for n in (32, 16, 8, 4, 2, 1, 0)] == [1, 1, 2, 4, 4, 4, 4]


def test_an_owners_stripe_done_time_is_kept_whichever_way_it_came() -> None:
    p = StripePolicy((0, 2), num_pieces=4)
    p.start()
    have = {0, 2}
    assert p.steer(lambda k: k in have, since_progress=0.0, now=7.0) is True
    assert p.own_done_at == 7.0 and p.filtered
