"""capacity.search on constructed servers: the decision logic, without the measuring.

The real search (real server, real generator) runs in tests/test_capacity_runs.py."""

from __future__ import annotations

import pytest

from orchestrator import capacity, records
from orchestrator.plan import expected_search_runs, max_search_runs
from orchestrator.scenario import Search


def _search(**kw) -> Search:
    base = {"slo": {"p99": "2ms"}, "min_rate": 1000, "max_rate": 1_000_000, "precision": "2%"}
    return Search.model_validate(base | kw)


class Server:
    """A server with a knee: p99 grows as 1/(1 - rate/knee); beyond `limit` the client queues."""

    def __init__(self, knee: float, limit: float = float("inf"), errors_over: float = float("inf"),
                 jitter: dict[int, float] | None = None):
        self.knee, self.limit, self.errors_over = knee, limit, errors_over
        self.jitter = jitter or {}  # attempt -> factor on p99
        self.calls: list[tuple[float, int]] = []

    def __call__(self, rate: float, attempt: int) -> capacity.Observation:
        self.calls.append((rate, attempt))
        load = min(rate / self.knee, 0.999)
        p99 = 0.2 / (1 - load) * self.jitter.get(attempt, 1.0)
        return capacity.Observation(
            run_id=f"{len(self.calls):03d}", target=rate, achieved=min(rate, self.limit),
            latency_ms={"p50": p99 / 4, "p99": p99}, errors_pct=1.0 if rate > self.errors_over else 0.0,
            verdict="server-bound" if load > 0.8 else "inconclusive")


def _true_capacity(knee: float) -> float:
    return knee * (1 - 0.2 / 2.0)  # where 0.2 / (1 - r/knee) reaches the 2 ms SLO


def test_finds_the_knee_within_precision_by_doubling_then_bisecting():
    server = Server(knee=50_000)
    found = capacity.search(_search(), server)
    truth = _true_capacity(50_000)  # 45,000
    assert found.bound == "found"
    assert truth * 0.98 <= found.capacity <= truth
    rates = [r for r, attempt in server.calls if attempt == 1]
    assert rates[:7] == [1000, 2000, 4000, 8000, 16000, 32000, 64000]  # doubling until a failure
    assert all(32000 < r < 64000 for r in rates[7:])  # then only inside the bracket
    # a clear pass is one run; a failure is confirmed by a second before it bounds the bracket
    # (a step within 10% of the SLO takes up to 3, decided on medians)
    for s in found.steps:
        if s.repeated and "within 10%" in s.repeated:
            assert len(s.runs) <= 3
            continue
        assert len(s.runs) == (1 if s.passed else 2), s
        assert s.repeated is None if s.passed else "failure is confirmed" in s.repeated
    passed = [s.rate for s in found.steps if s.passed]
    failed = [s.rate for s in found.steps if not s.passed]
    assert found.capacity == max(passed) and min(failed) > found.capacity
    assert (min(failed) - found.capacity) / found.capacity <= 0.02
    assert "met the SLO" in found.evidence and "p99" in found.evidence


def test_an_unsustained_rate_fails_even_with_good_latency():
    # the client can only offer 20k: beyond it the requests queue in the generator
    found = capacity.search(_search(), Server(knee=1e9, limit=20_000))
    assert found.bound == "found" and 19_500 <= found.capacity <= 20_000
    first_fail = next(s for s in found.steps if not s.passed)
    assert "achieved" in first_fail.reason and "< 99%" in first_fail.reason


def test_errors_over_the_slo_fail_a_step():
    found = capacity.search(_search(), Server(knee=1e9, errors_over=10_000))
    assert 9_800 <= found.capacity <= 10_000
    assert "errors" in next(s for s in found.steps if not s.passed).reason


def test_below_min_rate_and_at_max_rate_are_said():
    low = capacity.search(_search(min_rate=50_000), Server(knee=50_000))
    assert low.capacity is None and low.bound == "below min_rate" and len(low.steps) == 1
    assert len(low.steps[0].runs) == 2  # confirmed
    assert "even min_rate" in low.evidence
    high = capacity.search(_search(max_rate=30_000), Server(knee=50_000))
    assert high.capacity == 30_000 and high.bound == "at max_rate"
    assert [s.rate for s in high.steps] == [1000, 2000, 4000, 8000, 16000, 30000]
    assert "raise max_rate" in high.evidence


def test_a_step_near_the_slo_is_repeated_and_decided_on_medians():
    # at 44k the true p99 is 1.9 ms; a first run 10% high reads 2.09 ms, which alone would
    # fail the step; it is close to the 2 ms limit, so two more runs decide on the median
    server = Server(knee=49_176, jitter={1: 1.1, 2: 0.95, 3: 1.0})
    found = capacity.search(_search(min_rate=1375, max_rate=44_000), server)
    last = found.steps[-1]
    assert last.rate == 44_000 and len(last.runs) == 3 and last.passed
    assert "within 10% of 2 ms" in last.repeated and "medians" in last.repeated
    assert all(len(s.runs) == 1 and s.repeated is None for s in found.steps[:-1])
    assert found.capacity == 44_000 and found.runs == len(server.calls) == len(found.steps) + 2


def test_one_hiccup_far_below_the_capacity_does_not_end_the_search():
    # the server's capacity is 45,000; at 8,000 its first run hit a 10x latency spike
    class Hiccup(Server):
        def __call__(self, rate, attempt):
            o = super().__call__(rate, attempt)
            if rate == 8000 and attempt == 1:
                return capacity.Observation(o.run_id, o.target, o.achieved, {"p99": 2.4}, 0.0)
            return o
    server = Hiccup(knee=50_000)
    found = capacity.search(_search(), server)
    assert found.capacity >= 44_000
    at = found.step_at(8000)
    assert at.passed and len(at.runs) == 3 and "failure is confirmed" in at.repeated


def test_max_repeat_one_never_repeats():
    server = Server(knee=49_176, jitter={1: 1.1, 2: 0.95, 3: 1.0})
    found = capacity.search(_search(min_rate=1375, max_rate=44_000, max_repeat=1), server)
    assert found.capacity < 44_000  # the one noisy run decides
    assert all(len(s.runs) == 1 for s in found.steps) and len(server.calls) == len(found.steps)


@pytest.mark.parametrize("knee", [3_000, 45_000, 700_000])
def test_the_plan_bounds_hold(knee):
    sc = _search()
    server = Server(knee=knee)
    capacity.search(sc, server)
    assert len(server.calls) <= max_search_runs(sc)
    assert expected_search_runs(sc) <= max_search_runs(sc)


def test_observation_from_a_run_record():
    rec = {"run_id": "003-x", "qps": 990.0, "requests": 990, "non_2xx": 5,
           "errors": {"connect": 0, "read": 5, "write": 0, "timeout": 0},
           "rate": {"target": 1000.0, "achieved": 990.0, "sustained": True},
           "latency_ms": {"p50": 0.1, "p99": 1.5, "p99_9": None}, "analysis": {"verdict": "client-bound"}}
    o = capacity.observation_of(records.Run.model_validate(rec))
    assert o.achieved_ratio == pytest.approx(0.99) and o.latency_ms == {"p50": 0.1, "p99": 1.5}
    assert o.errors_pct == pytest.approx(100 * 10 / 995) and o.verdict == "client-bound"
