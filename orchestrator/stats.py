"""Ratios with 95% intervals: the one statistics module compare, the gate, the report and
bench/ share.

The unit is the round. In a round, A and B ran side by side on the same hosts, so drift of the
machine hits both; the per-round ratio B/A cancels it. The statistic is the geometric mean of the
per-round ratios, with a 95% interval from Student's t on the log ratios. t, not a bootstrap:
comparisons here have 5 to 20 rounds, too few for a bootstrap's percentiles to be honest, and log
ratios of throughputs and CPU costs are close to symmetric.

Unpaired samples (two results folders made at different times) get the ratio of geometric means
with a Welch interval on the logs: wider, and it still carries whatever drifted between them.

Where a metric is quantised (a capacity search's grid), the interval is never narrower than the
quantum; and zero spread is never read as certainty (no p = 0 shortcut).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
PAIRED = "geometric mean of per-round ratios, 95% t interval on log ratios"
UNPAIRED = "ratio of geometric means, 95% Welch t interval on logs (unpaired: carries drift)"

# What a goal check on an interval can say
HOLDS, FAILS, NOT_RESOLVED = "holds", "fails", "not resolved here"


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (scipy, imported only when a statistic is computed). The special
    function scipy.stats.t.ppf evaluates, without importing scipy.stats (over a second at
    each `orchestrate run`, whose report computes intervals)."""
    from scipy import special

    return float(special.stdtrit(df, p))


def _t_cdf(x: float, df: float) -> float:
    from scipy import special

    return float(special.stdtr(df, x))  # scipy.stats.t.cdf's own function


@dataclass(frozen=True)
class Ratio:
    """B/A with its interval. `p_value` tests ratio == 1 (None: no spread to test with)."""

    estimate: float
    low: float
    high: float
    n: int  # rounds (paired) or the smaller side (unpaired)
    statistic: str
    p_value: float | None
    sd_log: float  # spread of the per-round log ratios (paired) or the pooled SE's basis

    @property
    def excludes_one(self) -> bool:
        return self.low > 1.0 or self.high < 1.0

    @property
    def half_width_pct(self) -> float:
        """Half the interval's width on the log scale, as a percentage."""
        return (math.sqrt(self.high / self.low) - 1) * 100

    def text(self, digits: int = 3) -> str:
        return f"{self.estimate:.{digits}f}x [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def judge(self, low: float, high: float) -> str:
        """A goal "the ratio lies within [low, high]": holds when the whole interval is inside,
        fails when the whole interval is outside, else not resolved here."""
        if low <= self.low and self.high <= high:
            return HOLDS
        if self.high < low or self.low > high:
            return FAILS
        return NOT_RESOLVED


def _logs(a: Sequence[float], b: Sequence[float]) -> list[float]:
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    if any(x <= 0 for x in (*a, *b)):
        raise ValueError("ratios need positive values")
    return [math.log(y / x) for x, y in zip(a, b, strict=True)]


def _interval(mean: float, se: float, df: float, quantum: float,
              se_quantum: float = 0.0) -> tuple[float, float, float | None]:
    """(log low, log high, p) with the half-width floored at the quantum's. The p-value's
    standard error is never below `se_quantum`, the rounding error a grid of that quantum
    alone puts on the mean (uniform within a step: sd = step / sqrt(12)), so equal repetitions
    on a grid give a finite p, never 0."""
    half = t_quantile(0.5 + CONFIDENCE / 2, df) * se if se > 0 else 0.0
    half = max(half, math.log1p(quantum))
    se_p = max(se, se_quantum)
    p = 2 * (1 - _t_cdf(abs(mean) / se_p, df)) if se_p > 0 else None
    return mean - half, mean + half, p


def _grid_sd(quantum: float) -> float:
    """The sd of one value's rounding error on a grid of relative step `quantum` (log scale)."""
    return math.log1p(quantum) / math.sqrt(12)


