"""The report opens with the answer: a run that swept server.arch over repeated rounds leads
with each architecture against main-sub (ratio, 95% interval, rounds, verdict), and the
per-run table comes after it."""

from __future__ import annotations

import json
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
    assert "| req/s | 0.9" in row and row.endswith("| 6 | not measured | **slower** |")
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


def factor_summary(rng: random.Random, n: int, cpu_ratio: float) -> dict:
    """n rounds of server.work_us 0 against 3 (the scenario's compare:), as a run records them."""
    s = rounds_summary(rng, n, cpu_ratio=cpu_ratio)
    for r in s["runs"]:
        r["axes"] = {"server.work_us": 3 if r.pop("arch") == "reuseport" else 0}
        r["arch"] = "reuseport"
        r["run_id"] = f"{r['repetition']:03d}-w{r['axes']['server.work_us']}"
    s["rounds"] = {"factor": "server.work_us", "baseline": 0, "metric": "cpu_us_per_request",
                   "orders": [[0, 3], [3, 0]] * (n // 2), "run": n, "stopped": f"all {n} planned rounds run"}
    s["host_noise"] = {w: {"when": w, "seconds": 1.0, "cpus": [0, 1], "busy_pct": {"0": 3.0, "1": 4.0},
                           "steal_pct": 0.0, "intruders": [],
                           "pauses": {"0": {"1-5ms": {"count": 2, "ms": 3.1}}}} for w in ("before", "after")}
    return s


def test_a_factor_opens_with_its_comparison_floor_and_host_noise(tmp_path: Path):
    s = factor_summary(random.Random(4), 6, cpu_ratio=1.3)
    store.ResultsDir(tmp_path).save_summary(s)
    (tmp_path / render.FLOORS_FILE).write_text(json.dumps(
        {"cpu_us_per_request": {"pct": 4.2, "rounds": 6, "sd_log": 0.03, "metric": "cpu_us_per_request"}}))
    paths = render.build(tmp_path)
    md = paths.md.read_text()
    assert md.index("## The answer: server.work_us against 0") < md.index("## Verdicts")
    at = "| arch=reuseport threads=1 connections=64 | 3 |"
    rows = [line for line in md.splitlines() if line.startswith(at)]
    cpu = next(r for r in rows if "CPU µs/request" in r)
    assert "| 1.3" in cpu and cpu.endswith("| 6 | floor 4.2% at 6 rounds | **costlier** |")
    qps = next(r for r in rows if "| req/s |" in r)
    assert qps.endswith("| 6 | not measured | **not resolved here (interval \u00b1" + qps.split("\u00b1")[1])
    answer = md[md.index("## The answer"):md.index("## Verdicts")]
    assert "Host noise beside the floor" in answer
    assert "before the windows: pinned CPUs busy cpu0 3%" in answer
    assert "_Rounds: all 6 planned rounds run._" in answer and "No noise floor measured" not in answer
    assert "Warning" not in answer  # no SLO here: nothing to warn about


def test_an_slo_near_the_host_pauses_is_warned_about(tmp_path: Path):
    s = factor_summary(random.Random(4), 2, cpu_ratio=1.0)
    s["capacity"] = [{"arch": "reuseport", "server_threads": 1, "connections": 64, "capacity": 1000.0,
                      "bound": "found", "slo": "p99 <= 2 ms, achieved >= 99% of target, errors <= 0.1%",
                      "steps": []}]
    store.ResultsDir(tmp_path).save_summary(s)
    md = render.build(tmp_path).md.read_text()
    assert md.count("> **Warning:** the SLO p99 <= 2 ms lies near this host's pauses (up to 5 ms") == 1
    s["capacity"][0]["slo"] = "p99 <= 50 ms, errors <= 0.1%"
    store.ResultsDir(tmp_path).save_summary(s)
    assert "lies near this host's pauses" not in render.build(tmp_path).md.read_text()
