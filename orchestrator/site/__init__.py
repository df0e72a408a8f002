"""`orchestrate publish --site DIR`: a static dashboard of the history (asv's idea).

One index.html with, per scenario and matrix point, QPS, p99 and (where runs measured
it) capacity over the complete runs, oldest to newest. Every run's dot links to its
report (copied into the site, so the site is self-contained and opens from a file or
any static host), with a bar for its 95% interval over its repetitions; the noise floor
measured on these hosts (`orchestrate noise`) is a grey band around the series' median, and
the y-axis spans at least +-max(10%, 2 x floor) of it, so noise is never drawn as a cliff
(two nights 1.2% apart take a few percent of the height, not all of it); change points
(history/changepoint.py) are drawn as a dashed line
with the shift, and runs the regression gate failed are red. Inline SVG and CSS only:
no script, no server, nothing fetched.
"""

from __future__ import annotations

import html
import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import stats
from orchestrator.compare import label as _label  # the point as gates name it: a failed gate marks its dots
from orchestrator.history import History, changepoint
from orchestrator.records import Summary
from orchestrator.store import atomic_write, load_summary

W, H = 760, 200  # one chart
PAD_L, PAD_R, PAD_T, PAD_B = 70, 20, 26, 34
SHIFT_COLOUR = "#dd6b20"
FAIL_COLOUR = "#c53030"
LINE_COLOUR = "#2b6cb0"
BAND_COLOUR = "#e2e8f0"
MIN_SPAN = 0.10  # the y-axis spans at least +-10% of the series' median (or +-2 x the floor)


@dataclass(frozen=True)
class Run:
    session: dict[str, Any]
    report: str | None  # the report's path inside the site
    gate: dict[str, Any] | None


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def axis_range(values: list[float], floor_pct: float = 0.0) -> tuple[float, float]:
    """The y-axis: the values (and their intervals) with a margin, and never narrower than
    +-max(MIN_SPAN, 2 x floor) around their median, so a difference inside the noise stays a
    small fraction of the height."""
    lo, hi = min(values), max(values)
    span = hi - lo
    lo, hi = lo - span * 0.15, hi + span * 0.15
    centre = statistics.median(values)
    half = abs(centre) * max(MIN_SPAN, 2 * floor_pct / 100) or 1e-9
    return min(lo, centre - half), max(hi, centre + half)


