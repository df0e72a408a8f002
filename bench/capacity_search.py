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
    runs = {r["run_id"]: r for r in s["runs"]}
    searches = [{"capacity": e["capacity"], "bound": e["bound"], "runs": e["runs"],
                 "repeated_steps": sum(1 for st in e["steps"] if st["repeated"]),
                 "steps": [(st["rate"], st["passed"], len(st["run_ids"])) for st in e["steps"]],
                 "cpu_us_per_request": {str(int(st["rate"])): cpu_us(runs, st["run_ids"])
                                        for st in e["steps"] if st["passed"]},
                 "evidence": e["evidence"]} for e in s["capacity"]]
    caps = [x["capacity"] for x in searches if x["capacity"]]
    diff = abs(caps[0] - caps[1]) / max(caps) * 100 if len(caps) == 2 else None
    return {"wall_s": round(wall, 1), "searches": searches, "difference_pct": diff,
            "speed": speed(searches)}


def cpu_us(runs: dict[str, dict], ids: list[str]) -> float | None:
    """The server's CPU per request (usr + sys, µs) over a step's runs: the machine's speed at
    that rate, which a drifting VM changes between two searches."""
    per = [((r["server_cpu"]["usr"] or 0) + (r["server_cpu"]["sys"] or 0)) / 100 / r["qps"] * 1e6
           for i in ids if (r := runs.get(i)) and r.get("qps") and (r.get("server_cpu") or {}).get("usr")]
    return round(statistics.median(per), 2) if per else None


def speed(searches: list[dict]) -> dict | None:
    """The server's CPU per request at the highest rate both searches passed: how far the
    machine itself moved between them."""
    if len(searches) != 2:
        return None
    a, b = (x["cpu_us_per_request"] for x in searches)
    common = [r for r in a if r in b and a[r] and b[r]]
    if not common:
        return None
    rate = max(common, key=int)
    return {"rate": int(rate), "cpu_us": [a[rate], b[rate]],
            "apart_pct": round(abs(a[rate] - b[rate]) / max(a[rate], b[rate]) * 100, 1)}


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
        sp = r["speed"]
        drift = (f"; server CPU per request at {sp['rate']:,} req/s {sp['cpu_us'][0]} vs "
                 f"{sp['cpu_us'][1]} µs ({sp['apart_pct']}% apart)" if sp else "")
        print(f"round {i + 1}: capacities {caps}, difference {diff}, "
              f"runs {[s['runs'] for s in r['searches']]}, {r['wall_s']:.0f} s{drift}", flush=True)
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
