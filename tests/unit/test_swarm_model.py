"""The swarm model (bench/swarm_sim.py): the physics it must never violate, on small cases."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

# appended, not prepended: bench/server.py must not shadow the `server` package for later tests
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

from swarm_report import percentile, t_min
from swarm_sim import Params, simulate

MiB = 2**20
C = 1_000_000.0  # payload bytes/s


def base(**kw: object) -> Params:
    p = Params(nodes=1, size=2 * MiB, piece=16 * 1024, link=C, server_link=C, start=0.3, start_jitter=0.0,
               end_delay=0.05)
    return replace(p, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("server", "link"), [(C, C), (C / 2, C), (C, C / 4)])
def test_one_node_takes_f_over_the_slower_link_plus_start_and_end(server: float, link: float) -> None:
    p = base(server_link=server, link=link, efficiency=0.9)
    r = simulate(p)
    r.check()
    expected = p.start + p.size / (min(server, link) * p.efficiency) + p.end_delay
    assert r.last == pytest.approx(expected, rel=1e-3)
    assert r.server_bytes == p.size


@pytest.mark.parametrize("nodes", [2, 5, 16, 40])
def test_no_node_finishes_before_the_physical_limit(nodes: int) -> None:
    p = base(nodes=nodes, start_jitter=0.1, seed=nodes)
    r = simulate(p)
    r.check()
    limit = p.size / min(p.link, p.server_link)
    assert min(r.done) >= p.start - p.start_jitter + limit
    assert r.server_bytes >= p.size  # the server sends at least one copy


def test_bytes_are_conserved_and_peers_carry_most_of_it() -> None:
    r = simulate(base(nodes=16))
    r.check()
    assert sum(r.received) == 16 * r.params.size
    assert sum(r.sent) > 10 * r.params.size  # nodes pass most of the image on
    assert r.server_bytes < 1.2 * r.params.size


def test_leaves_never_fetch_from_the_server() -> None:
    """With 2 owners, the server's bytes all go to them (each its stripe, plus helping)."""
    r = simulate(base(nodes=10, stripes=2))
    r.check()
    assert r.server_bytes <= 1.2 * r.params.size
    assert all(d > 0 for d in r.done)


def test_more_nodes_cost_little_with_many_pieces() -> None:
    """With ~500 pieces the swarm's time hardly grows with N (Kumar & Ross): 40 nodes within 25 %
    of one; the pipeline costs a few piece times, not N copies."""
    one = simulate(base(piece=4096)).last
    many = simulate(base(nodes=40, piece=4096)).last
    assert one <= many <= 1.25 * one


def test_a_random_graph_beyond_the_degree_still_completes() -> None:
    p = base(nodes=60, degree=12, size=MiB)
    r = simulate(p)
    r.check()
    assert min(r.done) >= p.start + p.size / p.link


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)


def test_t_min_is_kumar_ross_with_payload_rates() -> None:
    """u_s >= c: F/c whatever N; a slow server: F/u_s; rates are the TCP payload of the line rate."""
    f = 10 * MiB
    c = 8_000_000 / 8 * (1448 / 1514)
    assert t_min(f, 32, 8_000_000, 8_000_000) == pytest.approx(f / c)
    assert t_min(f, 32, 8_000_000, 4_000_000) == pytest.approx(2 * f / c)
    assert t_min(f, 1, 8_000_000, 16_000_000) == pytest.approx(f / c)


def test_the_server_link_is_done_when_it_has_sent_nearly_all_its_bytes() -> None:
    from swarm_lab import LinkSampler

    sampler = LinkSampler(lambda: 0)  # never started: the samples are given
    sampler.samples = [(100.0, 1000), (101.0, 5000), (102.0, 10_000), (103.0, 10_900), (104.0, 11_000)]
    assert sampler.done_at(100.0) == 3.0  # 99 % of the 10,000 bytes it sent after the first sample
    assert sampler.done_at(100.0, share=0.5) == 2.0
    sampler.stop()  # never started: nothing to stop, no sample taken
    assert len(sampler.samples) == 5
    assert math.isnan(LinkSampler(lambda: 0).done_at(0.0))  # no samples
