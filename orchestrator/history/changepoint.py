"""Change points in each matrix point's history: where the series shifted, and by how much.

The library: Apache Otava (formerly Hunter, `apache-otava`), not MongoDB's
signal-processing-algorithms. Both implement e-divisive means; we compared them here
(Python 3.11, numpy 2.4): MongoDB's package pins numpy<2 (a downgrade of everything
else), needs a C extension build and gevent, and decides significance by a random
permutation test (results vary between calls unless seeded, and each test costs
hundreds of permutations). Otava adds Hunter's split/merge with a Student t-test,
which is deterministic, fast, works with the short series a nightly job has
(Fleming et al., ICPE 2023), and reports each shift's mean before/after and p-value.
Its analysis core needs only numpy and scipy, and that is all we import (`otava.analysis`);
its package metadata pins numpy 2.2 / scipy 1.16 and pulls in its BigQuery, Postgres and
Slack importers (see pyproject.toml).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.history.fingerprint import SummaryLike, typed
from orchestrator.point import PointKey
from orchestrator.records import Run

MAX_P = 0.001  # Otava's default; over 30 runs of noise a looser p finds shifts that are not there
MIN_SHIFT_PCT = 3.0  # as the gate's minimum effect: smaller shifts are not reported
WINDOW = 30  # Otava's sliding window (runs)

Point = PointKey  # orchestrator/point.py


@dataclass(frozen=True)
class Shift:
    index: int  # the first run after the shift, in the series' order
    results_id: str  # that run
    before: float  # mean of the stretch before (up to the previous shift)
    after: float  # mean of the stretch after (up to the next shift)
    change_pct: float
    p_value: float


@dataclass(frozen=True)
class Entry:
    """One run's value for one point: medians over that run's repetitions (or searches)."""

    results_id: str
    started: str
    qps: float | None  # None: a capacity search (its runs are at rates it chose)
    p99_ms: float | None
    capacity: float | None  # requests/s, where the run searched for it (load.search)
    n: int  # repetitions

    @property
    def value(self) -> float:
        """What the series is judged on: QPS, or the capacity a search found."""
        return self.qps if self.qps is not None else (self.capacity or 0.0)


def detect(values: list[float], ids: list[str] | None = None, *, max_p: float = MAX_P,
           min_shift_pct: float = MIN_SHIFT_PCT) -> list[Shift]:
    """Shifts in one series (oldest first)."""
    if len(values) < 4:
        return []
    from otava.analysis import compute_change_points

    ids = ids or [str(i) for i in range(len(values))]
    points, _ = compute_change_points([float(v) for v in values], window_len=WINDOW, max_pvalue=max_p,
                                      min_magnitude=min_shift_pct / 100)
    return [Shift(int(cp.index), ids[cp.index], float(cp.stats.mean_1), float(cp.stats.mean_2),
                  float(cp.stats.forward_change_percent()), float(cp.stats.pvalue)) for cp in points]


def entries(summaries: Sequence[SummaryLike]) -> dict[tuple[str, Point], list[Entry]]:
    """(scenario, point) -> one Entry per run (summaries oldest first; typed or as dicts)."""
    out: dict[tuple[str, Point], list[Entry]] = {}
    for s in map(typed, summaries):
        rid, started, scenario = s.run_id, s.started, s.scenario
        if s.capacity:  # a capacity scenario: one value per point, the capacity found
            found: dict[Point, list[float]] = {}
            for c in s.capacity:
                found.setdefault(c.key, []).append(c.capacity or 0.0)
            for point, caps in found.items():
                out.setdefault((scenario, point), []).append(
                    Entry(rid, started, None, None, statistics.median(caps), len(caps)))
            continue
        per: dict[Point, list[Run]] = {}
        for r in s.runs:
            if r.qps is not None:  # else a run that failed before measuring
                per.setdefault(r.key, []).append(r)
        for point, runs in per.items():
            p99 = [r.latency_ms.p99 for r in runs if r.latency_ms.p99 is not None]
            out.setdefault((scenario, point), []).append(Entry(
                rid, started, statistics.median(r.qps or 0.0 for r in runs),
                statistics.median(p99) if p99 else None, None, len(runs)))
    return out


def shifts(series: list[Entry]) -> list[Shift]:
    return detect([e.value for e in series], [e.results_id for e in series])
