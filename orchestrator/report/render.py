"""report.md and report.html for one results folder: verdict table on top, then hosts, baseline, plots.

`build(folder)` reads only summary.json (a `records.Summary`). Plots go to folder/plots/*.png (linked
from report.md) and are embedded as data URIs in report.html so that one file can be mailed or
archived on its own. Every number is formatted here, once, so the two templates cannot disagree;
a None field prints as "-" rather than failing the report.
"""

from __future__ import annotations

import base64
import json
import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from orchestrator.analysis import VERDICTS
from orchestrator.errors import UserError
from orchestrator.point import others, text
from orchestrator.records import Autoscale, CapacitySearch, Point, Run, Summary
from orchestrator.report import flamegraph, plots
from orchestrator.report.plots import num
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


def _flamegraphs(summary: Summary, folder: Path) -> None:
    """Each run's flame graph SVG, drawn from the folded stacks the run kept."""
    for r in summary.runs:
        stacks, svg = (r.perf.folded, r.perf.flamegraph) if r.perf else (None, None)
        if not stacks or not svg or not (folder / stacks).is_file():
            continue
        folded = perf.load_folded((folder / stacks).read_text(errors="replace"))
        if folded:
            title = (r.perf.title if r.perf else None) or r.run_id
            _write(folder / svg, flamegraph.render_svg(folded, title=title))


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
    """Two fields of a record (rx / tx by default), "-" when the record or both are missing."""
    a, b = (fmt(getattr(d, k, None)) for k in keys)
    return MISSING if a == b == MISSING else f"{a} / {b}"


def f_text(v: Any) -> str:
    return MISSING if v is None or v == "" else str(v)


def md_cell(v: Any) -> str:
    """Markdown table cells: a pipe or newline in evidence text would break the row."""
    return str(v).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


# ---------------------------------------------------------------- the template context

def context(summary: Summary, folder: Path, charts: list[dict[str, Any]]) -> dict[str, Any]:
    runs = summary.runs
    status = f_text(summary.status)
    counts = Counter(r.analysis.verdict for r in runs if r.analysis and r.analysis.verdict)
    scenario = f_text(summary.scenario)
    rows = [_run_row(r, folder) for r in runs]
    pts = plots.points(summary)
    # the swept axes beyond the classic four: one column each in the runs' and points' tables
    keyed: list[Run | Point] = [*runs, *pts]
    axes = list(dict.fromkeys(a for r in keyed for a, v in others(r.key).items() if v is not None))
    for row, r in zip(rows, runs, strict=True):
        row["axes"] = [f_text(text(r.key.get(a))) for a in axes]
    point_rows = [{**_point_row(p), "axes": [f_text(text(p.key.get(a))) for a in axes]} for p in pts]
    common = _common_flags(rows)
    for row in rows:  # the verdict table shows what differs; the common flags are said once above
        row["table_flags"] = [f for f in row["flags"] if f not in common]
    return {
        "title": f"{scenario} benchmark report",
        "scenario": scenario,
        "run_id": f_text(summary.run_id),
        "meta": [("scenario", scenario), ("results", f_text(summary.run_id)),
                 ("source", f_text(summary.source)), ("provider", f_text(summary.provider)),
                 ("started", f_text(summary.started)), ("finished", f_text(summary.finished)),
                 ("status", status), ("runs", str(len(runs)))],
        "status": status,
        "incomplete": status != "complete",
        "error": summary.error,
        "verdict_counts": [(v, counts[v]) for v in (*VERDICTS, *sorted(set(counts) - set(VERDICTS)))
                           if counts[v]],
        "analysed": bool(counts),
        "runs": rows,
        "common_flags": common,
        "axes": axes,
        "points": point_rows,
        "capacity": [_capacity_row(c) for c in summary.capacity],
        "autoscale": [_autoscale_row(a) for a in summary.autoscale],
        "hosts": _hosts(summary),
        "host_noise": _host_noise(summary),
        "observer": [row for r in runs for row in _observer_rows(r)],
        "baseline": _baseline(summary),
        "charts": charts,
        "missing_charts": [c for c in charts if not c["available"]],
        "answer": _answer(summary, folder),
        "search_answer": _search_answer(summary, charts),
        "slo_warnings": _slo_warnings(summary),
    }


