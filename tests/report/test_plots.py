"""Each chart: PNG bytes from a summary, or None when there is nothing to plot; never an exception."""

from __future__ import annotations

import copy
from typing import Any

import matplotlib
import pytest
from report_checks import assert_png
from report_fixtures import fabricate_analysis

from orchestrator.report import plots

CHART_FUNCS = {key: fn for key, _title, fn, _caption in plots.CHARTS}
# the sample is a closed-loop run: the open-loop charts have nothing to draw from it
CLOSED_LOOP = [k for k in CHART_FUNCS if k not in plots.OPEN_LOOP_CHARTS]


def test_agg_backend_selected():
    assert matplotlib.get_backend().lower() == "agg"


@pytest.mark.parametrize("key", CLOSED_LOOP)
def test_chart_from_analysed_real_summary(key: str, real_summary: dict[str, Any]):
    png = CHART_FUNCS[key](fabricate_analysis(real_summary))
    assert png is not None
    assert_png(png, min_width=800)


def test_charts_without_analysis_draw_what_the_records_hold(real_summary: dict[str, Any]):
    drawn = {k for k, fn in CHART_FUNCS.items() if fn(real_summary) is not None}
    # QPS, latency and the server's own counters are in every record; the rest needs the analysis.
    assert drawn == {"qps_by_threads", "point_summary", "latency_percentiles", "thread_balance"}


NOTHING: list[dict[str, Any]] = [
    {},
    {"runs": None, "points": None},
    {"runs": []},
    {"runs": [{"run_id": "x"}]},
    {"runs": [{"run_id": "x", "qps": None, "latency_ms": None, "analysis": None, "server_counters": None}]},
    {"runs": [{"run_id": "x", "qps": "fast", "analysis": {"packet_rate": {"rx": None, "tx": None},
                                                           "server_cpu_split_pct": None,
                                                           "cpu_us_per_request": {}}}]},
    {"runs": ["not a dict", 3], "points": ["junk"]},
]


@pytest.mark.parametrize("summary", NOTHING)
@pytest.mark.parametrize("key", list(CHART_FUNCS))
def test_chart_with_nothing_to_plot_is_none(key: str, summary: dict[str, Any]):
    assert CHART_FUNCS[key](summary) is None


@pytest.mark.parametrize("key", CLOSED_LOOP)
def test_chart_with_one_run_and_holes(key: str, real_summary: dict[str, Any]):
    """One run whose analysis is half None: the chart draws what is there."""
    s = fabricate_analysis(real_summary)
    run = s["runs"][1]  # 2 server threads, so it has a balance to draw
    a = run["analysis"]
    a["packet_rate"]["tx"] = None
    a["ceiling_pps"] = None
    a["ceiling_use"] = None
    a["server_cpu_split_pct"]["soft"] = None
    a["client_busy_pct"] = None
    a["cpu_us_per_request"] = {"usr": None, "sys": 3.0, "soft": None, "total": None}
    run["latency_ms"]["max"] = None
    one = {**s, "runs": [run], "points": None}
    png = CHART_FUNCS[key](one)
    assert png is not None, key
    assert_png(png)


def test_points_derived_from_runs_match_the_analysis_shape(real_summary: dict[str, Any]):
    given = fabricate_analysis(real_summary)["points"]
    derived = plots.points(real_summary)
    assert len(derived) == len(given) == 4
    for d, g in zip(derived, given, strict=True):
        assert set(g) <= set(d)
        for k in ("arch", "server_threads", "connections", "n"):
            assert d[k] == g[k]
        for k in ("qps_median", "qps_min", "qps_max", "qps_mad", "p50_ms_median", "p99_ms_median"):
            assert d[k] == pytest.approx(g[k])


def test_points_prefers_the_analysis(real_summary: dict[str, Any]):
    s = fabricate_analysis(real_summary)
    s["points"][0]["qps_median"] = 1.0
    assert plots.points(s)[0]["qps_median"] == 1.0


def test_several_connection_counts_make_separate_series(real_summary: dict[str, Any]):
    s = copy.deepcopy(real_summary)
    for r in s["runs"][:4]:  # repetition 1 of every point
        r["connections"] = 128
    assert len(plots.points(s)) == 8
    assert_png(plots.qps_by_threads(s) or b"")


def test_num_and_dig():
    assert plots.num(True) is None and plots.num("1") is None and plots.num(float("nan")) is None
    assert plots.num(3) == 3.0
    assert plots.dig({"a": [{"b": 1}]}, "a", 0, "b") == 1
    assert plots.dig({"a": None}, "a", "b") is None
    assert plots.dig({"a": [1]}, "a", 5) is None


def test_open_loop_curves_and_their_knee():
    def run(rate: float, p99: float) -> dict[str, Any]:
        return {"arch": "reuseport", "server_threads": 1, "connections": 16, "qps": rate * 0.999,
                "rate": {"target": rate, "achieved": rate * 0.999, "sustained": True},
                "latency_ms": {"p50": p99 / 4, "p75": p99 / 3, "p90": p99 / 2, "p99": p99,
                               "p99_9": p99 * 2, "p99_99": p99 * 3, "p99_999": p99 * 4, "max": p99 * 5}}

    summary = {"runs": [run(1000, 0.3), run(2000, 0.35), run(4000, 0.5), run(8000, 9.0), run(9000, 90.0)]}
    (curve,) = plots._open_loop_curves(summary).values()
    assert [round(r) for r, _ in curve] == [999, 1998, 3996, 7992, 8991]
    assert plots.knee(curve) == 2  # 0.5 ms is within 2x of the 0.3 ms floor; 9 ms is not
    for chart in (plots.latency_vs_rate, plots.percentile_spectrum):
        assert_png(chart(summary))
    closed = {"runs": [{**run(1000, 0.3), "rate": None}]}
    assert plots.latency_vs_rate(closed) is None and plots.percentile_spectrum(closed) is None
