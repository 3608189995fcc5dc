"""The swarm benchmark's piece-level model: calibrate it on measured runs, check it against them,
predict larger swarms. The simulation itself is bench/swarm_sim.py.

    .venv/bin/python bench/swarm_model.py --from results.json [--fit 4,32] [--predict 1000,10000]
    .venv/bin/python bench/swarm_model.py --nodes 1000 --size 16MiB --link 10mbit --piece-size 16KiB

With --from: the measured set-up (F, piece size, c, u_s) and the measured start-up (median time
to the first byte), start spread and end delay (last piece -> sha256 verified) are taken from the
benchmark's JSON as they are; the model's free parameters (slots per link, TCP efficiency, the
delay before a received piece is passed on) are fitted on the sizes in --fit only, and the model
is then compared with every measured size, held-out ones included. Predictions use the fitted
parameters with the same settings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swarm_report import PAYLOAD_FRACTION, payload_rate, t_min
from swarm_sim import Params, Result, simulate

SLOTS = (4, 8, 16)
HOP_DELAYS = (0.0, 0.05, 0.1, 0.2)
EFFICIENCIES = tuple(round(0.78 + 0.02 * i, 2) for i in range(12))  # 0.78 … 1.00
TORRENT_OVERHEAD = 400  # bytes of a served .torrent besides 20 per piece (names, URLs)


@dataclass(frozen=True)
class Measured:
    nodes: int
    last: float
    p50: float
    p99: float
    start: float  # median time from go to the first byte
    start_jitter: float
    end_delay: float


def load(path: Path) -> tuple[Params, list[Measured]]:
    """The benchmark's set-up (as model parameters) and its measured medians per N."""
    doc = json.loads(path.read_text())
    image, cfg = doc["image"], doc["config"]
    base = Params(
        nodes=1,
        size=int(image["size"]),
        piece=int(image["piece_size"]),
        link=payload_rate(int(cfg["link_bit"])),
        server_link=payload_rate(int(cfg["server_link_bit"])),
    )
    rows = []
    for g in doc["groups"]:
        runs = g["swarm"]
        firsts, spreads, ends = [], [], []
        for detail in g["nodes_detail"]:
            t_first = [r["t_first"] - r["t_go"] for r in detail.values() if "t_first" in r]
            firsts.append(statistics.median(t_first))
            spreads.append((max(t_first) - min(t_first)) / 2)
            ends += [r["t_done"] - r["t_all_pieces"] for r in detail.values() if "t_all_pieces" in r]
        rows.append(
            Measured(
                nodes=int(g["nodes"]),
                last=statistics.median(r["last"] for r in runs),
                p50=statistics.median(r["p50"] for r in runs),
                p99=statistics.median(r["p99"] for r in runs),
                start=statistics.median(firsts),
                start_jitter=statistics.median(spreads),
                end_delay=statistics.median(ends) if ends else 0.05,
            )
        )
    return base, rows


def params_for(base: Params, m: Measured, **fit: Any) -> Params:
    return replace(
        base, nodes=m.nodes, start=m.start, start_jitter=m.start_jitter, end_delay=m.end_delay, **fit
    )


def error(result: Result, m: Measured) -> float:
    """The larger relative error of the model's last node and median node."""
    return max(abs(result.last - m.last) / m.last, abs(result.percentile(50) - m.p50) / m.p50)


def calibrate(base: Params, rows: list[Measured], fit_on: set[int]) -> tuple[dict[str, Any], float]:
    """Grid search of slots x hop delay x efficiency on the sizes in fit_on (seeds 1 and 2)."""
    best: tuple[float, dict[str, Any]] = (math.inf, {})
    fit_rows = [m for m in rows if m.nodes in fit_on]
    for slots, hop, eff in itertools.product(SLOTS, HOP_DELAYS, EFFICIENCIES):
        fit = {"slots": slots, "hop_delay": hop, "efficiency": eff}
        worst = 0.0
        for m in fit_rows:
            runs = [simulate(replace(params_for(base, m, **fit), seed=s)) for s in (1, 2)]
            worst = max(worst, statistics.mean(error(r, m) for r in runs))
            if worst >= best[0]:
                break
        if worst < best[0]:
            best = (worst, fit)
    return best[1], best[0]


def torrent_seconds(base: Params, nodes: int) -> float:
    """What grows with N before the swarm starts: every node fetches the .torrent (20 bytes per
    piece) from the server, which shares its link u_s between them."""
    torrent = 20 * math.ceil(base.size / base.piece) + TORRENT_OVERHEAD
    return nodes * torrent / base.server_link


