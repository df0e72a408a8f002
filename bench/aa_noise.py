#!/usr/bin/env python3
"""The noise floor of this machine and the false-"changed" rate of the paired statistic.

A/A rounds come from `orchestrate noise` (repetitions 2k-1 and 2k of a point are round k's A
and B; both are the same server, so every difference is noise). From the recorded rounds:
  - the floor: the minimum detectable effect (95% confidence, 80% power) at 5, 10 and 20
    rounds, from the pooled spread of per-round log ratios (orchestrator/noise.py);
  - the false-positive rate: many comparisons of n rounds drawn from the recorded ones (without
    replacement, each round's A and B swapped with probability 1/2: in an A/A run the labels
    are exchangeable), each judged by stats.paired_ratio as compare does (interval excludes 1
    and p < 0.05); the rate with its exact binomial 95% interval (Clopper-Pearson).

    .venv/bin/python bench/aa_noise.py record RESULTS_FOLDER [--json bench/aa_noise.json]
    .venv/bin/python bench/aa_noise.py [--json bench/aa_noise.json] [--comparisons 400]

The recording run here: `orchestrate noise --rounds 20 --set server.arch=reuseport
--set load.duration=2s --set baseline.enabled=false` (embedded loopback scenario, one point).
Figures go to bench/RESULTS.md and the README's "Comparing two things".
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator import compare, stats, store  # noqa: E402
from orchestrator.history import machine_fingerprint  # noqa: E402

METRICS = ("qps", "cpu_us_per_request")
SEED = 24


def record(folder: Path, out: Path) -> None:
    summary = store.load_summary(folder)
    rounds: dict[str, list[list[float]]] = {}
    for name in METRICS:
        m = compare.PAIRED_METRICS[name]
        by_rep = {r.repetition: m.read(r) for r in summary.runs if r.repetition is not None}
        rounds[name] = [[by_rep[k], by_rep[k + 1]] for k in range(1, max(by_rep) + 1, 2)
                        if by_rep.get(k) and by_rep.get(k + 1)]
    data = {"note": "A/A rounds [A, B] from `orchestrate noise` (repetitions 2k-1, 2k of one point)",
            "results_id": summary.run_id, "machine": machine_fingerprint(summary),
            "started": summary.started, "rounds": rounds}
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"recorded {len(rounds['qps'])} rounds to {out}")


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import beta

    low = beta.ppf(0.025, k, n - k + 1) if k else 0.0
    high = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def false_positive_rate(pairs: list[list[float]], n: int, comparisons: int,
                        rng: random.Random) -> tuple[int, int]:
    fired = 0
    for _ in range(comparisons):
        drawn = [p if rng.random() < 0.5 else p[::-1] for p in rng.sample(pairs, n)]
        r = stats.paired_ratio([a for a, _ in drawn], [b for _, b in drawn])
        fired += r.excludes_one and r.p_value is not None and r.p_value < compare.ALPHA
    return fired, comparisons


def analyse(path: Path, comparisons: int) -> None:
    data = json.loads(path.read_text())
    rng = random.Random(SEED)
    print(f"A/A rounds recorded {data['started']} on {data['machine']} ({data['results_id']})\n")
    print("| metric | rounds | sd of log ratios | floor at 5 | at 10 | at 20 "
          "| false 'changed' (n=5) | (n=10) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, pairs in data["rounds"].items():
        if len(pairs) < 10:
            continue
        logs = [math.log(b / a) for a, b in pairs]
        sd = statistics.stdev(logs)
        floors = [stats.detectable_effect(sd, n) * 100 for n in (5, 10, 20)]
        cells = []
        for n in (5, 10):
            k, total = false_positive_rate(pairs, n, comparisons, rng)
            lo, hi = clopper_pearson(k, total)
            cells.append(f"{k}/{total} = {k / total:.1%} [{lo:.1%}, {hi:.1%}]")
        print(f"| {name} | {len(pairs)} | {math.expm1(sd):.2%} | {floors[0]:.1f}% | {floors[1]:.1f}% | "
              f"{floors[2]:.1f}% | {cells[0]} | {cells[1]} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", choices=["record"], help="record a results folder's A/A rounds")
    ap.add_argument("folder", nargs="?", type=Path)
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "aa_noise.json")
    ap.add_argument("--comparisons", type=int, default=400)
    args = ap.parse_args()
    if args.mode == "record":
        if args.folder is None:
            ap.error("record needs a results folder")
        record(args.folder, args.json)
    else:
        analyse(args.json, args.comparisons)


if __name__ == "__main__":
    main()
