#!/usr/bin/env python3
"""How far apart do processes on ONE shared CPU start when all are aimed at one instant?
(a benchmark, not part of CI)

wrk cannot start at an instant, so orchestrate starts it through a sleeper
(`orchestrator.tools.wrk.at_command`) that wakes at the instant, notes the time and execs wrk.
Here 8 such sleepers are pinned to one CPU, as the lab's client hosts are on this VM, and each
execs either `sleep` (little work after the wake-up) or a busy loop (a CPU-hungry generator).
The spread of their notes is what the CPU's scheduler allows, whoever starts them.

    python3 bench/start_skew.py --rounds 2 --cpu 1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from orchestrator.tools import wrk  # noqa: E402

TARGETS = {"sleep": ["sleep", "0.5"],
           "busy": ["python3", "-c", "import time\nt = time.time()\nwhile time.time() - t < 0.5: pass"]}


def one(target: str, n: int, cpu: int) -> tuple[float, float, list[float]]:
    at = time.time() + 1.0
    procs = [subprocess.Popen(["taskset", "-c", str(cpu), "sh", "-c", wrk.at_command(TARGETS[target], at)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    notes = sorted(t for p in procs if (t := wrk.started_at(p.communicate()[1])) is not None)
    return (notes[0] - at) * 1e3, (notes[-1] - notes[0]) * 1e3, [(t - notes[0]) * 1e3 for t in notes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--cpu", type=int, default=1)
    args = ap.parse_args()
    for _ in range(args.rounds):
        for target in TARGETS:  # alternating
            late, spread, gaps = one(target, args.processes, args.cpu)
            print(f"{target:5} first note {late:.2f} ms after the instant, first to last {spread:.1f} ms: "
                  + " ".join(f"{g:.1f}" for g in gaps), flush=True)


if __name__ == "__main__":
    main()
