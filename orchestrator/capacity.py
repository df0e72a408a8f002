"""Capacity under an SLO: the highest open-loop rate a matrix point serves.

A rate is served when the generator achieved at least 99% of it (else the requests queued in
the client and the latency figures describe a different rate) and the corrected latency
percentiles and the error share meet the SLO. The search doubles from min_rate until a rate
fails (or max_rate passes), then bisects the bracket until it is `precision` narrow.

A step is decided on all its runs' requests pooled (their latency histograms merged): the
p99 a user sees at a rate held for the whole step, not the median of short windows. Near the
knee one window says little about the next: at a fixed rate on this project's VM, 4 s windows
read p99 anywhere from 0.6 to 52 ms as the kernel's cost per request moved by 15%, so 12 of 40
windows passed a 2 ms SLO that the pooled three minutes missed by 14x. A median of such windows
passes or fails over a span of rates 30% wide; the pooled figure changes several-fold per 10%.

So a step inside the bracket (and the last pass below the first failure, which bounds it) takes
at least `knee_runs` runs; far below the knee one clear pass is enough. A failure is confirmed
by a second run before it bounds the search (one hiccup of a few milliseconds fails a short
window far below the capacity), unless a tenth of its rate went unsent (DECISIVE). A step
whose pooled figures fall within `noise` of a limit, or whose latest run disagrees with them,
runs again, up to `max_repeat` runs.

Everything here is decision logic over measured runs: `search` takes the function that
measures, so the same code is driven by real runs in execute.py and by tables in tests.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from orchestrator.records import CapacitySearch, Run, SearchStep
from orchestrator.scenario import Search
from orchestrator.tools.loadgen import PERCENTILES, Histogram

SUSTAINED = 0.99  # achieved/target below this: the client could not offer the rate
SUSTAINED_NOISE = 0.005  # achieved/target within this of SUSTAINED: repeat the step
# A step's achieved/target below this: failed, and no further run is needed to say so. A hiccup
# fails a window's latency, but the open-loop generator then sends what it owes, so only a rate
# the server (or link) cannot carry leaves a tenth of it unsent (loopback here: 87% at 80k req/s,
# twice); and four more runs at 100% (max_repeat 5) would not pool to 99%.
DECISIVE = 0.9


@dataclass(frozen=True)
class Observation:
    """One run at a target rate, reduced to what the SLO judges."""

    run_id: str
    target: float
    achieved: float
    latency_ms: Mapping[str, float]  # corrected percentiles (from the intended send time)
    # failed requests (lost or non-2xx) of requests (error_share); None: not measured
    errors_pct: float | None
    verdict: str | None = None
    # The corrected latency histogram, to pool a step's runs; None (a record without one): the
    # step is judged on the medians of its runs' percentiles.
    histogram: Histogram | None = field(default=None, repr=False, compare=False)

    @property
    def achieved_ratio(self) -> float:
        return self.achieved / self.target if self.target else 0.0


def error_share(run: Run) -> float | None:
    """Failed requests over requests, in %: requests only, never connection events (whose
    counts include the warm-up). orchestrate-load counts the requests due in the window and
    those lost (timed out, reset, closed); wrk counts answered requests, and of its errors
    only timeouts and read/write errors are requests (a connect error is a connection).
    None when the counters were not measured (never read as 0 errors)."""
    d = run.requests_detail or {}
    due, lost = d.get("requests"), d.get("failed")
    if isinstance(due, int) and isinstance(lost, int):
        non_2xx = run.non_2xx if run.non_2xx is not None else d.get("non_2xx")
        if not isinstance(non_2xx, int):
            return None
        failed, total = lost + non_2xx, due
    else:
        e = run.errors
        if e is None or e.read is None or e.write is None or e.timeout is None or run.non_2xx is None:
            return None
        lost = e.read + e.write + e.timeout
        failed, total = lost + run.non_2xx, (run.requests or 0) + lost
    return 100.0 * failed / total if total else 100.0


def observation_of(run: Run, histogram: Histogram | None = None) -> Observation:
    """The figures of a run record that the search needs (with the run's latency histogram,
    which the record names but does not hold)."""
    latency = run.latency_ms.to_json()
    return Observation(
        run_id=str(run.run_id), target=float(run.rate.target or 0) if run.rate else 0.0,
        achieved=float((run.rate.achieved if run.rate else None) or run.qps or 0.0),
        latency_ms={k: float(v) for k, v in latency.items() if isinstance(v, int | float)},
        errors_pct=error_share(run),
        verdict=run.analysis.verdict if run.analysis else None, histogram=histogram)


def step_record(rate: float, obs: tuple[Observation, ...], passed: bool, reason: str,
                repeated: str | None) -> SearchStep:
    """A decided step as the summary keeps it: the decision and the figures of its runs."""
    return SearchStep(rate=rate, passed=passed, reason=reason, repeated=repeated,
                      achieved=round(statistics.fmean(o.achieved for o in obs), 1),
                      latency_ms=step_latency(obs), pooled=_pooled(obs),
                      run_ids=tuple(o.run_id for o in obs), verdicts=tuple(o.verdict for o in obs))


def slo_text(search: Search) -> str:
    parts = [f"{k.replace('_', '.')} <= {_ms(v)}" for k, v in search.slo.latency_bounds_ms().items()]
    parts.append(f"achieved >= {SUSTAINED:.0%} of target")
    parts.append(f"errors <= {search.slo.errors:g}%")
    return ", ".join(parts)


def _ms(v: float) -> str:
    return f"{v:,.0f} ms" if v >= 1000 else f"{v:.3g} ms"  # 2,004 ms, not 2e+03 ms


def _pooled(obs: tuple[Observation, ...]) -> bool:
    return bool(obs) and all(o.histogram is not None for o in obs)


def step_latency(obs: tuple[Observation, ...]) -> dict[str, float]:
    """A step's latency percentiles (ms): of all its runs' requests pooled, or, where a run
    has no histogram, the medians of the runs' own percentiles."""
    if _pooled(obs):
        merged = Histogram.merged(o.histogram for o in obs if o.histogram is not None)
        return {k: round(merged.percentile_us(p) / 1000.0, 4) for k, p in PERCENTILES}
    keys = set.intersection(*(set(o.latency_ms) for o in obs)) if obs else set()
    return {k: round(statistics.median(o.latency_ms[k] for o in obs), 4) for k in sorted(keys)}


