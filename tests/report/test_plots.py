"""Each chart: PNG bytes from a summary, or None when there is nothing to plot; never an exception.
The summaries are recorded real runs analysed by the real analysis (report_fixtures.py)."""

from __future__ import annotations

import matplotlib
import matplotlib.figure
import pytest
from report_checks import assert_png, png_size

from orchestrator import analysis
from orchestrator.records import Analysis, CpuCost, Latency, Rate, Run, Summary
from orchestrator.report import plots

from testkit import run_record, session

CHART_FUNCS = {key: fn for key, _title, fn, _caption in plots.CHARTS}
CLOSED_LOOP = [k for k in CHART_FUNCS if k not in plots.OPEN_LOOP_CHARTS]
# wrk has no per-thread counters to draw for a 1-thread server, and the open-loop run has one
OPEN_LOOP = [k for k in CHART_FUNCS if k != "thread_balance"]


def test_agg_backend_selected():
    assert matplotlib.get_backend().lower() == "agg"


@pytest.mark.parametrize("key", CLOSED_LOOP)
def test_chart_from_a_recorded_closed_loop_run(key: str, closed_summary: Summary):
    png = CHART_FUNCS[key](closed_summary)
    assert png is not None
    assert_png(png, min_width=800)


@pytest.mark.parametrize("key", OPEN_LOOP)
def test_chart_from_a_recorded_open_loop_run(key: str, open_summary: Summary):
    png = CHART_FUNCS[key](open_summary)
    assert png is not None
    assert_png(png, min_width=800)


def test_open_loop_charts_need_a_rate(closed_summary: Summary):
    assert all(CHART_FUNCS[k](closed_summary) is None for k in plots.OPEN_LOOP_CHARTS)


def test_charts_of_an_old_summary_draw_what_the_records_hold(old_summary: Summary):
    drawn = {k for k, fn in CHART_FUNCS.items() if fn(old_summary) is not None}
    # QPS, latency and the server's own counters are in every record; the rest needs the analysis.
    assert drawn == {"qps_by_threads", "point_summary", "latency_percentiles", "thread_balance"}


# a run always has its point and QPS (records.Run): these two charts draw from them alone
QPS_CHARTS = ("qps_by_threads", "point_summary")
NOTHING: list[Summary] = [
    Summary(**session()),
    Summary(**session(), runs=(Run.model_validate(run_record(run_id="x")),)),
    Summary(**session(), runs=(Run.model_validate(run_record(run_id="x", analysis=Analysis())),)),
    Summary(**session(), runs=(Run.model_validate(run_record(
        run_id="x", latency_ms=None, server_counters=None,
        analysis={"packet_rate": {"rx": None, "tx": None}, "server_cpu_split_pct": None,
                  "cpu_us_per_request": None})),)),
]


@pytest.mark.parametrize("summary", NOTHING)
@pytest.mark.parametrize("key", [k for k in CHART_FUNCS if k not in QPS_CHARTS])
def test_chart_with_nothing_to_plot_is_none(key: str, summary: Summary):
    assert CHART_FUNCS[key](summary) is None


@pytest.mark.parametrize("key", QPS_CHARTS)
def test_qps_chart_without_runs_is_none(key: str):
    assert CHART_FUNCS[key](Summary(**session())) is None


@pytest.mark.parametrize("key", CLOSED_LOOP)
def test_chart_with_one_run_and_holes(key: str, closed_summary: Summary):
    """One run whose analysis is half None: the chart draws what is there."""
    run = closed_summary.runs[1]  # 2 server threads, so it has a balance to draw
    a = run.analysis
    assert a is not None and a.packet_rate and a.server_cpu_split_pct
    holed = a.model_copy(update={
        "packet_rate": a.packet_rate.model_copy(update={"tx": None}), "ceiling_pps": None,
        "ceiling_use": None, "server_cpu_split_pct": a.server_cpu_split_pct.model_copy(update={"soft": None}),
        "client_busy_pct": None, "cpu_us_per_request": CpuCost(usr=1.0, sys=3.0, soft=None, total=None)})
    run = Run.model_validate({**run.to_json(), "analysis": holed.to_json(),
                              "latency_ms": {**run.latency_ms.to_json(), "max": None}})
    png = CHART_FUNCS[key](Summary(**session(), runs=(run,)))
    assert png is not None, key
    assert_png(png)


def test_points_derived_from_runs_are_the_analysis_points(closed_summary: Summary):
    """One definition of a point: what the report derives for a summary without points is what
    the analysis wrote."""
    derived = plots.points(closed_summary.model_copy(update={"points": ()}))
    assert len(derived) == len(closed_summary.points) == 4
    assert derived == list(closed_summary.points)
    p = derived[0]
    rs = plots.runs_at(closed_summary, p)
    assert p.n == len(rs) == 2 and p.qps_min == min(r.qps or 0 for r in rs)
    assert p.latency_ms and p.latency_ms.p99 == pytest.approx(sum(r.latency_ms.p99 or 0 for r in rs) / 2)


