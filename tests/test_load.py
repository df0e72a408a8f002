"""The load step with the project's own generator, end to end: open loop at a rate on this
machine, closed loop beside wrk's face, and the rate split over two lab client hosts whose
histograms merge exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_cross_host import lab_traces, only_results
from test_observer import assert_silent

from testkit import NO_COMPARE, REPO, orchestrate

pytestmark = pytest.mark.slow

NATIVE = [*NO_COMPARE, "--set", "load.tool=orchestrate-load", "--set", "server.arch=reuseport",
          "--set", "baseline.enabled=false", "--set", "load.duration=2s"]


def summary_in(root: Path) -> dict:
    return json.loads((only_results(root) / "summary.json").read_text())


def test_open_loop_on_loopback_keeps_its_rate_and_records_corrected_latency(tmp_path, run_id):
    done = orchestrate("run", "--results", str(tmp_path), "--run-id", run_id, *NATIVE,
                       "--set", "load.rate=[2000, 4000]", "--set", "load.warmup=1s",
                       "--set", "load.connections=16", timeout=600, report=True)
    assert done.returncode == 0, done.stderr
    folder = only_results(tmp_path)
    s = summary_in(tmp_path)
    assert [r["run_id"] for r in s["runs"]] == ["001-reuseport-t1-c16-q2000-r1",
                                                "002-reuseport-t1-c16-q4000-r1"]
    assert [p["rate"] for p in s["points"]] == [2000, 4000]
    for r, target in zip(s["runs"], (2000, 4000), strict=True):
        assert r["load"]["tool"] == "orchestrate-load"
        rate = r["rate"]
        lat, svc, lag = r["latency_ms"], r["service_time_ms"], r["send_lag_ms"]
        assert rate["target"] == target and abs(rate["achieved"] - target) < 0.01 * target, rate
        assert abs(r["qps"] - rate["achieved"]) < 1
        # the self-check agrees with its figures (on this VM a 10 ms hiccup in the window can
        # put the send lag's p99 over its 1 ms limit: that is `sustained: false`, said, not hidden)
        assert rate["sustained"] is (lag["p99"] <= max(1.0, 0.1 * 1000 / target)), (rate, lag)
        assert 0 < lat["p50"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]
        assert svc["p50"] <= lat["p50"] + 1e-9  # service time starts at the actual send, later or equal
        assert lag["p99"] < 5  # a quiet machine sends on schedule
        # the merged histogram beside the per-host ones: its count is every measured request
        hist = json.loads((folder / r["histograms"]).read_text())
        assert sum(c for _, c in hist["merged"]["latency"]) == r["requests_detail"]["requests"]
        assert set(hist["hosts"]) == {"localhost"}
        assert r["window"]["end"] - r["window"]["start"] == pytest.approx(2.0, abs=0.05)  # no warm-up
        # never client-bound, unless the self-check above said the sends were late (a machine
        # pause in the window did that once in CI: send lag p99 1.24 ms at 2,000/s), which is
        # client evidence by the verdict rules
        if rate["send_fidelity"] is not False:
            assert r["analysis"]["verdict"] != "client-bound", r["analysis"]["evidence"]
    assert_silent(folder)
    # the report draws latency against throughput and each point's percentile spectrum
    drawn = {p.name for p in (folder / "plots").iterdir()}
    assert {"latency_vs_rate.png", "percentile_spectrum.png"} <= drawn


def test_closed_loop_runs_with_the_same_face_as_wrk(native_run):
    folder, done = native_run  # NATIVE's settings, with pidstat and a perf that fails (conftest.py)
    assert done.returncode == 0, done.stderr
    (r,) = json.loads((folder / "summary.json").read_text())["runs"]
    assert r["run_id"] == "001-reuseport-t1-c64-r1" and r["rate"]["target"] is None
    assert r["qps"] > 1000 and r["requests"] > 0 and sum(r["errors"].values()) == 0
    assert r["client_proc"]["localhost"]["threads"]  # pidstat watched the generator's own threads


def test_the_rate_is_split_over_two_lab_clients_and_merges_exactly(tmp_path, run_id):
    lab = f"l{os.getpid() % 10000}"
    done = orchestrate("run", str(REPO / "scenarios" / "cross-host.yaml"), "--results", str(tmp_path),
                       "--run-id", run_id, "--set", f"hosts.lab={lab}", "--set", "hosts.roles.client=2",
                       *NATIVE, "--set", "load.rate=3000", "--set", "load.connections=16", timeout=900)
    assert done.returncode == 0, done.stderr
    s = summary_in(tmp_path)
    (r,) = s["runs"]
    assert [c["rate"]["target"] for c in r["clients"]] == [1500, 1500]  # half each
    assert abs(r["rate"]["achieved"] - 3000) < 0.01 * 3000, r["rate"]
    hist = json.loads((only_results(tmp_path) / r["histograms"]).read_text())
    merged = sum(c for _, c in hist["merged"]["latency"])
    hosts = sum(sum(c for _, c in h) for h in hist["hosts"].values())
    assert merged == hosts == r["requests_detail"]["requests"]
    assert len(hist["hosts"]) == 2
    assert lab_traces(lab) == []
