"""server/reseed.py: which booted nodes are told to seed their image again, and how often they ask."""

from __future__ import annotations

from server.reseed import FORGET_SECONDS, POLL_SECONDS, POLLS_PER_SECOND, PROMISE_SECONDS, Reseeding

V = ("compute", 3)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nobody_downloading_means_no_seeding_and_the_shortest_poll() -> None:
    r = Reseeding(Clock())
    a = r.ask(V, "b1", leechers=0, seeds=1)
    assert (a.seed, a.poll) == (False, POLL_SECONDS)
    assert a.why == "no node is downloading this version"


def test_one_seed_per_leecher_counting_those_told_but_not_announced_yet() -> None:
    clock = Clock()
    r = Reseeding(clock)
    told = [r.ask(V, f"b{i}", leechers=3, seeds=1).seed for i in range(6)]
    assert told == [True, True, True, False, False, False]
    # they announced: the tracker counts them as seeds (and the promises still count, for a while)
    assert not r.ask(V, "b9", leechers=3, seeds=4).seed
    clock.now += PROMISE_SECONDS + 1
    assert not r.ask(V, "b9", leechers=3, seeds=4).seed  # three seeds for three leechers
    assert r.ask(V, "b9", leechers=5, seeds=4).seed  # two more nodes rebooted
    assert r.stats()["told"] == 4


def test_a_node_that_asks_again_is_not_seeding_any_more() -> None:
    r = Reseeding(Clock())
    assert r.ask(V, "b1", leechers=1, seeds=1).seed
    assert not r.ask(V, "b2", leechers=1, seeds=1).seed  # b1 is promised
    assert r.ask(V, "b1", leechers=1, seeds=1).seed  # b1 asks again: its round ended, it may seed


def test_the_servers_own_seeder_is_not_a_booted_node() -> None:
    r = Reseeding(Clock())
    assert r.ask(V, "b1", leechers=1, seeds=1, server_seeds=1).seed
    assert not Reseeding(Clock()).ask(V, "b1", leechers=1, seeds=1, server_seeds=0).seed


def test_the_poll_grows_with_the_services_waiting_and_forgets_the_silent_ones() -> None:
    clock = Clock()
    r = Reseeding(clock)
    n = int(POLLS_PER_SECOND * POLL_SECONDS * 3)
    for i in range(n):
        r.ask(V, f"b{i}", leechers=0, seeds=1)
    assert r.poll_seconds(V) == n / POLLS_PER_SECOND  # all of them together: POLLS_PER_SECOND
    assert r.poll_seconds(("other", 1)) == POLL_SECONDS
    clock.now += FORGET_SECONDS + 1
    assert r.ask(V, "b0", leechers=0, seeds=1).poll == POLL_SECONDS  # the others went silent
    assert r.stats()["waiting"] == {"compute/3": 1}


def test_the_holders_are_the_services_still_asking_and_those_told() -> None:
    from server.reseed import HOLDER_POLLS

    clock = Clock()
    r = Reseeding(clock)
    assert r.holders(V) == 0
    r.ask(V, "b1", leechers=0, seeds=1)  # holds it, nobody downloads: waiting
    r.ask(V, "b2", leechers=1, seeds=1)  # told to seed
    assert r.holders(V) == 2
    clock.now += HOLDER_POLLS * POLL_SECONDS + 1  # both stopped asking (rebooting themselves)
    assert r.holders(V) == 0 and r.holders(("compute", 4)) == 0
