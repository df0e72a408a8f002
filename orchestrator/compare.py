"""Compare two results folders point by point, and the regression gate built on it.

Every figure goes through orchestrator/stats.py: a point's change is a ratio B/A with its 95%
interval, never two medians and a p-value. Two results folders are unpaired (made at different
times), so their interval is Welch's on the logs and carries whatever drifted between them; a
window of nights (last:N) counts each night once. A point is called better or worse only when
its interval excludes 1 and its p-value, Holm-adjusted across the points compared, is below
5%: testing many points must not make one of them fire by chance. Zero spread is never
certainty, and a capacity's interval is never narrower than its search's grid.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import stats
from orchestrator.errors import Problem, UserError
from orchestrator.history import (
    History,
    environment_differences,
    machine_fingerprint,
    open_history,
)
from orchestrator.metrics import PAIRED_METRICS, Metric, rounds, run_point
from orchestrator.point import PointKey, text
from orchestrator.records import Summary, as_summary
from orchestrator.store import load_summary

Point = PointKey  # a matrix point (orchestrator/point.py): runs, points and searches share it

ALPHA = 1 - stats.CONFIDENCE


# What a point's repetitions are compared on: a figure of its runs, or the capacity its
# searches found (load.search: the runs of a search are at rates it chose, not comparable)
METRICS = tuple(PAIRED_METRICS)
UNITS = {m.name: m.unit for m in PAIRED_METRICS.values()} | {"qps": "qps"}


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


UNPAIRED_NOTE = ("unpaired: A and B ran at different times, so each interval (Welch on the logs) "
                 "also carries whatever drifted between them, and is wider than paired rounds' "
                 "(compare: in a scenario) would be")
BETTER, WORSE = "better", "worse"


def label(point: Point) -> str:
    """`reuseport threads=1 conns=64 work_us=5`: what gates and history name a point by."""
    return point.compact()


@dataclass(frozen=True)
class Floor:
    """The noise floor of these hosts: the smallest change n rounds detect (from an A/A run)."""

    pct: float
    rounds: int
    sd_log: float = 0.0
    metric: str = "qps"

    def text(self) -> str:
        return f"floor {self.pct:.1f}% at {self.rounds} rounds"


@dataclass(frozen=True)
class PointChange:
    point: Point
    before: tuple[float, ...]  # the values compared: repetitions, or one per night (last:N)
    after: tuple[float, ...]
    ratio: stats.Ratio | None  # None: no interval could be formed (see word)
    p_adjusted: float | None  # Holm across the comparison's points
    word: str  # better | worse | not resolved here (...) | not detectable here (...) | ...
    metric: str = "qps"

    @property
    def significant(self) -> bool:
        return self.word in (BETTER, WORSE)

    @property
    def change_pct(self) -> float:
        if self.ratio is not None:
            return (self.ratio.estimate - 1) * 100
        med_a, med_b = statistics.median(self.before), statistics.median(self.after)
        return (med_b - med_a) / med_a * 100 if med_a else 0.0

    def line(self) -> str:
        p = self.point
        arch, threads, conns = p.get("server.arch"), p.get("server.threads"), p.get("load.connections")
        med_a, med_b = statistics.median(self.before), statistics.median(self.after)
        at = "".join(f" {x}" for x in label(p).split()[3:])  # the rate and the other axes
        interval = f"{self.ratio.text()}, " if self.ratio is not None else ""
        holm = f"Holm p={self.p_adjusted:.2g}, " if self.p_adjusted is not None else ""
        return (f"{arch:<10} threads={threads:<3} conns={conns:<5}{at} {_fmt(med_a):>11} -> "
                f"{_fmt(med_b):>11} {UNITS[self.metric]} ({self.change_pct:+.1f}%, {interval}"
                f"n={len(self.before)}/{len(self.after)}, {holm}95%): {self.word}")


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    changes: tuple[PointChange, ...]
    only_a: tuple[Point, ...]
    only_b: tuple[Point, ...]
    warnings: tuple[str, ...]
    statistic: str = stats.UNPAIRED
    floor: Floor | None = None
    why: tuple[tuple[Point, Any], ...] = ()  # (point, explain.Explanation): what each request cost moved

    def effect_pct(self, pct: float) -> float:
        """The effect a gate acts on: the requested one, or the floor where that is larger."""
        return max(pct, self.floor.pct if self.floor else 0.0)

    def regressions(self, pct: float) -> list[PointChange]:
        """Points whose whole interval lies beyond max(pct, floor) in the metric's bad direction
        (a drop of QPS or capacity, a rise of CPU per request or latency)."""
        effect = self.effect_pct(pct) / 100
        return [c for c in self.changes if c.word == WORSE and (
            c.ratio is None or _beyond(c.ratio, effect, PAIRED_METRICS[c.metric].higher_is_better))]


def _samples(summary: Summary, metric: str = "qps") -> dict[Point, list[float]]:
    """Each point's QPS over its repetitions (runs that failed before measuring have none), or
    the capacity each of its searches found (a search that met not even min_rate counts 0)."""
    out: dict[Point, list[float]] = {}
    if metric == "capacity":
        for c in summary.capacity:
            out.setdefault(c.key, []).append(c.capacity or 0.0)
        return out
    read = PAIRED_METRICS[metric].read
    for r in summary.runs:
        if (value := read(r)) is not None:
            out.setdefault(r.key, []).append(value)
    return out


def quantum_of(summary: Summary, metric: str) -> dict[Point, float]:
    """A capacity's resolution: the widest gap, relative to the capacity, between it and the
    first failing step above it in any of the point's searches (the search's grid). QPS: 0."""
    out: dict[Point, float] = {}
    if metric != "capacity":
        return out
    for c in summary.capacity:
        above = [s.rate for s in c.steps if not s.passed and c.capacity and s.rate > c.capacity]
        if c.capacity and above:
            out[c.key] = max(out.get(c.key, 0.0), min(above) / c.capacity - 1)
    return out


def metric_of(*summaries: Summary | dict[str, Any]) -> str:
    """The metric two results share: capacity when both searched for it, else QPS."""
    typed = [as_summary(s, "summary") for s in summaries]
    return "capacity" if all(s.capacity for s in typed) else "qps"


def _nothing(ratio: stats.Ratio, floor: Floor | None) -> str:
    """What an interval that does not exclude 1 says: never "no change"."""
    if floor is not None:
        return f"not detectable here ({floor.text()})"
    return f"not resolved here (interval \u00b1{ratio.half_width_pct:.1f}%)"


def _beyond(ratio: stats.Ratio, effect: float, higher_is_better: bool) -> bool:
    """The whole interval lies beyond `effect` (a fraction) in the metric's bad direction."""
    return ratio.high < 1 - effect if higher_is_better else ratio.low > 1 + effect


