"""Capacity as the metric of compare and of the regression gate (load.search results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator import compare, records

from testkit import orchestrate, run_record, session


def _summary(run_id: str, capacities: list[float | None], qps: float = 50_000) -> dict:
    searches = [{"arch": "reuseport", "server_threads": 1, "connections": 64, "repetition": i + 1,
                 "capacity": c, "bound": "found" if c else "below min_rate", "evidence": "x",
                 "steps": [{"rate": c or 1000, "passed": bool(c), "run_ids": [f"{i:03d}"]}]}
                for i, c in enumerate(capacities)]
    # the searches' runs are at rates the searches chose: their QPS is no metric
    runs = [run_record(run_id=f"{i:03d}", qps=qps + i, rate={"target": 1000.0 * (i + 1), "achieved": qps})
            for i in range(len(capacities))]
    return session(version=records.FORMAT_VERSION, scenario="capacity", run_id=run_id, runs=runs,
                   capacity=searches)


def test_capacity_is_the_metric_when_both_sides_searched():
    a = records.load(_summary("a", [40_000, 41_000, 40_500]))
    b = records.load(_summary("b", [34_000, 34_500, 33_800]))
    c = compare.compare(a, b, names=("a", "b"))
    (ch,) = c.changes
    assert ch.metric == "capacity" and tuple(ch.point.values()) == ("reuseport", 1, 64, None)
    assert ch.before == (40_000, 41_000, 40_500) and ch.word == "worse"
    assert round(ch.change_pct, 1) == -15.8  # geometric means 40,498 -> 34,098
    assert "req/s capacity" in ch.line()
    assert c.regressions(10) == [ch]
    # asked for QPS instead: the searches' run points, each at its own rate
    q = compare.compare(a, b, names=("a", "b"), metric="qps")
    assert all(x.metric == "qps" for x in q.changes) and len(q.changes) == 3


def test_a_search_that_found_nothing_counts_zero_and_one_side_without_searches_warns():
    a = records.load(_summary("a", [40_000, 41_000, 40_500]))
    b = records.load(_summary("b", [None, None, None]))
    (ch,) = compare.compare(a, b).changes
    assert ch.after == (0.0, 0.0, 0.0) and ch.word == "worse" and ch.ratio is None
    plain = records.load({**_summary("p", [1.0]), "capacity": []})
    assert compare.metric_of(a, plain) == "qps"
    c = compare.compare(a, plain, metric="capacity", names=("a", "p"))
    assert any("p has no capacity search" in w for w in c.warnings)


def test_cli_compare_on_capacity(tmp_path: Path):
    for name, caps in (("a", [40_000, 41_000, 40_500]), ("b", [40_200, 40_800, 40_400])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(_summary(name, caps)))
    done = orchestrate("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--metric", "capacity",
                       "--history", str(tmp_path / "h.sqlite"))
    assert done.returncode == 0, done.stderr
    assert "req/s capacity" in done.stdout and "not resolved here (interval" in done.stdout


def _grid(run_id: str, capacities: list[float], step: float = 0.02) -> dict:
    """Searches that each stopped on a grid: the capacity passed, one step above it failed."""
    s = _summary(run_id, capacities)
    for search, c in zip(s["capacity"], capacities, strict=True):
        search["steps"] = [{"rate": c, "passed": True}, {"rate": c * (1 + step), "passed": False}]
    return s


def test_a_capacity_on_a_grid_never_gets_a_zero_width_interval():
    """Equal repetitions are common on a search's grid: the interval is at least one step wide
    and the p-value counts the grid's rounding error, so equal capacities are not resolved and
    a drop of many steps is called with a finite p."""
    a = records.load(_grid("a", [40_000, 40_000, 40_000]))
    (same,) = compare.compare(a, records.load(_grid("b", [40_000, 40_000, 40_000]))).changes
    assert same.ratio.low == pytest.approx(1 / 1.02) and same.ratio.high == pytest.approx(1.02)
    assert same.word.startswith("not resolved here")
    (one_step,) = compare.compare(a, records.load(_grid("b", [40_800] * 3))).changes
    assert not one_step.significant  # one grid step: inside the interval's least width
    (drop,) = compare.compare(a, records.load(_grid("b", [34_000, 34_000, 34_000]))).changes
    assert drop.word == "worse" and 0 < drop.ratio.p_value < 0.05 and drop.ratio.high < 0.87
