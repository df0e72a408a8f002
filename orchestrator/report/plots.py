"""The report's charts: one function per chart, a `records.Summary` in, PNG bytes out (None:
nothing to plot).

Charts read only the summary's records (runs, their `analysis`, and `points`), never raw files,
and tolerate any field being None: a chart leaves out what it cannot draw.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # no display on benchmark hosts or CI; must precede any pyplot import anywhere

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402  (after use("Agg") on purpose)
from matplotlib.ticker import FuncFormatter  # noqa: E402
from PIL import Image  # noqa: E402  (matplotlib's own PNG writer)

from orchestrator.analysis import summarise_points  # noqa: E402
from orchestrator.point import PointKey, others, text  # noqa: E402
from orchestrator.records import CapacitySearch, Point, Run, Summary  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

DPI = 110
# One colour per architecture, stable across charts (assigned in order of first appearance).
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
CPU_COLOURS = {"usr": "#4c72b0", "sys": "#dd8452", "soft": "#c44e52"}
PERCENTILES = ("p50", "p75", "p90", "p99", "max")
PCT_COLOURS = ("#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c")
RC: dict[RcKeyType, Any] = {
    "font.size": 10, "axes.titlesize": 12, "axes.titleweight": "bold", "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "grid.linestyle": "-",
    "legend.frameon": False, "axes.axisbelow": True,
    # the title at the axes' top, not placed by matplotlib's search (a tight box of every tick
    # label, a quarter of each chart's draw): nothing of ours sits above an axes to push it up
    # (tests/report/test_plots.py draws both ways and compares the pixels)
    "axes.titley": 1.0,
}


# ---------------------------------------------------------------- data helpers (shared with render.py)

def num(v: Any) -> float | None:
    """A finite number or None: JSON from older or partial runs may hold null, strings or nothing."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def point_key(r: Run | Point) -> PointKey:
    """The record's point (orchestrator/point.py), "?" for an architecture not recorded."""
    return r.key.replace(**{"server.arch": arch_of(r)})


def arch_of(r: Run | Point | CapacitySearch) -> str:
    return str(r.key.get("server.arch") or "?")


def extra(key: PointKey, sep: str = " ") -> str:
    """The axes beyond the classic four, `work_us=5 keepalive=false` ("" when none)."""
    return sep.join(f"{a.rsplit('.', 1)[-1]}={text(v)}" for a, v in others(key).items() if v is not None)


def point_label(p: Run | Point, sep: str = " ") -> str:
    k = p.key
    threads, conns, rate = k.get("server.threads"), k.get("load.connections"), k.get("load.rate")
    more = extra(k, sep)
    t, c = (x if x is not None else "?" for x in (threads, conns))
    return (f"{arch_of(p)}{sep}t{t} c{c}" + (f" @{rate:g}/s" if rate is not None else "")
            + (f"{sep}{more}" if more else ""))


def points(summary: Summary) -> list[Point]:
    """The summary's points, or (a summary saved before any point was) the analysis's own
    summary of its runs: one definition of a point's medians and spread."""
    return list(summary.points) or summarise_points(summary.runs)


def runs_at(summary: Summary, p: Point) -> list[Run]:
    return [r for r in summary.runs if point_key(r) == point_key(p)]


def arch_colours(summary: Summary) -> dict[str, str]:
    archs: list[str] = []
    items: list[Run | Point] = [*summary.runs, *points(summary)]
    for r in items:
        a = arch_of(r)
        if a not in archs:
            archs.append(a)
    return {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(archs)}


# ---------------------------------------------------------------- drawing helpers

def _si(v: float, _pos: Any = None) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


SI = FuncFormatter(_si)


def _figure(n_items: float, height: float = 4.6, per_item: float = 0.55, nrows: int = 1) -> Figure:
    # ~1100 px wide at DPI: the report page's width, so the HTML shows charts 1:1 (sharp, 10 pt text
    # stays legible); wider only when many bars need room, and the page then scales them down.
    width = min(max(10.0, 2.5 + per_item * n_items), 16.0)
    fig = Figure(figsize=(width, height * nrows), dpi=DPI, facecolor="white")
    fig.subplots(nrows, 1, squeeze=False)
    return fig


