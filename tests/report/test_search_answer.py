"""A capacity search's report opens with its answer: each point's capacity under the SLO (with
the interval and the spread of its repeated searches) and the latency curve it was found on,
before the per-run verdict table. The searches are a recorded bench result
(bench/capacity_search-p99-2ms-10s-pooled.json: one point searched twice, 97,500 and 90,000 req/s)."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator import stats, store
from orchestrator.report import render

from testkit import run_record, session

BENCH = Path(__file__).resolve().parents[2] / "bench" / "capacity_search-p99-2ms-10s-pooled.json"


def recorded_search_summary() -> dict:
    """The bench's two searches as a run records them: one capacity record per search and one
    open-loop run per rate it tried (step: rate, passed, runs, p99 ms)."""
    searches = json.loads(BENCH.read_text())["rounds"][0]["searches"]
    runs, capacity = [], []
    for rep, s in enumerate(searches, start=1):
        steps = [{"rate": rate, "passed": ok, "achieved": rate if ok else rate * 0.97,
                  "run_ids": [f"{rep}-{rate:.0f}-{i}" for i in range(n)]} for rate, ok, n, _ in s["steps"]]
        capacity.append({"arch": "reuseport", "server_threads": 1, "connections": 64, "repetition": rep,
                         "capacity": s["capacity"], "bound": s["bound"], "runs": s["runs"],
                         "evidence": s["evidence"], "slo": "p99 <= 2 ms, achieved >= 99% of target",
                         "steps": steps})
        for rate, ok, _, p99 in s["steps"]:
            achieved = rate if ok else rate * 0.97
            runs.append(run_record(
                run_id=f"{rep}-{rate:.0f}", repetition=rep, qps=achieved,
                rate={"target": rate, "achieved": achieved},
                latency_ms={"p50": p99 / 3, "p99": p99, "p99_9": p99 * 2},
                analysis={"verdict": "server-cpu-bound", "flags": ["a flag on every run"]}))
    return session(scenario="capacity", run_id="r", runs=runs, capacity=capacity)


def test_a_search_opens_with_its_capacity_and_curve(tmp_path: Path):
    store.ResultsDir(tmp_path).save_summary(recorded_search_summary())
    paths = render.build(tmp_path)
    md = paths.md.read_text()
    head = "## The answer: capacity under the SLO (p99 <= 2 ms, achieved >= 99% of target)"
    assert md.index(head) < md.index("![Latency against throughput](plots/latency_vs_rate.png)") \
        < md.index("## Verdicts") < md.index("## Capacity under the SLO")
    row = next(line for line in md.splitlines() if line.startswith("| reuseport threads=1 conns=64 |"))
    mean, lo, hi = stats.mean_interval([97_500, 90_000])
    assert row == ("| reuseport threads=1 conns=64 | **93,750 (median)** | 2 | "
                   f"{mean:,.0f} [{lo:,.0f}, {hi:,.0f}] | 90,000 – 97,500 (8.3%) | found ×2 |")
    assert lo < 90_000 and hi > 97_500  # two searches: an honest, wide interval
    assert (tmp_path / "plots" / "latency_vs_rate.png").is_file()
    html = paths.html.read_text()
    assert html.index('id="search-answer-section"') < html.index('id="search-curve"') \
        < html.index('id="verdict-section"') < html.index('id="capacity-section"')


def test_one_search_gives_its_capacity_without_an_interval(tmp_path: Path):
    s = recorded_search_summary()
    s["capacity"] = s["capacity"][:1]
    store.ResultsDir(tmp_path).save_summary(s)
    md = render.build(tmp_path).md.read_text()
    row = next(line for line in md.splitlines() if line.startswith("| reuseport threads=1 conns=64 |"))
    assert row == "| reuseport threads=1 conns=64 | **97,500** | 1 | - | - | found |"


def test_no_search_no_search_answer(tmp_path: Path):
    s = recorded_search_summary()
    s["capacity"] = []
    store.ResultsDir(tmp_path).save_summary(s)
    assert "capacity under the SLO" not in render.build(tmp_path).md.read_text()
