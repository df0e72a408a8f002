"""Sized lab hosts (hosts.size, `lab up --cpu/--cpus`): a CPU quota and a cpuset per host,
enforced on everything started over its SSH, reported in its facts, gone with the lab."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator import remote
from orchestrator.errors import UserError
from orchestrator.hosts import netns
from orchestrator.remote import SshTransport
from orchestrator.scenario import Scenario, Size
from orchestrator.tools import facts

from testkit import orchestrate

BUSY = "for i in 1 2; do (while :; do :; done) & done; wait"  # unsized: both of this machine's CPUs
LAST_CPU = max(os.sched_getaffinity(0))


def cgroups_of(name: str) -> list[str]:
    return sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"*/orchlab-{name}-*"))


def cg(host: str) -> str:
    """A lab host's cgroup name (orch-<lab>-<i> -> orchlab-<lab>-<i>)."""
    return "orchlab-" + host.removeprefix("orch-")


def host_facts(t: remote.Transport) -> facts.HostFacts:
    return facts.parse(t.run(f"sh -c {shlex.quote(facts.command())}", timeout=30).stdout)


@pytest.fixture
def sized(lab_prefix):
    name = f"{lab_prefix}-sized"
    st = netns.up(name, 3, size={"client": Size(cpu=0.5), "server": Size(cpus=[LAST_CPU])})
    try:
        yield st
    finally:
        netns.down(name)
    assert cgroups_of(name) == []


def test_half_a_cpu_measures_at_most_half_a_core_under_a_busy_loop(sized):
    client = netns.hosts_of(sized, run_id="busy")[1]
    acct = Path("/sys/fs/cgroup/cpuacct") / cg(client.name) / "cpuacct.usage"
    t = SshTransport(client.ssh)
    try:
        proc = remote.spawn(t, "busy", BUSY, workdir=client.workdir, shell=True)
        try:
            time.sleep(0.3)  # both loops running
            # started over the host's SSH, so inside its cgroup, whose quota is half a period
            assert f"cpu:/{cg(client.name)}" in t.run(f"cat /proc/{proc.pid}/cgroup").stdout
            a, usage_a = remote.cpu_times(t, [proc.pid]), int(acct.read_text())
            time.sleep(2.0)
            b, usage_b = remote.cpu_times(t, [proc.pid]), int(acct.read_text())
        finally:
            remote.stop(t, proc, grace=3)
    finally:
        t.close()
    wall = b.clock - a.clock
    used = (b.cpu_s[str(proc.pid)] - a.cpu_s[str(proc.pid)]) / wall  # measured through its own ssh
    host = (usage_b - usage_a) / 1e9 / wall  # everything in the host's cgroup (cpuacct)
    stat = dict(line.split() for line in (Path("/sys/fs/cgroup/cpu") / cg(client.name) / "cpu.stat")
                .read_text().splitlines())
    print(f"busy loops on a 0.5-CPU host: {used:.3f} CPU (its processes), {host:.3f} CPU (its "
          f"cgroup); throttled in {stat['nr_throttled']} of {stat['nr_periods']} periods")
    assert 0 < used <= 0.55, f"busy loops used {used:.2f} CPU on a 0.5-CPU host"
    assert host <= 0.55, f"the host used {host:.2f} CPU"
    assert (Path("/sys/fs/cgroup/cpu") / cg(client.name) / "cpu.cfs_quota_us").read_text().strip() == "50000"


def test_facts_report_the_quota_and_the_cpuset(sized):
    server, client, other = netns.hosts_of(sized, run_id="facts")
    for h, quota, allowed in ((client, 0.5, None), (other, 0.5, None), (server, None, (LAST_CPU,))):
        t = SshTransport(h.ssh)
        try:
            f = host_facts(t)
            assert f.cpu_quota == quota, (h.name, f.cpu_quota, f.cgroup)
            if quota is not None:
                assert f.cgroup == f"/sys/fs/cgroup/cpu/{cg(h.name)}" and facts.capacity(f) == 0.5
                assert facts.busy_pct(0.25, f) == 50.0
            if allowed is not None:
                # the cpuset holds for everything started there: pinning outside it fails
                assert f.cpus_allowed == allowed and facts.capacity(f) == 1.0
                other_cpu = min(os.sched_getaffinity(0))
                if other_cpu != LAST_CPU:
                    assert t.run(f"taskset -c {other_cpu} true", check=False).rc != 0
        finally:
            t.close()
    assert "0.5 CPU" in netns.describe(sized) and f"on CPUs {LAST_CPU}" in netns.describe(sized)


def test_an_unsized_host_reports_no_quota(lab3):
    st, _ = lab3
    t = SshTransport(netns.hosts_of(st, run_id="f")[1].ssh)
    try:
        f = host_facts(t)
    finally:
        t.close()
    assert f.cpu_quota is None and facts.capacity(f) == len(f.cpus_allowed)
    assert cgroups_of(st.name) == []


def test_sizes_are_part_of_a_labs_shape(sized):
    assert netns.up(sized.name, 3, size={"client": Size(cpu=0.5), "server": Size(cpus=[LAST_CPU])}) == sized
    with pytest.raises(UserError, match="already up .* sizes server: on CPUs"):
        netns.up(sized.name, 3, size={"client": Size(cpu=0.25)})
    sc = Scenario.model_validate({"name": "s", "hosts": {
        "provider": "netns", "lab": sized.name, "size": {"client": {"cpu": 1}}}})
    with pytest.raises(UserError, match="not the scenario's hosts.size"), netns.open_lab(sc, run_id="r"):
        pass
    assert netns.is_up(sized.name)


