"""mpstat (sysstat): per-CPU utilisation, sampled every interval until stopped with SIGINT.

mpstat prints each sample's time as HH:MM:SS only, and the date once, in the banner. With
ENV (TZ=UTC, S_TIME_FORMAT=ISO, LC_ALL=C) both are stable, so `SysstatClock` turns them into
epoch seconds (rolling over midnight). A sample's `t` is the END of its interval.
Stopped with SIGINT, mpstat prints an "Average:" block (ignored: the caller averages over its
own window with `summarize`); a line cut short by the stop is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.records import CpuLoad
from orchestrator.tools import sysstat
from orchestrator.tools.base import ToolError
from orchestrator.tools.sysstat import SysstatClock, in_window

BINARY = "mpstat"
ENV = sysstat.ENV
ALL = -1  # `cpu` of the all-CPUs row



@dataclass(frozen=True)
class CpuSample:
    t: float
    cpu: int  # ALL (-1) for the all-CPUs row
    usr: float
    nice: float
    sys: float
    iowait: float
    irq: float
    soft: float
    steal: float
    idle: float

    def __post_init__(self) -> None:
        values = (self.usr, self.nice, self.sys, self.iowait, self.irq, self.soft, self.steal,
                  self.idle)
        if any(not 0.0 <= v <= 100.0 for v in values):
            raise ValueError(f"mpstat percentages must be within 0..100: {self}")

    @property
    def busy(self) -> float:
        return 100.0 - self.idle


_FIELDS = ("usr", "nice", "sys", "iowait", "irq", "soft", "steal", "idle")


def command(interval_s: int = 1) -> list[str]:
    """All CPUs, one sample per interval, until stopped with SIGINT."""
    if interval_s < 1:
        raise ToolError("mpstat", "interval must be >= 1 s")
    return [BINARY, "-u", "-P", "ALL", str(int(interval_s))]


def parse(text: str) -> list[CpuSample]:
    clock = SysstatClock()
    columns: list[str] = []
    samples: list[CpuSample] = []
    for line in text.splitlines():
        if clock.banner(line):
            continue
        timed = clock.time(line)
        if timed is None:
            continue  # blank, "Average:" or unknown
        t, rest = timed
        fields = rest.split()
        if "CPU" in fields:
            columns = [f.lstrip("%") for f in fields]
            continue
        if not columns or len(fields) != len(columns):
            continue  # cut short by the stop signal
        row = dict(zip(columns, fields, strict=True))
        try:
            values = {k: float(row[k]) for k in _FIELDS}
            cpu = ALL if row["CPU"] == "all" else int(row["CPU"])
        except (KeyError, ValueError):
            continue
        samples.append(CpuSample(t=t, cpu=cpu, **values))
    return samples


def summarize(
    samples: Iterable[CpuSample], t0: float | None = None, t1: float | None = None
) -> dict[int, CpuLoad]:
    """Per-CPU means of the samples with t0 <= t <= t1 (ALL included as key -1); busy = 100 - idle
    (includes irq and softirq)."""
    groups: dict[int, list[CpuSample]] = {}
    for s in samples:
        if in_window(s.t, t0, t1):
            groups.setdefault(s.cpu, []).append(s)
    out: dict[int, CpuLoad] = {}
    for cpu, group in sorted(groups.items()):
        n = len(group)
        means = {k: sum(getattr(s, k) for s in group) / n for k in _FIELDS}
        out[cpu] = CpuLoad(cpu=cpu, **means, busy=100.0 - means["idle"], n=n)
    return out