def judge(search: Search, obs: tuple[Observation, ...]) -> tuple[bool, str, str | None]:
    """(passed, reason, why it is close to a limit or None) on the step's pooled figures: its
    requests' percentiles, its achieved and its errors over all its runs."""
    ratio = sum(o.achieved for o in obs) / sum(o.target for o in obs) if any(o.target for o in obs) else 0.0
    shares = [o.errors_pct for o in obs if o.errors_pct is not None]
    # runs of one length at one rate; a run whose errors were not measured leaves them unknown
    errors = statistics.fmean(shares) if shares and len(shares) == len(obs) else None
    latency = step_latency(obs)
    failed: list[str] = []
    met: list[str] = []
    close: list[str] = []
    for key, bound in search.slo.latency_bounds_ms().items():
        name = key.replace("_", ".")
        value = latency.get(key)
        if value is None:
            failed.append(f"{name} not measured")
            continue
        (failed if value > bound else met).append(f"{name} {_ms(value)} {'>' if value > bound else '<='} "
                                                   f"{_ms(bound)}")
        margin = search.noise / 100.0
        if bound / (1 + margin) < value <= bound * (1 + margin):
            close.append(f"{name} {_ms(value)} is within {search.noise:g}% of {_ms(bound)}")
    if ratio < SUSTAINED:
        failed.insert(0, f"achieved {ratio:.1%} of the target < {SUSTAINED:.0%} (the client queued requests)")
    else:
        met.append(f"achieved {ratio:.1%} of the target")
    if abs(ratio - SUSTAINED) < SUSTAINED_NOISE:
        close.append(f"achieved {ratio:.1%} is near {SUSTAINED:.0%}")
    if errors is None:
        failed.append("errors not measured (a run of the step has no error counters)")
    elif errors > search.slo.errors:
        failed.append(f"errors {errors:.2g}% > {search.slo.errors:g}%")
    return not failed, "; ".join(failed or met), "; ".join(close) or None


