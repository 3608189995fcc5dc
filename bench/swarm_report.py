"""The swarm benchmark's numbers: the physical limit, per-run summaries, the table and the plot."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MTU = 1500
ETH_HEADER = 14  # what tbf counts besides the IP packet (no preamble, FCS or gap on a veth)
TCP_IP_HEADERS = 52  # IPv4 20 + TCP 20 + timestamps 12
PAYLOAD_FRACTION = (MTU - TCP_IP_HEADERS) / (MTU + ETH_HEADER)  # 1448 / 1514 = 0.956


def payload_rate(link_bit: int) -> float:
    """TCP payload bytes/s a link of link_bit bits/s carries at MTU 1500."""
    return link_bit / 8 * PAYLOAD_FRACTION


def t_min(size: int, nodes: int, link_bit: int, server_bit: int) -> float:
    """Kumar & Ross: max(F/u_s, F/c, N·F/(u_s + N·c)), with TCP payload rates."""
    c, u = payload_rate(link_bit), payload_rate(server_bit)
    return max(size / u, size / c, nodes * size / (u + nodes * c))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def completion_times(results: dict[int, dict[str, Any]]) -> list[float]:
    return sorted(r["t_done"] - r["t_go"] for r in results.values())


def phase_summary(
    results: dict[int, dict[str, Any]], size: int, tmin: float, server_tx: int, cpu_percent: float
) -> dict[str, Any]:
    times = completion_times(results)
    first = [r["t_first"] - r["t_go"] for r in results.values() if "t_first" in r]
    return {
        "last": max(times),
        "first_done": min(times),
        "p50": percentile(times, 50),
        "p99": percentile(times, 99),
        "ratio": max(times) / tmin,
        "p50_ratio": percentile(times, 50) / tmin,
        "first_byte_median": statistics.median(first) if first else math.nan,
        "server_tx_bytes": server_tx,
        "server_copies": server_tx / size,
        "cpu_percent": cpu_percent,
        "times": times,
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summary_line(
    n: int, tmin: float, swarm: list[dict[str, Any]], http: list[dict[str, Any]], seeding: str = "lifecycle"
) -> str:
    http_ratio = f"{median_of(http, 'ratio'):.2f}" if http else "nan"
    return (
        f"swarm N={n} T_min={tmin:.2f}s last={median_of(swarm, 'last'):.2f}s "
        f"ratio={median_of(swarm, 'ratio'):.3f} http_ratio={http_ratio} "
        f"server_copies={median_of(swarm, 'server_copies'):.2f} seeding={seeding}"
    )


def run_line(kind: str, s: dict[str, Any], *, n: int, run: int, size: int, link_bit: int, tmin: float) -> str:
    return (
        f"  {kind:9} N={n:<3d} run {run}: F={size / 2**20:.1f} MiB c={link_bit / 1e6:g} Mbit/s "
        f"T_min={tmin:.2f}s last={s['last']:.2f}s p50={s['p50']:.2f}s p99={s['p99']:.2f}s "
        f"ratio={s['ratio']:.3f} server_copies={s['server_copies']:.2f} cpu={s['cpu_percent']:.0f}%"
        + (f" first_byte={s['first_byte_median']:.2f}s" if not math.isnan(s["first_byte_median"]) else "")
        + (
            f" server_link: busy {s['server_busy_s']:.1f}s, done {s['server_done_s']:.1f}s, "
            f"tail {s['tail_s']:.1f}s" if not math.isnan(s.get("server_done_s", math.nan)) else ""
        )
    )


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| N | seeding | T_min (s) | last (s) | p50 (s) | p99 (s) | ratio | http_ratio | server copies "
            "| after boot (MiB) | CPU % |")
    out = [head, "|" + "---|" * 11]
    for r in rows:
        after = r.get("after_boot_uploaded", math.nan)
        out.append(
            f"| {r['nodes']} | {r.get('seeding', 'lifecycle')} | {r['t_min']:.2f} | {r['last']:.2f} | "
            f"{r['p50']:.2f} | {r['p99']:.2f} | {r['ratio']:.3f} | {r['http_ratio']:.2f} | "
            f"{r['server_copies']:.2f} | {after / 2**20:.1f} | {r['cpu_percent']:.0f} |"
        )
    return "\n".join(out)


def plot(path: Path, groups: list[dict[str, Any]]) -> None:
    """Nodes done over time, swarm vs HTTP, one panel per N; T_min as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 4), squeeze=False)
    for ax, g in zip(axes[0], groups, strict=True):
        for kind, style in (("swarm", "-"), ("http", "--")):
            for k, run in enumerate(g.get(kind, [])):
                times = run["times"]
                ax.step(
                    [0.0, *times], range(len(times) + 1), where="post", linestyle=style,
                    label=kind if k == 0 else None, color="C0" if kind == "swarm" else "C1",
                )
        ax.axvline(g["t_min"], color="k", linestyle=":", label="T_min")
        ax.set_title(f"N = {g['nodes']}")
        ax.set_xlabel("seconds since start")
        ax.set_ylabel("nodes done")
        if g.get("http"):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
