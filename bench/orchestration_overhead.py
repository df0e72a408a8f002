#!/usr/bin/env python3
"""Orchestration overhead of a warm lab run: wall time minus the time spent measuring.

For 1, 4, 8 and 16 client hosts: bring one namespace lab up (server + the most clients)
and keep it up (warm: hosts up, tools and server deployed), then time `orchestrate run`
of one short run on the first N clients, several times. Overhead = wall time - load
duration. Rounds alternate between client counts (and reverse their order every other
round) so machine noise spreads over all of them; the ratio to 1 client is taken per
round, then the median over rounds.

    .venv/bin/python bench/orchestration_overhead.py [--rounds 3] [--duration 2] [--clients 1,4,8,16]
    .venv/bin/python bench/orchestration_overhead.py --against /tmp/before   # two checkouts, one lab
    .venv/bin/python bench/orchestration_overhead.py --deploy-on --clients 1,8,16 --against /tmp/before
    .venv/bin/python bench/orchestration_overhead.py --calibrate orchestrator/data/overheads.json
    .venv/bin/python bench/orchestration_overhead.py --deploy-cost bench/deploy_cost.json --clients 1,8,16 \
        --lab NAME --rounds 2        # appends rounds; then --deploy-cost bench/deploy_cost.json --summary

--deploy-cost runs every client count twice per round, deploy off (warm) and deploy on (at inputs
already deployed), back to back in alternating order, and appends each run to a JSON file, so rounds
from several short sessions (each under the machine's heavy lock) add up; --summary prints, per
client count, the mean overhead with and without deploy and the deploy's own cost (on minus off,
paired per round), each with its 95% t interval.

--calibrate measures what the plan's time estimate is built from (per-step timing that every
summary records) and writes it as the estimate's data file.

Prints a Markdown table; paste it into bench/RESULTS.md with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUSY_WAIT_S = 600  # how long a calibration run waits for another run to release this host
sys.path.insert(0, str(REPO))

from orchestrator import stats  # noqa: E402
from orchestrator.hosts import netns  # noqa: E402


def one_run(lab: str, clients: int, duration: int, results: Path, deploy: bool,
            repo: Path = REPO) -> float:
    """Wall time of one `orchestrate run` of the checkout `repo` (its own code and scenario)."""
    cmd = [sys.executable, "-m", "orchestrator", "run", str(repo / "scenarios" / "cross-host.yaml"),
           "--results", str(results), "--set", f"hosts.lab={lab}", "--set", f"hosts.roles.client={clients}",
           "--set", "server.arch=reuseport", "--set", f"load.duration={duration}s",
           "--set", "baseline.enabled=false", "--set", f"hosts.deploy={'true' if deploy else 'false'}"]
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=repo)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"run failed ({repo}, {clients} clients):\n{done.stderr}")
    return wall


def timed_run(scenario: str, results: Path, *sets: str) -> tuple[float, dict]:
    """Wall time of one `orchestrate run` and its summary (with its per-step timing)."""
    cmd = [sys.executable, "-m", "orchestrator", "run", str(REPO / "scenarios" / scenario),
           "--results", str(results)]
    for s in sets:
        cmd += ["--set", s]
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        start = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        wall = time.monotonic() - start
        # another run holds this host (a shared machine): wait for it rather than measure beside it
        if "is running against this host" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(5)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({scenario} {sets}):\n{done.stderr}")
    folder = max((p for p in results.glob("*/*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return wall, json.loads((folder / "summary.json").read_text())


def overheads_of(wall: float, s: dict, duration: float, baseline_tests: list[float]) -> dict[str, float]:
    t = s["timing"]
    runs = s["runs"]
    steps = sum(v for k, v in t.items() if k != "teardown")
    return {
        "start_s": t["lab"] + t.get("facts", 0) + t.get("tools", 0),
        "deploy_s": t.get("deploy", 0.0),
        "per_run_s": statistics.median(r["wall_s"] for r in runs) - duration,
        "per_baseline_test_s": (t.get("baseline", 0.0) - sum(baseline_tests)) / max(len(baseline_tests), 1),
        "report_s": wall - steps,
    }


def calibrate(rounds: int, duration: int, kinds: set[str], old: dict | None) -> dict:
    """Each overhead as the median of `rounds` real runs: local, then a lab the run brings up
    (1 and 2 clients, deploy included, as `cross-host.yaml` ships). A kind not in `kinds`
    keeps its figures from `old` (the file being rewritten)."""
    common = (f"load.duration={duration}s", "server.arch=reuseport", "repeat=2",
              "compare=null", "rounds=null",  # loopback.yaml (the embedded default) compares arch
              "baseline.iperf3.duration=2s", "baseline.iperf3.tcp_duration=1s")
    samples: dict[str, list[dict[str, float]]] = {"local": [], "ssh1": [], "ssh2": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            if "local" in kinds:
                wall, s = timed_run("loopback.yaml", Path(tmp), *common)
                samples["local"].append(overheads_of(wall, s, duration, [2, 1]))
            for n in (1, 2) if "ssh" in kinds else ():
                wall, s = timed_run("cross-host.yaml", Path(tmp), *common, f"hosts.roles.client={n}",
                                    f"hosts.lab=cal{n}-{os.getpid()}")
                tests = [2, 2, 1] * n + ([2, 2] if n > 1 else [])
                samples[f"ssh{n}"].append(overheads_of(wall, s, duration, tests))

    def med(kind: str, key: str) -> float:
        return round(statistics.median(x[key] for x in samples[kind]), 2)

    keys = ("start_s", "deploy_s", "per_run_s", "per_baseline_test_s", "report_s")
    doc = {"version": 1,
           "provenance": f"measured {time.strftime('%Y-%m-%d')} on {platform.node()} ({os.cpu_count()} "
                         f"CPUs, kernel {platform.release()}) by bench/orchestration_overhead.py "
                         f"--calibrate --kinds {','.join(sorted(kinds))}, medians of {rounds} rounds"}
    if "local" in kinds:
        doc["local"] = {**{k: med("local", k) for k in keys}, "per_client_s": 0.0}
    if "ssh" in kinds:
        ssh = {k: med("ssh1", k) for k in keys}
        ssh["per_client_s"] = round(max(0.0, med("ssh2", "per_run_s") - ssh["per_run_s"]), 2)
        doc["ssh"] = ssh
    for kind in {"local", "ssh"} - kinds:
        doc[kind] = (old or {})[kind]
        doc["provenance"] += f"; {kind}: kept from the earlier calibration ({(old or {}).get('provenance')})"
    return doc


def _mean_t(values: list[float]) -> str:
    """Arithmetic mean [95% t interval] (differences can be negative: no logs)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.2f} (1 round)"
    half = stats.t_quantile(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:.2f} [{mean - half:.2f}, {mean + half:.2f}]"