def _call(ratio: stats.Ratio, p: float | None, floor: Floor | None, higher_is_better: bool) -> str:
    """The word for an interval: better or worse only when it excludes 1 and `p` (Holm's,
    where many are compared) is below 0.05; otherwise never "no change"."""
    if ratio.excludes_one and p is not None and p < ALPHA:
        return BETTER if (ratio.estimate > 1) == higher_is_better else WORSE
    if ratio.p_value is None:
        return "not resolved here (no spread to test with)"
    return _nothing(ratio, floor)


def _word(ratio: stats.Ratio | None, why: str | None, p_adjusted: float | None,
          floor: Floor | None, higher_is_better: bool) -> str:
    """The word for one point, from ratio_for's answer."""
    if ratio is None:
        if why in (BETTER, WORSE) and not higher_is_better:
            return WORSE if why == BETTER else BETTER
        return str(why)
    return _call(ratio, p_adjusted if p_adjusted is not None else ratio.p_value, floor, higher_is_better)


def ratio_for(before: Sequence[float], after: Sequence[float], *, quantum: float = 0.0,
              nights: bool = False) -> tuple[stats.Ratio | None, str | None]:
    """(ratio, None) or (None, why no interval): too few values, or a zero that has no log."""
    if nights:
        if len(before) < 2:
            return None, "too few nights"
    elif len(before) < 2 or len(after) < 2:
        return None, "too few repetitions"
    zero_a, zero_b = any(x <= 0 for x in before), any(x <= 0 for x in after)
    if zero_a or zero_b:
        if all(x > 0 for x in before) and all(x <= 0 for x in after):
            return None, WORSE  # every search found nothing where each found a capacity before
        if all(x <= 0 for x in before) and all(x > 0 for x in after):
            return None, BETTER
        return None, "not resolved here (some repetitions found no capacity)"
    if nights:
        return stats.against_nights(before, statistics.geometric_mean(after), quantum=quantum), None
    return stats.ratio_of(before, after, quantum=quantum), None


