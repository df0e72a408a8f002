"""render.build on a real results folder (with and without fabricated analysis) and on broken ones."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from report_checks import PNG_MAGIC, Dom, assert_png, md_table
from report_fixtures import fabricate_analysis, write_summary

from orchestrator.errors import UserError
from orchestrator.report import plots, render

ALL_CHARTS = [key for key, *_ in plots.CHARTS if key not in plots.OPEN_LOOP_CHARTS]  # closed loop
VERDICT_HEADER = "| run | arch | threads"


def check_self_contained(html: str) -> Dom:
    """Nothing in report.html fetches anything: every image is an embedded PNG, no scripts or styles
    from elsewhere, so the file reads the same offline, mailed, or archived."""
    assert 'src="http' not in html and "src='http" not in html
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    dom = Dom(html)
    for src in dom.srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
    for img in dom.imgs:
        data = base64.b64decode((img["src"] or "").split(",", 1)[1], validate=True)
        assert data[:8] == PNG_MAGIC and len(data) > 1024
    for href in dom.links:  # links (flame graphs) stay inside the results folder
        assert not href.startswith(("http:", "https:", "//", "/")), href
    return dom


def test_build_analysed(analysed_folder: Path):
    summary = json.loads((analysed_folder / "summary.json").read_text())
    runs = summary["runs"]
    paths = render.build(analysed_folder)

    assert paths == render.ReportPaths(md=analysed_folder / "report.md", html=analysed_folder / "report.html",
                                       plots={k: analysed_folder / "plots" / f"{k}.png" for k in ALL_CHARTS})
    for p in (paths.md, paths.html, *paths.plots.values()):
        assert p.is_file() and p.stat().st_size > 0
        assert p.stat().st_mode & 0o044, "report files are readable by others"
    for png in paths.plots.values():
        assert_png(png.read_bytes(), min_width=800)

    html = paths.html.read_text()
    dom = check_self_contained(html)
    # every chart embedded, and embedded bytes are exactly the PNG written beside the report
    assert [i["data-chart"] for i in dom.imgs] == ALL_CHARTS
    for img in dom.imgs:
        embedded = base64.b64decode((img["src"] or "").split(",", 1)[1])
        assert embedded == paths.plots[img["data-chart"] or ""].read_bytes()
    # verdict table on top: one row per run, in order, with verdict and deciding evidence
    assert html.index('id="verdicts"') < html.index('id="plots-section"')
    assert dom.rows["verdicts"] == len(runs)
    for row, run in zip(dom.cells["verdicts"], runs, strict=True):
        assert row[0] == run["run_id"]
        assert row[7] == run["analysis"]["verdict"]
        assert row[8] == run["analysis"]["evidence"][0]
    assert dom.rows["points"] == len(summary["points"])
    assert dom.rows["details"] == len(runs)
    assert dom.rows["hosts"] == 1 and dom.rows["baseline"] == 1
    assert "AMD EPYC" in html and "wrk 4.1.0" in html and "319,335" in html  # hosts and baseline
    assert f'href="{runs[0]["perf"]["flamegraph"]}"' in html
    assert "load generator at 99% CPU" in html

    md = paths.md.read_text()
    rows = md_table(md, VERDICT_HEADER)
    assert [r[0] for r in rows] == [r["run_id"] for r in runs]
    assert all(len(r) == 10 for r in rows)
    linked = re.findall(r"!\[[^\]]*\]\((plots/[^)]+\.png)\)", md)
    assert linked == [f"plots/{k}.png" for k in ALL_CHARTS]
    assert all((analysed_folder / rel).is_file() for rel in linked)
    assert f"[flame graph]({runs[0]['perf']['flamegraph']})" in md
    assert "(file missing)" not in md and "chart failed" not in md
    # atomic writes leave no temporaries behind
    assert not [p for p in analysed_folder.rglob(".*") if p.is_file()]


def test_build_real_summary_without_analysis(real_folder: Path):
    """Today's real summary.json (no analysis yet): the report still builds and shows "-"."""
    runs = json.loads((real_folder / "summary.json").read_text())["runs"]
    paths = render.build(real_folder)
    assert set(paths.plots) == {"qps_by_threads", "point_summary", "latency_percentiles", "thread_balance"}
    dom = check_self_contained(paths.html.read_text())
    assert dom.rows["verdicts"] == len(runs)
    assert all(row[7] == "-" and row[8] == "-" for row in dom.cells["verdicts"])
    assert dom.rows["points"] == 4  # derived from the runs: 2 archs x 2 thread counts
    md = paths.md.read_text()
    assert len(md_table(md, VERDICT_HEADER)) == len(runs)
    assert "Not drawn: no run has a measured packet rate" in md


def test_rebuild_drops_stale_plots(analysed_folder: Path, real_summary: dict[str, Any]):
    render.build(analysed_folder)
    assert (analysed_folder / "plots" / "packet_rate.png").exists()
    write_summary(analysed_folder, real_summary)  # the analysis went away
    paths = render.build(analysed_folder)
    assert not (analysed_folder / "plots" / "packet_rate.png").exists()
    assert "packet_rate" not in paths.plots


