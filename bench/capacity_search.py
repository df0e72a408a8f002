#!/usr/bin/env python3
"""Does a capacity search give the same answer twice? (a benchmark, not part of CI)

Runs the shipped loopback capacity scenario (`scenarios/capacity.yaml`: reuseport server on
the even CPUs, orchestrate-load open loop on the odd ones, p99 SLO) twice in a row, for
several rounds, and records each search's capacity, its steps and runs, and how far the two
searches of a round differ. Before, between and after the two it measures the same server
and generator closed loop: the machine's ceiling right then. Where a pair's capacities differ
and their shares of the ceiling do not, the machine moved, not the search.

    python3 bench/capacity_search.py                        # 3 rounds, the scenario's SLO
    python3 bench/capacity_search.py --rounds 2 --set load.search.slo.p99=2ms
    python3 bench/capacity_search.py --windows 130000 40 --out capacity_windows.json

Before each pair it probes the machine's own pauses on the scenario's CPUs (host_hiccups.py):
a latency SLO near them measures the machine, and they move between pairs.

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

import host_hiccups
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from orchestrator import load  # noqa: E402
from orchestrator.tools.loadgen import Histogram  # noqa: E402

SCENARIO = REPO / "scenarios" / "capacity.yaml"


def _orchestrate(scenario: Path, sets: list[str], histograms: bool = False) -> tuple[dict, float]:
    """Run a scenario; its summary and wall time (with histograms: each run's corrected latency
    histogram added to its record as "latency_hist")."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "orchestrator", "run", str(scenario), "--results", tmp]
        for s in sets:
            argv += ["--set", s]
        began = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=1800)
        wall = time.monotonic() - began
        if done.returncode != 0:
            raise SystemExit(f"run failed: {done.stderr.strip()[-800:]}")
        (summary,) = Path(tmp).glob("*/*/summary.json")
        s = json.loads(summary.read_text())
        for r in s["runs"] if histograms else []:
            r["latency_hist"] = load.latency_histogram(summary.parent / r["histograms"])
        return s, wall


def _fixed(name: str, repeat: int, duration: str | None, rate: float | None) -> dict:
    """The capacity scenario without its search (its steps' duration unless given): closed
    loop, or open loop at `rate`."""
    sc = yaml.safe_load(SCENARIO.read_text())
    sc["load"].pop("search")
    sc.update(name=name, repeat=repeat)
    if duration:
        sc["load"]["duration"] = duration
    if rate:
        sc["load"]["rate"] = rate
    return sc


