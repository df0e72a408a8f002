"""Pauses taken from busy CPUs: how often this machine stops a CPU, and for how long.

A process pinned to each CPU reads the monotonic clock in a tight loop, as jHiccup does
with a sleeping thread: any gap between two reads longer than the loop's own step is time
the CPU was taken away (the hypervisor, an interrupt, a kernel thread, another process).
A latency SLO below these pauses measures the machine, not the server. `orchestrate doctor`
runs it on the pinned CPUs; bench/host_hiccups.py runs it alone for longer.
"""

from __future__ import annotations

import multiprocessing
import os
import time

BANDS_MS = (0.5, 1.0, 5.0, 20.0, float("inf"))  # upper ends; gaps under 0.1 ms are the loop


def _probe(cpu: int, seconds: float, out: multiprocessing.Queue) -> None:
    os.sched_setaffinity(0, {cpu})
    counts = [0] * len(BANDS_MS)
    lost = [0.0] * len(BANDS_MS)
    clock = time.perf_counter
    start = prev = clock()
    end = start + seconds
    while prev < end:
        now = clock()
        gap = now - prev
        prev = now
        if gap > 1e-4:
            ms = gap * 1000.0
            band = next(i for i, top in enumerate(BANDS_MS) if ms < top)
            counts[band] += 1
            lost[band] += ms
    out.put((cpu, counts, lost))


def measure(cpus: list[int], seconds: float) -> dict[str, dict]:
    """Pauses per CPU, all CPUs probed at once: {cpu: {band: {"count", "ms"}, "lost_pct"}}."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_probe, args=(c, seconds, queue)) for c in cpus]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    names = ["0.1-0.5ms", "0.5-1ms", "1-5ms", "5-20ms", ">20ms"]
    out: dict[str, dict] = {}
    for cpu, counts, lost in sorted(results):
        bands = zip(names, counts, lost, strict=True)
        out[str(cpu)] = {name: {"count": n, "ms": round(ms, 1)} for name, n, ms in bands}
        out[str(cpu)]["lost_pct"] = round(100.0 * sum(lost) / 1000.0 / seconds, 2)
        out[str(cpu)]["seconds"] = seconds
    return out
