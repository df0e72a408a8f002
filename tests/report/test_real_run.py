"""End to end: a short real `orchestrate run`, then a report built from the folder it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from report_checks import Dom, assert_png

from orchestrator.report import render

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_report_from_a_fresh_real_run(tmp_path: Path, run_id: str):
    # 2 runs of 1 s (reuseport, 1 and 2 threads): the smallest run that still has a thread sweep
    # and per-thread counters. Shares 2 cores with everything else, so keep it this short.
    cmd = [sys.executable, "-m", "orchestrator", "run", "scenarios/loopback.yaml", "--results",
           str(tmp_path), "--run-id", run_id, "--set", "load.duration=1s", "--set", "server.arch=reuseport",
           "--set", "server.threads=[1,2]", "--set", "repeat=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    folder = next(tmp_path.glob(f"*/{run_id}"))
    runs = json.loads((folder / "summary.json").read_text())["runs"]
    assert len(runs) == 2

    paths = render.build(folder)
    assert {"qps_by_threads", "point_summary", "latency_percentiles", "thread_balance"} <= set(paths.plots)
    for png in paths.plots.values():
        assert_png(png.read_bytes())
    html = paths.html.read_text()
    dom = Dom(html)
    assert 'src="http' not in html
    assert dom.rows["verdicts"] == 2
    assert len(dom.imgs) == len(paths.plots)
    assert all((i.get("src") or "").startswith("data:image/png;base64,") for i in dom.imgs)
    assert [row[0] for row in dom.cells["verdicts"]] == [r["run_id"] for r in runs]
    # what measuring cost, per run and host, from the run's own observer figures
    assert [row[:2] for row in dom.cells["observer"]] == [[r["run_id"], "localhost"] for r in runs]
    for row, r in zip(dom.cells["observer"], runs, strict=True):
        o = r["observer"]["hosts"]["localhost"]
        assert row[3] == f"{o['collectors_cpu_s_per_s']:,.4f}" and row[6] == "0"
        assert "shares the measured CPUs" in row[4]  # 2 CPUs: server on 0, wrk on 1, none spare
    assert "## What measuring cost" in paths.md.read_text()
