#!/usr/bin/env python3
"""Does a capacity search give the same answer twice? (a benchmark, not part of CI)

Runs the shipped loopback capacity scenario (`scenarios/capacity.yaml`: reuseport server on
the even CPUs, orchestrate-load open loop on the odd ones, p99 SLO) with `repeat: 2`, i.e.
two independent searches in a row in one session, for several rounds, and records each
search's capacity, its steps and runs, and how far the two searches of a round differ.

    python3 bench/capacity_search.py                        # 3 rounds, the scenario's SLO
    python3 bench/capacity_search.py --rounds 2 --set load.search.slo.p99=2ms

Writes bench/capacity_search.json; the figures go into bench/RESULTS.md by hand, with the
machine's state (a shared or quiet machine changes the noise, and so the repeats).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_session(sets: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "orchestrator", "run", str(REPO / "scenarios" / "capacity.yaml"),
                "--results", tmp, "--set", "repeat=2"]
        for s in sets:
            argv += ["--set", s]
        began = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=1800)
        wall = time.monotonic() - began
        if done.returncode != 0:
            raise SystemExit(f"run failed: {done.stderr.strip()[-800:]}")
        (summary,) = Path(tmp).glob("*/*/summary.json")
        s = json.loads(summary.read_text())
    searches = [{"capacity": e["capacity"], "bound": e["bound"], "runs": e["runs"],
                 "repeated_steps": sum(1 for st in e["steps"] if st["repeated"]),
                 "steps": [(st["rate"], st["passed"], len(st["run_ids"])) for st in e["steps"]],
                 "evidence": e["evidence"]} for e in s["capacity"]]
    caps = [x["capacity"] for x in searches if x["capacity"]]
    diff = abs(caps[0] - caps[1]) / max(caps) * 100 if len(caps) == 2 else None
    return {"wall_s": round(wall, 1), "searches": searches, "difference_pct": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE")
    ap.add_argument("--out", default="capacity_search.json", help="file name in bench/")
    args = ap.parse_args()
    rounds = []
    for i in range(args.rounds):
        r = one_session(args.sets)
        rounds.append(r)
        caps = [s["capacity"] for s in r["searches"]]
        diff = "n/a" if r["difference_pct"] is None else f"{r['difference_pct']:.1f}%"
        print(f"round {i + 1}: capacities {caps}, difference {diff}, "
              f"runs {[s['runs'] for s in r['searches']]}, {r['wall_s']:.0f} s", flush=True)
    diffs = [r["difference_pct"] for r in rounds if r["difference_pct"] is not None]
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sets": args.sets,
           "rounds": rounds, "median_difference_pct": statistics.median(diffs) if diffs else None,
           "max_difference_pct": max(diffs) if diffs else None}
    (REPO / "bench" / args.out).write_text(json.dumps(out, indent=2) + "\n")
    if diffs:
        print(f"two searches in a row differ by {out['median_difference_pct']:.1f}% (median), "
              f"{out['max_difference_pct']:.1f}% at most, over {len(diffs)} rounds")


if __name__ == "__main__":
    main()
