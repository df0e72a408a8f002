"""The noise floor from A/A rounds: the spread of per-round log ratios, the minimum detectable
effect it allows, kept in the history by the hosts' fingerprint and read back by compare and
the gate (constructed rounds with fixed seeds; test_noise_runs.py measures it for real)."""

from __future__ import annotations

import math
import random

import pytest

from orchestrator import compare, noise, stats
from orchestrator.history import open_history

from testkit import cpu_cost, run_record, session


def aa_summary(levels: dict[int, list[float]], *, run_id="aa", machine="cpu-x") -> dict:
    """Runs at connections=c with the given QPS per repetition (2k-1 and 2k: round k)."""
    runs = [run_record(run_id=f"{c}-r{i}", connections=c, repetition=i, qps=q)
            for c, values in levels.items() for i, q in enumerate(values, 1)]
    return session(scenario="s", run_id=run_id, started="2026-12-06T12:00:00Z", topology={"server": "h"},
                   hosts={"h": {"cpu_model": machine, "cpus": 2}}, runs=runs)


def test_the_floor_against_hand_computed_figures():
    """Point 64: rounds (100, 102), (100, 98), (100, 101) -> log ratios 0.019803, -0.020203,
    0.009950; sd 0.020843. Point 128: (50, 50), (50, 51) -> 0, 0.019803; sd 0.014003.
    Pooled: sqrt((2 * 0.020843^2 + 1 * 0.014003^2) / 3) = 0.018841."""
    s = aa_summary({64: [100, 102, 100, 98, 100, 101], 128: [50, 50, 50, 51, 49]})  # 5th rep unpaired
    rounds = noise.aa_rounds(compare.as_summary(s, "s"))
    assert [len(v) for v in rounds.values()] == [3, 2]
    got = noise.measure(s)
    assert got.sd_log == pytest.approx(0.018841, rel=1e-4)
    assert got.rounds == 2 and got.points == 2 and "cpu-x" in got.machine
    assert got.floor(10).pct == pytest.approx(stats.detectable_effect(0.018841, 10) * 100, rel=1e-4)
    assert got.floor(5).pct > got.floor(10).pct > got.floor(20).pct
    text = "\n".join(got.lines())
    assert "minimum detectable effect at  5 rounds" in text and "at 20 rounds" in text
    assert got.others == {} and got.floor(5, "cpu_us_per_request") is None  # not measured
    with pytest.raises(ValueError, match="at least 2 complete A/A rounds"):
        noise.measure(aa_summary({64: [100, 101, 102]}))


def test_a_recorded_floor_is_found_by_scenario_and_hosts_only(tmp_path):
    h = open_history(tmp_path / "h.sqlite")
    assert noise.latest(h, "s", "cpu-x") is None and h.floors() == {}
    old = noise.measure(aa_summary({64: [100, 110, 100, 90, 100, 105]}, run_id="aa1"))
    new = noise.NoiseFloor.from_dict({**noise.measure(aa_summary({64: [100, 101, 100, 99]}, run_id="aa2"))
                                      .to_dict(), "started": "2026-12-06T13:00:00Z"})
    h.record_floor(old.results_id, old.to_dict())
    h.record_floor(new.results_id, new.to_dict())
    assert noise.latest(h, "s", old.machine) == new
    assert noise.latest(h, "s", "another machine") is None and noise.latest(h, "t", old.machine) is None


def test_below_the_floor_says_not_detectable_and_the_gate_acts_on_the_floor():
    rng = random.Random(7)
    before = [1000 * math.exp(rng.gauss(0, 0.01)) for _ in range(5)]
    after = [0.97 * 1000 * math.exp(rng.gauss(0, 0.01)) for _ in range(5)]
    a, b = aa_summary({64: before}), aa_summary({64: after}, run_id="b")
    plain = compare.compare(a, b)
    assert plain.changes[0].word == "worse" and [c.point for c in plain.regressions(1)]
    floor = noise.NoiseFloor("s", "m", "aa", "", "qps", 5, 1, 0.04).floor(5)
    assert floor.pct > 5
    gated = compare.compare(a, b, floor=floor)
    assert gated.effect_pct(1) == pytest.approx(floor.pct) and gated.regressions(1) == []
    noisy = [1000 * math.exp(rng.gauss(0, 0.05)) for _ in range(5)]
    (ch,) = compare.compare(aa_summary({64: noisy}), b, floor=floor).changes
    if not ch.significant:
        assert ch.word == f"not detectable here (floor {floor.pct:.1f}% at 5 rounds)"
    assert f"noise floor of these hosts: floor {floor.pct:.1f}% at 5 rounds" in compare.render(gated)


def test_each_metric_has_its_own_floor():
    s = aa_summary({64: [100, 102, 100, 98, 100, 101]})
    for r, cpu in zip(s["runs"], [8.0, 8.8, 8.0, 7.2, 8.0, 8.4], strict=True):
        r["analysis"] = {"cpu_us_per_request": cpu_cost(cpu)}
    got = noise.measure(s)
    assert set(got.others) == {"cpu_us_per_request"} and got.others["cpu_us_per_request"] > 2 * got.sd_log
    floors = got.floors(10)
    assert floors["cpu_us_per_request"].pct > 2 * floors["qps"].pct
    assert noise.NoiseFloor.from_dict(got.to_dict()) == got
    # a floor measured on QPS does not speak for capacities
    a, b = aa_summary({64: [100, 101, 99]}), aa_summary({64: [100.5, 99.5, 100]}, run_id="b")
    assert compare.compare(a, b, floor=floors["qps"]).floor == floors["qps"]
    assert compare.compare(a, b, metric="capacity", floor=floors["qps"]).floor is None