def _host_noise(summary: Summary) -> list[str]:
    """The host's own noise before the first window and after the last (doctor.noise), if read."""
    recorded = summary.host_noise or {}  # not read on a remote provider
    return [recorded[when].line() for when in ("before", "after") if when in recorded]


def _common_flags(rows: list[dict[str, Any]]) -> list[str]:
    """Flags every run carries (2 runs or more): said once, not on every row."""
    if len(rows) < 2:
        return []
    return [f for f in rows[0]["flags"] if all(f in r["flags"] for r in rows[1:])]


ANSWER_BASELINE = "main-sub"  # the reference experiment's baseline, when the run has it
FLOORS_FILE = "floors.json"  # the noise floors a run's comparison used (cli writes it)
# a verdict said plainly, by which way the metric is better
_PLAIN = {(True, "better"): "faster", (True, "worse"): "slower",
          (False, "better"): "cheaper", (False, "worse"): "costlier"}
_LATENCY = {"p50", "p99", "p99_9"}


def _plain(metric: Any, word: str) -> str:
    if word not in ("better", "worse"):
        return word
    if metric.name in _LATENCY:
        return "faster" if word == "better" else "slower"
    return _PLAIN[(metric.higher_is_better, word)]


def _floors(folder: Path | None) -> dict[str, Any]:
    """The floors a run's comparison used, by metric (none: never measured on these hosts)."""
    from orchestrator import compare

    try:
        data = json.loads((Path(folder) / FLOORS_FILE).read_text()) if folder else {}
    except (OSError, ValueError):
        return {}
    return {m: compare.Floor(**f) for m, f in data.items() if isinstance(f, dict)}


def _answer(summary: Summary, folder: Path | None = None) -> dict[str, Any] | None:
    """The comparison the report opens with. A scenario with compare: its factor against its
    baseline, round by round, on its metric, QPS and CPU per request, each with its floor.
    Else, when the run swept server.arch over 2 or more repetitions, every other architecture
    against main-sub (else the first) on QPS and CPU per request."""
    from orchestrator import compare

    rounds = summary.rounds or {}
    if rounds.get("factor"):
        factor, base = str(rounds["factor"]), rounds.get("baseline")
        metrics = list(dict.fromkeys([str(rounds.get("metric") or "qps"), "qps", "cpu_us_per_request"]))
    else:
        archs = list(dict.fromkeys(r.arch for r in summary.runs))
        if len(archs) < 2 or max((r.repetition for r in summary.runs), default=1) < 2:
            return None
        factor, base = "server.arch", ANSWER_BASELINE if ANSWER_BASELINE in archs else archs[0]
        metrics = ["qps", "cpu_us_per_request"]
    floors = _floors(folder)
    try:
        changes = compare.paired(summary, factor, base, metrics=metrics, floors=floors)
    except UserError:
        return None
    if not changes:
        return None
    why = compare.explanations(summary, factor, base)
    cells = list(dict.fromkeys((c.at, c.variant) for c in changes))
    title = ("each architecture" if factor == "server.arch" else f"{factor}") + \
        f" against {compare.value_text(base)}"
    return {"baseline": compare.value_text(base), "title": title, "factor": factor,
            "statistic": compare.stats.PAIRED,
            "rows": [{"at": c.at, "variant": c.variant, "metric": c.metric.unit, "ratio": c.ratio.text(),
                      "rounds": c.ratio.n, "word": c.word, "plain": _plain(c.metric, c.word),
                      "floor": (floors[c.metric.name].text() if c.metric.name in floors
                                else "not measured")} for c in changes],
            "why": [{"at": at, "variant": variant, "sentence": e.sentence, "verdicts": e.verdicts,
                     "environment": e.environment_line,
                     "components": [{"name": x.label, "ratio": x.ratio.text(2), "rounds": x.ratio.n,
                                     "moved": x.ratio.excludes_one} for x in e.components]}
                    for at, variant in cells if (e := why.get((at, variant))) is not None],
            "floors_measured": bool(floors),
            "stopped": rounds.get("stopped"), "orders": rounds.get("orders")}