PAD_IN = 0.1  # the margin kept around the content (savefig's pad_inches)
ROOM_IN = 2.0  # canvas added on each side while drawing: room for what sits outside the axes


def _png(fig: Figure) -> bytes:
    """The figure cropped to what it draws plus PAD_IN of white, as savefig(bbox_inches="tight")
    crops it, from one draw instead of tight's two (one to measure, one at the cropped size).
    The canvas first grows by ROOM_IN on each side, the axes kept where they are in inches, so a
    legend placed outside the axes is drawn, not clipped; the crop is the drawn pixels' box."""
    w, h = fig.get_size_inches()
    big_w, big_h = w + 2 * ROOM_IN, h + 2 * ROOM_IN
    for ax in fig.axes:
        x, y, aw, ah = ax.get_position().bounds
        ax.set_position(((x * w + ROOM_IN) / big_w, (y * h + ROOM_IN) / big_h,
                         aw * w / big_w, ah * h / big_h))
    fig.set_size_inches(big_w, big_h)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    ink = rgba.view(np.uint32)[..., 0] != np.uint32(0xFFFFFFFF)  # all but the opaque white ground
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    pad = round(PAD_IN * DPI)
    buf = io.BytesIO()
    legends = [*fig.legends, *(leg for ax in fig.axes if (leg := ax.get_legend()) is not None)]
    cut = [b for leg in legends if (b := leg.get_window_extent(canvas.get_renderer())).x0 < 0 or b.y0 < 0
           or b.x1 > rgba.shape[1] or b.y1 > rgba.shape[0]]  # (a legend wholly off the canvas has no ink)
    if cut or not rows.size or min(rows.min(), cols.min()) < pad or rows.max() + pad >= rgba.shape[0] \
            or cols.max() + pad >= rgba.shape[1]:  # drawn beyond even the room: measure it
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=PAD_IN)
        return buf.getvalue()
    box = (int(cols.min()) - pad, int(rows.min()) - pad, int(cols.max()) + 1 + pad, int(rows.max()) + 1 + pad)
    Image.fromarray(rgba).crop(box).save(buf, format="png", dpi=(DPI, DPI))
    return buf.getvalue()


def _styled(draw: Callable[..., bytes | None]) -> Callable[[Summary], bytes | None]:
    """Every chart draws inside the report's rc style without touching global matplotlib state."""
    def wrapper(summary: Summary) -> bytes | None:
        with matplotlib.rc_context(RC):
            return draw(summary)
    wrapper.__name__, wrapper.__doc__ = draw.__name__, draw.__doc__
    return wrapper


def _xticks(ax: Any, labels: list[str]) -> None:
    ax.set_xticks(range(len(labels)))
    long = max((len(s) for s in labels), default=0) > 9 or len(labels) > 8
    ax.set_xticklabels(labels, rotation=30 if long else 0, ha="right" if long else "center", fontsize=8.5)
    ax.grid(axis="x", visible=False)


def _offsets(k: int, width: float) -> list[float]:
    return [(i - (k - 1) / 2) * width for i in range(k)]


def _or(v: Any, default: float) -> float:
    f = num(v)
    return default if f is None else f


def _finite(xs: Iterable[Any]) -> list[float]:
    return [v for v in (num(x) for x in xs) if v is not None]


# percentiles the open-loop charts draw, with the percentile each stands for
SPECTRUM = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9, "p99_99": 99.99,
            "p99_999": 99.999}


# ---------------------------------------------------------------- charts