def test_cli_lab_up_cpu_and_down_removes_the_cgroups(lab_prefix):
    name = f"{lab_prefix}-cli"
    try:
        done = orchestrate("lab", "up", "--name", name, "--hosts", "2", "--cpu", "0.5", "--cpu", "server=1")
        assert done.returncode == 0, done.stderr
        assert "server  1 CPU" in done.stdout and "client  0.5 CPU" in done.stdout
        quotas = {p: (Path(p) / "cpu.cfs_quota_us").read_text().strip()
                  for p in cgroups_of(name) if "/cpu/" in p}
        assert quotas == {f"/sys/fs/cgroup/cpu/orchlab-{name}-0": "100000",
                          f"/sys/fs/cgroup/cpu/orchlab-{name}-1": "50000"}
        # sshd (and so every session) lives in its host's cgroup
        pid = (netns.LABS_ROOT / name / "hosts" / f"orch-{name}-1" / "sshd.pid").read_text().strip()
        assert f"cpu:/orchlab-{name}-1" in Path(f"/proc/{pid}/cgroup").read_text()
        done = orchestrate("lab", "down", "--name", name)
        assert done.returncode == 0, done.stderr
        assert f"cgroup /sys/fs/cgroup/cpu/orchlab-{name}-1" in done.stdout
        assert cgroups_of(name) == []
    finally:
        netns.down(name)


@pytest.mark.parametrize("flags, message", [
    (["--cpu", "half"], "--cpu: Input should be a valid number"),
    (["--cpu", "db=1"], "--cpu db=1: the role is server or client"),
    (["--cpus", "0-"], "--cpus: cannot read '0-' as CPUs"),
])
def test_cli_bad_sizes_are_one_line_and_start_nothing(lab_prefix, flags, message):
    name = f"{lab_prefix}-bad"
    done = orchestrate("lab", "up", "--name", name, "--hosts", "2", *flags)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (netns.LABS_ROOT / name).exists() and cgroups_of(name) == []


@pytest.mark.parametrize("exc", [RuntimeError("injected"), KeyboardInterrupt()])
def test_up_failing_half_way_removes_the_cgroups(lab_prefix, monkeypatch, exc):
    name = f"{lab_prefix}-halfsized"

    def boom(st: netns.LabState, timeout: float = 10.0) -> None:
        assert len(cgroups_of(name)) == 4  # cpu and cpuacct of both hosts exist by now
        raise exc

    monkeypatch.setattr(netns, "_wait_ssh", boom)
    try:
        with pytest.raises(type(exc)):
            netns.up(name, 2, size={"client": Size(cpu=0.5), "server": Size(cpu=1)})
        assert cgroups_of(name) == []
    finally:
        netns.down(name)


def test_a_cgroup_named_like_a_namespace_is_not_a_labs(lab_prefix):
    d = Path("/sys/fs/cgroup/cpu") / f"orch-{lab_prefix}-other-12345678"  # cgroupkit's form
    d.mkdir()
    try:
        assert netns.status(f"{lab_prefix}-other") == []
        assert netns.down(f"{lab_prefix}-other") == [] and d.exists()
    finally:
        d.rmdir()


def test_orphaned_cgroups_are_found_and_removed(lab_prefix):
    """What a kill -9 between `mkdir` of a cgroup and lab.json's removal leaves behind."""
    name = f"{lab_prefix}-orphan"
    d = Path("/sys/fs/cgroup/cpu") / f"orchlab-{name}-0"
    d.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (d / "cgroup.procs").write_text(str(sleeper.pid))
        (st,) = netns.status(name)
        assert st.state == "orphaned" and str(d) in st.problems[0]
        removed = netns.down(name)
        assert f"cgroup {d}" in removed and not d.exists()
        assert sleeper.wait(5) == -9  # what was still inside went with it
    finally:
        sleeper.kill()
        if d.exists():
            d.rmdir()


def test_the_quota_is_the_tightest_on_the_cgroup_path():
    """What the probe prints on cgroup v1 (quota -1: none) and v2 (cpu.max "max": none)."""
    v1 = "v1 /sys/fs/cgroup/cpu/a/b 150000 100000\nv1 /sys/fs/cgroup/cpu/a 50000 100000\n" \
         "v1 /sys/fs/cgroup/cpu -1 100000"
    assert facts._quota(v1) == (0.5, "/sys/fs/cgroup/cpu/a/b")
    v2 = "v2 /sys/fs/cgroup/system.slice/x.service 25000 100000\nv2 /sys/fs/cgroup/system.slice max 100000"
    assert facts._quota(v2) == (0.25, "/sys/fs/cgroup/system.slice/x.service")
    assert facts._quota("") == (None, "")
    assert facts.capacity({"cpus": 8, "cpus_allowed": [0, 1], "cpu_quota": None}) == 2.0
    assert facts.capacity({"cpus": 8, "cpus_allowed": [0, 1], "cpu_quota": 3.0}) == 2.0
    assert facts.busy_pct(0.2, {"cpus": 8, "cpus_allowed": list(range(8)), "cpu_quota": 0.25}) == 80.0
    # issue 22: a CPU count not read is unknown, not 1
    assert facts.capacity({"cpu_quota": 0.5}) is None and facts.busy_pct(0.2, {}) is None