def _chart(title: str, unit: str, series: list[changepoint.Entry], values: list[float | None],
           runs: dict[str, Run], shifts: list[changepoint.Shift], point_label: str, kind: str,
           intervals: list[tuple[float, float] | None] | None = None, floor_pct: float = 0.0) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return ""
    intervals = intervals or [None] * len(values)
    bars = [iv for iv in intervals if iv is not None]
    lo, hi = axis_range(known + [b for iv in bars for b in iv], floor_pct)
    n = len(series)

    def x(i: int) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))

    out = [f'<svg class="chart" data-kind="{kind}" data-point="{html.escape(point_label)}" '
           f'width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>',
           f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}" '
           'fill="#fafafa" stroke="#ddd"/>']
    if floor_pct:
        centre = statistics.median(known)
        top, bottom = y(centre * (1 + floor_pct / 100)), y(centre * (1 - floor_pct / 100))
        out.append(f'<rect class="floor-band" x="{PAD_L}" y="{top:.1f}" width="{W - PAD_L - PAD_R}" '
                   f'height="{bottom - top:.1f}" fill="{BAND_COLOUR}"><title>noise floor: '
                   f'\u00b1{floor_pct:.1f}% around the median (orchestrate noise, these hosts)'
                   '</title></rect>')
    for frac in (0, 0.5, 1):
        tick = lo + (hi - lo) * frac
        out.append(f'<text x="{PAD_L - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">'
                   f'{_fmt(tick)}</text>')
    out.append(f'<text x="{PAD_L}" y="{PAD_T - 10}" class="tick">{unit}</text>')
    for i in sorted({0, n - 1, n // 2}):
        anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
        out.append(f'<text x="{x(i):.1f}" y="{H - 12}" text-anchor="{anchor}" class="tick">'
                   f'{html.escape(series[i].started[:10])}</text>')
    out += _shift_marks(shifts, x)
    for i, (e, iv) in enumerate(zip(series, intervals, strict=True)):
        if iv is not None:
            out.append(f'<line class="interval" data-run="{html.escape(e.results_id)}" x1="{x(i):.1f}" '
                       f'x2="{x(i):.1f}" y1="{y(iv[0]):.1f}" y2="{y(iv[1]):.1f}" stroke="{LINE_COLOUR}" '
                       f'stroke-opacity="0.45" stroke-width="2"><title>{html.escape(e.results_id)}: 95% '
                       f'interval {_fmt(iv[0])} - {_fmt(iv[1])} {unit} over its repetitions</title></line>')
    pts = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
    out.append('<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>'.format(
        LINE_COLOUR, " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)))
    out += _run_dots(series, values, runs, point_label, unit, x, y)
    out.append("</svg>")
    return "\n".join(out)


def _repetitions(summaries: list[Summary]) -> dict[tuple[str, Any, str], list[float]]:
    """(scenario, point, results id) -> that run's QPS over its repetitions."""
    out: dict[tuple[str, Any, str], list[float]] = {}
    for s in summaries:
        for r in s.runs if not s.capacity else ():
            if r.qps is not None:
                out.setdefault((str(s.scenario), r.key, str(s.run_id)), []).append(r.qps)
    return out


def _iv(values: list[float] | None) -> tuple[float, float] | None:
    found = stats.mean_interval(values) if values else None
    return (found[1], found[2]) if found else None


def _floors(history: History) -> dict[str, Any]:
    """scenario -> the newest noise floor measured for it (any hosts: the dashboard is one
    history, usually one machine's)."""
    from orchestrator.noise import NoiseFloor

    out: dict[str, Any] = {}
    try:
        found = [NoiseFloor.from_dict(f) for f in history.floors().values()]
    except Exception:  # an older history without floors: draw without the band
        return out
    for f in sorted(found, key=lambda f: (f.started, f.results_id)):
        out[f.scenario] = f
    return out


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 15px; }
.tick { font-size: 11px; fill: #555; } .shift-label { font-size: 12px; font-weight: bold; }
table { border-collapse: collapse; margin: 8px 0 24px; }
td, th { padding: 3px 8px; border-bottom: 1px solid #eee; }
.fail { color: #c53030; font-weight: bold; } .shiftnote { color: #dd6b20; }
.legend span { margin-right: 16px; }
"""


def _shift_marks(shifts: list[changepoint.Shift], x: Callable[[int], float]) -> list[str]:
    """A chart's change points: a dashed line and its percentage between the runs either side."""
    out: list[str] = []
    for sh in shifts:  # drawn between the last run before and the first run after
        sx = (x(sh.index - 1) + x(sh.index)) / 2
        out.append(f'<line class="shift" data-run="{html.escape(sh.results_id)}" '
                   f'data-change="{sh.change_pct:.1f}" x1="{sx:.1f}" x2="{sx:.1f}" y1="{PAD_T}" '
                   f'y2="{H - PAD_B}" stroke="{SHIFT_COLOUR}" stroke-width="2" stroke-dasharray="5 3">'
                   f'<title>change point at {html.escape(sh.results_id)}: {sh.change_pct:+.1f}% '
                   f'({_fmt(sh.before)} -> {_fmt(sh.after)} req/s)</title></line>')
        out.append(f'<text class="shift-label" x="{sx + 4:.1f}" y="{PAD_T + 12}" fill="{SHIFT_COLOUR}">'
                   f'{sh.change_pct:+.1f}%</text>')
    return out


def _run_dots(series: list[changepoint.Entry], values: list[float | None], runs: dict[str, Run],
              point_label: str, unit: str, x: Callable[[int], float],
              y: Callable[[float], float]) -> list[str]:
    """A chart's runs: one dot each, red where the gate failed, linked to the run's report."""
    out: list[str] = []
    for i, (e, v) in enumerate(zip(series, values, strict=True)):
        if v is None:
            continue
        run = runs.get(e.results_id)
        failed = bool(run and run.gate and point_label in (run.gate.get("regressed") or []))
        dot = (f'<circle class="run{" gate-failure" if failed else ""}" '
               f'data-run="{html.escape(e.results_id)}" cx="{x(i):.1f}" cy="{y(v):.1f}" '
               f'r="{5 if failed else 3.5}" '
               f'fill="{FAIL_COLOUR if failed else LINE_COLOUR}"><title>{html.escape(e.results_id)} '
               f'({html.escape(e.started)}): {_fmt(v)} {unit}'
               f'{" - REGRESSION (gate failed)" if failed else ""}</title></circle>')
        if run and run.report:
            dot = f'<a href="{html.escape(run.report)}">{dot}</a>'
        out.append(dot)
    return out


def _copy_reports(history: History, site: Path, sessions: list[dict[str, Any]],
                  gates: dict[str, dict[str, Any]]) -> tuple[dict[str, Run], list[Summary]]:
    """Each session's Run (its report copied into the site) and the complete runs' summaries."""
    runs: dict[str, Run] = {}
    summaries: list[Summary] = []
    for s in sessions:
        report = None
        folder = history.folder(s, files=("summary.json", "report.html")) if s["status"] == "complete" \
            else None
        if folder is not None:
            summaries.append(load_summary(folder))
            if (folder / "report.html").is_file():
                rel = Path("runs") / s["scenario"] / s["results_id"] / "report.html"
                (site / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / "report.html", site / rel)
                report = rel.as_posix()
        runs[s["results_id"]] = Run(s, report, gates.get(s["results_id"]))
    return runs, summaries


def _runs_table(sessions: list[dict[str, Any]], name: str, runs: dict[str, Run]) -> list[str]:
    """One scenario's table of runs, newest first, with the gate's outcome; closes its section."""
    body: list[str] = []
    body.append('<table class="runs"><tr><th>started</th><th>run</th><th>status</th><th>gate</th></tr>')
    for s in reversed([s for s in sessions if s["scenario"] == name]):
        run = runs[s["results_id"]]
        rid = html.escape(s["results_id"])
        link = f'<a href="{html.escape(run.report)}">{rid}</a>' if run.report else rid
        gate = ""
        if run.gate is not None:
            bad = run.gate.get("regressed") or []
            gate = (f'<span class="fail">REGRESSION: {html.escape(", ".join(bad))}</span>' if bad
                    else f"passed (&le;{run.gate.get('threshold_pct', '?')}% drop)")
        body.append(f"<tr><td>{html.escape(s.get('started') or '-')}</td><td>{link}</td>"
                    f"<td>{html.escape(s.get('status') or '-')}</td><td>{gate}</td></tr>")
    body.append("</table></section>")
    return body


def publish(history: History, site: Path, *, scenario: str | None = None) -> Path:
    """Write site/index.html (and site/runs/<scenario>/<id>/report.html); returns index.html."""
    sessions = list(reversed(history.sessions(scenario=scenario, limit=1_000_000)))  # oldest first
    gates = history.gates()
    runs, summaries = _copy_reports(history, site, sessions, gates)
    by_point = changepoint.entries(summaries)
    spread = _repetitions(summaries)
    floors = _floors(history)

    body = [f"<h1>orchestrate: history</h1><p>{len(sessions)} runs from {html.escape(history.where)}. "
            "Each dot is one run's median over its repetitions and links to its report; "
            f'<span style="color:{SHIFT_COLOUR}">dashed lines</span> are change points (where the '
            f'series shifted, and by how much); <span style="color:{FAIL_COLOUR}">red dots</span> are '
            "runs the regression gate failed.</p>"]
    for name in sorted({s["scenario"] for s in sessions}):
        body.append(f'<section class="scenario" data-scenario="{html.escape(name)}">'
                    f"<h2>{html.escape(name)}</h2>")
        for (scn, point), series in by_point.items():
            if scn != name:
                continue
            label = _label(point)
            shifts = changepoint.shifts(series)
            body.append(f'<div class="point" data-point="{html.escape(label)}"><h3>{html.escape(label)}</h3>')
            for sh in shifts:
                body.append(f'<p class="shiftnote">change point at run {html.escape(sh.results_id)}: '
                            f"{sh.change_pct:+.1f}% ({_fmt(sh.before)} -> {_fmt(sh.after)} req/s, "
                            f"p={sh.p_value:.2g})</p>")
            searched = any(e.qps is None for e in series)  # change points are on capacity then
            floor = floors.get(name)
            qps_iv = [_iv(spread.get((name, point, e.results_id))) for e in series]
            n = statistics.median([e.n for e in series]) if series else 0
            floor_pct = floor.floor(max(2, int(n))).pct if floor and floor.floor(max(2, int(n))) else 0.0
            body.append(_chart(f"{label}: QPS", "req/s", series, [e.qps for e in series], runs,
                               [] if searched else shifts, label, "qps", qps_iv, floor_pct))
            body.append(_chart(f"{label}: p99 latency", "p99 ms", series, [e.p99_ms for e in series], runs,
                               [], label, "p99"))
            body.append(_chart(f"{label}: capacity", "req/s", series, [e.capacity for e in series],
                               runs, shifts if searched else [], label, "capacity"))
            body.append("</div>")
        body += _runs_table(sessions, name, runs)
    if not sessions:
        body.append(f"<p>No runs recorded in {html.escape(history.where)} yet.</p>")
    page = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>orchestrate: history</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    index = site / "index.html"
    atomic_write(index, page)
    return index
