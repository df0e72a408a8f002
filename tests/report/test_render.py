"""render.build on recorded real results folders (analysed by the real analysis), on an old
version-1 folder, and on broken ones."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from report_checks import PNG_MAGIC, Dom, assert_png, md_table
from report_fixtures import CLOSED, copy_folder, write_summary

from orchestrator import records, store
from orchestrator.errors import UserError
from orchestrator.records import Summary
from orchestrator.report import plots, render

from testkit import counter_thread, run_record, server_counters, session, udp_ceiling

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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, render.ReportPaths]:
    """The recorded closed-loop folder analysed again and built once, for the tests that read it
    (each copies it before changing anything): (folder, what build() returned)."""
    folder = copy_folder(CLOSED, tmp_path_factory.mktemp("built") / "analysed")
    return folder, render.build(folder)


def test_build_analysed(built: tuple[Path, render.ReportPaths]):
    analysed_folder, paths = built
    summary = store.load_summary(analysed_folder)
    runs = summary.runs

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
    assert dom.rows["verdicts"] == len(runs) == 8
    for row, run in zip(dom.cells["verdicts"], runs, strict=True):
        assert run.analysis and run.analysis.verdict
        assert row[0] == run.run_id
        assert row[4] == f"{run.qps:,.0f}"
        assert row[7] == run.analysis.verdict
        assert row[8] == run.analysis.evidence[0]
    assert dom.rows["points"] == len(summary.points) == 4
    for row, p in zip(dom.cells["points"], summary.points, strict=True):
        assert row[4] == f"{p.qps_median:,.0f}" and row[-1] == p.verdict_text
    assert dom.rows["details"] == len(runs)
    assert dom.rows["hosts"] == 1 and dom.rows["baseline"] == 1
    (host,) = summary.hosts.values()
    (path,) = summary.baseline.values()
    assert path.udp and path.udp.pps_delivered
    assert host.cpu_model and host.cpu_model in html and f"wrk {host.tool_versions['wrk']}" in html
    assert f"{path.udp.pps_delivered:,.0f}" in html  # the baseline's delivered packet rate
    flagged = [f for r in runs for f in (r.analysis.flags if r.analysis else ())]
    assert flagged and all(f.replace("'", "&#39;").replace(">", "&gt;") in html for f in flagged)

    md = paths.md.read_text()
    rows = md_table(md, VERDICT_HEADER)
    assert [r[0] for r in rows] == [r.run_id for r in runs]
    assert all(len(r) == 10 for r in rows)
    linked = re.findall(r"!\[[^\]]*\]\((plots/[^)]+\.png)\)", md)
    assert linked == [f"plots/{k}.png" for k in ALL_CHARTS]
    assert all((analysed_folder / rel).is_file() for rel in linked)
    # run 1's folded stacks are kept with the recorded folder, the others' are not
    svg = runs[0].perf.flamegraph if runs[0].perf else None
    assert svg and f'href="{svg}"' in html and f"[flame graph]({svg})" in md
    assert (analysed_folder / svg).read_text().startswith("<svg")
    assert md.count("(file missing)") == len(runs) - 1
    assert "chart failed" not in md
    # atomic writes leave no temporaries behind
    assert not [p for p in analysed_folder.rglob(".*") if p.is_file()]


def test_build_open_loop(open_folder: Path):
    paths = render.build(open_folder)
    assert set(plots.OPEN_LOOP_CHARTS) <= set(paths.plots)
    summary = store.load_summary(open_folder)
    dom = check_self_contained(paths.html.read_text())
    assert [row[0] for row in dom.cells["verdicts"]] == [r.run_id for r in summary.runs]
    assert [r.key["load.rate"] for r in summary.runs] == [5000.0, 20000.0, 60000.0]


def test_an_old_summary_loads_and_renders(old_folder: Path):
    """A version-1 summary.json (no analysis, no points): the report still builds and shows "-"."""
    runs = json.loads((old_folder / "summary.json").read_text())["runs"]
    paths = render.build(old_folder)
    assert set(paths.plots) == {"qps_by_threads", "point_summary", "latency_percentiles", "thread_balance"}
    dom = check_self_contained(paths.html.read_text())
    assert dom.rows["verdicts"] == len(runs)
    assert [row[0] for row in dom.cells["verdicts"]] == [r["run_id"] for r in runs]
    assert all(row[7] == "-" and row[8] == "-" for row in dom.cells["verdicts"])
    assert dom.rows["points"] == 4  # derived from the runs: 2 archs x 2 thread counts
    md = paths.md.read_text()
    assert len(md_table(md, VERDICT_HEADER)) == len(runs)
    assert "Not drawn: no run has a measured packet rate" in md


def test_rebuild_drops_stale_plots(built: tuple[Path, render.ReportPaths], tmp_path: Path):
    analysed_folder = shutil.copytree(built[0], tmp_path / "rebuilt")  # as built once
    assert (analysed_folder / "plots" / "packet_rate.png").exists()
    s = store.load_summary(analysed_folder)
    unanalysed = s.model_copy(update={"runs": tuple(r.model_copy(update={"analysis": None}) for r in s.runs)})
    write_summary(analysed_folder, unanalysed)  # the analysis went away
    paths = render.build(analysed_folder)
    assert not (analysed_folder / "plots" / "packet_rate.png").exists()
    assert "packet_rate" not in paths.plots


def test_text_is_escaped(tmp_path: Path, closed_summary: Summary):
    first = closed_summary.runs[0]
    assert first.analysis
    evil = first.model_copy(update={
        "arch": "<b>x</b>",
        "analysis": first.analysis.model_copy(
            update={"evidence": ("<script>alert(1)</script> a | b\nnext line",)})})
    s = closed_summary.model_copy(update={"runs": (evil, *closed_summary.runs[1:])})
    folder = write_summary(tmp_path / "esc", s)
    paths = render.build(folder)
    html = paths.html.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    rows = md_table(paths.md.read_text(), VERDICT_HEADER)
    assert len(rows) == len(s.runs) and all(len(r) == 10 for r in rows)
    assert rows[0][8] == r"<script>alert(1)</script> a \| b next line"


def test_single_interrupted_run(tmp_path: Path, closed_summary: Summary):
    s = closed_summary.model_copy(update={"runs": closed_summary.runs[1:2], "points": (),
                                          "status": "interrupted",
                                          "error": "interrupted during run 2/8 (SIGINT)"})
    folder = write_summary(tmp_path / "one", s)
    paths = render.build(folder)
    html = paths.html.read_text()
    dom = check_self_contained(html)
    assert dom.rows["verdicts"] == 1 and dom.rows["points"] == 1
    assert 'id="status"' in html and "interrupted during run 2/8 (SIGINT)" in html
    assert "Incomplete results: status interrupted" in paths.md.read_text()
    assert set(paths.plots) == set(ALL_CHARTS)  # one 2-thread run still has every chart


def test_failed_before_any_run(tmp_path: Path):
    s = session(version=1, scenario="x", run_id="r", status="failed", error="baseline: iperf3 missing",
                hosts={}, baseline={}, runs=[])
    paths = render.build(write_summary(tmp_path / "failed", s))
    html = paths.html.read_text()
    dom = check_self_contained(html)
    assert dom.imgs == [] and paths.plots == {}
    assert "No run completed" in html and "baseline: iperf3 missing" in html
    assert "No baseline measured" in paths.md.read_text()


def test_missing_and_none_fields_everywhere(tmp_path: Path):
    """A summary as sparse as its records allow: every optional field absent, None, or of the wrong type."""
    s: dict[str, Any] = {
        "version": 1, **session(),
        "hosts": {"h": None, "g": {"tool_versions": None, "roles": None, "cpus": None},
                  "k": {"tool_versions": {"wrk": "4.1.0", "nginx": None}}},
        # iperf3's records are whole; its TCP test may not have run
        "baseline": {"a->b": {"client": "a", "server": "b", "udp": udp_ceiling(), "tcp": None}},
        "points": [{"arch": None, "verdicts": None}],
        "runs": [  # a run always has its point and QPS (testkit.run_record)
            run_record(),
            run_record(run_id="r2", latency_ms=None, errors=None, analysis=None, perf=None),
            {**run_record(run_id="r3", qps=10.0), "errors": {"connect": 3}, "non_2xx": 2,
             "analysis": {"verdict": "weird", "evidence": None, "flags": None, "packets_per_request": None,
                          "packet_rate": {"rx": 5.0}, "ceiling_use": {"rx": None}, "switches": {},
                          "server_cpu_split_pct": None, "cpu_us_per_request": None, "balance": None},
             "server_counters": server_counters(counter_thread(0), counter_thread(1, requests=5)),
             "perf": {"flamegraph": "raw/r3/h/flamegraph.svg"}},
        ],
    }
    paths = render.build(write_summary(tmp_path / "sparse", s))
    html = paths.html.read_text()
    dom = check_self_contained(html)
    assert dom.rows["verdicts"] == 3
    assert "3 socket errors" in html and "2 non-2xx responses" in html
    # issue 22: counters the record lacks are not 0 errors
    assert "3 socket errors (read, write, timeout not measured)" in html
    assert "socket errors not measured (the record has no error counters)" in html
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


def test_orchestrate_report_on_an_old_folder(old_folder: Path):
    """The command end to end: a version-1 folder is upgraded, analysed, saved as version 2, rendered."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "orchestrator", "report", str(old_folder)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"report: {old_folder / 'report.html'}"
    saved = store.load_summary(old_folder)
    assert json.loads((old_folder / "summary.json").read_text())["version"] == records.FORMAT_VERSION == 3
    assert all(r.analysis and r.analysis.verdict for r in saved.runs) and len(saved.points) == 4
    rows = md_table((old_folder / "report.md").read_text(), VERDICT_HEADER)
    assert [r[7] for r in rows] == [r.analysis.verdict for r in saved.runs if r.analysis]
    html = (old_folder / "report.html").read_text()  # (was test_cli's rebuild test, a duplicate run)
    assert "Verdicts" in html and html.count("data:image/png;base64,") >= 3
    # what the in-process upgrade-analyse-build test asserted, the same steps (now only here)
    assert (old_folder / "plots" / "packet_rate.png").is_file()  # analysed: packet rates drawn
    dom = check_self_contained(html)
    assert dom.cells["verdicts"] and all(row[7] != "-" for row in dom.cells["verdicts"])