@_styled
def qps_by_threads(summary: Summary) -> bytes | None:
    """QPS by server thread count, one line per architecture: median, min-max band, each repetition."""
    pts = [p for p in points(summary) if num(p.qps_median) is not None and p.server_threads is not None]
    if not pts:
        return None
    colours = arch_colours(summary)
    many_conns = len({p.connections for p in pts}) > 1
    series: dict[tuple[str, Any, str], list[Point]] = {}
    for p in pts:  # one line per architecture, connection count and combination of other axes
        series.setdefault((arch_of(p), p.connections if many_conns else None, extra(p.key, ", ")),
                          []).append(p)
    fig = _figure(0)
    ax = fig.axes[0]
    # colour = architecture, line style and marker = connection count (when the sweep has several)
    conns_order = sorted({c for _, c, _ in series}, key=lambda c: (c is None, c))
    styles, markers = ("-", "--", ":", "-."), "osD^vP*X"
    for (arch, conns, more), ps in series.items():
        ps.sort(key=lambda p: p.server_threads or 0)
        k = conns_order.index(conns)
        x = [p.server_threads or 0 for p in ps]
        med = [p.qps_median or 0.0 for p in ps]
        lo = [_or(p.qps_min, m) for p, m in zip(ps, med, strict=True)]
        hi = [_or(p.qps_max, m) for p, m in zip(ps, med, strict=True)]
        c = colours.get(arch, PALETTE[0])
        label = arch + (f", {conns} conns" if conns is not None else "") + (f", {more}" if more else "")
        ax.fill_between(x, lo, hi, color=c, alpha=0.12, linewidth=0)
        yerr = [[m - a for m, a in zip(med, lo, strict=True)], [b - m for m, b in zip(med, hi, strict=True)]]
        ax.errorbar(x, med, yerr=yerr, color=c, marker=markers[k % len(markers)], markersize=7, linewidth=2,
                    linestyle=styles[k % len(styles)], capsize=4, label=label)
        for p in ps:  # each repetition, so n and outliers are visible
            reps = _finite(r.qps for r in runs_at(summary, p))
            ax.scatter([p.server_threads or 0] * len(reps), reps, s=14, color=c, alpha=0.45, zorder=3,
                       edgecolors="none")
        for xi, m in zip(x, med, strict=True):
            ax.annotate(_si(m), (xi, m), textcoords="offset points", xytext=(8, 4), fontsize=8.5, color=c)
    xs = sorted({p.server_threads or 0 for p in pts})
    ax.set_xticks(xs)
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(SI)
    ax.set_xlabel("server threads")
    ax.set_ylabel("requests / s")
    ax.set_title("Throughput by server thread count (median, min-max band, dots = repetitions)")
    # outside the axes: with several series "best" still lands on a line
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    return _png(fig)


@_styled
def latency_percentiles(summary: Summary) -> bytes | None:
    """Latency percentiles (median over repetitions) per point, log scale so p50 and max both read."""
    rows = []
    for p in points(summary):
        vals = [v if v is not None and v > 0 else None
                for v in (num(p.latency_ms.at(k)) if p.latency_ms else None for k in PERCENTILES)]
        if any(v is not None for v in vals):
            rows.append((point_label(p, "\n"), vals))
    if not rows:
        return None
    fig = _figure(len(rows) * 2)
    ax = fig.axes[0]
    width = 0.8 / len(PERCENTILES)
    for j, (k, off) in enumerate(zip(PERCENTILES, _offsets(len(PERCENTILES), width), strict=True)):
        xs = [i + off for i, (_, v) in enumerate(rows) if v[j] is not None]
        ys = [y for _, v in rows if (y := v[j]) is not None]
        ax.bar(xs, ys, width=width * 0.95, color=PCT_COLOURS[j], label=k, edgecolor="white", linewidth=0.5)
    _xticks(ax, [lbl for lbl, _ in rows])
    ax.set_yscale("log")
    known = [v for _, vs in rows for v in vs if v is not None]
    ax.set_ylim(min(known) / 1.6, max(known) * 4)  # headroom above the tallest bar for the legend
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.set_ylabel("latency, ms (log scale)")
    ax.set_title("Latency percentiles per point (median of repetitions)")
    ax.legend(ncol=len(PERCENTILES), loc="upper left", fontsize=9)
    return _png(fig)