def test_text_is_escaped(tmp_path: Path, real_summary: dict[str, Any]):
    s = fabricate_analysis(real_summary)
    s["runs"][0]["analysis"]["evidence"] = ["<script>alert(1)</script> a | b\nnext line"]
    s["runs"][0]["arch"] = "<b>x</b>"
    folder = write_summary(tmp_path / "esc", s)
    paths = render.build(folder)
    html = paths.html.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    rows = md_table(paths.md.read_text(), VERDICT_HEADER)
    assert len(rows) == len(s["runs"]) and all(len(r) == 10 for r in rows)
    assert rows[0][8] == r"<script>alert(1)</script> a \| b next line"


def test_single_interrupted_run(tmp_path: Path, real_summary: dict[str, Any]):
    s = fabricate_analysis(real_summary)
    s["runs"] = s["runs"][1:2]
    s["points"] = None
    s["status"] = "interrupted"
    s["error"] = "interrupted during run 2/8 (SIGINT)"
    folder = write_summary(tmp_path / "one", s)
    paths = render.build(folder)
    html = paths.html.read_text()
    dom = check_self_contained(html)
    assert dom.rows["verdicts"] == 1 and dom.rows["points"] == 1
    assert 'id="status"' in html and "interrupted during run 2/8 (SIGINT)" in html
    assert "Incomplete results: status interrupted" in paths.md.read_text()
    assert set(paths.plots) == set(ALL_CHARTS)  # one 2-thread run still has every chart


def test_failed_before_any_run(tmp_path: Path):
    s = {"version": 1, "scenario": "x", "run_id": "r", "status": "failed",
         "error": "baseline: iperf3 missing", "hosts": {}, "baseline": {}, "runs": []}
    paths = render.build(write_summary(tmp_path / "failed", s))
    html = paths.html.read_text()
    dom = check_self_contained(html)
    assert dom.imgs == [] and paths.plots == {}
    assert "No run completed" in html and "baseline: iperf3 missing" in html
    assert "No baseline measured" in paths.md.read_text()


def test_missing_and_none_fields_everywhere(tmp_path: Path):
    """A summary as sparse as JSON allows: every field absent, None, or of the wrong type."""
    s: dict[str, Any] = {
        "version": 1, "hosts": {"h": None, "g": {"tool_versions": None, "roles": None, "cpus": None},
                                "k": {"tool_versions": {"wrk": "4.1.0", "nginx": None}}},
        "baseline": {"a->b": {"udp": None}, "c->d": {"udp": {"pps_delivered": None}, "tcp": {}}},
        "points": [{"arch": None, "verdicts": None}],
        "runs": [
            {},
            {"run_id": "r2", "qps": None, "latency_ms": None, "errors": None, "analysis": None, "perf": None},
            {"run_id": "r3", "qps": 10.0, "errors": {"connect": 3}, "non_2xx": 2, "error": "server died",
             "analysis": {"verdict": "weird", "evidence": None, "flags": None, "packets_per_request": None,
                          "packet_rate": {"rx": 5.0}, "ceiling_use": {"rx": None}, "switches": {},
                          "server_cpu_split_pct": {}, "cpu_us_per_request": None, "balance": None},
             "server_counters": {"threads": [{"thread": 0}, {"thread": 1, "requests": 5}]},
             "perf": {"flamegraph": "raw/r3/h/flamegraph.svg"}},
        ],
    }
    paths = render.build(write_summary(tmp_path / "sparse", s))
    html = paths.html.read_text()
    dom = check_self_contained(html)
    assert dom.rows["verdicts"] == 3
    assert "3 socket errors" in html and "2 non-2xx responses" in html and "run failed: server died" in html
    assert "(file missing)" in html
    assert len(md_table(paths.md.read_text(), VERDICT_HEADER)) == 3
    assert "chart failed" not in html  # sparse data is "nothing to plot", never an exception
    assert "wrk 4.1.0" in html and "nginx" not in html  # an absent tool is not listed as "nginx None"


def test_a_failing_chart_costs_only_that_chart(analysed_folder: Path, monkeypatch: pytest.MonkeyPatch):
    def broken(_summary: dict[str, Any]) -> bytes | None:
        raise ZeroDivisionError("boom")

    charts = [(k, t, broken if k == "cpu_split" else fn, c) for k, t, fn, c in plots.CHARTS]
    monkeypatch.setattr(plots, "CHARTS", tuple(charts))
    paths = render.build(analysed_folder)
    assert "cpu_split" not in paths.plots and len(paths.plots) == len(ALL_CHARTS) - 1
    assert "chart failed: ZeroDivisionError: boom" in paths.md.read_text()


def test_not_a_results_folder(tmp_path: Path):
    with pytest.raises(UserError, match="no summary.json"):
        render.build(tmp_path)
    (tmp_path / "summary.json").write_text('{"version": 99}')
    with pytest.raises(UserError, match="version"):
        render.build(tmp_path)
