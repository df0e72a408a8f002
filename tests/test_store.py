from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from orchestrator import records, store
from orchestrator.errors import UserError

from testkit import run_record, session, thread_cpu


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    p = tmp_path / "x.json"
    store.atomic_write(p, "one")
    store.atomic_write(p, "two")
    assert p.read_text() == "two" and os.listdir(tmp_path) == ["x.json"]
    assert oct(p.stat().st_mode & 0o777) == "0o644"


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "summary.json"
    store.atomic_write(p, "old")

    def boom(*a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.atomic_write(p, "new")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["summary.json"]


def test_summary_and_csv(tmp_path):
    rd = store.ResultsDir.create(tmp_path, "scn", "rid")
    runs = [run_record(run_id="001", qps=10.5, latency_ms={"p50": 1.0}, telemetry={"big": 1},
                       server_cpu={"usr": 3.0, "threads": [thread_cpu(7, 3.0)]})]
    rd.save_summary(session(scenario="scn", runs=runs))
    data = store.load_summary(tmp_path / "scn" / "rid")
    assert isinstance(data, records.Summary) and data.scenario == "scn"
    (run,) = data.runs
    assert (run.qps, run.latency_ms.p50, run.server_cpu.threads[0].tid) == (10.5, 1.0, 7)
    assert data.dump()["runs"] == runs  # written back as it was given
    df = pd.read_csv(tmp_path / "scn" / "rid" / "metrics.csv")
    assert list(df.columns) == [
        "server.arch", "server.threads", "load.connections", "index", "arch", "server_threads", "connections",
        "repetition", "run_id", "requests", "qps", "latency_ms.p50", "load.tool", "load.threads",
        "load.pipeline", "load.duration_s", "load.clients", "server_cpu.usr", "server_stopped_cleanly"]
    assert json.loads((tmp_path / "scn" / "rid" / "summary.json").read_text())["version"] == 3


def test_metrics_csv_has_one_column_per_axis(tmp_path):
    rd = store.ResultsDir.create(tmp_path, "scn", "rid")
    runs = [run_record(run_id=f"00{i}", connections=8, qps=1.0 + i,
                       axes={"server.work_us": w, "load.keepalive": ka})
            for i, (w, ka) in enumerate([(0, True), (5, False)])]
    rd.save_summary(session(scenario="scn", runs=runs))
    df = pd.read_csv(tmp_path / "scn" / "rid" / "metrics.csv")
    assert list(df.columns)[:5] == ["server.arch", "server.threads", "load.connections", "server.work_us",
                                    "load.keepalive"]  # load.rate: no run set it
    assert df["server.work_us"].tolist() == [0, 5] and df["load.keepalive"].tolist() == [True, False]
    assert not any(c.startswith("axes.") for c in df.columns)


def test_a_typed_summary_saves_and_loads_the_same(tmp_path):
    rd = store.ResultsDir.create(tmp_path, "scn", "rid")
    s = records.Summary(**session(scenario="scn", run_id="rid"),
                        runs=(records.Run(**run_record(
                            run_id="001", connections=8, qps=5.0,
                            rate=records.Rate(target=10.0, achieved=5.0, sustained=False))),))
    rd.save_summary(s)
    back = store.load_summary(rd.path)
    assert back == s and back.runs[0].key.as_json() == {
        "server.arch": "reuseport", "server.threads": 1, "load.connections": 8, "load.rate": 10.0}


def test_a_summary_with_a_mistyped_field_is_refused_in_one_line(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(session(version=2, runs=[run_record(qps="fast")])))
    with pytest.raises(UserError) as e:
        store.load_summary(tmp_path)
    assert str(e.value) == (f"{tmp_path / 'summary.json'}: runs.0.qps: Input should be a valid number, "
                            "unable to parse string as a number (got 'fast')")


def test_run_ids_sort_by_time():
    a, b = store.new_run_id(1_000_000), store.new_run_id(2_000_000)
    assert a < b and len(a) == len("19700112-134640-abcd")


def test_saving_a_malformed_summary_is_our_bug_not_bad_input(tmp_path):
    """What we hand over built wrong (a dict here; execute's record fails the same way when it
    is made) must not read as the user's error (run() deletes an empty results folder on bad
    input)."""
    from pydantic import ValidationError

    rd = store.ResultsDir.create(tmp_path, "scn", "rid")
    with pytest.raises(ValidationError):
        rd.save_summary(session(scenario="scn", runs=[run_record(qps="fast")]))
    assert not (rd.path / "summary.json").exists()