def paired_ratio(a: Sequence[float], b: Sequence[float], *, quantum: float = 0.0) -> Ratio:
    """B/A from rounds: a[i] and b[i] ran in the same round. `quantum` is the metric's relative
    resolution (a search's step over its rate, say): the interval is at least that wide."""
    logs = _logs(a, b)
    n = len(logs)
    if n < 2:
        raise ValueError("an interval needs at least 2 rounds")
    mean, sd = statistics.fmean(logs), statistics.stdev(logs)
    lo, hi, p = _interval(mean, sd / math.sqrt(n), n - 1, quantum, _grid_sd(quantum) * math.sqrt(2 / n))
    return Ratio(math.exp(mean), math.exp(lo), math.exp(hi), n, PAIRED, p, sd)


def ratio_of(a: Sequence[float], b: Sequence[float], *, quantum: float = 0.0) -> Ratio:
    """B/A from two unpaired samples: ratio of geometric means, Welch's interval on the logs."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("an unpaired interval needs at least 2 values a side")
    if any(x <= 0 for x in (*a, *b)):
        raise ValueError("ratios need positive values")
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    va, vb = statistics.variance(la) / len(la), statistics.variance(lb) / len(lb)
    se = math.sqrt(va + vb)
    # Welch-Satterthwaite degrees of freedom
    df = ((va + vb) ** 2 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1)) if se > 0
          else len(la) + len(lb) - 2.0)
    mean = statistics.fmean(lb) - statistics.fmean(la)
    lo, hi, p = _interval(mean, se, df, quantum, _grid_sd(quantum) * math.sqrt(1 / len(la) + 1 / len(lb)))
    return Ratio(math.exp(mean), math.exp(lo), math.exp(hi), min(len(a), len(b)), UNPAIRED, p,
                 math.sqrt(statistics.variance(la) + statistics.variance(lb)))


NIGHTS = ("tonight over the nights' geometric mean, 95% t prediction interval, "
          "nights as the unit")


def against_nights(nights: Sequence[float], tonight: float, *, quantum: float = 0.0) -> Ratio:
    """Tonight / a window of earlier nights (last:N), the night being the unit: each night is one
    value (its repetitions' geometric mean), so repetitions of one night, which share its
    machine and its drift, are not counted as independent samples. The interval is t's
    prediction interval for one more night: sd of the nightly logs x sqrt(1 + 1/N), N - 1 df."""
    if len(nights) < 2:
        raise ValueError("nights as the unit need at least 2 earlier nights")
    if any(x <= 0 for x in (*nights, tonight)):
        raise ValueError("ratios need positive values")
    logs = [math.log(x) for x in nights]
    n, sd = len(logs), statistics.stdev(logs)
    mean = math.log(tonight) - statistics.fmean(logs)
    lo, hi, p = _interval(mean, sd * math.sqrt(1 + 1 / n), n - 1, quantum,
                          _grid_sd(quantum) * math.sqrt(1 + 1 / n))
    return Ratio(math.exp(mean), math.exp(lo), math.exp(hi), n, NIGHTS, p, sd)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(geometric mean, low, high): the 95% t interval of one sample's geometric mean (a night's
    repetitions, say); None with fewer than 2 positive values."""
    logs = [math.log(v) for v in values if v > 0]
    if len(logs) < 2:
        return None
    mean, sd = statistics.fmean(logs), statistics.stdev(logs)
    half = t_quantile(0.5 + CONFIDENCE / 2, len(logs) - 1) * sd / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def detectable_effect(sd_log: float, n: int, *, power: float = 0.8) -> float:
    """The smallest ratio change (as a fraction, 0.05 = 5%) that n paired rounds detect with the
    given power at 95% confidence, for per-round log ratios spread by sd_log (from an A/A run)."""
    if n < 2:
        raise ValueError("a detectable effect needs at least 2 rounds")
    df = n - 1
    z = t_quantile(0.5 + CONFIDENCE / 2, df) + t_quantile(power, df)
    return math.expm1(z * sd_log / math.sqrt(n))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment across points (None stays None: nothing was tested).
    Reject where the adjusted p is below 1 - CONFIDENCE."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