def _more(search: Search, obs: tuple[Observation, ...], need: int) -> str | None:
    """Why the step needs another run (None: more runs would not change its decision)."""
    if not obs:
        return "first run"
    if len(obs) >= search.max_repeat:
        return None
    if sum(o.achieved for o in obs) < DECISIVE * sum(o.target for o in obs):
        return None  # neither confirmed nor repeated near the knee: see DECISIVE
    if len(obs) < need:
        return f"a step near the knee is decided on {need} runs or more"
    passed, _, close = judge(search, obs)
    if close:
        return close
    if len(obs) == 1:
        return None if passed else "a failure is confirmed before it bounds the search"
    if judge(search, obs[-1:])[0] != passed:
        return f"the latest run {'failed' if passed else 'passed'} where the pooled figures did not"
    return None


def search(search: Search, measure: Callable[[float, int], Observation]) -> CapacitySearch:
    """Run the search; measure(rate, attempt) runs one step's attempt (1-based) at `rate`. The
    record has the capacity and every step; the caller adds the matrix point it searched."""
    steps: dict[float, SearchStep] = {}  # by rate, in the order first measured
    seen: dict[float, tuple[Observation, ...]] = {}  # each step's runs, histograms and all
    near = search.runs_near_knee

    def step(rate: float, need: int = 1) -> SearchStep:
        obs, whys = seen.get(rate, ()), []
        while why := _more(search, obs, need):
            if obs and why not in whys:
                whys.append(why)
            obs += (measure(rate, len(obs) + 1),)
        passed, reason, _ = judge(search, obs)
        how = "pooled" if _pooled(obs) else "medians"
        repeated = (f"{len(obs)} runs, decided on their {how}: {'; then '.join(whys)}"
                    if len(obs) > 1 else None)
        seen[rate] = obs
        steps[rate] = step_record(rate, obs, passed, reason, repeated)
        return steps[rate]

    lo: SearchStep | None = None
    hi: SearchStep | None = None
    rate = float(round(search.min_rate))
    while True:  # doubling
        s = step(rate)
        if not s.passed:
            hi = s
            break
        lo = s
        if rate >= search.max_rate:
            break
        rate = float(min(round(rate * 2), round(search.max_rate)))
    # The last pass below the first failure bounds the bracket: near the knee, it is confirmed
    # on as many runs as a step inside it (failing, the failure bounds it and the pass below
    # is confirmed in turn).
    while lo is not None and hi is not None and len(lo.run_ids) < near:
        lo = step(lo.rate, near)
        if not lo.passed:
            hi, lo = lo, max((st for st in steps.values() if st.passed and st.rate < lo.rate),
                             key=lambda st: st.rate, default=None)
    while lo is not None and hi is not None and (hi.rate - lo.rate) / lo.rate > search.precision / 100:
        mid = float(round((lo.rate + hi.rate) / 2))
        if mid in (lo.rate, hi.rate):
            break
        s = step(mid, near)
        lo, hi = (s, hi) if s.passed else (lo, s)
    return _result(search, tuple(steps.values()), lo, hi)


def _result(search: Search, steps: tuple[SearchStep, ...], lo: SearchStep | None,
            hi: SearchStep | None) -> CapacitySearch:
    slo, runs = slo_text(search), sum(len(s.run_ids) for s in steps)
    if lo is None:
        assert hi is not None
        return CapacitySearch(capacity=None, bound="below min_rate", steps=steps, slo=slo, runs=runs,
                              evidence=f"even min_rate {hi.rate:,.0f} req/s missed the SLO: {hi.reason}")
    if hi is None:
        return CapacitySearch(capacity=lo.rate, bound="at max_rate", steps=steps, slo=slo, runs=runs,
                              evidence=f"max_rate {lo.rate:,.0f} req/s still met the SLO ({lo.reason}); "
                              "the capacity is at least that: raise max_rate to find it")
    return CapacitySearch(capacity=lo.rate, bound="found", steps=steps, slo=slo, runs=runs,
                          evidence=f"{lo.rate:,.0f} req/s met the SLO ({lo.reason}); {hi.rate:,.0f} "
                          f"req/s did not ({hi.reason})")
