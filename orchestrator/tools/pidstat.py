"""pidstat (sysstat): per-thread CPU time and context switches of given processes.

`pidstat -H -h -u -w -t -p PIDS 1` prints, each interval, one line per process (TID '-': the
process aggregate) and one per thread (TGID '-': belongs to the process row above it), with
the time as epoch seconds (-H) marking the END of the interval. pidstat only reports a task
present at both ends of an interval, so a thread that exits simply stops appearing, and one
that starts appears from its second sample; when every watched pid has gone pidstat prints
a last header and exits by itself. With -h there is no "Average:" block.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.records import ThreadCpu
from orchestrator.tools import sysstat
from orchestrator.tools.base import ToolError
from orchestrator.tools.sysstat import in_window

BINARY = "pidstat"
ENV = sysstat.ENV


@dataclass(frozen=True)
class ThreadSample:
    t: float
    tgid: int
    tid: int | None  # None: the process aggregate row
    command: str
    usr: float
    sys: float
    cpu_pct: float  # %CPU as pidstat reports it (usr + system + guest)
    cpu: int  # the CPU the task last ran on
    cswch_s: float  # voluntary context switches/s (blocked, e.g. in epoll_wait)
    nvcswch_s: float  # involuntary (preempted)
    wait: float = 0.0  # %wait: runnable but waiting for a CPU (run-queue delay)

    def __post_init__(self) -> None:
        if min(self.usr, self.sys, self.cpu_pct, self.cswch_s, self.nvcswch_s, self.wait) < 0:
            raise ValueError(f"pidstat values must be >= 0: {self}")
        if self.cpu < 0 or self.tgid <= 0:
            raise ValueError(f"pidstat cpu/tgid out of range: {self}")


def command(pids: Iterable[int], interval_s: int = 1) -> list[str]:
    """Per-thread CPU (-u) and context switches (-w) of `pids`, until stopped (SIGINT)."""
    pid_list = [int(p) for p in pids]
    if not pid_list or any(p <= 0 for p in pid_list):
        raise ToolError("pidstat", f"needs positive pids, got {pid_list}")
    if interval_s < 1:
        raise ToolError("pidstat", "interval must be >= 1 s")
    return [BINARY, "-H", "-h", "-u", "-w", "-t", "-p", ",".join(map(str, pid_list)),
            str(int(interval_s))]


def parse(text: str) -> list[ThreadSample]:
    columns: list[str] = []
    samples: list[ThreadSample] = []
    tgid = 0
    for line in text.splitlines():
        if line.startswith("#"):
            columns = line[1:].split()
            continue
        fields = line.split()
        # the command is the last column and may hold spaces: split the rest by position
        if not columns or len(fields) < len(columns) or not fields[0].isdigit():
            continue  # banner, blank, or a line cut short by the stop signal
        head = len(columns) - 1
        row = dict(zip(columns[:head], fields[:head], strict=True))
        name = " ".join(fields[head:])
        try:
            if row["TGID"] != "-":
                tgid, tid = int(row["TGID"]), None
            else:
                tid = int(row["TID"])
            sample = ThreadSample(
                t=float(row["Time"]), tgid=tgid, tid=tid, command=name.removeprefix("|__"),
                usr=float(row["%usr"]), sys=float(row["%system"]), cpu_pct=float(row["%CPU"]),
                cpu=int(row["CPU"]), cswch_s=float(row["cswch/s"]),
                nvcswch_s=float(row["nvcswch/s"]), wait=float(row.get("%wait", 0.0)),
            )
        except (KeyError, ValueError):
            continue
        samples.append(sample)
    return samples


def summarize(
    samples: Iterable[ThreadSample], t0: float | None = None, t1: float | None = None
) -> list[ThreadCpu]:
    """Per-task means over the samples with t0 <= t <= t1, ordered by (tgid, tid): busy is the
    mean %CPU, wait the mean %wait (runnable but not running), cpus every CPU the task was seen on."""
    groups: dict[tuple[int, int | None], list[ThreadSample]] = {}
    for s in samples:
        if in_window(s.t, t0, t1):
            groups.setdefault((s.tgid, s.tid), []).append(s)
    out = []
    for (tgid, tid), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or -1)):
        n = len(group)
        out.append(ThreadCpu(
            tgid=tgid, tid=tid, command=group[-1].command,
            usr=sum(s.usr for s in group) / n, sys=sum(s.sys for s in group) / n,
            busy=sum(s.cpu_pct for s in group) / n,
            cswch_s=sum(s.cswch_s for s in group) / n,
            nvcswch_s=sum(s.nvcswch_s for s in group) / n,
            n=n, cpus=tuple(sorted({s.cpu for s in group})),
            wait=sum(s.wait for s in group) / n,
        ))
    return out