def judge(before: Sequence[float], after: Sequence[float], *, quantum: float = 0.0,
          floor: Floor | None = None, p_adjusted: float | None = None,
          nights: bool = False, higher_is_better: bool = True) -> tuple[stats.Ratio | None, str]:
    """(ratio, word) for one point; `p_adjusted` (Holm's, when many points are compared) is
    what the call is made on, else the ratio's own p."""
    ratio, why = ratio_for(before, after, quantum=quantum, nights=nights)
    return ratio, _word(ratio, why, p_adjusted, floor, higher_is_better)


def _nightly(nights: Sequence[Summary], metric: str) -> dict[Point, list[float]]:
    """One value per night per point: the geometric mean of that night's repetitions."""
    out: dict[Point, list[float]] = {}
    for s in nights:
        for point, values in _samples(s, metric).items():
            if values and all(v > 0 for v in values):
                out.setdefault(point, []).append(statistics.geometric_mean(values))
            elif values:
                out.setdefault(point, []).append(0.0)
    return out


def compare(a: Summary | dict[str, Any] | Sequence[Summary], b: Summary | dict[str, Any], *,
            names: tuple[str, str] = ("A", "B"), metric: str | None = None,
            floor: Floor | None = None) -> Comparison:
    """Point by point on `metric` (qps or capacity; None: capacity when both sides have it).
    `a` as a list of summaries is a window of nights (newest first): with two or more, each
    night is one value and B is judged against the nights' spread."""
    window = [as_summary(s, names[0]) for s in a] if isinstance(a, list | tuple) else None
    a = window[0] if window else as_summary(a, names[0])  # type: ignore[arg-type]  # a single side here
    b = as_summary(b, names[1])
    metric = metric or metric_of(a, b)
    if floor is not None and floor.metric != metric:
        floor = None  # a floor holds for the metric it was measured on
    nights = window is not None and len(window) > 1
    sa = _nightly(window, metric) if nights and window else _samples(a, metric)
    sb = _samples(b, metric)
    quanta = quantum_of(b, metric)
    for s in window or [a]:
        for point, q in quantum_of(s, metric).items():
            quanta[point] = max(quanta.get(point, 0.0), q)
    shared = [p for p in sa if p in sb]
    found = {p: ratio_for(sa[p], sb[p], quantum=quanta.get(p, 0.0), nights=nights) for p in shared}
    adjusted = stats.holm([r.p_value if r else None for r, _ in found.values()])
    changes = []
    for point, p_adj in zip(shared, adjusted, strict=True):
        ratio, why = found[point]  # each interval computed once: Holm's p and the word share it
        word = _word(ratio, why, p_adj, floor, PAIRED_METRICS[metric].higher_is_better)
        changes.append(PointChange(point, tuple(sa[point]), tuple(sb[point]), ratio, p_adj, word, metric))
    warnings = []
    if metric == "capacity" and not (a.capacity and b.capacity):
        warnings.append(f"capacity compared, but {names[0] if not a.capacity else names[1]} has no "
                        "capacity search (load.search)")
    if a.scenario != b.scenario:
        warnings.append(f"different scenarios: {a.scenario} vs {b.scenario}")
    if machine_fingerprint(a) != machine_fingerprint(b):
        warnings.append(f"different machines: {machine_fingerprint(a)} vs {machine_fingerprint(b)}; "
                        "differences may be the machine, not the server")
    warnings += [f"environment differs: {d}" for d in environment_differences(a, b)]
    for s, name in ((a, names[0]), (b, names[1])):
        if s.status != "complete":
            warnings.append(f"{name} did not complete (status {s.status})")
    return Comparison(names[0], names[1], tuple(changes),
                      tuple(p for p in sa if p not in sb), tuple(p for p in sb if p not in sa),
                      tuple(warnings), stats.NIGHTS if nights else stats.UNPAIRED, floor,
                      _why(a, b, shared, names))