def _open_loop_curves(summary: Summary) -> dict[PointKey, list[tuple[float, dict[str, float]]]]:
    """Open-loop points per point without its rate: (achieved rate, latency percentiles), the
    medians over repetitions, in order of rate."""
    curves: dict[PointKey, list[tuple[float, dict[str, float]]]] = {}
    for p in points(summary):
        key = point_key(p)
        if key["load.rate"] is None or num(p.achieved) is None or p.latency_ms is None:
            continue
        lat = {k: v for k in SPECTRUM if (v := num(p.latency_ms.at(k))) is not None and v > 0}
        if lat:
            curves.setdefault(key.without("load.rate"), []).append((p.achieved or 0.0, lat))
    return {k: sorted(v, key=lambda t: t[0]) for k, v in curves.items()}


def _curve_label(key: PointKey) -> str:
    more = extra(key)
    head = f"{key['server.arch']} t{key['server.threads']} c{key['load.connections']}"
    return head + (f" {more}" if more else "")


def knee(curve: list[tuple[float, dict[str, float]]], factor: float = 2.0) -> int | None:
    """Index of the last point before p99 leaves its floor: the highest rate whose p99 is within
    `factor` of the lowest p99 on the curve (beyond it, queueing takes over)."""
    p99 = [lat.get("p99") for _, lat in curve]
    known = [v for v in p99 if v is not None]
    if len(known) < 2:
        return None
    floor = min(known)
    within = [i for i, v in enumerate(p99) if v is not None and v <= factor * floor]
    return within[-1] if within and within[-1] < len(curve) - 1 else None


@_styled
def latency_vs_rate(summary: Summary) -> bytes | None:
    """Open loop: p50, p99 and p99.9 (from the intended send time) against the achieved rate,
    log latency axis, the knee marked: what a user sees at each rate."""
    curves = _open_loop_curves(summary)
    if not curves or all(len(c) < 2 for c in curves.values()):
        return None
    colours = arch_colours(summary)
    fig = _figure(0)
    ax = fig.axes[0]
    for key, curve in curves.items():
        arch = str(key["server.arch"])
        c = colours.get(arch, PALETTE[0])
        x = [rate for rate, _ in curve]
        for k, style in (("p50", ":"), ("p99", "-"), ("p99_9", "--")):
            ys = [float("nan") if (y := lat.get(k)) is None else y for _, lat in curve]  # a gap
            ax.plot(x, ys, linestyle=style, marker="o", markersize=4, color=c,
                    label=f"{_curve_label(key)} {k.replace('_', '.')}")
        i = knee(curve)
        if i is not None:
            rate, lat = curve[i]
            ax.scatter([rate], [lat["p99"]], s=160, facecolors="none", edgecolors=c, linewidths=2, zorder=5)
            ax.annotate(f"knee ~{_si(rate)}/s", (rate, lat["p99"]), textcoords="offset points",
                        xytext=(8, 10), fontsize=8.5, color=c)
        found = [s.capacity for s in summary.capacity
                 if s.key.replace(**{"server.arch": arch_of(s)}).without("load.rate") == key and s.capacity]
        if found:  # a capacity search's answer: the median over its repetitions
            cap = statistics.median(found)
            ax.axvline(cap, color=c, linestyle="-.", linewidth=1.2)
            ax.annotate(f"capacity {_si(cap)}/s", (cap, 0.02), xycoords=("data", "axes fraction"),
                        textcoords="offset points", xytext=(-6, 4), rotation=90, fontsize=8.5,
                        color=c, ha="right", va="bottom")
    ax.set_yscale("log")
    lats = [v for curve in curves.values() for _, lat in curve for v in lat.values()]
    ax.set_ylim(top=max(lats) * 6)  # headroom above the highest line for the legend
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.xaxis.set_major_formatter(SI)
    ax.set_xlabel("achieved requests / s")
    ax.set_ylabel("latency from intended send, ms (log)")
    ax.set_title("Latency against throughput (open loop)")
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    return _png(fig)