def _run_fixed(sc: dict, sets: list[str], histograms: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{sc['name']}.yaml"
        path.write_text(yaml.safe_dump(sc))
        s, _ = _orchestrate(path, [x for x in sets if not x.startswith("load.search")], histograms)
    return s


def windows(rate: float, count: int, sets: list[str]) -> dict:
    """`count` windows in a row at one open-loop rate: each window's p99 against all of them
    pooled, which is what a search's step decides on."""
    runs = _run_fixed(_fixed("capacity-windows", count, None, rate), sets, histograms=True)["runs"]
    pooled = Histogram.merged(r["latency_hist"] for r in runs)
    return {"rate": rate, "windows": count, "window_p99_ms": [r["latency_ms"]["p99"] for r in runs],
            "pooled_p99_ms": pooled.percentile_us(99) / 1000.0,
            "server_cpu_us_per_request": [cpu_us({r["run_id"]: r}, [r["run_id"]]) for r in runs]}


def ceiling(sets: list[str]) -> dict:
    """The same server and generator closed loop (3 runs of 2 s): the most this machine serves
    right now, the reference a capacity is a share of."""
    qps = [r["qps"] for r in _run_fixed(_fixed("capacity-ceiling", 3, "2s", None), sets)["runs"]]
    return {"qps": qps, "median": statistics.median(qps)}


def one_search(sets: list[str]) -> tuple[dict, float]:
    s, wall = _orchestrate(SCENARIO, sets)
    runs = {r["run_id"]: r for r in s["runs"]}
    (e,) = s["capacity"]
    return {"capacity": e["capacity"], "bound": e["bound"], "runs": e["runs"],
            "repeated_steps": sum(1 for st in e["steps"] if st["repeated"]),
            "steps": [(st["rate"], st["passed"], len(st["run_ids"]), st["latency_ms"].get("p99"))
                      for st in e["steps"]],
            "cpu_us_per_request": {str(int(st["rate"])): cpu_us(runs, st["run_ids"])
                                   for st in e["steps"] if st["passed"]},
            "evidence": e["evidence"]}, wall


def one_session(sets: list[str], hiccup_s: float) -> dict:
    """Two searches in a row, the machine's closed-loop ceiling measured before, between and
    after them: a capacity that moves with the ceiling moved with the machine."""
    hiccups = host_hiccups.measure([0, 1], hiccup_s) if hiccup_s else None
    ceilings = [ceiling(sets)]
    searches, wall = [], 0.0
    for _ in range(2):
        found, w = one_search(sets)
        searches.append(found)
        wall += w
        ceilings.append(ceiling(sets))
    for i, x in enumerate(searches):  # the ceiling around the search: the mean of before and after
        around = (ceilings[i]["median"] + ceilings[i + 1]["median"]) / 2
        x["ceiling_qps"] = round(around)
        x["share_of_ceiling"] = round(x["capacity"] / around, 4) if x["capacity"] else None
    caps = [x["capacity"] for x in searches if x["capacity"]]
    diff = abs(caps[0] - caps[1]) / max(caps) * 100 if len(caps) == 2 else None
    shares = [x["share_of_ceiling"] for x in searches if x["share_of_ceiling"]]
    share_diff = abs(shares[0] - shares[1]) / max(shares) * 100 if len(shares) == 2 else None
    return {"wall_s": round(wall, 1), "searches": searches, "difference_pct": diff,
            "ceilings": ceilings, "share_difference_pct": share_diff,
            "speed": speed(searches), "hiccups_before": hiccups}


def cpu_us(runs: dict[str, dict], ids: list[str]) -> float | None:
    """The server's CPU per request (usr + sys, µs, as the run's analysis costs it) over a
    step's runs: the machine's speed at that rate, which a drifting VM changes between two
    searches."""
    per = [cost["usr"] + cost["sys"] for i in ids
           if (r := runs.get(i)) and (cost := (r.get("analysis") or {}).get("cpu_us_per_request"))
           and cost.get("usr") is not None and cost.get("sys") is not None]
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
    ap.add_argument("--hiccup-seconds", type=float, default=10.0,
                    help="probe the machine's pauses this long before each pair (0: not)")
    ap.add_argument("--windows", nargs=2, type=float, metavar=("RATE", "COUNT"),
                    help="instead: COUNT windows in a row at one open-loop RATE, each window's p99 "
                         "against all of them pooled")
    args = ap.parse_args()
    if args.windows:
        w = windows(args.windows[0], int(args.windows[1]), args.sets)
        w["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (REPO / "bench" / args.out).write_text(json.dumps(w, indent=2) + "\n")
        print(f"{w['windows']} windows at {w['rate']:,.0f} req/s: p99 {min(w['window_p99_ms'])} to "
              f"{max(w['window_p99_ms'])} ms each, {w['pooled_p99_ms']} ms pooled")
        return
    rounds = []
    for i in range(args.rounds):
        r = one_session(args.sets, args.hiccup_seconds)
        rounds.append(r)
        caps = [s["capacity"] for s in r["searches"]]
        diff = "n/a" if r["difference_pct"] is None else f"{r['difference_pct']:.1f}%"
        sp = r["speed"]
        drift = (f"; server CPU per request at {sp['rate']:,} req/s {sp['cpu_us'][0]} vs "
                 f"{sp['cpu_us'][1]} µs ({sp['apart_pct']}% apart)" if sp else "")
        pauses = f"; before it, {host_hiccups.summary(r['hiccups_before'])}" if r["hiccups_before"] else ""
        shares = [s["share_of_ceiling"] for s in r["searches"]]
        ceil = [c["median"] for c in r["ceilings"]]
        diff += (f" (ceilings {[round(c) for c in ceil]}, shares {shares}, "
                 f"{r['share_difference_pct']:.1f}% apart)" if r["share_difference_pct"] is not None else "")
        print(f"round {i + 1}: capacities {caps}, difference {diff}, "
              f"runs {[s['runs'] for s in r['searches']]}, {r['wall_s']:.0f} s{drift}{pauses}", flush=True)
    diffs = [r["difference_pct"] for r in rounds if r["difference_pct"] is not None]
    share_diffs = [r["share_difference_pct"] for r in rounds if r["share_difference_pct"] is not None]
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sets": args.sets,
           "rounds": rounds, "median_difference_pct": statistics.median(diffs) if diffs else None,
           "max_difference_pct": max(diffs) if diffs else None,
           "median_share_difference_pct": statistics.median(share_diffs) if share_diffs else None}
    (REPO / "bench" / args.out).write_text(json.dumps(out, indent=2) + "\n")
    if diffs:
        print(f"two searches in a row differ by {out['median_difference_pct']:.1f}% (median), "
              f"{out['max_difference_pct']:.1f}% at most, over {len(diffs)} rounds")


if __name__ == "__main__":
    main()
