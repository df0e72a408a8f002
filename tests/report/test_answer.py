"""The report opens with the answer: a run that swept server.arch over repeated rounds leads
with each architecture against main-sub (ratio, 95% interval, rounds, verdict), and the
per-run table comes after it."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from orchestrator import store
from orchestrator.report import render

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_compare import rounds_summary  # noqa: E402


def test_the_report_leads_with_the_paired_comparison(tmp_path: Path):
    s = rounds_summary(random.Random(8), 6, qps_ratio=0.92, cpu_ratio=1.08)
    for r in s["runs"]:
        r["run_id"] = f"{r['repetition']:03d}-{r['arch']}"
    store.ResultsDir(tmp_path).save_summary(s)
    paths = render.build(tmp_path)
    md = paths.md.read_text()
    assert md.index("## The answer: each architecture against main-sub") < md.index("## Verdicts")
    row = next(line for line in md.splitlines() if line.startswith("| threads=1 connections=64 | reuseport"))
    assert "| req/s | 0.9" in row and row.endswith("| 6 | worse |")
    html = paths.html.read_text()
    assert html.index('id="answer-section"') < html.index('id="verdict-section"')
    assert "geometric mean of per-round ratios" in html


def test_one_repetition_has_no_answer_to_lead_with(tmp_path: Path):
    s = rounds_summary(random.Random(8), 1)
    store.ResultsDir(tmp_path).save_summary(s)
    assert "The answer" not in render.build(tmp_path).md.read_text()


def test_a_flag_every_run_carries_is_said_once_above_the_table(tmp_path: Path):
    s = rounds_summary(random.Random(8), 3)
    for i, r in enumerate(s["runs"]):
        r["run_id"] = f"{r['repetition']:03d}-{r['arch']}"
        r["analysis"]["flags"] = ["the same caveat"] + (["only here"] if i == 0 else [])
    store.ResultsDir(tmp_path).save_summary(s)
    paths = render.build(tmp_path)
    md = paths.md.read_text()
    assert md.count("**Every run:** the same caveat") == 1
    table = md[md.index("| run | arch |"):]
    rows = [line for line in table.splitlines() if line.startswith("| 00")][:6]  # the verdict table
    assert rows[0].endswith("| only here |")
    assert all("the same caveat" not in row for row in rows) and rows[1].endswith("| - |")
    html = paths.html.read_text()
    assert 'id="common-flags"' in html and html.count("the same caveat") >= 1
