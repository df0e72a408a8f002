"""mpstat (sysstat): per-CPU utilisation, sampled every interval until stopped with SIGINT.

mpstat prints each sample's time as HH:MM:SS only, and the date once, in the banner. With
ENV (TZ=UTC, S_TIME_FORMAT=ISO, LC_ALL=C) both are stable, so `SysstatClock` turns them into
epoch seconds (rolling over midnight). A sample's `t` is the END of its interval.
Stopped with SIGINT, mpstat prints an "Average:" block (ignored: the caller averages over its
own window with `summarize`); a line cut short by the stop is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

BINARY = "mpstat"
# S_COLORS=never: no escape codes even when run on a terminal
ENV: dict[str, str] = {"LC_ALL": "C", "TZ": "UTC", "S_TIME_FORMAT": "ISO", "S_COLORS": "never"}
ALL = -1  # `cpu` of the all-CPUs row

_BANNER_DATE = re.compile(r"\s(\d{4})-(\d{2})-(\d{2})\s|\s(\d{2})/(\d{2})/(\d{2,4})\s")
_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(?:\s+(AM|PM))?(?=\s)")


class SysstatClock:
    """Turns sysstat's banner date plus per-line HH:MM:SS (UTC) into epoch seconds."""

    def __init__(self) -> None:
        self.day: date | None = None
        self._last: float | None = None

    def banner(self, line: str) -> bool:
        """Take the date from a 'Linux ... (host) DATE ...' line; True if it was one."""
        if not line.startswith("Linux"):
            return False
        m = _BANNER_DATE.search(line + " ")
        if m and m[1]:
            self.day = date(int(m[1]), int(m[2]), int(m[3]))
        elif m:
            year = int(m[6])
            self.day = date(year + 2000 if year < 100 else year, int(m[4]), int(m[5]))
        self._last = None
        return True

    def time(self, line: str) -> tuple[float, str] | None:
        """(epoch seconds, rest of line) for a line starting with a time, else None."""
        m = _TIME.match(line)
        if not m or self.day is None:
            return None
        hour = int(m[1]) % 12 + (12 if m[4] == "PM" else 0) if m[4] else int(m[1])
        stamp = datetime(self.day.year, self.day.month, self.day.day, hour, int(m[2]),
                         int(m[3]), tzinfo=UTC).timestamp()
        if self._last is not None and stamp < self._last - 12 * 3600:
            self.day += timedelta(days=1)  # past midnight
            stamp += 86400
        self._last = stamp
        return stamp, line[m.end():]


def in_window(t: float, t0: float | None, t1: float | None) -> bool:
    return (t0 is None or t >= t0) and (t1 is None or t <= t1)


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


@dataclass(frozen=True)
class CpuStat:
    """Means over the samples of one CPU; busy = 100 - idle (includes irq and softirq)."""

    cpu: int
    usr: float
    nice: float
    sys: float
    iowait: float
    irq: float
    soft: float
    steal: float
    idle: float
    busy: float
    n: int


_FIELDS = ("usr", "nice", "sys", "iowait", "irq", "soft", "steal", "idle")


def version_argv() -> list[str]:
    return [BINARY, "-V"]


def command(interval_s: int = 1) -> list[str]:
    """All CPUs, one sample per interval, until stopped with SIGINT."""
    if interval_s < 1:
        raise ValueError("mpstat interval must be >= 1 s")
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
) -> dict[int, CpuStat]:
    """Per-CPU means of the samples with t0 <= t <= t1 (ALL included as key -1)."""
    groups: dict[int, list[CpuSample]] = {}
    for s in samples:
        if in_window(s.t, t0, t1):
            groups.setdefault(s.cpu, []).append(s)
    out: dict[int, CpuStat] = {}
    for cpu, group in sorted(groups.items()):
        n = len(group)
        means = {k: sum(getattr(s, k) for s in group) / n for k in _FIELDS}
        out[cpu] = CpuStat(cpu=cpu, **means, busy=100.0 - means["idle"], n=n)
    return out
