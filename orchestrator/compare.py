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

from orchestrator.analysis import point_of
from orchestrator.errors import UserError
from orchestrator.history import history_sessions, machine_fingerprint
from orchestrator.store import load_summary

Point = tuple[Any, Any, Any, float | None]  # arch, server threads, connections, target rate

ALPHA = 0.05
MIN_EFFECT_PCT = 3.0  # smaller changes are reported as noise even when "significant"


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

    @property
    def significant(self) -> bool:
        return self.word in ("better", "worse")

    def line(self) -> str:
        arch, threads, conns, rate = self.point
        med_a, med_b = statistics.median(self.before), statistics.median(self.after)
        p = f"p={self.p_value:.3g}" if self.p_value is not None else "no test"
        at = f" rate={rate:g}" if rate is not None else ""
        return (f"{arch:<10} threads={threads:<3} conns={conns:<5}{at} {med_a:>11,.0f} -> "
                f"{med_b:>11,.0f} qps ({self.change_pct:+.1f}%, n={len(self.before)}/{len(self.after)}, "
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


def _samples(summary: dict[str, Any]) -> dict[Point, list[float]]:
    out: dict[Point, list[float]] = {}
    for r in summary.get("runs", []):
        out.setdefault(point_of(r), []).append(float(r["qps"]))
    return out


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


def compare(a: dict[str, Any], b: dict[str, Any], *, names: tuple[str, str] = ("A", "B"),
            min_effect_pct: float = MIN_EFFECT_PCT) -> Comparison:
    sa, sb = _samples(a), _samples(b)
    changes = []
    for point in sa:
        if point in sb:
            change, p, word = judge(sa[point], sb[point], min_effect_pct=min_effect_pct)
            changes.append(PointChange(point, tuple(sa[point]), tuple(sb[point]), change, p, word))
    warnings = []
    if a.get("scenario") != b.get("scenario"):
        warnings.append(f"different scenarios: {a.get('scenario')} vs {b.get('scenario')}")
    if machine_fingerprint(a) != machine_fingerprint(b):
        warnings.append(f"different machines: {machine_fingerprint(a)} vs {machine_fingerprint(b)}; "
                        "differences may be the machine, not the server")
    for s, name in ((a, names[0]), (b, names[1])):
        if s.get("status") != "complete":
            warnings.append(f"{name} did not complete (status {s.get('status')})")
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


def resolve_ref(ref: str, *, scenario: str, exclude: str | None = None,
                db: Path | None = None) -> Path:
    """A baseline reference: a results folder, or 'latest' = the newest complete run of the
    same scenario in the history database (excluding the run being judged)."""
    if ref == "latest":
        for s in history_sessions(db, scenario=scenario, status="complete", limit=20):
            if s["results_id"] != exclude and Path(s["path"]).is_dir():
                return Path(s["path"])
        raise UserError(f"--baseline latest: no earlier complete run of scenario '{scenario}' in "
                        "the history database")
    path = Path(ref)
    if not (path / "summary.json").is_file():
        raise UserError(f"--baseline {ref}: not a results folder (no summary.json)")
    return path


def load_pair(a: Path, b: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return load_summary(a), load_summary(b)