SEARCH_CURVE = "latency_vs_rate"  # the chart a search's answer shows: its latency curve, capacity marked


def _search_answer(summary: Summary, charts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The answer a capacity search (load.search) opens with: each point's capacity under the
    SLO, with the 95% interval of its geometric mean and its min-max when searched more than
    once, then the latency curve with the capacity marked."""
    from orchestrator import stats

    if not summary.capacity:
        return None
    by_point: dict[Any, list[CapacitySearch]] = {}
    for c in summary.capacity:
        by_point.setdefault(c.key, []).append(c)
    rows = []
    for key, searches in by_point.items():
        found = [c.capacity for c in searches if c.capacity]
        ci = stats.mean_interval(found) if len(found) >= 2 else None
        if not found:
            capacity = "none: not even the lowest rate met the SLO"
        elif len(found) == 1:
            capacity = f_num(found[0])
        else:
            capacity = f"{f_num(statistics.median(found))} (median)"
        rows.append({
            "at": key.compact(), "capacity": capacity, "searches": len(searches),
            "interval": f"{f_num(ci[0])} [{f_num(ci[1])}, {f_num(ci[2])}]" if ci else MISSING,
            "spread": (f"{f_num(lo)} – {f_num(hi)} ({(hi - lo) / lo:.1%})"
                       if len(found) >= 2 and (lo := min(found)) and (hi := max(found)) else MISSING),
            "bounds": ", ".join(f"{b} ×{n}" if n > 1 else b
                                for b, n in Counter(c.bound for c in searches).items()),
        })
    curve = next((c for c in charts if c["key"] == SEARCH_CURVE), None)
    return {"slo": summary.capacity[0].slo, "rows": rows,
            "curve": curve if curve and curve["available"] else None}


def _slo_warnings(summary: Summary) -> list[str]:
    """A latency SLO near the pauses this host took on its pinned CPUs (recorded before and
    after the windows): a bound within twice the longest pause band seen measures the machine."""
    recorded = summary.host_noise or {}
    longest = 0.0
    for reading in recorded.values():
        for bands in (reading.pauses or {}).values():
            for name, top in (("0.5-1ms", 1.0), ("1-5ms", 5.0), ("5-20ms", 20.0), (">20ms", 100.0)):
                if (bands.get(name) or {}).get("count"):
                    longest = max(longest, top)
    if not longest:
        return []
    out = []
    for c in summary.capacity:
        for part in str(c.slo or "").split(","):
            name, _, bound = part.strip().partition(" <= ")
            ms = _ms(bound)
            if ms is not None and ms <= 2 * longest:
                out.append(f"the SLO {name} <= {bound} lies near this host's pauses (up to {longest:g} ms "
                           "on the pinned CPUs before or after the windows): it measures the machine as "
                           "much as the server")
    return list(dict.fromkeys(out))


def _ms(text: str) -> float | None:
    text = text.strip()
    try:
        if text.endswith("ms"):
            return float(text[:-2])
        if text.endswith("s"):
            return float(text[:-1]) * 1000
    except ValueError:
        return None
    return None


def _error_flags(r: Run) -> list[str]:
    """The run's socket errors, or that they were not measured (never a silent 0)."""
    e = r.errors
    if e is None:
        return [r.errors_not_measured or "socket errors not measured"]
    seen = sum(v for v in (e.connect, e.read, e.write, e.timeout) if v)
    if seen:
        return [f"{seen:,} socket errors" + (f" ({', '.join(e.missing)} not measured)" if e.missing else "")]
    return [r.errors_not_measured] if e.missing and r.errors_not_measured else []


def _run_row(r: Run, folder: Path) -> dict[str, Any]:
    a = r.analysis
    verdict = a.verdict if a else None
    evidence = list(a.evidence) if a else []
    flags = list(a.flags) if a else []
    flags += _error_flags(r)
    if r.non_2xx:
        flags.append(f"{r.non_2xx:,} non-2xx responses")
    if r.perf and r.perf.error:
        flags.append(f"no flame graph: {r.perf.error}")
    in_window = (r.observer or {}).get("remote_commands_in_window")
    if num(in_window):
        flags.append(f"{in_window} remote commands ran during the load")
    fg = r.perf.flamegraph if r.perf else None
    split = a.server_cpu_split_pct if a else None
    cost = a.cpu_us_per_request if a else None
    ceiling = a.ceiling_pps if a and a.ceiling_pps is not None else r.baseline.pps_delivered
    lower = bool(a and a.ceiling_lower_bound)
    return {
        "run_id": r.label,
        "arch": f_text(r.arch),
        "threads": f_text(r.server_threads),
        "conns": f_text(r.connections),
        "rep": f_text(r.repetition),
        "qps": f_num(r.qps),
        "p50": f_ms(r.latency_ms.p50),
        "p99": f_ms(r.latency_ms.p99),
        "verdict": f_text(verdict),
        "verdict_class": str(verdict) if verdict in VERDICTS else "none",
        "deciding": evidence[0] if evidence else MISSING,
        "evidence": evidence,
        "flags": flags,
        "flamegraph": fg,
        "flamegraph_found": bool(fg) and (folder / str(fg)).is_file(),
        # the numbers behind the verdict, one cell each
        "ppr": f_pair(a.packets_per_request if a else None, lambda v: f_num(v, 2)),
        "ppr_source": f_text(a.packets_per_request.source if a and a.packets_per_request else None),
        "rate": f_pair(a.packet_rate if a else None, f_num),
        "ceiling": (("≥ " if lower else "") + f_num(ceiling)
                    + (" (lower bound: iperf3 was CPU-bound)" if lower else "")),
        "path_use": ", ".join(f"{k} {f_pct(v, fraction=True)}" for k, v in ((a.path_use if a else None)
                                                                             or {}).items()) or MISSING,
        "rule": f_text(a.rule if a else None),
        "ceiling_use": f_pair(a.ceiling_use if a else None, lambda v: f_pct(v, fraction=True)),
        "server_busy": f_pct(a.server_busy_pct if a else None),
        "split": " / ".join(f_pct(getattr(split, k)) for k in ("usr", "sys", "soft")) if split else MISSING,
        "us_per_req": (f"{f_num(cost.total, 2)} ("
                       + " / ".join(f_num(getattr(cost, k), 2) for k in ("usr", "sys", "soft")) + ")"
                       if cost else MISSING),
        "switches": f_pair(a.switches if a else None, f_num, ("voluntary_s", "involuntary_s")),
        "client_busy": f_pct(a.client_busy_pct if a else None),
        "balance": f_pair(a.balance if a else None, lambda v: f_num(v, 2),
                          ("requests_max_over_mean", "connections_max_over_mean")),
    }


def _observer_rows(r: Run) -> list[dict[str, str]]:
    """What measuring cost each host during the run's load window (see telemetry.observer; the
    observer's record is opaque: its own keys)."""
    hosts = (r.observer or {}).get("hosts")
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
            "run_id": r.label, "host": f_text(name),
            "collectors": ", ".join(f"{k} {f_num((v or {}).get('cpu_s_per_s'), 4)}"
                                    for k, v in collectors.items()) or "-",
            "total": f_num(o.get("collectors_cpu_s_per_s"), 4),
            "where": where,
            "sshd": f_num(o.get("sshd_cpu_s_per_s"), 4),
            "commands": f_text(o.get("remote_commands_in_window")),
        })
    return rows


