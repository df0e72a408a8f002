"""The noise floor of these hosts, measured: A/A rounds of a scenario against itself.

`orchestrate noise SCENARIO --rounds N` runs the scenario with 2N repetitions; repetitions
2k-1 and 2k of a point are round k's A and B. Both are the same thing, so every per-round log
ratio is noise: their spread (pooled over the points, each point's own mean removed) is what
a paired comparison on these hosts has to see through, and stats.detectable_effect turns it
into the smallest change n rounds detect (95% confidence, 80% power). The floor is kept in
the history with the hosts' fingerprint; a comparison on the same hosts reads it back, says
"not detectable here (floor X% at n rounds)" below it, and the gate acts on max(PCT, floor).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator import stats
from orchestrator.compare import PAIRED_METRICS, Floor, Point
from orchestrator.history import History, machine_fingerprint
from orchestrator.records import Summary, as_summary

REPORTED_ROUNDS = (5, 10, 20)
METRIC = "qps"  # the floor the gate acts on; others are kept beside it
METRICS = ("qps", "cpu_us_per_request")


@dataclass(frozen=True)
class NoiseFloor:
    """An A/A measurement: the spread of per-round log ratios and what it lets n rounds see."""

    scenario: str
    machine: str  # the hosts' fingerprint: a floor holds only where it was measured
    results_id: str
    started: str
    metric: str
    rounds: int  # complete A/A rounds per point
    points: int
    sd_log: float  # pooled sd of per-round log ratios of `metric`
    others: dict[str, float] = field(default_factory=dict)  # the same for other metrics measured

    def floor(self, n: int | None = None, metric: str | None = None) -> Floor | None:
        """The minimum detectable effect at n rounds (default: the rounds measured) on a metric
        (default: the main one); None: that metric's floor was not measured."""
        n, metric = n or self.rounds, metric or self.metric
        sd = self.sd_log if metric == self.metric else self.others.get(metric)
        if sd is None:
            return None
        return Floor(stats.detectable_effect(sd, n) * 100, n, sd, metric)

    def floors(self, n: int) -> dict[str, Floor]:
        return {m: f for m in (self.metric, *self.others) if (f := self.floor(n, m)) is not None}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseFloor:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def lines(self) -> list[str]:
        out = [f"noise floor of {self.scenario} on {self.machine} ({self.points} point(s) x "
               f"{self.rounds} A/A rounds)"]
        for metric in (self.metric, *self.others):
            sd = self.sd_log if metric == self.metric else self.others[metric]
            out.append(f"  {metric}: per-round log ratios spread {math.expm1(sd) * 100:.2f}% (sd)")
            out += [f"    minimum detectable effect at {n:>2} rounds: "
                    f"{stats.detectable_effect(sd, n) * 100:.1f}%"
                    for n in sorted({*REPORTED_ROUNDS, self.rounds})]
        return out


def aa_rounds(summary: Summary, metric: str = METRIC) -> dict[Point, list[tuple[float, float]]]:
    """Each point's A/A rounds: (repetition 2k-1, repetition 2k); a round missing a side (a run
    that failed before measuring) is left out."""
    read = PAIRED_METRICS[metric].read
    by_rep: dict[Point, dict[int, float]] = {}
    for r in summary.runs:
        value = read(r)
        if value is not None and value > 0:
            by_rep.setdefault(r.key, {})[r.repetition] = value
    out: dict[Point, list[tuple[float, float]]] = {}
    for point, reps in by_rep.items():
        pairs = [(reps[k], reps[k + 1]) for k in range(1, max(reps) + 1, 2) if k in reps and k + 1 in reps]
        if pairs:
            out[point] = pairs
    return out


def pooled_sd(rounds: dict[Point, list[tuple[float, float]]]) -> tuple[float, int]:
    """(pooled sd of log ratios, rounds of the smallest point) over points with 2+ rounds."""
    ss, df, least = 0.0, 0, 0
    for pairs in rounds.values():
        if len(pairs) < 2:
            continue
        logs = [math.log(b / a) for a, b in pairs]
        ss += statistics.variance(logs) * (len(logs) - 1)
        df += len(logs) - 1
        least = len(pairs) if not least else min(least, len(pairs))
    if not df:
        raise ValueError("a noise floor needs at least 2 complete A/A rounds of one point")
    return math.sqrt(ss / df), least


def measure(summary: Summary | dict[str, Any]) -> NoiseFloor:
    s = as_summary(summary, "summary")
    rounds = aa_rounds(s)
    sd, least = pooled_sd(rounds)
    others = {}
    for metric in METRICS[1:]:
        try:
            others[metric] = pooled_sd(aa_rounds(s, metric))[0]
        except ValueError:
            continue  # not measured (no telemetry): only the main floor
    return NoiseFloor(s.scenario or "", machine_fingerprint(s), str(s.run_id), s.started or "", METRIC, least,
                      sum(len(p) >= 2 for p in rounds.values()), sd, others)


def latest(history: History, scenario: str, machine: str) -> NoiseFloor | None:
    """The newest floor measured for this scenario on these hosts (None: never measured)."""
    found = [NoiseFloor.from_dict(f) for f in history.floors().values()
             if f.get("scenario") == scenario and f.get("machine") == machine]
    return max(found, key=lambda f: (f.started, f.results_id), default=None)


def describe(floor: NoiseFloor | None, comparison_rounds: int) -> dict[str, Floor]:
    """The floors (by metric) at a comparison's own number of rounds."""
    return floor.floors(max(2, comparison_rounds)) if floor else {}