def _why(a: Summary, b: Summary, points: Sequence[Point],
         names: tuple[str, str]) -> tuple[tuple[Point, Any], ...]:
    """explain.unpaired at each point both sides ran (A: the newest night of a window)."""
    from orchestrator import explain

    out = []
    for point in points:
        e = explain.unpaired([r for r in a.runs if r.key == point], [r for r in b.runs if r.key == point],
                             names[1], names[0])
        if e is not None:
            out.append((point, e))
    return tuple(out)


def render(c: Comparison) -> str:
    lines = [f"compare {c.a} -> {c.b}: B/A as {c.statistic}; a point is called better or "
             "worse when its interval excludes 1 and its Holm-adjusted p is below 0.05"]
    if c.statistic == stats.UNPAIRED:
        lines.append(UNPAIRED_NOTE)
    if c.floor is not None:
        lines.append(f"noise floor of these hosts: {c.floor.text()}")
    lines += [f"warning: {w}" for w in c.warnings]
    if not any(w.startswith("environment differs") for w in c.warnings):
        lines.append("environment: no recorded fact differs between A and B (kernel, CPU model, "
                     "governor, tool versions, sysctl, host noise: those both recorded)")
    lines += [ch.line() for ch in c.changes]
    for point, e in c.why:
        lines.append(f"why, at {label(point)} (unpaired intervals): " + "\n".join(e.lines()))
    lines += [f"only in {c.a}: {label(p)}" for p in c.only_a]
    lines += [f"only in {c.b}: {label(p)}" for p in c.only_b]
    if not c.changes:
        lines.append("no matching runs to compare")
    return "\n".join(lines)


MIN_GATE_REPEAT = 3  # fewer repetitions per point and Welch's test cannot call a drop significant


def gate_problems(loaded: Any) -> list[Problem]:
    """Why the regression gate could not judge this scenario (empty: it can)."""
    sc = loaded.scenario
    if sc.compare is not None:  # paired rounds: the scenario's own checks ask for 2 or more
        return []
    if sc.repeat >= MIN_GATE_REPEAT:
        return []
    return [loaded.problem(("repeat",), f"--fail-on-regression needs at least {MIN_GATE_REPEAT} "
                           f"repetitions per point to judge a drop, got {sc.repeat}; set repeat: "
                           f"{MIN_GATE_REPEAT} or more")]


def check_ref(ref: str) -> int | None:
    """Validate a --baseline REF before anything starts: 'latest', 'last:N' (returns N) or a
    results folder."""
    if ref == "latest":
        return None
    if ref.startswith("last:"):
        n = ref.removeprefix("last:")
        if not n.isdigit() or not 1 <= int(n) <= 1000:
            raise UserError(f"--baseline {ref}: expected last:N with N a whole number from 1 to 1000")
        return int(n)
    if not (Path(ref) / "summary.json").is_file():
        raise UserError(f"--baseline {ref}: not a results folder (no summary.json), 'latest' or 'last:N'")
    return None