def _point_row(p: Point) -> dict[str, Any]:
    med, m = num(p.qps_median), num(p.qps_mad)
    return {
        "arch": f_text(p.arch), "threads": f_text(p.server_threads),
        "conns": f_text(p.connections), "n": f_text(p.n),
        "qps_median": f_num(med),
        "qps_range": f"{f_num(p.qps_min)} – {f_num(p.qps_max)}",
        "qps_mad": f_num(m) + (f" ({m / med:.1%})" if m is not None and med else ""),
        "p50": f_ms(p.p50_ms_median), "p99": f_ms(p.p99_ms_median),
        "verdicts": (p.verdict_text if p.verdict_text else
                     ", ".join(f"{k} ×{v}" for k, v in p.verdicts.items()) or MISSING),
    }


def _capacity_row(c: CapacitySearch) -> dict[str, Any]:
    return {"arch": f_text(c.arch), "threads": f_text(c.server_threads), "conns": f_text(c.connections),
            "rep": c.repetition, "capacity": f_num(c.capacity), "bound": c.bound, "runs": c.runs,
            "slo": c.slo, "verdict": f_text(c.verdict_at_capacity), "evidence": c.evidence,
            "steps": " → ".join(f"{f_num(s.rate)} {'✓' if s.passed else '✗'}"
                                + (f" ({len(s.run_ids)} runs)" if len(s.run_ids) > 1 else "")
                                for s in c.steps)}


