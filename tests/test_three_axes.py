"""A real run over three axes that are not the classic thread/connection counts
(scenarios/three-axes.yaml: server.work_us x load.keepalive x server.arch): eight points, each in
metrics.csv with a column per axis, in the report's tables, in history, and compared point by
point. One run shared by every assertion (8 runs of 1 s)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import compare, records, store
from orchestrator.history import history_frame, open_history

from testkit import orchestrate

pytestmark = pytest.mark.slow

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "three-axes.yaml"
AXES = ["server.arch", "server.threads", "load.connections", "server.work_us", "load.keepalive"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    rid = "three-axes-test"
    done = orchestrate("run", str(SCENARIO), "--results", str(root), "--run-id", rid,
                       "--history", str(root / "h.sqlite"), "--set", "load.duration=1s",
                       "--set", "repeat=1", "--set", "telemetry=[]", timeout=600, report=True)
    assert done.returncode == 0, done.stderr
    return root, root / "three-axes" / rid


def test_eight_points_with_a_column_per_axis(run):
    _, folder = run
    df = pd.read_csv(folder / "metrics.csv")
    assert list(df.columns[:5]) == AXES and len(df) == 8
    assert sorted(zip(df["server.arch"], df["server.work_us"], df["load.keepalive"], strict=True)) == sorted(
        (a, w, k) for a in ("reuseport", "main-sub") for w in (0, 5) for k in (True, False))
    summary = store.load_summary(folder)
    assert len(summary.points) == 8 and len({p.key for p in summary.points}) == 8
    assert all(p.n == 1 and p.axes.keys() == {"server.work_us", "load.keepalive"} for p in summary.points)


def test_keepalive_off_opens_a_connection_per_request(run):
    _, folder = run
    for r in store.load_summary(folder).runs:
        assert r.server_counters is not None
        served = sum(t.requests or 0 for t in r.server_counters.threads)
        accepted = sum(t.connections or 0 for t in r.server_counters.threads)
        if r.key["load.keepalive"]:
            assert accepted <= 64 + 8, (r.run_id, accepted)  # wrk's connections and the probes
        else:  # each request on its own connection (and the last few connected, unused)
            assert served <= accepted <= served + 64 + 8, (r.run_id, served, accepted)


def test_the_report_has_a_column_per_axis(run):
    _, folder = run
    md = (folder / "report.md").read_text()
    lines = md.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("| run | arch |"))
    assert "| server.work_us | load.keepalive |" in lines[at]
    rows = [ln for ln in lines[at + 2:at + 10] if ln.startswith("| 00")]
    assert len(rows) == 8 and "| 5 | false |" in rows[-1]
    html = (folder / "report.html").read_text()
    assert html.count('<th class="axis">server.work_us</th>') == 2  # the runs' and points' tables


def test_history_keeps_each_point_whole(run):
    root, _ = run
    df = history_frame(root / "h.sqlite")
    assert len(df) == 8 and df["point"].nunique() == 8
    assert set(df["server.work_us"]) == {0, 5} and set(df["load.keepalive"]) == {0, 1} & {
        *df["load.keepalive"]}
    assert "keepalive=false" in " ".join(df["point_label"])


def test_compare_and_the_gate_work_point_by_point(run, tmp_path):
    root, folder = run
    # a second run: the same numbers, the keep-alive-off main-sub points with work 5 made 30%
    # slower (the gate's own compare on two folders; a real pair is in bench/RESULTS.md)
    b = tmp_path / "b"
    shutil.copytree(folder, b)
    data = json.loads((b / "summary.json").read_text())
    for r in data["runs"]:
        if r["arch"] == "main-sub" and r["axes"] == {"server.work_us": 5, "load.keepalive": False}:
            r["qps"] *= 0.7
    data["run_id"] = "b"
    (b / "summary.json").write_text(json.dumps(data))
    c = compare.compare(store.load_summary(folder), records.load(data))
    assert len(c.changes) == 8 and not c.only_a and not c.only_b
    (slow,) = [ch for ch in c.changes if ch.change_pct < -1]
    assert compare.label(slow.point) == "main-sub threads=1 conns=64 work_us=5 keepalive=false"
    done = orchestrate("compare", str(folder), str(b), "--history", str(root / "h.sqlite"))
    assert done.returncode == 0, done.stderr
    assert "main-sub   threads=1   conns=64    work_us=5 keepalive=false" in done.stdout
    assert done.stdout.count("threads=1") == 8
    # history: the run is the latest of its scenario, found by the gate's baseline lookup
    name, base = compare.baseline("latest", scenario="three-axes", history=open_history(root / "h.sqlite"))
    assert name == "latest (three-axes-test)" and len(base.runs) == 8
