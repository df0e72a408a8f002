"""End to end: a short real `orchestrate run` (the session's, conftest.py), then a report built from
the folder it wrote."""

from __future__ import annotations

import json

import pytest
from report_checks import Dom, assert_png

from orchestrator.report import render


@pytest.mark.slow
def test_report_from_a_fresh_real_run(loopback_run):
    # the session's short run of the embedded default (conftest.py: 2 paired rounds of both
    # architectures at 1 and 2 threads, 8 runs of 2 s): a thread sweep and per-thread counters
    folder, done = loopback_run
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = json.loads((folder / "summary.json").read_text())["runs"]
    assert len(runs) == 8

    paths = render.build(folder)
    assert {"qps_by_threads", "point_summary", "latency_percentiles", "thread_balance"} <= set(paths.plots)
    for png in paths.plots.values():
        assert_png(png.read_bytes())
    html = paths.html.read_text()
    dom = Dom(html)
    assert 'src="http' not in html
    assert dom.rows["verdicts"] == len(runs)
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
    # with a factor it opens with the answer: reuseport against main-sub, per thread count
    md = paths.md.read_text()
    first = md.index("## ")
    assert md[first:].startswith("## The answer"), md[first:first + 200]
    answer = md[first:md.index("## Verdicts")]
    for threads in (1, 2):
        row = f"| threads={threads} connections=64 | reuseport | process CPU µs/request | "
        assert any(x.startswith(row) for x in answer.splitlines()), answer
