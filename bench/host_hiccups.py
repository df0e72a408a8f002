#!/usr/bin/env python3
"""How often does this machine stop a busy CPU, and for how long? (a benchmark helper)

A process pinned to each CPU reads the monotonic clock in a tight loop, as jHiccup does
with a sleeping thread: any gap between two reads longer than the loop's own step is time
the CPU was taken away (the hypervisor, an interrupt, a kernel thread). A latency SLO
below these pauses measures the machine, not the server: at a rate with 20% headroom a
10 ms pause makes about 50 ms of requests late.

    python3 bench/host_hiccups.py --cpus 0,1 --seconds 30

Prints, per CPU, the pauses by length and the share of time lost (the probe itself is
orchestrator/doctor/pauses.py, which `orchestrate doctor` runs); capacity_search.py records
the same beside every pair of searches.
"""

from __future__ import annotations

import argparse
import json

from orchestrator.doctor.pauses import BANDS_MS, measure, summary

__all__ = ["BANDS_MS", "measure", "summary"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", default="0,1")
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    result = measure([int(c) for c in args.cpus.split(",")], args.seconds)
    print(summary(result))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
