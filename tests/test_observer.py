"""Measuring without disturbing: nothing of ours reaches a measured host during the load.

The proof is the command log every transport keeps (raw/<run>/commands.jsonl): each command
and file transfer with when it started and ended. Deterministic, not timing-based: one
command inside the window, on any host, fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def commands(folder: Path, run_id: str) -> list[dict]:
    lines = (folder / "raw" / run_id / "commands.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def assert_silent(folder: Path) -> dict:
    """Every run of the results folder had a quiet window on every host; returns the summary."""
    s = json.loads((folder / "summary.json").read_text())
    assert s["runs"], "no run to check"
    for run in s["runs"]:
        obs = run["observer"]
        start, end = obs["window"]["start"], obs["window"]["planned_end"]
        # the window is the load itself: a warm-up (orchestrate-load) is load too
        assert end - start == pytest.approx(run["load"]["duration_s"] + run["load"].get("warmup_s", 0))
        log = commands(folder, run["run_id"])
        inside = [c for c in log if c["start"] < end and c["end"] > start]
        assert inside == [], f"commands reached hosts during the load: {inside}"
        # ... and the log is not vacuous: the hosts were driven right up to the window and
        # checked right after it (liveness before and after stays)
        hosts = {h for h in s["hosts"]}
        assert {c["host"] for c in log if c["end"] <= start} == hosts
        assert {c["host"] for c in log if c["start"] >= end} == hosts
        assert obs["remote_commands_in_window"] == 0 and obs["commands_in_window"] == []
        assert set(obs["hosts"]) == hosts
        for h, o in obs["hosts"].items():
            assert o["remote_commands_in_window"] == 0
            assert o["collectors"], f"{h}: no collector cost recorded"
            for name, c in o["collectors"].items():
                assert 0 <= c["cpu_s_per_s"] < 0.2, (h, name, c)  # a collector is cheap
                assert c["ran_on"], (h, name)
            assert o["collectors_cpu_s_per_s"] == pytest.approx(
                sum(c["cpu_s_per_s"] for c in o["collectors"].values()), abs=1e-4)
    return s


def test_lab_run_sends_nothing_during_the_load_and_records_what_measuring_cost(warm_lab, _warm_lab_session):
    # the session's run on a lab it borrowed (conftest.py: cross-host, reuseport, 3 s, collectors
    # pinned to CPU 0); that a run which brought its own lab up leaves nothing of it behind is
    # test_cross_host's to check
    lab, folder, done = warm_lab
    assert done.returncode == 0, done.stderr
    assert "no command reaches a host until then" in done.stderr
    s = assert_silent(folder)
    (run,) = s["runs"]
    for h, o in run["observer"]["hosts"].items():
        # collectors went where they were told; CPU 0 is the server's, so they share it
        assert o["collector_cpus"] == [0] and o["shares_measured_cpus"] is True
        assert all(c["ran_on"] == [0] for c in o["collectors"].values()), (h, o)
        # our SSH daemon was idle: no session, no shell start-up files, during the load
        assert o["sshd_cpu_s_per_s"] is not None and o["sshd_cpu_s_per_s"] < 0.02, (h, o)
    assert _warm_lab_session.up_after  # a run borrows a lab that is up and leaves it up
