"""cgroups: a real group on this machine's cgroup v1 hierarchies, held to a quota and a cpuset,
joined by a shell, found by name and removed with what is left inside."""

from __future__ import annotations

import re
import secrets
import subprocess
import time

from orchestrator.hosts import cgroups


def test_a_group_is_limited_joined_found_and_removed_with_its_processes():
    dirs = cgroups.controller_dirs()
    assert {"cpu", "cpuacct", "cpuset"} <= set(dirs), dirs  # this machine mounts cgroup v1
    name = f"orch-cgtest-{secrets.token_hex(3)}"
    made = {c: dirs[c] for c in ("cpu", "cpuacct", "cpuset")}
    try:
        cgroups.limit(made, name, cpu=0.25, cpus="0")
        assert (dirs["cpu"] / name / "cpu.cfs_quota_us").read_text().strip() == "25000"
        assert (dirs["cpu"] / name / "cpu.cfs_period_us").read_text().strip() == str(cgroups.PERIOD_US)
        assert (dirs["cpuset"] / name / "cpuset.cpus").read_text().strip() == "0"
        groups = [d / name for d in dict.fromkeys(made.values())]
        # a shell joins every group, then execs: what it runs inherits them
        proc = subprocess.Popen(["sh", "-c", f"{cgroups.join_command(groups)}exec sleep 30"])
        deadline = time.monotonic() + 5
        while str(proc.pid) not in (groups[0] / "cgroup.procs").read_text().split():
            assert time.monotonic() < deadline, "the shell never joined its group"
            time.sleep(0.02)
        assert sorted(cgroups.named(re.compile(rf"^{re.escape(name)}$"))) == sorted(groups)
        removed = cgroups.remove(groups)
        assert f"process {proc.pid} (in cgroup {groups[0]})" in removed, removed
        assert all(f"cgroup {g}" in removed for g in groups), removed
        assert proc.wait(timeout=5) == -9  # killed, not left running outside its group
        assert not any(g.exists() for g in groups)
    finally:
        cgroups.remove(cgroups.named(re.compile(rf"^{re.escape(name)}$")))


def test_the_mount_script_names_every_hierarchy():
    script = cgroups.mount_script()
    for mnt, fstype, _ in cgroups.mounts():
        assert f"mount -t {fstype}" in script and mnt in script
