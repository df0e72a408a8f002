"""Host facts: the sh snippet really run, and its parser on a recorded output."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from localservers import data

from orchestrator.tools import facts


def test_parse_recorded():
    f = facts.parse(data("facts.txt"))
    assert f.hostname == "vm"
    assert f.kernel.startswith("6.")
    assert f.cpu_model == "AMD EPYC"
    assert f.cpus == 2 and f.cpus_allowed == (0, 1)
    assert f.threads_per_core == 1
    assert f.smt_siblings == ((0,), (1,))
    assert f.boot_id == ""  # recorded before the probe existed: unknown, not invented
    assert f.tool_versions == {"wrk": "4.1.0", "iperf3": "3.12", "sysstat": "12.6.1",
                               "g++": "12.2.0", "cmake": "3.25.1", "nginx": "1.22.1"}


def test_unreadable_cpu_lists_are_unknown_not_fatal():
    text = data("facts.txt").replace("@@orchestrate:allowed@@\n0-1\n", "@@orchestrate:allowed@@\nweird\n")
    assert "weird" in text
    assert facts.parse(text).cpus_allowed == (0, 1)  # unknown: every online CPU assumed


def test_smt_pairs_are_deduplicated():
    text = data("facts.txt").replace("@@orchestrate:smt@@\n0\n1\n",
                                     "@@orchestrate:smt@@\n0,2\n1,3\n0,2\n1,3\n")
    f = facts.parse(text)
    assert f.smt_siblings == ((0, 2), (1, 3))


def test_live_snippet_runs_under_sh():
    out = subprocess.run(["sh", "-c", facts.command()], capture_output=True, text=True,
                         timeout=30, env={**os.environ, **facts.ENV})
    assert out.returncode == 0
    f = facts.parse(out.stdout)
    assert f.cpus == os.cpu_count()
    assert set(f.cpus_allowed) == os.sched_getaffinity(0)
    assert f.kernel == os.uname().release
    assert f.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_missing_tools_are_reported_not_fatal(tmp_path):
    # a PATH with only the basics: every benchmark tool is missing
    for name in ("sh", "uname", "cat", "sed", "head", "getconf", "nproc", "lscpu", "hostname"):
        path = shutil.which(name)
        if path:
            (tmp_path / name).symlink_to(path)
    out = subprocess.run(["sh", "-c", facts.command()], capture_output=True, text=True,
                         timeout=30, env={"PATH": str(tmp_path), **facts.ENV})
    assert out.returncode == 0
    f = facts.parse(out.stdout)
    assert f.tool_versions == dict.fromkeys(facts.VERSION_PROBES)
    assert f.cpus >= 1


def test_taskset_narrows_cpus_allowed():
    if not shutil.which("taskset"):
        return
    out = subprocess.run(["taskset", "-c", "0", "sh", "-c", facts.command()],
                         capture_output=True, text=True, timeout=30)
    assert facts.parse(out.stdout).cpus_allowed == (0,)


def test_the_snippet_reads_files_with_shell_built_ins(tmp_path):
    # Every process the snippet forks costs the host CPU, and a lab's hosts pay it all at
    # once: with nothing on PATH but sh, the files are still read (only lscpu, the SMT list
    # and the version probes need programs).
    (tmp_path / "sh").symlink_to(shutil.which("sh"))
    out = subprocess.run(["sh", "-c", facts.command()], capture_output=True, text=True,
                         timeout=30, env={"PATH": str(tmp_path), **facts.ENV})
    f = facts.parse(out.stdout)
    assert f.hostname == os.uname().nodename
    assert f.kernel == os.uname().release
    assert f.cpus == os.cpu_count()
    assert set(f.cpus_allowed) == os.sched_getaffinity(0)
    assert f.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert f.cgroup  # the quota probe found this shell's cgroup without awk or cat
    assert f.mitigations  # read from /sys without grep
