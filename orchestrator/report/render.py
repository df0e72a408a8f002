"""report.md and report.html for one results folder: verdict table on top, then hosts, baseline, plots.

`build(folder)` reads only summary.json. Plots go to folder/plots/*.png (linked from report.md) and
are embedded as data URIs in report.html so that one file can be mailed or archived on its own.
Every number is formatted here, once, so the two templates cannot disagree; a missing or None field
prints as "-" rather than failing the report.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from orchestrator.analysis import VERDICTS
from orchestrator.report import flamegraph, plots
from orchestrator.report.plots import dig, num
from orchestrator.store import atomic_write, load_summary
from orchestrator.tools import perf

log = logging.getLogger(__name__)

MISSING = "-"


@dataclass(frozen=True)
class ReportPaths:
    md: Path
    html: Path
    plots: dict[str, Path] = field(default_factory=dict)  # chart key -> PNG written (charts with data only)


def build(folder: Path) -> ReportPaths:
    """Write report.md, report.html and plots/*.png into a results folder; returns their paths."""
    folder = Path(folder)
    summary = load_summary(folder)
    _flamegraphs(summary, folder)
    charts, written = _charts(summary, folder)
    ctx = context(summary, folder, charts)
    env = _env()
    md = folder / "report.md"
    html = folder / "report.html"
    _write(md, env.get_template("report.md.j2").render(ctx))
    _write(html, env.get_template("report.html.j2").render(ctx))
    return ReportPaths(md=md, html=html, plots=written)


def _flamegraphs(summary: dict[str, Any], folder: Path) -> None:
    """Each run's flame graph SVG, drawn from the folded stacks the run kept."""
    for r in plots.runs_of(summary):
        stacks, svg = dig(r, "perf", "folded"), dig(r, "perf", "flamegraph")
        if not stacks or not svg or not (folder / str(stacks)).is_file():
            continue
        folded = perf.load_folded((folder / str(stacks)).read_text(errors="replace"))
        if folded:
            title = str(dig(r, "perf", "title") or r.get("run_id") or "")
            _write(folder / str(svg), flamegraph.render_svg(folded, title=title))


# ---------------------------------------------------------------- formatting (None-safe, "-" when missing)

def f_num(v: Any, digits: int = 0) -> str:
    f = num(v)
    return MISSING if f is None else f"{f:,.{digits}f}"


def f_ms(v: Any) -> str:
    f = num(v)
    return MISSING if f is None else f"{f:.2f}" if f < 100 else f"{f:,.0f}"


def f_pct(v: Any, fraction: bool = False) -> str:
    f = num(v)
    if f is None:
        return MISSING
    return f"{f * 100:.0f}%" if fraction else f"{f:.0f}%"


def f_pair(d: Any, fmt: Any, keys: tuple[str, str] = ("rx", "tx")) -> str:
    a, b = (fmt(dig(d, k)) for k in keys)
    return MISSING if a == b == MISSING else f"{a} / {b}"


def f_text(v: Any) -> str:
    return MISSING if v is None or v == "" else str(v)


def md_cell(v: Any) -> str:
    """Markdown table cells: a pipe or newline in evidence text would break the row."""
    return str(v).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


# ---------------------------------------------------------------- the template context

def context(summary: dict[str, Any], folder: Path, charts: list[dict[str, Any]]) -> dict[str, Any]:
    runs = plots.runs_of(summary)
    status = f_text(summary.get("status"))
    counts = Counter(str(dig(r, "analysis", "verdict")) for r in runs if dig(r, "analysis", "verdict"))
    scenario = f_text(summary.get("scenario"))
    return {
        "title": f"{scenario} benchmark report",
        "scenario": scenario,
        "run_id": f_text(summary.get("run_id")),
        "meta": [("scenario", scenario), ("results", f_text(summary.get("run_id"))),
                 ("source", f_text(summary.get("source"))), ("provider", f_text(summary.get("provider"))),
                 ("started", f_text(summary.get("started"))), ("finished", f_text(summary.get("finished"))),
                 ("status", status), ("runs", str(len(runs)))],
        "status": status,
        "incomplete": status != "complete",
        "error": summary.get("error"),
        "verdict_counts": [(v, counts[v]) for v in (*VERDICTS, *sorted(set(counts) - set(VERDICTS)))
                           if counts[v]],
        "analysed": bool(counts),
        "runs": [_run_row(r, folder) for r in runs],
        "points": [_point_row(p) for p in plots.points(summary)],
        "hosts": _hosts(summary),
        "observer": [row for r in runs for row in _observer_rows(r)],
        "baseline": _baseline(summary),
        "charts": charts,
        "missing_charts": [c for c in charts if not c["available"]],
    }


def _run_row(r: dict[str, Any], folder: Path) -> dict[str, Any]:
    a = r.get("analysis") if isinstance(r.get("analysis"), dict) else {}
    verdict = a.get("verdict")
    evidence = [str(e) for e in a.get("evidence") or []]
    flags = [str(f) for f in a.get("flags") or []]
    errors = sum(v for v in (r.get("errors") or {}).values() if isinstance(v, int))
    if errors:
        flags.append(f"{errors:,} socket errors")
    if num(r.get("non_2xx")):
        flags.append(f"{r['non_2xx']:,} non-2xx responses")
    if r.get("error"):
        flags.append(f"run failed: {r['error']}")
    if dig(r, "perf", "error"):
        flags.append(f"no flame graph: {r['perf']['error']}")
    if num(dig(r, "observer", "remote_commands_in_window")):
        flags.append(f"{r['observer']['remote_commands_in_window']} remote commands ran during the load")
    fg = dig(r, "perf", "flamegraph")
    split = a.get("server_cpu_split_pct")
    cost = a.get("cpu_us_per_request")
    balance = a.get("balance")
    return {
        "run_id": plots.run_label(r),
        "arch": f_text(r.get("arch")),
        "threads": f_text(r.get("server_threads")),
        "conns": f_text(r.get("connections")),
        "rep": f_text(r.get("repetition")),
        "qps": f_num(r.get("qps")),
        "p50": f_ms(dig(r, "latency_ms", "p50")),
        "p99": f_ms(dig(r, "latency_ms", "p99")),
        "verdict": f_text(verdict),
        "verdict_class": str(verdict) if verdict in VERDICTS else "none",
        "deciding": evidence[0] if evidence else MISSING,
        "evidence": evidence,
        "flags": flags,
        "flamegraph": str(fg) if fg else None,
        "flamegraph_found": bool(fg) and (folder / str(fg)).is_file(),
        # the numbers behind the verdict, one cell each
        "ppr": f_pair(a.get("packets_per_request"), lambda v: f_num(v, 2)),
        "ppr_source": f_text(dig(a, "packets_per_request", "source")),
        "rate": f_pair(a.get("packet_rate"), f_num),
        "ceiling": (("≥ " if a.get("ceiling_lower_bound") else "")
                    + f_num(a.get("ceiling_pps") if a.get("ceiling_pps") is not None
                            else dig(r, "baseline", "pps_delivered"))
                    + (" (lower bound: iperf3 was CPU-bound)" if a.get("ceiling_lower_bound") else "")),
        "path_use": ", ".join(f"{k} {f_pct(v, fraction=True)}" for k, v in (a.get("path_use") or {}).items())
                    or MISSING,
        "rule": f_text(a.get("rule")),
        "ceiling_use": f_pair(a.get("ceiling_use"), lambda v: f_pct(v, fraction=True)),
        "server_busy": f_pct(a.get("server_busy_pct")),
        "split": " / ".join(f_pct(dig(split, k)) for k in ("usr", "sys", "soft")) if split else MISSING,
        "us_per_req": (f"{f_num(dig(cost, 'total'), 2)} ("
                       + " / ".join(f_num(dig(cost, k), 2) for k in ("usr", "sys", "soft")) + ")"
                       if cost else MISSING),
        "switches": f_pair(a.get("switches"), f_num, ("voluntary_s", "involuntary_s")),
        "client_busy": f_pct(a.get("client_busy_pct")),
        "balance": f_pair(balance, lambda v: f_num(v, 2),
                          ("requests_max_over_mean", "connections_max_over_mean")),
    }


def _observer_rows(r: dict[str, Any]) -> list[dict[str, str]]:
    """What measuring cost each host during the run's load window (see telemetry.observer)."""
    hosts = dig(r, "observer", "hosts")
    if not isinstance(hosts, dict):
        return []
    rows = []
    for name, o in hosts.items():
        collectors = o.get("collectors") if isinstance(o.get("collectors"), dict) else {}
        pinned = o.get("collector_cpus")
        where = ("-" if not collectors else
                 "not pinned: no CPU to spare" if pinned is None else
                 f"CPUs {','.join(map(str, pinned))}")
        if collectors and o.get("shares_measured_cpus"):
            where += " (shares the measured CPUs)"
        rows.append({
            "run_id": plots.run_label(r), "host": f_text(name),
            "collectors": ", ".join(f"{k} {f_num(dig(v, 'cpu_s_per_s'), 4)}"
                                    for k, v in collectors.items()) or "-",
            "total": f_num(o.get("collectors_cpu_s_per_s"), 4),
            "where": where,
            "sshd": f_num(o.get("sshd_cpu_s_per_s"), 4),
            "commands": f_text(o.get("remote_commands_in_window")),
        })
    return rows


def _point_row(p: dict[str, Any]) -> dict[str, Any]:
    med, m = num(p.get("qps_median")), num(p.get("qps_mad"))
    verdicts = p.get("verdicts") if isinstance(p.get("verdicts"), dict) else {}
    return {
        "arch": f_text(p.get("arch")), "threads": f_text(p.get("server_threads")),
        "conns": f_text(p.get("connections")), "n": f_text(p.get("n")),
        "qps_median": f_num(med),
        "qps_range": f"{f_num(p.get('qps_min'))} – {f_num(p.get('qps_max'))}",
        "qps_mad": f_num(m) + (f" ({m / med:.1%})" if m is not None and med else ""),
        "p50": f_ms(p.get("p50_ms_median")), "p99": f_ms(p.get("p99_ms_median")),
        "verdicts": (str(p["verdict_text"]) if p.get("verdict_text") else
                     ", ".join(f"{k} ×{v}" for k, v in verdicts.items()) or MISSING),
    }


def _hosts(summary: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for name, h in (summary.get("hosts") or {}).items():
        h = h if isinstance(h, dict) else {}
        tools = h.get("tool_versions") if isinstance(h.get("tool_versions"), dict) else {}
        cores = f_text(h.get("cpus"))
        if num(h.get("threads_per_core")) and h["threads_per_core"] > 1:
            cores += f" ({h['threads_per_core']} threads/core)"
        out.append({
            "name": str(name), "roles": ", ".join(h.get("roles") or []) or MISSING,
            "address": f_text(h.get("address")), "cpu_model": f_text(h.get("cpu_model")), "cores": cores,
            "kernel": f_text(h.get("kernel")),
            "tools": ", ".join(f"{k} {v}" for k, v in tools.items() if v) or MISSING,  # None: absent
        })
    return out


def _baseline(summary: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for path, e in (summary.get("baseline") or {}).items():
        udp, tcp, rev = dig(e, "udp") or {}, dig(e, "tcp") or {}, dig(e, "udp_reverse") or {}
        bps = num(tcp.get("bits_per_second"))
        out.append({
            "path": str(path), "length": f_text(udp.get("length")),
            "pps_sent": f_num(udp.get("pps_sent")), "pps_delivered": f_num(udp.get("pps_delivered")),
            "loss": MISSING if num(udp.get("loss_pct")) is None else f"{udp['loss_pct']:.1f}%",
            "reverse": f_num(rev.get("pps_delivered")),
            "tcp": MISSING if bps is None else f"{bps / 1e9:.2f} Gbit/s",
            "retransmits": f_num(tcp.get("retransmits")),
        })
    return out


# ---------------------------------------------------------------- charts

def _charts(summary: dict[str, Any], folder: Path) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Render every chart, write plots/<key>.png, and drop a stale PNG whose chart now has no data."""
    out, written = [], {}
    for key, title, draw, caption in plots.CHARTS:
        path = folder / "plots" / f"{key}.png"
        try:
            png = draw(summary)
        except Exception as exc:  # one odd record must not cost the whole report
            log.warning("report: chart %s failed: %s", key, exc, exc_info=True)
            png, caption = None, f"chart failed: {type(exc).__name__}: {exc}"
        entry = {"key": key, "title": title, "caption": caption, "file": f"plots/{key}.png",
                 "available": png is not None, "data_uri": None}
        if png is not None:
            _write(path, png)
            written[key] = path
            entry["data_uri"] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        else:
            path.unlink(missing_ok=True)
            entry["reason"] = caption if caption.startswith("chart failed") else _NO_DATA.get(key, "no data")
        out.append(entry)
    return out, written


_NO_DATA = {
    "qps_by_threads": "no run has a QPS",
    "point_summary": "no run has a QPS",
    "latency_percentiles": "no run has latency percentiles",
    "packet_rate": "no run has a measured packet rate (analysis.packet_rate)",
    "cpu_split": "no run has a server CPU split (analysis.server_cpu_split_pct)",
    "cpu_per_request": "no run has a CPU cost per request (analysis.cpu_us_per_request)",
    "thread_balance": "no run has server counters for 2 or more threads",
}


def _write(path: Path, data: str | bytes) -> None:
    # atomic_write's temp file is 0600; a report is for reading (and serving), like any output file.
    atomic_write(path, data)
    path.chmod(0o644)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestrator.report", "templates"),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the tests, not the reader
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters["md"] = md_cell
    return env