def _complete(history: History, scenario: str, exclude: str | None, limit: int) -> list[Summary]:
    """Summaries of the newest complete runs of a scenario in the history, newest first."""
    out = []
    for s in history.sessions(scenario=scenario, status="complete", limit=limit + 1):
        if s["results_id"] == exclude:
            continue
        folder = history.folder(s)
        if folder is not None:
            out.append(load_summary(folder))
        if len(out) == limit:
            break
    return out


def baseline(ref: str, *, scenario: str, history: History | None = None,
             exclude: str | None = None) -> tuple[str, Any] | None:
    """(name, summary or window) of a baseline. 'latest': the newest complete run of the same
    scenario in the history (not `exclude`, the run being judged). 'last:N': the N newest, as a
    list (newest first): compare() counts each night once, so one noisy night cannot decide and
    a night's repetitions, which share its drift, are not taken as independent samples.
    Otherwise a results folder. None: the history has no earlier complete run (the first run of
    a scheduled job)."""
    n = check_ref(ref)
    if ref != "latest" and n is None:
        return ref, load_summary(Path(ref))
    history = history or open_history()
    got = _complete(history, scenario, exclude, n or 1)
    if not got:
        return None
    ids = [str(s.run_id) for s in got]
    if n is None:
        return f"latest ({ids[0]})", got[0]
    name = f"last:{n} ({len(got)} run{'s' * (len(got) > 1)}: {ids[-1]} .. {ids[0]})"
    return name, got


def resolve_ref(ref: str, *, scenario: str, exclude: str | None = None,
                db: str | Path | None = None) -> Path:
    """A single results folder for REF ('latest' or a path); kept for callers that need a folder."""
    if ref == "latest":
        history = open_history(db)
        for s in history.sessions(scenario=scenario, status="complete", limit=20):
            if s["results_id"] != exclude and (folder := history.folder(s)) is not None:
                return folder
        raise UserError(f"--baseline latest: no earlier complete run of scenario '{scenario}' in "
                        "the history database")
    check_ref(ref)
    return Path(ref)


def find(ref: str, history: History) -> tuple[str, Any]:
    """A results folder, or a results id recorded in the history (fetched if it is remote)."""
    if Path(ref).is_dir():
        return ref, load_summary(Path(ref))
    for s in history.sessions(limit=100_000):
        if s["results_id"] == ref:
            folder = history.folder(s)
            if folder is None:
                raise UserError(f"{ref}: recorded in {history.where} but its results are gone")
            return ref, load_summary(folder)
    raise UserError(f"{ref}: neither a results folder nor a run id in the history ({history.where})")


def shifts_report(history: History, scenario: str, limit: int = 200) -> list[str]:
    """Where each point's history shifted (oldest to newest complete runs of the scenario)."""
    from orchestrator.history import changepoint

    summaries = list(reversed(_complete(history, scenario, None, limit)))
    lines = []
    for (_, point), series in changepoint.entries(summaries).items():
        for sh in changepoint.shifts(series):
            lines.append(f"change point: {label(point)}: {sh.change_pct:+.1f}% at run {sh.results_id} "
                         f"({sh.before:,.0f} -> {sh.after:,.0f} req/s, p={sh.p_value:.2g}, "
                         f"run {sh.index + 1} of {len(series)})")
    return lines


# --- paired rounds: a factor compared side by side within one results folder ---------------


@dataclass(frozen=True)
class PairedChange:
    """One variant against the baseline at one combination of the other axes, on one metric."""

    at: str  # the other axes, as a label
    variant: str
    baseline: str
    metric: Metric
    ratio: stats.Ratio
    p_adjusted: float | None
    word: str  # better | worse | not detectable here (...) | not resolved here (...)

    @property
    def significant(self) -> bool:
        return self.word in (BETTER, WORSE)

    def line(self) -> str:
        return (f"{self.at}: {self.variant} / {self.baseline} {self.metric.unit}: {self.ratio.text()} "
                f"({self.ratio.n} rounds): {self.word}")


