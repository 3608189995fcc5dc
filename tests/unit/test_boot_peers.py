"""server/boot_peers.py: which booted node a rebooting one gets its kernel and initramfs from."""

from __future__ import annotations

from server.boot_peers import BOOTING_FETCH_WAIT, PER_HOLDER, SERVER_FETCH_WAIT, TTL, WINDOW, BootPeers

V = ("compute", 3)
FILES = {"vmlinuz": "a" * 64, "initramfs.img": "b" * 64}
NAMES = ("vmlinuz", "initramfs.img")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def peers_with(*holders: tuple[str, str]) -> tuple[BootPeers, Clock]:
    clock = Clock()
    peers = BootPeers(clock=clock)  # type: ignore[arg-type]
    for i, (node, switch) in enumerate(holders):
        peers.hold(V, node, f"10.0.0.{i + 1}", 7480, FILES, switch=switch)
    return peers, clock


def test_a_holder_on_the_same_switch_first_then_the_least_loaded_and_never_itself() -> None:
    peers, _ = peers_with(("a", "sw1"), ("b", "sw2"), ("c", "sw2"))
    got = [peers.for_ipxe(V, "x", "sw2", NAMES).node for _ in range(4)]  # type: ignore[union-attr]
    assert got == ["b", "c", "b", "c"]  # sw2's, the least loaded in turn; a (sw1) not while they are free
    assert peers.for_ipxe(V, "b", "sw2", NAMES).node == "c"  # type: ignore[union-attr]
    holder = peers.for_ipxe(V, "x", "sw1", NAMES)
    assert holder is not None and holder.node == "a"
    assert holder.url("vmlinuz") == f"http://10.0.0.1:7480/boot-files/{'a' * 64}/vmlinuz"


def test_each_holder_takes_per_holder_per_window_then_the_server_serves() -> None:
    peers, clock = peers_with(("a", ""), ("b", ""))
    assert all(peers.for_ipxe(V, f"x{i}", "", NAMES) is not None for i in range(2 * PER_HOLDER))
    assert peers.for_ipxe(V, "late", "", NAMES) is None  # both busy: iPXE gets the server's URL
    holder, wait = peers.for_service(V, "booted", "", NAMES)  # a booted service may queue on a busy one
    assert holder is not None and wait == 0
    clock.now += WINDOW + 1
    assert peers.for_ipxe(V, "later", "", NAMES) is not None
    assert peers.stats()["assigned_ipxe"] == 2 * PER_HOLDER + 1


def test_a_holder_that_says_it_sent_a_node_its_files_takes_the_next_one_at_once() -> None:
    peers, _ = peers_with(("a", ""))
    assert all(peers.for_ipxe(V, f"x{i}", "", NAMES, f"10.1.0.{i}") is not None for i in range(PER_HOLDER))
    assert peers.for_ipxe(V, "next", "", NAMES, "10.1.0.99") is None  # busy: 4 at once
    peers.hold(V, "a", "10.0.0.1", 7480, FILES)  # its reports keep its assignments
    assert peers.for_ipxe(V, "next", "", NAMES, "10.1.0.99") is None
    assert not peers.served("a", "10.9.9.9")  # nobody it was serving
    assert peers.served("a", "10.1.0.2")  # x2 has both files: its slot is free, before the window ends
    holder = peers.for_ipxe(V, "next", "", NAMES, "10.1.0.99")
    assert holder is not None and holder.node == "a"
    assert peers.for_ipxe(V, "after", "", NAMES, "10.1.0.98") is None
    peers.hold(V, "a", "10.0.0.1", 7481, FILES)  # another port: another server, a new holding
    assert peers.for_ipxe(V, "after", "", NAMES, "10.1.0.98") is not None


def test_a_reboot_a_stop_or_silence_ends_a_holding() -> None:
    peers, clock = peers_with(("a", ""), ("b", ""), ("c", ""))
    peers.drop("a")
    clock.now += TTL - 5
    peers.hold(V, "c", "10.0.0.3", 7480, FILES)  # c reported again; b did not
    clock.now += 10
    assert {peers.for_ipxe(V, f"x{i}", "", NAMES).node for i in range(3)} == {"c"}  # type: ignore[union-attr]
    assert peers.stats()["holders"] == {"compute/3": 1}
    assert peers.for_ipxe(("compute", 4), "x", "", NAMES) is None  # another version: nobody


def test_one_booted_service_fetches_from_the_server_and_the_others_wait_for_it() -> None:
    peers, clock = peers_with()
    assert peers.for_service(V, "a", "", NAMES) == (None, 0)  # the first: from the server
    assert peers.for_service(V, "b", "", NAMES) == (None, SERVER_FETCH_WAIT)
    assert peers.for_service(V, "b", "", NAMES, booting=True) == (None, BOOTING_FETCH_WAIT)  # sooner
    assert peers.hold_back(4, "10.9.0.1")  # a's fetch has the head node's link: iPXE waits meanwhile
    peers.drop("a")  # a stopped before it had them (its handover): another may fetch them now
    assert not peers.hold_back(4, "10.9.0.1")
    assert peers.for_service(V, "a2", "", NAMES, booting=True) == (None, 0)
    peers.drop("a2")
    assert peers.for_service(V, "a", "", NAMES) == (None, 0)
    peers.hold(V, "a", "10.0.0.1", 7480, FILES)
    holder, wait = peers.for_service(V, "b", "", NAMES)
    assert holder is not None and holder.node == "a" and wait == 0
    assert not peers.hold_back(4, "10.9.0.1")  # a holds them: iPXE's slots are free again
    peers.drop("a")
    clock.now += TTL + 1  # a died before it held them: after the TTL, another goes to the server
    assert peers.for_service(V, "c", "", NAMES) == (None, 0)