def _autoscale_row(a: Autoscale) -> dict[str, Any]:
    return {"arch": f_text(a.arch), "threads": f_text(a.server_threads), "conns": f_text(a.connections),
            "rate": f_num(a.rate), "clients": a.clients, "stopped": a.stopped,
            "path": " → ".join(f"{s.clients} client{'s' if s.clients > 1 else ''}: {f_num(s.qps)} req/s "
                               f"{f_text(s.verdict)}" for s in a.path)}


def _hosts(summary: Summary) -> list[dict[str, str]]:
    out = []
    for name, h in summary.hosts.items():
        cores = f_text(h.cpus)
        if h.threads_per_core and h.threads_per_core > 1:
            cores += f" ({h.threads_per_core} threads/core)"
        out.append({
            "name": str(name), "roles": ", ".join(h.roles) or MISSING,
            "address": f_text(h.address), "cpu_model": f_text(h.cpu_model), "cores": cores,
            "kernel": f_text(h.kernel),
            # a tool recorded as None is absent on the host
            "tools": ", ".join(f"{k} {v}" for k, v in h.tool_versions.items() if v) or MISSING,
        })
    return out


def _baseline(summary: Summary) -> list[dict[str, str]]:
    out = []
    for path, e in summary.baseline.items():
        udp, tcp, rev = e.udp, e.tcp, e.udp_reverse
        bps = num(tcp.bits_per_second) if tcp else None
        loss = num(udp.loss_pct) if udp else None
        out.append({
            "path": str(path), "length": f_text(udp.length if udp else None),
            "pps_sent": f_num(udp.pps_sent if udp else None),
            "pps_delivered": f_num(udp.pps_delivered if udp else None),
            "loss": MISSING if loss is None else f"{loss:.1f}%",
            "reverse": f_num(rev.pps_delivered if rev else None),
            "tcp": MISSING if bps is None else f"{bps / 1e9:.2f} Gbit/s",
            "retransmits": f_num(tcp.retransmits if tcp else None),
        })
    return out


# ---------------------------------------------------------------- charts

def _charts(summary: Summary, folder: Path) -> tuple[list[dict[str, Any]], dict[str, Path]]:
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


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """The templates compiled once per user, not once per report (compiling both took ~0.26 s
    of every `orchestrate run` here). Keyed by each template's source, so an edit recompiles;
    jinja's own per-user folder under the temp dir, written atomically. A cache that cannot be
    written (a full disk) costs the compile it would have saved, never the report."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError as exc:
            log.debug("report: templates not cached: %s", exc)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    try:
        return _TemplateCache()
    except (RuntimeError, OSError):  # no folder of our own to keep it in: compile each time
        return None


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestrator.report", "templates"),
        bytecode_cache=_bytecode_cache(),
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the tests, not the reader
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters["md"] = md_cell
    return env