def paired(summary: Summary | dict[str, Any], factor: str, baseline_value: Any, *,
           metrics: Sequence[str] = ("qps",),
           floors: dict[str, Floor] | None = None) -> list[PairedChange]:
    """Every other value of `factor` (any axis of the matrix) against `baseline_value` at each
    combination of the other axes, round by round (a run's repetition is its round: each round
    ran every value once, on the same hosts, so the per-round ratio cancels the machine's
    drift). Holm across every point and metric compared; a call needs the interval to exclude 1
    and Holm's p < 0.05."""
    s = as_summary(summary, "summary")
    axes = list(dict.fromkeys(a for r in s.runs for a, v in run_point(r).items() if v is not None))
    if factor not in axes or factor == "load.rate":
        raise UserError(f"compare.factor {factor}: expected one of "
                        f"{', '.join(a for a in axes if a != 'load.rate')} (the axes of its runs)")
    found: list[tuple[str, Any, Metric, stats.Ratio]] = []
    for name in metrics:
        m = PAIRED_METRICS[name]
        for (at, value), got in rounds(s.runs, factor, baseline_value, m).items():
            if len(got) >= 2:
                ratio = stats.paired_ratio([x for _, x, _ in got], [y for *_, y in got])
                found.append((_at(at), value, m, ratio))
    adjusted = stats.holm([r.p_value for *_, r in found])
    out = []
    for (where, value, m, ratio), p in zip(found, adjusted, strict=True):
        word = _call(ratio, p, (floors or {}).get(m.name), m.higher_is_better)
        out.append(PairedChange(where, text(value), text(baseline_value), m, ratio, p, word))
    return out


def _at(point: Any) -> str:
    """The other axes of a pair, short: `threads=1 connections=64 keepalive=false`."""
    return " ".join(f"{a.rsplit('.', 1)[-1]}={value_text(v)}" for a, v in point.items()
                    if v is not None) or "(single point)"


value_text = text  # a value as a person writes it (point.text)


def explanations(summary: Summary | dict[str, Any], factor: str,
                 baseline_value: Any) -> dict[tuple[str, str], Any]:
    """explain.by_cell for a paired comparison, keyed as its PairedChange is: (at, variant)."""
    from orchestrator import explain

    s = as_summary(summary, "summary")
    return {(_at(at), text(value)): why
            for (at, value), why in explain.by_cell(s.runs, factor, baseline_value, s).items()}


def paired_gate_lines(bad: Sequence[PairedChange], factor: str, effect: float, floor_text: str,
                      why: dict[tuple[str, str], Any] | None = None) -> list[str]:
    """The gate's lines for the changes it failed on: point, variant, metric, interval, rounds,
    the effect and floor it needed, then the cell's explanation (what each request cost moved)."""
    out = []
    for ch in bad:
        line = (f"{ch.at}: {factor}={ch.variant} against {ch.baseline}: {ch.metric.unit} "
                f"{ch.ratio.text()} ({ch.ratio.n} rounds), beyond {effect:g}% ({floor_text})")
        e = (why or {}).get((ch.at, ch.variant))
        env = f"; {e.environment_line}" if e is not None and e.environment else ""
        out.append(line + (f"; why: {e.sentence}{env}" if e is not None else ""))
    return out


def paired_regressions(changes: Sequence[PairedChange], pct: float,
                       floors: dict[str, Floor] | None = None) -> list[PairedChange]:
    """Changes whose whole interval lies beyond max(pct, the metric's floor) in its bad
    direction."""
    out = []
    for c in changes:
        floor = (floors or {}).get(c.metric.name)
        effect = max(pct, floor.pct if floor else 0.0) / 100
        if c.word == WORSE and _beyond(c.ratio, effect, c.metric.higher_is_better):
            out.append(c)
    return out
