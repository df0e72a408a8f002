"""The host's own noise on the CPUs a run pins: foreign load, steal, and who causes it.

Read from /proc over a short interval while nothing of ours runs: `orchestrate doctor`
shows it, and `orchestrate run` records it once before the first measurement window and
once after the last (never inside one), as the summary's optional `host_noise`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from orchestrator.records import HostNoise, Intruder  # the reading is the summary's record

FOREIGN_WARN_PCT = 10.0  # a pinned CPU busier than this before the run is not the run's own
FOREIGN_FAIL_PCT = 50.0  # half a pinned CPU taken: the run would measure the intruder
STEAL_WARN_PCT = 2.0  # the hypervisor gives this much of the CPUs to others
# What a run spends on each reading, before and after its windows: added to every run's wall
# time, as nothing of ours may run beside it. /proc counts in 1/100 s ticks, so half a second
# is 50 per CPU: the warning bar (10%) is 5 of them and a hog (50%+) 25, and any process that
# ran for one tick is named (2% >= 1%).
RUN_SECONDS = 0.5


def _cpu_times(stat: str) -> dict[str, list[int]]:
    out = {}
    for line in stat.splitlines():
        if line.startswith("cpu"):
            name, *vals = line.split()
            out[name] = [int(v) for v in vals]
    return out


def _procs() -> dict[int, tuple[str, int, int]]:
    """pid -> (command, CPU last run on, utime+stime ticks), for every process."""
    out = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            text = (d / "stat").read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        rest = text[text.rindex(")") + 2:].split()
        out[int(d.name)] = (comm, int(rest[36]), int(rest[11]) + int(rest[12]))
    return out


def measure(cpus: list[int], seconds: float, when: str, *, exclude: set[int] | None = None) -> HostNoise:
    """Sample /proc for `seconds`: the pinned CPUs' busy share and the processes behind it."""
    exclude = {os.getpid(), *(exclude or set())}
    stat0, procs0, t0 = Path("/proc/stat").read_text(), _procs(), time.monotonic()
    time.sleep(seconds)
    stat1, procs1, t1 = Path("/proc/stat").read_text(), _procs(), time.monotonic()
    a, b = _cpu_times(stat0), _cpu_times(stat1)
    busy = {}
    for c in cpus:
        key = f"cpu{c}"
        if key not in a or key not in b:
            continue
        d = [y - x for x, y in zip(a[key], b[key], strict=False)]
        total = sum(d[:8]) or 1
        busy[c] = round(100.0 * (total - d[3] - d[4]) / total, 1)  # minus idle and iowait
    d = [y - x for x, y in zip(a["cpu"], b["cpu"], strict=False)]
    steal = round(100.0 * d[7] / (sum(d[:8]) or 1), 2) if len(d) > 7 else 0.0
    hz = os.sysconf("SC_CLK_TCK")
    wanted = set(cpus)
    intruders = []
    for pid, (comm, cpu, ticks) in procs1.items():
        if pid in exclude or pid not in procs0 or cpu not in wanted:
            continue
        pct = 100.0 * (ticks - procs0[pid][2]) / hz / max(t1 - t0, 1e-3)
        if pct >= 1.0:
            intruders.append(Intruder(pid=pid, command=comm, cpu_pct=round(pct, 1)))
    intruders.sort(key=lambda i: -i.cpu_pct)
    return HostNoise(when=when, seconds=round(t1 - t0, 2), cpus=tuple(cpus), busy_pct=busy,
                     steal_pct=steal, intruders=tuple(intruders[:5]))
