"""mpstat (sysstat): per-CPU utilisation, sampled every interval until stopped with SIGINT.

mpstat prints each sample's time as HH:MM:SS only, and the date once, in the banner. With
ENV (TZ=UTC, S_TIME_FORMAT=ISO, LC_ALL=C) both are stable, so `SysstatClock` turns them into
epoch seconds (rolling over midnight). A sample's `t` is the END of its interval.
Stopped with SIGINT, mpstat prints an "Average:" block (ignored: the caller averages over its
own window with `summarize`); a line cut short by the stop is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


OTHER = "#other"  # a line of the other-work sampler (see with_other), ignored by parse
PERCPU = "/sys/fs/cgroup/cpuacct/cpuacct.usage_percpu"  # cgroup v1 root: every task, per CPU, ns
# After each interval's all-CPUs row (printed ms after mpstat read /proc/stat): the uptime (s),
# every task's time per CPU, each server thread's and each pinned CPU's ksoftirqd's (ns).
# Shell builtins only (read, printf, globs): no fork per reading. mpstat starts first (the
# ksoftirqd threads are found during its first interval): its phase is the collector's spawn.
_OTHER_SH = r"""printf '%s-cpus {cpus}\n' "{tag}"
{mpstat} | {{ k=; for d in /proc/[0-9]*; do read -r c 2>/dev/null <"$d/comm" || continue
  case $c in {soft}) k="$k ${{d#/proc/}}";; esac; done
while IFS= read -r l; do printf '%s\n' "$l"
  case $l in *" all "*) ;; *) continue;; esac
  read -r up _ </proc/uptime; p=; read -r p 2>/dev/null <{percpu}
  s=; for f in {tasks}; do read -r a _ 2>/dev/null <"$f" && s="$s $a"; done
  q=; for x in $k; do read -r a _ 2>/dev/null <"/proc/$x/schedstat" && q="$q $a"; done
  printf '%s %s |%s |%s |%s\n' "{tag}" "$up" "$p" "$s" "$q"; done; }}"""


def with_other(server_pids: Sequence[int], cpus: Sequence[int], interval_s: int = 1) -> str:
    """mpstat (an sh script) that also reads, at the end of each of its own intervals, what
    other tasks ran on the server's pinned `cpus`: every task's time there (cpuacct) less the
    server's threads' and those CPUs' ksoftirqd threads' (softirq: the CPU's %soft, the
    network's work for the server). Read over mpstat's intervals, not the window's edges:
    other work comes in bursts (other_share)."""
    return _OTHER_SH.format(
        soft="|".join(f"ksoftirqd/{c}" for c in cpus) or "-", cpus=" ".join(map(str, cpus)),
        tag=OTHER, mpstat=" ".join(command(interval_s)), percpu=PERCPU,
        tasks=" ".join(f"/proc/{p}/task/*/schedstat" for p in server_pids) or "/-")


@dataclass(frozen=True)
class OtherSample:
    """One reading of the other-work sampler, at the end of mpstat's interval `t`."""

    t: float
    uptime: float  # s
    tasks_ns: tuple[int, ...]  # every task's time on the sampled CPUs, in order
    server_ns: int  # the server's threads', in sum
    soft_ns: int  # the sampled CPUs' ksoftirqd threads', in sum


def parse_other(text: str) -> list[OtherSample]:
    """The sampler's readings (with_other), each stamped with the interval it followed. None
    read where cpuacct is not readable (cgroup v2 has no per-CPU task time)."""
    clock = SysstatClock()
    cpus: list[int] = []
    t: float | None = None
    out: list[OtherSample] = []
    for line in text.splitlines():
        if line.startswith(OTHER + "-cpus"):
            cpus = [int(c) for c in line.split()[1:]]
        elif line.startswith(OTHER + " ") and t is not None:
            up, percpu, server, soft = line.removeprefix(OTHER).split("|")
            every = [int(x) for x in percpu.split()]
            if every and cpus and max(cpus) < len(every):
                out.append(OtherSample(t, float(up), tuple(every[c] for c in cpus),
                                       sum(int(x) for x in server.split()),
                                       sum(int(x) for x in soft.split())))
            t = None
        elif not clock.banner(line) and (timed := clock.time(line)) and timed[1].split()[:1] == ["all"]:
            t = timed[0]
    return out


def other_share(samples: Sequence[OtherSample], intervals: Iterable[float]) -> float | None:
    """Other tasks' time on the sampled CPUs, % of one CPU summed over them, averaged over
    mpstat's `intervals` (their end stamps) as mpstat's own figures are. None unless every one
    of them has a reading at its end and at its start (the reading before)."""
    by_t = {b.t: (a, b) for a, b in zip(samples, samples[1:], strict=False)}
    shares = []
    for t in intervals:
        if t not in by_t or (dt := by_t[t][1].uptime - by_t[t][0].uptime) <= 0:
            return None
        a, b = by_t[t]
        tasks = sum(b.tasks_ns) - sum(a.tasks_ns)
        own = (b.server_ns - a.server_ns) + (b.soft_ns - a.soft_ns)
        shares.append(max(0.0, tasks - own) / 1e9 / dt * 100.0)
    return round(sum(shares) / len(shares), 2) if shares else None


def other_in_window(text: str, samples: Iterable[CpuSample], t0: float | None = None,
                    t1: float | None = None) -> float | None:
    """other_share over the very intervals `summarize(samples, t0, t1)` averages."""
    ends = sorted({s.t for s in samples if s.cpu == ALL and in_window(s.t, t0, t1)})
    return other_share(parse_other(text), ends)


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
