from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from orchestrator import store


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
    runs = [{"run_id": "001", "qps": 10.5, "latency_ms": {"p50": 1.0}, "telemetry": {"big": 1},
             "server_cpu": {"usr": 3.0, "threads": [1, 2]}}]
    rd.save_summary({"scenario": "scn", "runs": runs})
    data = store.load_summary(tmp_path / "scn" / "rid")
    assert data["version"] == store.FORMAT_VERSION and data["runs"] == runs
    df = pd.read_csv(tmp_path / "scn" / "rid" / "metrics.csv")
    assert list(df.columns) == ["run_id", "qps", "latency_ms.p50", "server_cpu.usr"]
    assert json.loads((tmp_path / "scn" / "rid" / "summary.json").read_text())["version"] == 1


def test_run_ids_sort_by_time():
    a, b = store.new_run_id(1_000_000), store.new_run_id(2_000_000)
    assert a < b and len(a) == len("19700112-134640-abcd")