def deploy_cost_rounds(out: Path, lab: str, counts: list[int], rounds: int, duration: int) -> None:
    """Append `rounds` rounds of (deploy off, deploy on) runs per client count to `out`."""
    doc = json.loads(out.read_text()) if out.exists() else {"runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        one_run(lab, max(counts), duration, Path(tmp), deploy=True)  # warm: whatever changed since
        for r in range(rounds):
            session_round = f"{time.strftime('%Y-%m-%dT%H:%M:%S')}-{r}"
            order = [(n, d) for n in counts for d in ((False, True) if (r + n) % 2 else (True, False))]
            for n, deploy in order if r % 2 == 0 else order[::-1]:
                load = os.getloadavg()[0]
                over = one_run(lab, n, duration, Path(tmp), deploy=deploy) - duration
                doc["runs"].append({"round": session_round, "clients": n, "deploy": deploy,
                                    "overhead_s": round(over, 3), "load_avg": round(load, 2),
                                    "machine": f"{platform.node()} {os.cpu_count()} CPUs "
                                               f"{platform.release()}"})
                print(f"{session_round}: {n} clients deploy {'on ' if deploy else 'off'} {over:.2f} s "
                      f"(load average {load:.1f})", file=sys.stderr)
                out.write_text(json.dumps(doc, indent=1) + "\n")


def deploy_cost_summary(path: Path) -> None:
    runs = json.loads(path.read_text())["runs"]
    cell = {(r["round"], r["clients"], r["deploy"]): r["overhead_s"] for r in runs}
    counts = sorted({r["clients"] for r in runs})
    loads = [r["load_avg"] for r in runs]
    print(f"{len({r['round'] for r in runs})} rounds; 1-minute load average before each run "
          f"{min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f})\n")
    print("| client hosts | rounds | overhead s, deploy off (warm) | overhead s, deploy on | "
          "deploy's own cost s (on - off, paired) | deploy on, x of 1 client |")
    print("|---|---|---|---|---|---|")
    for n in counts:
        rounds = sorted(k for k, m, d in cell if m == n and d and (k, n, False) in cell)
        off = [cell[k, n, False] for k in rounds]
        on = [cell[k, n, True] for k in rounds]
        paired = [k for k in rounds if (k, counts[0], True) in cell]
        ratio = "1" if n == counts[0] else "-"
        if n != counts[0] and len(paired) >= 2:
            r = stats.paired_ratio([cell[k, counts[0], True] for k in paired],
                                   [cell[k, n, True] for k in paired])
            ratio = f"{r.estimate:.2f} [{r.low:.2f}, {r.high:.2f}]"
        print(f"| {n} | {len(rounds)} | {_mean_t(off)} | {_mean_t(on)} | "
              f"{_mean_t([b - a for a, b in zip(off, on, strict=True)])} | {ratio} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=2)
    ap.add_argument("--clients", default="1,4,8,16", help="client host counts, comma-separated")
    ap.add_argument("--deployed", action="store_true",
                    help="tools and server are installed for labs already (they share "
                         f"{netns.LAB_ORCHESTRATE_ROOT}): skip the warm-up deploy")
    ap.add_argument("--deploy-on", action="store_true",
                    help="every timed run deploys too (hosts.deploy: true), at inputs already "
                         "deployed: the cost of a deploy that has nothing to do")
    ap.add_argument("--calibrate", type=Path, metavar="JSON",
                    help="measure the overheads the plan's estimate uses; write them to JSON "
                         "(orchestrator/data/overheads.json)")
    ap.add_argument("--kinds", default="local,ssh",
                    help="with --calibrate: which hosts to measure (the others keep their figures)")
    ap.add_argument("--against", type=Path, metavar="CHECKOUT",
                    help="another checkout of orchestrate (e.g. `git archive` of an earlier commit): "
                         "every round runs both on the same lab, in alternating order")
    ap.add_argument("--deploy-cost", type=Path, metavar="JSON",
                    help="rounds of deploy off/on per client count, appended to JSON (see above)")
    ap.add_argument("--summary", action="store_true", help="with --deploy-cost: print its table")
    ap.add_argument("--lab", help="an existing netns lab to run on (left up); default: one of its own")
    args = ap.parse_args()
    if args.deploy_cost and args.summary:
        deploy_cost_summary(args.deploy_cost)
        return
    if args.deploy_cost:
        counts = sorted({int(c) for c in args.clients.split(",")})
        lab = args.lab or f"dc{os.getpid()}"
        try:
            if not args.lab:
                netns.up(lab, max(counts) + 1)
            deploy_cost_rounds(args.deploy_cost, lab, counts, args.rounds, args.duration)
        finally:
            if not args.lab:
                netns.down(lab)
        return
    if args.calibrate:
        kinds = set(args.kinds.split(","))
        old = json.loads(args.calibrate.read_text()) if args.calibrate.exists() else None
        if kinds - {"local", "ssh"} or (old is None and kinds != {"local", "ssh"}):
            raise SystemExit(f"--kinds: local and/or ssh (both for a new file), got {args.kinds}")
        doc = calibrate(args.rounds, args.duration, kinds, old)
        args.calibrate.write_text(json.dumps(doc, indent=2) + "\n")
        print(json.dumps(doc, indent=2))
        return
    counts = sorted({int(c) for c in args.clients.split(",")})
    versions = {"this": REPO, **({"against": args.against.resolve()} if args.against else {})}
    lab = args.lab or f"ovh{os.getpid()}"  # unique: other people's labs may be up on this machine
    walls: dict[tuple[str, int], list[float]] = {(v, n): [] for v in versions for n in counts}
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if not args.lab:
                netns.up(lab, max(counts) + 1)
            if not args.deployed:
                one_run(lab, max(counts), args.duration, Path(tmp), deploy=True)  # warm: deploy once
            for r in range(args.rounds):
                order = [(v, n) for n in counts for v in versions]
                for v, n in order if r % 2 == 0 else order[::-1]:
                    loads.append(os.getloadavg()[0])
                    walls[v, n].append(one_run(lab, n, args.duration, Path(tmp), deploy=args.deploy_on,
                                               repo=versions[v]))
                    print(f"round {r + 1}: {v} {n} clients {walls[v, n][-1] - args.duration:.2f} s "
                          f"(load average {loads[-1]:.1f})", file=sys.stderr)
        finally:
            if not args.lab:
                netns.down(lab)
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs, kernel {platform.release()}, "
          f"{args.rounds} rounds, load {args.duration} s per run, baseline off, deploy warm"
          f"{' and on in every run' if args.deploy_on else ''}; "
          f"1-minute load average before each run {min(loads):.1f}-{max(loads):.1f} "
          f"(median {statistics.median(loads):.1f})")
    for v, repo in versions.items():
        if len(versions) > 1:
            print(f"\n{v}: {repo}")
        print("| client hosts | wall s (median) | overhead s (median) | min-max overhead s | "
              "x of 1 client (median of per-round ratios) |")
        print("|---|---|---|---|---|")
        first = walls[v, counts[0]]
        for n in counts:
            over = [w - args.duration for w in walls[v, n]]
            ratio = statistics.median(o / (w1 - args.duration) for o, w1 in zip(over, first, strict=True))
            print(f"| {n} | {statistics.median(walls[v, n]):.2f} | {statistics.median(over):.2f} | "
                  f"{min(over):.2f}-{max(over):.2f} | {ratio:.2f} |")

if __name__ == "__main__":
    main()
