"""What the kernel says about processes on a host, read in one round trip: CPU time used
(per process group, and sshd's), and each thread's CPU affinity."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from orchestrator import cpus
from orchestrator.remote.transport import RemoteError, Transport


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds used so far by process groups (and optionally all sshd), read at one instant."""

    clock: float  # the host's epoch time when read
    cpu_s: dict[str, float]  # str(pgid) or "sshd" -> user + system s, reaped children included
    last_cpus: dict[str, list[int]]  # the same keys -> the CPUs those processes last ran on
    own_s: float  # what the reading's own shell had used: sshd is charged it when the shell ends
    # the cgroup's cpu.stat (cgroup v1: nr_periods, nr_throttled, throttled_time ns) when asked
    cpu_stat: dict[str, int] | None = None


# One pass over every process's /proc/<pid>/stat (a single cat, a single awk: a reading costs
# the same few forks however many processes there are). Prints "KEY <stat line> | NS" for each
# process of the wanted groups (KEY: the group) and, with sshd=1, for the sshd tree serving
# this command (its daemon, the topmost sshd, and all below it, with the shells its sessions
# run: our control shells, which reap our commands); NS is schedstat's time on a CPU in ns,
# far finer than stat's ticks (10 ms), which matters for collectors that use a few ms a
# second. Last, "own": the reading's own shell, whose time sshd is charged when it ends.
_CPU_AWK = r"""
{ i = 0; while ((j = index(substr($0, i + 1), ")")) > 0) i += j  # comm may hold ")"
  o = index($0, "("); p = substr($0, 1, o - 2); comm[p] = substr($0, o + 1, i - o - 1)
  split(substr($0, i + 2), f, " "); up[p] = f[2]; grp[p] = f[3]; stat[p] = $0 }
function ns(p,   s) { s = ""; if ((getline s < ("/proc/" p "/schedstat")) > 0) split(s, x, " ")
  close("/proc/" p "/schedstat"); return s == "" ? "" : x[1] }
END {
  n = split(groups, g, ","); for (k = 1; k <= n; k++) want[g[k]] = 1
  top = up[self]; while (sshd && comm[up[top]] == "sshd") top = up[top]
  for (p in stat) {
    if (grp[p] in want) print grp[p], stat[p], "|", ns(p)
    if (sshd && p != self && (comm[p] == "sshd" || comm[up[p]] == "sshd")) {
      q = p; while (q > 1 && q != top) q = up[q]
      if (q == top) print "sshd", stat[p], "|", ns(p) }
  }
  print "own", stat[self], "|"
}"""


def cpu_times(t: Transport, pgids: list[int], *, sshd: bool = False, cgroup: str = "") -> CpuTimes:
    """CPU time per process group (and of every sshd) from /proc/<pid>/stat, one round trip.
    With `cgroup` (a cpu cgroup's directory) its cpu.stat too: how often its CPU quota
    throttled it."""
    script = (f"date +%s.%N; getconf CLK_TCK; "
              f"cat /proc/[0-9]*/stat 2>/dev/null | awk -v self=$$ "
              f"-v groups={','.join(map(str, pgids))} "
              f"-v sshd={int(sshd)} {shlex.quote(_CPU_AWK)}")
    if cgroup:  # the shell's read: no fork
        script += (f"; while read -r k v; do echo \"cpu.stat $k $v\"; done "
                   f"<{shlex.quote(cgroup + '/cpu.stat')} 2>/dev/null")
    lines = t.run(script, timeout=15, check=False).stdout.splitlines()
    try:
        clock, tck = float(lines[0]), float(lines[1])
    except (IndexError, ValueError):
        raise RemoteError(f"cannot read process CPU times: {' '.join(lines[:2]) or 'no output'}",
                          host=t.name) from None
    cpu: dict[str, float] = {}
    last: dict[str, set[int]] = {}
    cg: dict[str, int] = {}
    for line in lines[2:]:
        if line.startswith("cpu.stat "):
            k, _, v = line.removeprefix("cpu.stat ").partition(" ")
            if v.strip().isdigit():
                cg[k] = int(v)
            continue
        head, _, rest = line.rpartition(")")  # the command name may hold spaces
        stat, _, ns = rest.partition("|")
        fields = stat.split()
        try:
            key = head.split()[0]
            own = int(ns) / 1e9 if ns.strip() else (int(fields[11]) + int(fields[12])) / tck
            seconds = own + (int(fields[13]) + int(fields[14])) / tck  # + reaped children's
            where = int(fields[36])
        except (IndexError, ValueError):
            continue
        cpu[key] = cpu.get(key, 0.0) + seconds
        last.setdefault(key, set()).add(where)
    own = cpu.pop("own", 0.0)
    last.pop("own", None)
    return CpuTimes(clock, cpu, {k: sorted(v) for k, v in last.items()}, own, cg or None)


def group_affinity(t: Transport, pgid: int) -> dict[int, dict[str, object]]:
    """thread_affinity of every live process of a group, found and read in one round trip."""
    return thread_affinity(t, [], group=pgid)


def thread_affinity(t: Transport, pids: list[int], *,
                    group: int | None = None) -> dict[int, dict[str, object]]:
    """Each thread's CPU affinity as the kernel has it now (read back, not assumed)."""
    if not pids and group is None:
        return {}
    which = (f"$(ps -o pid=,stat= -g {group} 2>/dev/null | awk '$2 !~ /^Z/ {{print $1}}')"
             if group is not None else " ".join(map(str, pids)))
    # One awk over every thread's status file (not one per thread); Tgid is the process.
    script = ("f=; for p in " + which + "; do for s in /proc/$p/task/*/status; do "
              "[ -r \"$s\" ] && f=\"$f $s\"; done; done; [ -z \"$f\" ] || awk "
              "'/^Name:/{n=$2}/^Tgid:/{g=$2}/^Pid:/{p=$2}"
              "/^Cpus_allowed_list:/{print g, p, n, $2}' $f 2>/dev/null")
    done = t.run(script, timeout=15, check=False)
    out: dict[int, dict[str, object]] = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            out[int(parts[1])] = {"pid": int(parts[0]), "name": parts[2],
                                  "cpus": cpus.parse_list(parts[3])}
    return out