def test_points_prefers_the_analysis(closed_summary: Summary):
    first = closed_summary.points[0].model_copy(update={"qps_median": 1.0})
    s = closed_summary.model_copy(update={"points": (first, *closed_summary.points[1:])})
    assert plots.points(s)[0].qps_median == 1.0


def test_several_connection_counts_make_separate_series(closed_summary: Summary):
    runs = [r.model_copy(update={"connections": 128}) if r.repetition == 1 else r
            for r in closed_summary.runs]
    s = Summary(**session(), runs=tuple(runs))
    assert len(plots.points(s)) == 8
    assert_png(plots.qps_by_threads(s) or b"")


def test_num():
    assert plots.num(True) is None and plots.num("1") is None and plots.num(float("nan")) is None
    assert plots.num(3) == 3.0 and plots.num(None) is None


def test_open_loop_curves_and_their_knee():
    def run(rate: float, p99: float) -> Run:
        return Run(**run_record(connections=16, qps=rate * 0.999,
                                rate=Rate(target=rate, achieved=rate * 0.999, sustained=True),
                                latency_ms=Latency(p50=p99 / 4, p75=p99 / 3, p90=p99 / 2, p99=p99,
                                                   p99_9=p99 * 2, p99_99=p99 * 3, p99_999=p99 * 4,
                                                   max=p99 * 5)))

    summary = Summary(**session(), runs=(run(1000, 0.3), run(2000, 0.35), run(4000, 0.5), run(8000, 9.0),
                                         run(9000, 90.0)))
    (curve,) = plots._open_loop_curves(summary).values()
    assert [round(r) for r, _ in curve] == [999, 1998, 3996, 7992, 8991]
    assert plots.knee(curve) == 2  # 0.5 ms is within 2x of the 0.3 ms floor; 9 ms is not
    for chart in (plots.latency_vs_rate, plots.percentile_spectrum):
        assert_png(chart(summary))
    closed = Summary(**session(), runs=(run(1000, 0.3).model_copy(update={"rate": None}),))
    assert plots.latency_vs_rate(closed) is None and plots.percentile_spectrum(closed) is None


def test_the_recorded_open_loop_run_has_its_knee(open_summary: Summary):
    (curve,) = plots._open_loop_curves(open_summary).values()
    assert len(curve) == 3 and [round(r, -3) for r, _ in curve] == sorted(round(r, -3) for r, _ in curve)
    assert analysis.summarise_points(open_summary.runs) == list(open_summary.points)


def _legend_figure(anchor_x: float) -> matplotlib.figure.Figure:
    """A chart-sized figure whose legend sits outside its axes, `anchor_x` axes widths across."""
    fig = plots._figure(0)
    ax = fig.axes[0]
    ax.plot([1, 2, 3], [3, 1, 2], label="a legend entry with a long name")
    ax.set_title("a title")
    ax.legend(loc="upper left", bbox_to_anchor=(anchor_x, 1.0))
    return fig


def test_one_draw_crops_as_savefig_tight_does():
    """_png draws once and crops to the drawn pixels plus PAD_IN; savefig's tight box measures
    text boxes (a little wider than their ink), then draws again: the same picture size."""
    import io

    one = png_size(plots._png(_legend_figure(1.01)))
    buf = io.BytesIO()
    _legend_figure(1.01).savefig(buf, format="png", dpi=plots.DPI, bbox_inches="tight")
    tight = png_size(buf.getvalue())
    assert one[0] > plots.DPI * 10  # the legend outside the 10-inch figure is in the picture
    assert abs(one[0] - tight[0]) <= 12 and abs(one[1] - tight[1]) <= 12, (one, tight)


def test_a_legend_beyond_the_room_is_still_drawn():
    far = plots._png(_legend_figure(1.6))  # ~4.6 in beyond the axes: past ROOM_IN
    assert_png(far)
    assert png_size(far)[0] > plots.DPI * (10 + plots.ROOM_IN)



@pytest.mark.slow  # 6 s: two placements compared, not breakage (the fast tier draws charts elsewhere)
@pytest.mark.parametrize("which", ["closed_summary", "open_summary"])
def test_titles_sit_where_matplotlibs_own_placement_puts_them(which: str, request: pytest.FixtureRequest,
                                                              monkeypatch: pytest.MonkeyPatch):
    """RC fixes each title at its axes' top (placing it cost a quarter of a chart's draw); the
    pixels must be those of matplotlib's own placement, which moves a title up when something
    drawn above the axes would collide with it."""
    import io

    import numpy as np
    from PIL import Image

    summary = request.getfixturevalue(which)
    fixed = {key: draw(summary) for key, _, draw, _ in plots.CHARTS}
    assert plots.RC["axes.titley"] == 1.0 and matplotlib.rcParams["axes.titley"] is None
    monkeypatch.setattr(plots, "RC", {k: v for k, v in plots.RC.items() if k != "axes.titley"})
    drawn = [key for key, png in fixed.items() if png is not None]
    assert len(drawn) >= 3
    for key, _, draw, _ in plots.CHARTS:
        if key in drawn:
            a, b = (np.asarray(Image.open(io.BytesIO(png))) for png in (fixed[key], draw(summary)))
            assert a.shape == b.shape and (a == b).all(), key
