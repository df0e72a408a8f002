"""`orchestrate doctor`: each kind of trouble gives a warn or fail line with its fix."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from orchestrator import cli, scenario
from orchestrator.doctor import Check, checks, noise, render
from orchestrator.records import HostNoise

from testkit import REPO, path_without, stop_process


def load(name: str, *sets: str) -> scenario.Scenario:
    return scenario.load(str(REPO / "scenarios" / name), list(sets)).scenario


def test_a_missing_tool_is_a_fail_line_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(path_without("wrk", tmp_path)))
    monkeypatch.setenv("ORCHESTRATE_PATH_ONLY", "1")
    found = {c.name: c for c in checks.tools(load("loopback.yaml"))}
    assert found["tool wrk"].status == "fail"
    assert found["tool wrk"].fix == "apt-get install -y wrk"
    assert "fix: apt-get install -y wrk" in found["tool wrk"].line()
    assert found["tool taskset"].status == "ok"


def test_an_unreachable_static_host_is_a_fail_line_naming_it(tmp_path):
    inv = tmp_path / "lab.ini"
    # Port 1 on loopback: refused at once, as a host whose sshd is down.
    inv.write_text("[server]\nbox ansible_host=127.0.0.1 ansible_port=1\n[client]\nbox\n")
    sc = load("reference-cross-host.yaml", f"hosts.inventory={inv}", "hosts.ssh.connect_timeout=2s")
    (check,) = checks.static_hosts(sc)
    assert check.status == "fail" and check.name == "host box"
    assert "unreachable over SSH (127.0.0.1)" in check.detail
    assert "ssh-keyscan" in check.fix


@pytest.mark.slow  # a real busy loop on a CPU
def test_a_cpu_hog_on_a_pinned_cpu_is_named_with_its_fix():
    cpu = max(scenario.local_cpus())
    hog = subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # running before the sample starts, as a hog before a run
        sample = noise.measure([cpu], 1.0, "before")
    finally:
        stop_process(hog)
    assert sample.busy_pct[cpu] >= noise.FOREIGN_WARN_PCT, sample
    assert hog.pid in [i.pid for i in sample.intruders], sample
    (line,) = [c for c in checks.noise_checks(sample) if c.name == f"cpu{cpu} foreign load"]
    assert line.status in ("warn", "fail")
    assert f"pid {hog.pid}" in line.detail and "pin the run elsewhere" in line.fix
    assert f"(pid {hog.pid})" in sample.line()  # the report's line names it too
    assert HostNoise.model_validate(sample.to_json()) == sample  # the summary keeps it as it was read


def test_doctor_prints_one_line_per_check_and_machine_checks_pass_here(capsys):
    rc = cli.main(["doctor", "--seconds", "0.2"])
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("doctor: ") and " ok, " in out[-1]
    lines = [ln for ln in out[1:-1] if not ln.startswith("      fix:")]
    assert all(ln.split()[0] in ("ok", "warn", "fail") for ln in lines), lines
    # This machine has the run set-up's tools and kernel; what depends on others' load (a
    # shared machine's busy CPUs, a port someone holds) may fail here, so only those may.
    fails = [ln for ln in lines if ln.startswith("fail")]
    assert all("foreign load" in ln or ln.startswith("fail  port") for ln in fails), fails
    assert rc == (1 if fails else 0)


def test_render_counts_and_hides_the_fix_of_an_ok_line():
    text = render([Check("a", "ok", "fine", "never shown"), Check("b", "warn", "hm", "do x")])
    assert text.splitlines() == ["ok    a: fine", "warn  b: hm", "      fix: do x",
                                 "doctor: 1 ok, 1 warn, 0 fail"]
