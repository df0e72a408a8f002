"""Compare two results folders point by point, and the regression gate built on it.

A difference is called significant only when a statistical test says so AND
the change is at least a minimum effect size (pyperf's rule): repeated runs of
the same thing always differ a little, and a scheduled job must not cry wolf.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import Problem, UserError
from orchestrator.history import (
    History,
    environment_differences,
    machine_fingerprint,
    open_history,
    plain,
)
from orchestrator.records import Summary, as_summary
from orchestrator.store import load_summary

Point = tuple[Any, Any, Any, float | None]  # arch, server threads, connections, target rate

ALPHA = 0.05
MIN_EFFECT_PCT = 3.0  # smaller changes are reported as noise even when "significant"
# What a point's repetitions are compared on: the QPS of its runs, or the capacity its
# searches found (load.search: the runs of a search are at rates it chose, not comparable)
METRICS = ("qps", "capacity")
UNITS = {"qps": "qps", "capacity": "req/s capacity"}


def label(point: Point) -> str:
    arch, threads, conns, rate = point
    return f"{arch} threads={threads} conns={conns}" + (f" rate={rate:g}" if rate is not None else "")


@dataclass(frozen=True)
class PointChange:
    point: Point
    before: tuple[float, ...]  # qps of each repetition
    after: tuple[float, ...]
    change_pct: float  # of the medians
    p_value: float | None  # None: too few repetitions for a test
    word: str  # "better" | "worse" | "no significant change" | "too few repetitions"
    metric: str = "qps"

    @property
    def significant(self) -> bool:
        return self.word in ("better", "worse")

    def line(self) -> str:
        arch, threads, conns, rate = self.point
        med_a, med_b = statistics.median(self.before), statistics.median(self.after)
        p = f"p={self.p_value:.3g}" if self.p_value is not None else "no test"
        at = f" rate={rate:g}" if rate is not None else ""
        return (f"{arch:<10} threads={threads:<3} conns={conns:<5}{at} {med_a:>11,.0f} -> "
                f"{med_b:>11,.0f} {UNITS[self.metric]} ({self.change_pct:+.1f}%, "
                f"n={len(self.before)}/{len(self.after)}, "
                f"{p}): {self.word}")


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    changes: tuple[PointChange, ...]
    only_a: tuple[Point, ...]
    only_b: tuple[Point, ...]
    warnings: tuple[str, ...]

    def regressions(self, pct: float) -> list[PointChange]:
        return [c for c in self.changes if c.word == "worse" and -c.change_pct > pct]


def _samples(summary: Summary, metric: str = "qps") -> dict[Point, list[float]]:
    """Each point's QPS over its repetitions (runs that failed before measuring have none), or
    the capacity each of its searches found (a search that met not even min_rate counts 0)."""
    out: dict[Point, list[float]] = {}
    if metric == "capacity":
        for c in summary.capacity:
            out.setdefault(c.key, []).append(c.capacity or 0.0)
        return out
    for r in summary.runs:
        if r.qps is not None:
            out.setdefault(r.key, []).append(r.qps)
    return out


def metric_of(*summaries: Summary | dict[str, Any]) -> str:
    """The metric two results share: capacity when both searched for it, else QPS."""
    typed = [as_summary(s, "summary") for s in summaries]
    return "capacity" if all(s.capacity for s in typed) else "qps"


def judge(before: list[float], after: list[float], *, min_effect_pct: float = MIN_EFFECT_PCT,
          alpha: float = ALPHA) -> tuple[float, float | None, str]:
    """(change % of medians, p-value, word) for two sets of repetitions."""
    med_a, med_b = statistics.median(before), statistics.median(after)
    change = (med_b - med_a) / med_a * 100 if med_a else 0.0
    if len(before) < 2 or len(after) < 2:
        return change, None, "too few repetitions"
    from scipy import stats  # heavy import, only when comparing

    # Welch's t-test: with 3 repetitions a side, Mann-Whitney cannot reach p < 0.1.
    if statistics.pstdev(before) == 0 and statistics.pstdev(after) == 0:
        p = 0.0 if med_a != med_b else 1.0
    else:
        p = float(stats.ttest_ind(after, before, equal_var=False).pvalue)
    if p < alpha and abs(change) >= min_effect_pct:
        return change, p, "better" if change > 0 else "worse"
    return change, p, "no significant change"


def compare(a: Summary | dict[str, Any], b: Summary | dict[str, Any], *, names: tuple[str, str] = ("A", "B"),
            min_effect_pct: float = MIN_EFFECT_PCT, metric: str | None = None) -> Comparison:
    """Point by point on `metric` (qps or capacity; None: capacity when both sides have it)."""
    a, b = as_summary(a, names[0]), as_summary(b, names[1])
    metric = metric or metric_of(a, b)
    sa, sb = _samples(a, metric), _samples(b, metric)
    changes = []
    for point in sa:
        if point in sb:
            change, p, word = judge(sa[point], sb[point], min_effect_pct=min_effect_pct)
            changes.append(PointChange(point, tuple(sa[point]), tuple(sb[point]), change, p, word, metric))
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
                      tuple(warnings))


def render(c: Comparison) -> str:
    lines = [f"compare {c.a} -> {c.b}"]
    lines += [f"warning: {w}" for w in c.warnings]
    lines += [ch.line() for ch in c.changes]
    lines += [f"only in {c.a}: {label(p)}" for p in c.only_a]
    lines += [f"only in {c.b}: {label(p)}" for p in c.only_b]
    if not c.changes:
        lines.append("no matching runs to compare")
    return "\n".join(lines)


MIN_GATE_REPEAT = 3  # fewer repetitions per point and Welch's test cannot call a drop significant


def gate_problems(loaded: Any) -> list[Problem]:
    """Why the regression gate could not judge this scenario (empty: it can)."""
    sc = loaded.scenario
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


def _complete(history: History, scenario: str, exclude: str | None, limit: int) -> list[Any]:
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
    """(name, summary) of a baseline. 'latest': the newest complete run of the same scenario in
    the history (not `exclude`, the run being judged). 'last:N': the N newest, pooled: every
    repetition of a point in the window is a sample, so one noisy night cannot decide and a
    slow drift is measured against more than yesterday. Otherwise a results folder.
    None: the history has no earlier complete run (the first run of a scheduled job)."""
    n = check_ref(ref)
    if ref != "latest" and n is None:
        return ref, load_summary(Path(ref))
    history = history or open_history()
    got = _complete(history, scenario, exclude, n or 1)
    if not got:
        return None
    ids = [str(plain(s).get("run_id")) for s in got]
    if n is None:
        return f"latest ({ids[0]})", got[0]
    if hasattr(got[0], "model_copy"):  # the typed summary record
        pooled: Any = got[0].model_copy(update={"runs": tuple(r for s in got for r in s.runs),
                                                "capacity": tuple(c for s in got for c in s.capacity)})
    else:
        pooled = {**got[0], "runs": [r for s in got for r in s.get("runs", [])],
                  "capacity": [c for s in got for c in s.get("capacity", [])]}
    name = f"last:{n} ({len(got)} run{'s' * (len(got) > 1)}: {ids[-1]} .. {ids[0]})"
    return name, pooled


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
