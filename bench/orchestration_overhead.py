#!/usr/bin/env python3
"""Orchestration overhead of a warm lab run: wall time minus the time spent measuring.

For 1..4 client hosts: bring a namespace lab up (server + N clients) and keep it up
(warm: hosts up, tools and server deployed), then time `orchestrate run` of one
short run several times. Overhead = wall time - load duration. Rounds alternate
between client counts so machine noise spreads over all of them.

    .venv/bin/python bench/orchestration_overhead.py [--rounds 3] [--duration 2] [--max-clients 4]

Prints a Markdown table; paste it into bench/RESULTS.md with the machine's description.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.hosts import netns  # noqa: E402


def one_run(lab: str, clients: int, duration: int, results: Path, deploy: bool) -> float:
    cmd = [sys.executable, "-m", "orchestrator", "run", str(REPO / "scenarios" / "cross-host.yaml"),
           "--results", str(results), "--set", f"hosts.lab={lab}", "--set", f"hosts.roles.client={clients}",
           "--set", "server.arch=reuseport", "--set", f"load.duration={duration}s",
           "--set", "baseline.enabled=false", "--set", f"hosts.deploy={'true' if deploy else 'false'}"]
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"run failed ({clients} clients):\n{done.stderr}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=2)
    ap.add_argument("--max-clients", type=int, default=4)
    args = ap.parse_args()
    counts = list(range(1, args.max_clients + 1))
    labs = {n: f"bench{n}" for n in counts}
    walls: dict[int, list[float]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for n in counts:
                netns.up(labs[n], n + 1)
                one_run(labs[n], n, args.duration, Path(tmp), deploy=True)  # warm: deploy once
            for _ in range(args.rounds):
                for n in counts:
                    walls[n].append(one_run(labs[n], n, args.duration, Path(tmp), deploy=False))
        finally:
            for lab in labs.values():
                netns.down(lab)
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs, kernel {platform.release()}, "
          f"{args.rounds} rounds, load {args.duration} s per run, baseline off, deploy warm")
    print("| client hosts | wall s (median) | overhead s (median) | min-max overhead s |")
    print("|---|---|---|---|")
    for n in counts:
        over = [w - args.duration for w in walls[n]]
        print(f"| {n} | {statistics.median(walls[n]):.2f} | {statistics.median(over):.2f} | "
              f"{min(over):.2f}-{max(over):.2f} |")


if __name__ == "__main__":
    main()