@_styled
def percentile_spectrum(summary: Summary) -> bytes | None:
    """Open loop: latency against percentile on a 1/(1-p) axis (HdrHistogram's plot), one line
    per point, so the tail's shape reads at every rate."""
    curves = _open_loop_curves(summary)
    if not curves:
        return None
    fig = _figure(0)
    ax = fig.axes[0]
    cmap = matplotlib.colormaps["viridis"]
    rows = [(key, rate, lat) for key, curve in curves.items() for rate, lat in curve]
    for j, (key, rate, lat) in enumerate(rows):
        ks = [k for k in SPECTRUM if k in lat]
        x = [1.0 / (1.0 - SPECTRUM[k] / 100.0) for k in ks]
        ax.plot(x, [lat[k] for k in ks], marker="o", markersize=3, color=cmap(j / max(len(rows) - 1, 1)),
                label=f"{_curve_label(key)} @{_si(rate)}/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(top=max(v for _, _, lat in rows for v in lat.values()) * 6)  # room for the legend
    ax.set_xticks([1.0 / (1.0 - SPECTRUM[k] / 100.0) for k in SPECTRUM])
    ax.set_xticklabels([k.replace("_", ".") for k in SPECTRUM], fontsize=8.5)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.set_xlabel("percentile (1/(1-p) scale)")
    ax.set_ylabel("latency from intended send, ms (log)")
    ax.set_title("Percentile spectrum per point (open loop)")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


@_styled
def packet_rate(summary: Summary) -> bytes | None:
    """Server-interface packet rate per direction against the baseline's delivered-pps ceiling."""
    rows = []
    for r in summary.runs:
        a = r.analysis
        rate = a.packet_rate if a else None
        if a is None or rate is None or (num(rate.rx) is None and num(rate.tx) is None):
            continue
        ceiling = num(a.ceiling_pps)
        if ceiling is None:
            ceiling = num(r.baseline.pps_delivered)
        use = a.ceiling_use
        rows.append((r.label, num(rate.rx), num(rate.tx), ceiling, num(use.rx) if use else None,
                     num(use.tx) if use else None))
    if not rows:
        return None
    fig = _figure(len(rows) * 1.2)
    ax = fig.axes[0]
    w = 0.38
    for i, (_lbl, rx, tx, ceiling, urx, utx) in enumerate(rows):
        for off, v, u, c, name in ((-w / 2, rx, urx, "#4c72b0", "rx"), (w / 2, tx, utx, "#55a868", "tx")):
            if v is None:
                continue
            ax.bar(i + off, v, width=w * 0.95, color=c, label=f"achieved {name}" if i == 0 else None)
            if u is not None:
                ax.annotate(f"{u:.0%}", (i + off, v), textcoords="offset points", xytext=(0, 3),
                            ha="center", fontsize=7.5)
        if ceiling is not None:
            ax.hlines(ceiling, i - 0.48, i + 0.48, colors="black", linestyles="--", linewidth=1.5,
                      label="ceiling (baseline delivered pps)" if i == 0 else "_nolegend_")
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles, strict=True))  # a label once even if run 1 lacked a direction
    ax.legend(seen.values(), seen.keys(), loc="upper left", fontsize=9, ncol=3)
    _xticks(ax, [row[0] for row in rows])
    ax.set_ylim(0, max(_finite(v for row in rows for v in row[1:4])) * 1.18)
    ax.yaxis.set_major_formatter(SI)
    ax.set_ylabel("packets / s")
    ax.set_title("Server packet rate vs ceiling (labels: share of the ceiling)")
    return _png(fig)


def _stack_cpu(ax: Any, parts: list[list[float | None]], prefix: str = "") -> list[float]:
    """Bars stacked usr / sys / softirq, one per row; returns the stack heights."""
    bottom = [0.0] * len(parts)
    for j, name in enumerate(CPU_COLOURS):
        vals = [p[j] or 0.0 for p in parts]
        ax.bar(range(len(parts)), vals, bottom=bottom, width=0.6, color=CPU_COLOURS[name],
               label=prefix + name + ("irq" if name == "soft" else ""))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    return bottom


