import math
import random

import pytest

from orchestrator import stats

T_975_4 = 2.7764451051977987  # Student's t, 97.5th percentile, 4 degrees of freedom (tables)


def test_paired_ratio_against_a_hand_computed_interval():
    ratios = [1.10, 1.20, 1.00, 1.15, 1.05]
    a = [100, 200, 50, 80, 120]  # the level drifts between rounds; only the ratios matter
    b = [x * r for x, r in zip(a, ratios, strict=True)]
    logs = [math.log(r) for r in ratios]
    mean = sum(logs) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 4)
    half = T_975_4 * sd / math.sqrt(5)
    got = stats.paired_ratio(a, b)
    assert got.estimate == pytest.approx(math.exp(mean))
    assert (got.low, got.high) == pytest.approx((math.exp(mean - half), math.exp(mean + half)))
    assert got.estimate == pytest.approx(1.0977, abs=1e-4)
    assert (got.low, got.high) == pytest.approx((1.0038, 1.2005), abs=1e-4)
    assert got.n == 5 and got.statistic == stats.PAIRED
    assert got.excludes_one and 0.04 < got.p_value < 0.05
    assert got.text() == "1.098x [1.004, 1.200]"


def test_zero_spread_is_not_certainty_and_a_quantum_sets_the_least_width():
    same = stats.paired_ratio([100, 100, 100], [105, 105, 105])
    assert same.p_value is None  # no spread: nothing to test with, never p = 0
    grid = stats.paired_ratio([100, 100, 100], [105, 105, 105], quantum=0.05)
    assert grid.low == pytest.approx(1.05 / 1.05) and grid.high == pytest.approx(1.05 * 1.05)
    assert grid.half_width_pct == pytest.approx(5.0)
    assert not grid.excludes_one  # a 5% step on a 5% grid is not resolved


def test_unpaired_ratio_is_welch_on_logs():
    got = stats.ratio_of([100, 102, 98], [110, 108, 112])
    assert got.estimate == pytest.approx(1.1000, abs=1e-4)
    assert got.statistic == stats.UNPAIRED and got.excludes_one
    # the same values paired give a narrower interval only when the pairing explains the spread
    assert stats.ratio_of([100, 200, 300], [110, 220, 330]).half_width_pct > 50
    assert stats.paired_ratio([100, 200, 300], [110, 220, 331]).half_width_pct < 1


def test_judge_says_not_resolved_when_the_interval_straddles_the_goal():
    r = stats.Ratio(1.0, 0.97, 1.03, 8, stats.PAIRED, 0.9, 0.03)
    assert r.judge(0.98, 1.02) == stats.NOT_RESOLVED
    assert r.judge(0.95, 1.05) == stats.HOLDS
    assert stats.Ratio(0.8, 0.75, 0.85, 8, stats.PAIRED, 0.01, 0.03).judge(0.98, 1.02) == stats.FAILS


def test_holm_across_points():
    assert stats.holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])
    assert stats.holm([]) == []


def test_a_constructed_step_is_detected_and_a_constructed_a_a_is_not():
    rng = random.Random(7)
    base = [100 * math.exp(rng.gauss(0, 0.1)) for _ in range(10)]  # 10% drift between rounds
    noise = [math.exp(rng.gauss(0, 0.02)) for _ in range(10)]  # 2% noise within a round
    step = stats.paired_ratio(base, [x * 0.92 * e for x, e in zip(base, noise, strict=True)])
    assert step.high < 1.0 and step.estimate == pytest.approx(0.92, abs=0.02)
    same = stats.paired_ratio(base, [x * e for x, e in zip(base, noise, strict=True)])
    assert not same.excludes_one


def test_detectable_effect_shrinks_with_rounds():
    five, twenty = stats.detectable_effect(0.05, 5), stats.detectable_effect(0.05, 20)
    assert 0 < twenty < five
    # 10 rounds, sd 0.05: (t.975 + t.80 at 9 df) * 0.05 / sqrt(10) = (2.262 + 0.883) * 0.0158
    assert stats.detectable_effect(0.05, 10) == pytest.approx(math.expm1(3.1451 * 0.05 / math.sqrt(10)),
                                                              rel=1e-3)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        stats.paired_ratio([1.0], [1.0])
    with pytest.raises(ValueError):
        stats.paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        stats.paired_ratio([1.0, 0.0], [1.0, 1.0])


def test_nights_are_the_unit_of_a_window():
    """By hand: nights 100, 102, 99, 101, 98 (geometric mean 99.98999), tonight 90. sd of the
    nightly logs 0.0158135; prediction se = sd * sqrt(1 + 1/5) = 0.0173228; t(0.975, 4) =
    2.776445; half-width 0.048096 on logs; ratio 90 / 99.98999 = 0.900090."""
    r = stats.against_nights([100, 102, 99, 101, 98], 90)
    assert r.estimate == pytest.approx(0.900090, rel=1e-5) and r.n == 5
    assert math.log(r.high / r.estimate) == pytest.approx(0.048096, rel=1e-4)
    assert r.statistic == stats.NIGHTS and r.p_value < 0.01
    # repetitions of one night do not narrow it: only nights count
    assert not stats.against_nights([100, 102, 99, 101, 98], 99).excludes_one
    # a grid: a finite p even with equal nights, and the interval at least a step wide
    grid = stats.against_nights([100, 100, 100], 100, quantum=0.02)
    assert grid.half_width_pct == pytest.approx(2.0) and grid.p_value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2 earlier nights"):
        stats.against_nights([100], 90)
