"""`orchestrate noise` for real: A/A rounds of one point on loopback, the floor printed,
written beside the results and kept in the history, where compare finds it."""

from __future__ import annotations

import json

from orchestrator import noise
from orchestrator.history import open_history

from testkit import orchestrate

SMALL = ["--set", "server.arch=reuseport", "--set", "load.duration=1s", "--set", "baseline.enabled=false",
         "--set", "telemetry=[]", "--set", "host_noise=false"]  # the floor reads QPS only


def test_noise_measures_a_floor_and_keeps_it_with_the_hosts(tmp_path, run_id):
    db = tmp_path / "h.sqlite"
    done = orchestrate("noise", "--rounds", "2", *SMALL, "--results", str(tmp_path), "--run-id", run_id,
                       "--history", str(db), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "noise floor of loopback on " in done.stdout and "1 point(s) x 2 A/A rounds" in done.stdout
    for n in (5, 10, 20):
        assert f"minimum detectable effect at {n:>2} rounds: " in done.stdout
    (folder,) = (tmp_path / "loopback").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert sorted(r["repetition"] for r in summary["runs"]) == [1, 2, 3, 4]  # 2 rounds x A, B
    kept = json.loads((folder / "noise.json").read_text())
    found = noise.latest(open_history(db), "loopback", kept["machine"])
    assert found is not None and found.to_dict() == kept and found.sd_log > 0


def test_noise_refuses_a_search_and_bad_rounds(tmp_path):
    done = orchestrate("noise", "scenarios/capacity.yaml", "--results", str(tmp_path))
    assert done.returncode == 2 and "load.search" in done.stderr and done.stderr.count("\n") == 1
    done = orchestrate("noise", "--rounds", "1", "--results", str(tmp_path))
    assert done.returncode == 2 and "--rounds" in done.stderr
    assert not any(tmp_path.iterdir())