@_styled
def cpu_split(summary: Summary) -> bytes | None:
    """Server CPU per run stacked as usr / sys / softirq, with the load generator's busy % beside it."""
    rows = []
    for r in summary.runs:
        if r.analysis is None:
            continue
        split = r.analysis.server_cpu_split_pct
        parts = [num(getattr(split, k)) if split else None for k in CPU_COLOURS]
        client = num(r.analysis.client_busy_pct)
        if all(v is None for v in parts) and client is None:
            continue
        rows.append((r.label, parts, client))
    if not rows:
        return None
    fig = _figure(len(rows))
    ax = fig.axes[0]
    bottom = _stack_cpu(ax, [parts for _, parts, _ in rows], prefix="server ")
    clients = [(i, c) for i, (_, _, c) in enumerate(rows) if c is not None]
    xs = [i for i, _ in clients]
    ax.scatter(xs, [c for _, c in clients], marker="D", s=40, color="black", zorder=4,
               label="load generator busy")
    ax.axhline(100, color="grey", linewidth=1, linestyle=":")
    _xticks(ax, [row[0] for row in rows])
    top = max([*bottom, *(c for _, c in clients), 100.0])
    ax.set_ylim(0, top * 1.15)
    ax.set_ylabel("% of a CPU")
    ax.set_title("Server CPU split per run (usr / sys / softirq)")
    ax.legend(loc="upper left", ncol=4, fontsize=9)
    return _png(fig)


@_styled
def cpu_per_request(summary: Summary) -> bytes | None:
    """Server CPU microseconds per request per run, stacked usr / sys / softirq."""
    rows = []
    for r in summary.runs:
        cost = r.analysis.cpu_us_per_request if r.analysis else None
        if cost is None:
            continue
        parts = [num(getattr(cost, k)) for k in CPU_COLOURS]
        total = num(cost.total)
        if all(v is None for v in parts) and total is None:
            continue
        rows.append((r.label, parts, total))
    if not rows:
        return None
    fig = _figure(len(rows))
    ax = fig.axes[0]
    bottom = _stack_cpu(ax, [parts for _, parts, _ in rows])
    for i, (_, _, total) in enumerate(rows):
        t = total if total is not None else bottom[i]
        ax.annotate(f"{t:.3g} µs", (i, max(t, bottom[i])), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize=8)
    _xticks(ax, [row[0] for row in rows])
    ax.set_ylim(0, max(max(bottom), *(_finite(t for *_, t in rows) or [0.0])) * 1.18 or 1.0)
    ax.set_ylabel("server CPU µs / request")
    ax.set_title("CPU cost per request")
    ax.legend(loc="upper left", ncol=3, fontsize=9)
    return _png(fig)


@_styled
def thread_balance(summary: Summary) -> bytes | None:
    """Requests and connections per server thread (the server's own counters), runs with 2+ threads."""
    rows = []
    for r in summary.runs:
        threads = sorted(r.server_counters.threads if r.server_counters else (),
                         key=lambda t: t.thread or 0)
        if len(threads) < 2:  # one thread is balanced by definition: nothing to see
            continue
        rows.append((r.label, [float(t.requests or 0) for t in threads],
                     [float(t.connections or 0) for t in threads]))
    if not rows:
        return None
    k = max(len(req) for _, req, _ in rows)
    fig = _figure(len(rows) * max(1.0, k / 3), height=3.4, nrows=2)
    cmap = matplotlib.colormaps["tab20"]
    requests, connections = [row[1] for row in rows], [row[2] for row in rows]
    for ax, series, ylabel, title in (
            (fig.axes[0], requests, "requests", "Requests per server thread"),
            (fig.axes[1], connections, "connections", "Connections per server thread")):
        width = 0.8 / k
        for t, off in enumerate(_offsets(k, width)):
            xs = [i + off for i, vals in enumerate(series) if t < len(vals)]
            ys = [vals[t] for vals in series if t < len(vals)]
            ax.bar(xs, ys, width=width * 0.92, color=cmap(t % 20), label=f"thread {t}" if k <= 12 else None)
        for i, vals in enumerate(series):
            mean = sum(vals) / len(vals)
            ratio = f"max/mean {max(vals) / mean:.2f}" if mean else "max/mean -"
            ax.annotate(ratio, (i, max(vals)), textcoords="offset points", xytext=(0, 4), ha="center",
                        fontsize=8)
        _xticks(ax, [row[0] for row in rows])
        ax.set_ylim(0, max(v for vals in series for v in vals) * 1.2 or 1.0)
        ax.yaxis.set_major_formatter(SI)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    if k <= 12:
        fig.axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8.5)
    fig.tight_layout()
    return _png(fig)