def predict(base: Params, nodes: int, fit: dict[str, Any], like: Measured) -> Result:
    """The model at another size, with the start-up, spread and end delay measured at the largest
    size, plus the .torrent fetches (torrent_seconds)."""
    start = like.start + torrent_seconds(base, nodes)
    return simulate(
        replace(base, nodes=nodes, start=start, start_jitter=like.start_jitter, end_delay=like.end_delay,
                **fit)
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from swarm import parse_size

    from lab.netns import parse_rate

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="source", type=Path, help="a bench/swarm.py --json file")
    p.add_argument("--fit", default="4,32", help="the measured sizes to fit on (default 4,32)")
    p.add_argument("--predict", default="1000,10000")
    p.add_argument("--nodes", type=int, default=0, help="without --from: simulate this one size")
    p.add_argument("--size", default="16MiB")
    p.add_argument("--link", default="10mbit")
    p.add_argument("--server-link", default="")
    p.add_argument("--piece-size", default="16KiB")
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--efficiency", type=float, default=1.0)
    p.add_argument("--hop-delay", type=float, default=0.0)
    p.add_argument("--start", type=float, default=0.2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    args.size_bytes = parse_size(args.size)
    args.piece_bytes = parse_size(args.piece_size)
    args.link_bit = parse_rate(args.link)
    args.server_link_bit = parse_rate(args.server_link) if args.server_link else args.link_bit
    return args


def line(label: str, n: int, tmin: float, r: Result, seconds: float) -> str:
    return (
        f"  {label:9} N={n:<6d} last={r.last:7.2f}s ({r.last / tmin:5.3f}) p50={r.percentile(50):7.2f}s "
        f"({r.percentile(50) / tmin:5.3f}) p99={r.percentile(99):7.2f}s ({r.percentile(99) / tmin:5.3f}) "
        f"server_copies={r.server_bytes / r.params.size:4.2f}  [{seconds:.1f} s]"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.source is None:
        base = Params(
            nodes=args.nodes or 8,
            size=args.size_bytes,
            piece=args.piece_bytes,
            link=payload_rate(args.link_bit),
            server_link=payload_rate(args.server_link_bit),
            slots=args.slots,
            efficiency=args.efficiency,
            hop_delay=args.hop_delay,
            start=args.start,
        )
        started = time.monotonic()
        r = simulate(base)
        r.check()
        tmin = t_min(base.size, base.nodes, args.link_bit, args.server_link_bit)
        print(line("model", base.nodes, tmin, r, time.monotonic() - started))
        return 0
    base, rows = load(args.source)
    fit_on = {int(x) for x in args.fit.split(",") if x}
    cfg = json.loads(args.source.read_text())["config"]
    link_bit, server_bit = int(cfg["link_bit"]), int(cfg["server_link_bit"])
    started = time.monotonic()
    fit, fit_error = calibrate(base, rows, fit_on)
    print(
        f"model calibrated on N={sorted(fit_on)} in {time.monotonic() - started:.0f} s: slots={fit['slots']} "
        f"hop_delay={fit['hop_delay']}s efficiency={fit['efficiency']} (payload fraction "
        f"{PAYLOAD_FRACTION:.3f} already in c); worst error on the fitted sizes {fit_error:.1%}"
    )
    out: dict[str, Any] = {"fit": fit, "fit_on": sorted(fit_on), "check": [], "predictions": []}
    worst = 0.0
    for m in rows:
        tmin = t_min(base.size, m.nodes, link_bit, server_bit)
        r = simulate(params_for(base, m, **fit))
        err = error(r, m)
        worst = max(worst, err)
        held = "" if m.nodes in fit_on else " (held out)"
        print(
            f"  N={m.nodes:<3d} measured last={m.last:6.2f}s p50={m.p50:6.2f}s p99={m.p99:6.2f}s | model "
            f"last={r.last:6.2f}s p50={r.percentile(50):6.2f}s p99={r.percentile(99):6.2f}s | "
            f"error {err:.1%}{held}"
        )
        out["check"].append({"nodes": m.nodes, "measured": vars(m), "model_last": r.last, "model_p50":
                             r.percentile(50), "model_p99": r.percentile(99), "error": err})
    print(f"model vs measured: worst error {worst:.1%} (goal: within 10 %)")
    largest = max(rows, key=lambda m: m.nodes)
    for n in (int(x) for x in args.predict.split(",") if x):
        t0 = time.monotonic()
        r = predict(base, n, fit, largest)
        tmin = t_min(base.size, n, link_bit, server_bit)
        meta = torrent_seconds(base, n)
        print(line("predicted", n, tmin, r, time.monotonic() - t0) + f" (.torrent fetches: {meta:.1f}s)")
        out["predictions"].append({"nodes": n, "t_min": tmin, "last": r.last, "p50": r.percentile(50),
                                   "p99": r.percentile(99), "server_copies": r.server_bytes / base.size,
                                   "torrent_seconds": meta})
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
