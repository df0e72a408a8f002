"""cgroup v1 groups on this machine: a CPU quota and a cpuset for a process tree.

What a sized lab host lives in (`hosts.size`, `lab up --cpu`), and what the tests use to
hold a process tree to a share of a CPU. Only the v1 controllers are supported: a
cgroup v2-only machine has none of the directories below, and callers say so.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import time
from collections.abc import Iterable
from pathlib import Path

FS = Path("/sys/fs/cgroup")
PERIOD_US = 100_000  # the kernel's default CFS period: a quota of 0.5 CPU is 50 ms of every 100 ms
CONTROLLERS = ("cpu", "cpuacct", "cpuset")


def mounts() -> list[tuple[str, str, str]]:
    """This machine's cgroup file systems: (mount point, type, options), /sys/fs/cgroup first."""
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mnt, fstype, opts = line.split()[:4]
        if mnt == str(FS) or mnt.startswith(f"{FS}/"):
            out.append((mnt, fstype, opts))
    return sorted(out)


def controller_dirs() -> dict[str, Path]:
    """cgroup v1 controller -> its hierarchy's root (co-mounted controllers share one)."""
    dirs: dict[str, Path] = {}
    for mnt, fstype, opts in mounts():
        if fstype == "cgroup":
            for opt in opts.split(","):
                if opt in CONTROLLERS:
                    dirs[opt] = Path(mnt)
    return dirs


def limit(dirs: dict[str, Path], name: str, *, cpu: float | None = None,
          cpus: str | None = None) -> None:
    """Make group `name` in every hierarchy of `dirs` (existing ones are kept), then hold it to
    `cpu` CPUs' worth of time per period and/or the CPU list `cpus` (cpuset syntax).
    OSError when the kernel refuses."""
    for d in dict.fromkeys(dirs.values()):
        (d / name).mkdir(exist_ok=True)
    if cpu is not None:
        group = dirs["cpu"] / name
        (group / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
        (group / "cpu.cfs_quota_us").write_text(f"{round(cpu * PERIOD_US)}\n")
    if cpus is not None:
        group = dirs["cpuset"] / name
        (group / "cpuset.mems").write_text((dirs["cpuset"] / "cpuset.mems").read_text())
        (group / "cpuset.cpus").write_text(cpus + "\n")


def join_command(groups: Iterable[Path]) -> str:
    """Shell commands (each ending in `&& `) that move the shell running them into `groups`:
    everything it then starts inherits them."""
    return "".join(f"echo $$ > {shlex.quote(str(g / 'cgroup.procs'))} && " for g in groups)


def named(pattern: re.Pattern[str]) -> list[Path]:
    """The groups, directly under any hierarchy's root, whose name matches `pattern`."""
    out = []
    for mnt in dict.fromkeys(controller_dirs().values()):
        with contextlib.suppress(OSError):
            out += [d for d in mnt.iterdir() if d.is_dir() and pattern.match(d.name)]
    return out


def remove(groups: list[Path]) -> list[str]:
    """Kill whatever is still inside each group, then remove it; what was removed, in words."""
    removed = []
    for d in groups:
        deadline = time.monotonic() + 3.0
        while True:
            with contextlib.suppress(OSError, ValueError):
                for pid in (d / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
                        removed.append(f"process {pid} (in cgroup {d})")
            try:
                d.rmdir()
                removed.append(f"cgroup {d}")
                break
            except FileNotFoundError:
                break
            except OSError:  # EBUSY while the killed tasks exit
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
    return removed


def mount_script() -> str:
    """Shell commands that mount this machine's cgroup hierarchies in a mount namespace of
    its own (`ip netns exec` mounts a fresh /sys without them), best effort: they are for
    looking, not limiting."""
    steps = []
    for mnt, fstype, opts in mounts():
        q = shlex.quote(mnt)
        steps.append(f"{{ mkdir -p {q}; mount -t {fstype} -o {shlex.quote(opts)} {fstype} {q}; }} "
                     "2>/dev/null")
    return "".join(f"{step}; " for step in steps)