@_styled
def point_summary(summary: Summary) -> bytes | None:
    """Every point: each repetition's QPS, the median, the min-max spread and MAD as % of the median."""
    pts = [p for p in points(summary) if num(p.qps_median) is not None]
    if not pts:
        return None
    colours = arch_colours(summary)
    fig = _figure(len(pts) * 1.3)
    ax = fig.axes[0]
    top = 0.0
    for i, p in enumerate(pts):
        c = colours.get(arch_of(p), PALETTE[0])
        med = p.qps_median or 0.0
        lo, hi = num(p.qps_min), num(p.qps_max)
        if lo is not None and hi is not None:
            ax.vlines(i, lo, hi, color=c, linewidth=2, alpha=0.6)
        reps = _finite(r.qps for r in runs_at(summary, p))
        offs = _offsets(len(reps), 0.08) if reps else []
        ax.scatter([i + o for o in offs], reps, s=22, color=c, alpha=0.7, zorder=3, edgecolors="none")
        ax.hlines(med, i - 0.28, i + 0.28, color=c, linewidth=3, zorder=4)
        m = num(p.qps_mad)
        n = p.n or len(reps)
        # one repetition has no spread to show: "±0%" would claim a precision nobody measured
        spread = f" ±{m / med:.0%}" if m is not None and med and len(reps) > 1 else ""
        ax.annotate(f"{_si(med)}{spread}\nn={n}", (i + 0.3, med), fontsize=8, va="center", color="#333")
        top = max(top, med, hi or 0.0, *reps)
    _xticks(ax, [point_label(p, "\n") for p in pts])
    ax.set_xlim(-0.6, len(pts) - 0.1)
    ax.set_ylim(0, top * 1.15 or 1.0)  # room for the top label below the title
    ax.yaxis.set_major_formatter(SI)
    ax.set_ylabel("requests / s")
    ax.set_title("Per-point summary: repetitions, median (bar), min-max, ±MAD")
    return _png(fig)


OPEN_LOOP_CHARTS = ("latency_vs_rate", "percentile_spectrum")  # drawn only for runs at a set rate

# The report's chart list, in page order: (file stem, heading, function, what to read from it).
CHARTS: tuple[tuple[str, str, Callable[[Summary], bytes | None], str], ...] = (
    ("qps_by_threads", "Throughput by server threads", qps_by_threads,
     "Median QPS per architecture with the min-max band over repetitions; dots are single runs."),
    ("point_summary", "Per-point summary", point_summary,
     "Each dot is one repetition; the wide bar is the median, the line the min-max spread."),
    ("latency_percentiles", "Latency percentiles", latency_percentiles,
     "p50 / p75 / p90 / p99 / max per point (median of repetitions), log scale."),
    ("latency_vs_rate", "Latency against throughput", latency_vs_rate,
     "Open loop: p50 / p99 / p99.9 from each request's intended send time against the achieved rate; "
     "the circle marks the knee, the last rate before p99 leaves its floor (x2)."),
    ("percentile_spectrum", "Percentile spectrum", percentile_spectrum,
     "Open loop: latency against percentile on a 1/(1-p) axis, one line per rate."),
    ("packet_rate", "Packet rate vs ceiling", packet_rate,
     "Server-interface packets/s per direction; the dashed line is the iperf3 delivered-pps ceiling."),
    ("cpu_split", "Server CPU split", cpu_split,
     "Server CPU busy split into user, system and softirq time; diamonds are the load generator's busy %."),
    ("cpu_per_request", "CPU cost per request", cpu_per_request,
     "Server CPU microseconds spent per request, split like the chart above."),
    ("thread_balance", "Per-thread balance", thread_balance,
     "Requests and connections each server thread handled (server counters); equal bars = even spread."),
)
