"""A CPU quota for a process tree in a test: cgroup v1's cpu controller (cpu.cfs_quota_us).

`quota(share)` makes /sys/fs/cgroup/cpu/<unique>, limited to `share` of one CPU. A process
joins it (and a cpuacct group of the same name, to count its CPU time) with
`cg.enter_command(argv)` (a shell wrapper that moves itself in, then execs, so
everything it starts inherits the quota) or `cg.add(pid)`. On exit every process left in it is
moved back to the root group and the group is removed, whatever happened in the test.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from orchestrator.hosts import cgroups

ROOT = Path("/sys/fs/cgroup/cpu")
ACCT = Path("/sys/fs/cgroup/cpuacct")  # a hierarchy of its own here: the CPU time used


@dataclass(frozen=True)
class Cgroup:
    path: Path
    share: float  # of one CPU
    acct: Path  # the cpuacct group of the same name

    def add(self, pid: int) -> None:
        for group in (self.path, self.acct):
            (group / "cgroup.procs").write_text(f"{pid}\n")

    def used_s(self) -> float:
        """CPU time its processes used (cpuacct.usage)."""
        return int((self.acct / "cpuacct.usage").read_text()) / 1e9

    def pids(self) -> list[int]:
        return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]

    def stat(self) -> dict[str, int]:
        """nr_periods, nr_throttled, throttled_time (ns): the proof the quota bit."""
        return {k: int(v) for k, v in (line.split() for line in
                                      (self.path / "cpu.stat").read_text().splitlines())}

    def join(self) -> str:
        """Shell commands that move the shell running them ($$) into this group."""
        return f"echo $$ > {self.path}/cgroup.procs && echo $$ > {self.acct}/cgroup.procs"

    def enter_command(self, argv: str) -> str:
        """A shell command line that joins this group and then runs `argv` (a command line)."""
        return f"sh -c {shlex.quote(f'{self.join()} && exec {argv}')}"


def available() -> bool:
    return (ROOT / "cpu.cfs_quota_us").exists()


@contextmanager
def quota(share: float) -> Iterator[Cgroup]:
    if not 0.01 <= share <= 1.0:
        raise ValueError(f"quota share of one CPU must be within 0.01..1, got {share}")
    name = f"orch-test-{secrets.token_hex(4)}"
    path, acct = ROOT / name, ACCT / name
    try:
        cgroups.limit({"cpu": ROOT, "cpuacct": ACCT}, name, cpu=share)
        yield Cgroup(path, share, acct)
    finally:
        for root, group in ((ROOT, path), (ACCT, acct)):
            if not group.is_dir():  # limit() failed before making it
                continue
            for pid in (group / "cgroup.procs").read_text().split():  # stragglers back to the root
                with suppress(OSError):  # exited meanwhile
                    (root / "cgroup.procs").write_text(f"{pid}\n")
            group.rmdir()
