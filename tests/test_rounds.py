"""compare: {factor, baseline} and rounds: the keys (validated, located), the plan's rounds
(every value once a round, the order changing, recorded), and the width-only stop rule."""

from __future__ import annotations

import math
import random
import textwrap
from types import SimpleNamespace

import pytest

from orchestrator import execute, plan, records, scenario
from orchestrator.errors import UserError

from testkit import cpu_cost, orchestrate, run_record, session

BASE = """
name: m
server: {arch: [reuseport, main-sub], work_us: [0, 3], cpus: [0]}
load: {cpus: [1], duration: 1s}
"""


def load(text: str):
    return scenario.load("s.yaml", text=textwrap.dedent(BASE + text), host_cpus={0, 1})


def problems(text: str) -> list[str]:
    with pytest.raises(UserError) as exc:
        load(text)
    return exc.value.lines()


def test_compare_and_rounds_are_checked_and_located():
    assert load("compare: {factor: server.work_us, baseline: 0}\nrounds: 4\n").scenario.rounds == 4
    found = problems("""
repeat: 3
compare: {factor: server.wrk_us, baseline: 7, metric: cpu}
rounds: {min: 5, max: 3}
""")
    assert ("s.yaml:6: repeat: with rounds, each round runs every point once; leave repeat out (or "
            "measure without the comparison: --set compare=null --set rounds=null)") in found
    assert any(p.startswith("s.yaml:7: compare.factor: unknown axis 'server.wrk_us'; did you mean "
                            "'server.work_us'?") for p in found)
    assert any(p.startswith("s.yaml:7: compare.metric: Input should be 'qps'") for p in found)
    assert "s.yaml:8: rounds.min: 5 is above max 3" in found
    assert any(p.startswith("s.yaml:8: rounds.until: rounds from min to max stop on") for p in found)
    assert problems("compare: {factor: server.work_us, baseline: 5}\nrounds: 3\n") == [
        "s.yaml:5: compare.baseline: 5 is not a value of server.work_us (0, 3)"]
    assert problems("compare: {factor: server.threads, baseline: 1}\nrounds: 3\n") == [
        "s.yaml:5: compare.factor: server.threads is not swept here: write it as a list of 2 or "
        "more values, the baseline among them (or measure without the comparison: --set compare=null "
        "--set rounds=null)"]
    assert problems("rounds: 3\n") == [
        "s.yaml:5: rounds: rounds pair the values of a compared factor; set compare: {factor: AXIS, "
        "baseline: VALUE} too (or use repeat)"]
    assert problems("compare: {factor: server.arch, baseline: main-sub}\n") == [
        "s.yaml:5: compare: a comparison needs rounds: N (2 or more), or {min, max, until: 2%}"]
    assert any("rounds: Input should be greater than or equal to 2" in p for p in problems(
        "compare: {factor: server.arch, baseline: main-sub}\nrounds: 1\n"))


def test_cli_validate_exits_2_with_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(textwrap.dedent(BASE) + "compare: {factor: server.arch, baseline: mainsub}\nrounds: 3\n")
    done = orchestrate("validate", str(f))
    assert done.returncode == 2
    assert f"{f}:5: compare.baseline: 'mainsub' is not a value of server.arch" in done.stderr


def test_each_round_runs_every_value_once_in_a_changing_order():
    p = plan.expand(load("compare: {factor: server.work_us, baseline: 0}\nrounds: 4\n").scenario)
    assert p.rounds is not None and p.rounds.orders == ((0, 3), (3, 0), (0, 3), (3, 0))
    assert len(p.runs) == 2 * 2 * 4
    for k in range(1, 5):
        inround = [r for r in p.runs if r.repetition == k]
        assert sorted((r.arch, r.axes["server.work_us"]) for r in inround) == [
            ("main-sub", 0), ("main-sub", 3), ("reuseport", 0), ("reuseport", 3)]
        # a block (the other axes) runs its pair back to back, in the round's order
        assert [r.axes["server.work_us"] for r in inround] == list(p.rounds.orders[k - 1]) * 2
    assert [r.repetition for r in p.runs] == sorted(r.repetition for r in p.runs)
    shuffled = plan.expand(load("compare: {factor: server.arch, baseline: main-sub}\n"
                                "rounds: {min: 3, max: 8, until: 2%, order: random, seed: 5}\n").scenario)
    r = shuffled.rounds
    assert r is not None and (r.min, r.max, r.until, r.seed) == (3, 8, 2.0, 5)
    assert all(sorted(o) == ["main-sub", "reuseport"] for o in r.orders) and len(set(r.orders)) == 2
    assert r.orders == plan.round_orders(["reuseport", "main-sub"], 8, "random", 5)  # the seed replays it
    assert r.as_dict()["orders"][0] == list(r.orders[0])
    lines = r.lines()
    assert "3-8 rounds, stopping from round 3 once every interval on qps is within \u00b12%" in lines[0]
    assert "(seed 5)" in lines[0] and lines[1].startswith("    round 1: ")
    # three values rotate: each takes each position once in three rounds
    assert plan.round_orders([1, 2, 3], 3, "alternate", 0) == ((1, 2, 3), (2, 3, 1), (3, 1, 2))


def test_plan_shows_the_rounds(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(textwrap.dedent(BASE) + "compare: {factor: server.work_us, baseline: 0}\n"
                 "rounds: {min: 2, max: 3, until: 5%}\n")
    done = orchestrate("plan", str(f))
    assert done.returncode == 0, done.stderr
    assert "compare server.work_us: each value against 0, paired by round; 2-3 rounds" in done.stdout
    assert "    round 2: 3 -> 0" in done.stdout and " round\n" in done.stdout
    # rounds x runs and their cost: the fewest (stopped on width at round 2) and all 3
    compared = "compare: {factor: server.work_us, baseline: 0}\n"
    p = plan.expand(load(compared + "rounds: {min: 2, max: 3, until: 5%}\n").scenario)
    assert (f"  rounds: 2-3 x 4 runs = 8-12 runs, {plan.fmt_seconds(4 * p.per_run_s)} a round: "
            f"{plan.fmt_seconds(p.seconds_for(8, with_baseline=True))} in all if the interval is within "
            "\u00b15% after round 2; the estimate below is for all 3\n") in done.stdout
    assert f"12 runs of 1s load each; expected total {plan.fmt_seconds(p.expected_seconds)} " in done.stdout
    fixed = plan.expand(load(compared + "rounds: 3\n").scenario)
    a_round = plan.fmt_seconds(4 * fixed.per_run_s)
    assert fixed.rounds_cost() == f"  rounds: 3 x 4 runs = 12 runs, {a_round} a round"
    assert plan.expand(load("").scenario).rounds_cost() is None


def _runs(ratios: list[float]) -> list[records.Run]:
    """Rounds of work_us 0 (baseline) and 3: CPU per request 10 and 10 x ratio."""
    out = []
    for k, ratio in enumerate(ratios, 1):
        for w, cpu in ((0, 10.0), (3, 10.0 * ratio)):
            out.append(records.Run.model_validate(run_record(
                repetition=k, axes={"server.work_us": w}, analysis={"cpu_us_per_request": cpu_cost(cpu)})))
    return out


def test_rounds_stop_on_width_only_from_min():
    sc = scenario.load("s.yaml", host_cpus={0, 1}, text="""
name: m
server: {work_us: [0, 3], cpus: [0]}
load: {cpus: [1]}
compare: {factor: server.work_us, baseline: 0, metric: cpu_us_per_request}
rounds: {min: 3, max: 6, until: 3%}
""").scenario
    p = plan.expand(sc)
    ctx = SimpleNamespace(runs=_runs([1.5, 1.51, 1.49, 1.5]), rounds={}, progress=lambda _: None)
    assert not execute._rounds_done(ctx, p, 2)  # narrow already, but min is 3
    assert execute._rounds_done(ctx, p, 3)
    assert ctx.rounds["run"] == 3 and ctx.rounds["stopped"].startswith(
        "after round 3: every interval on cpu_us_per_request within \u00b1")
    # round 2's variant went unmeasured: 3 rounds run but 2 measured, so not min yet
    lost = _runs([1.5, 1.5, 1.5, 1.5])  # two measured rounds alone would already be narrow
    lost[3] = lost[3].model_copy(update={"analysis": None})
    ctx = SimpleNamespace(runs=lost, rounds={}, progress=lambda _: None)
    assert not execute._rounds_done(ctx, p, 3) and execute._rounds_done(ctx, p, 4)
    # wide: go on, however clearly it excludes 1 (never stop on significance)
    rng = random.Random(2)
    ctx = SimpleNamespace(runs=_runs([1.5 * math.exp(rng.gauss(0, 0.1)) for _ in range(6)]), rounds={},
                          progress=lambda _: None)
    assert not execute._rounds_done(ctx, p, 3) and not execute._rounds_done(ctx, p, 5)
    assert execute._rounds_done(ctx, p, 6) and ctx.rounds["stopped"] == "all 6 planned rounds run"


def test_named_variants_are_a_factor_like_any_axis():
    sc = scenario.load("s.yaml", host_cpus={0, 1}, text="""
name: m
server: {cpus: [0]}
load: {cpus: [1]}
variants:
  small: {server: {body: "ok\\n"}}
  large: {server: {body: "a much longer body than the other\\n"}}
compare: {factor: variant, baseline: small}
rounds: 3
""").scenario
    p = plan.expand(sc)
    assert p.rounds is not None and p.rounds.orders == (("small", "large"), ("large", "small"),
                                                        ("small", "large"))
    assert [r.axes["variant"] for r in p.runs] == ["small", "large", "large", "small", "small", "large"]
    with pytest.raises(UserError) as exc:
        scenario.load("s.yaml", host_cpus={0, 1}, text="""
name: m
server: {cpus: [0]}
load: {cpus: [1]}
variants: {small: {}, large: {server: {body: "xx"}}}
compare: {factor: variant, baseline: big}
rounds: 3
""")
    assert exc.value.lines() == ["s.yaml:6: compare.baseline: 'big' is not a value of variant (small, large)"]


def _default_rounds(cpu_ratios: list[float]) -> dict:
    """Recorded rounds of the embedded default's shape: main-sub and reuseport at its one point,
    the server process's CPU per request (usr + sys) drifting with the machine round by round."""
    runs = []
    for k, ratio in enumerate(cpu_ratios, 1):
        level = 1.0 + 0.1 * (k % 3)  # the machine's drift: both sides of a round alike
        for arch, cpu in (("main-sub", 8.0 * level), ("reuseport", 8.0 * level * ratio)):
            runs.append(run_record(run_id=f"{k}-{arch}", arch=arch, repetition=k, qps=50_000.0,
                                   latency_ms={"p99": 1.0},
                                   analysis={"cpu_us_per_request": {"usr": cpu * 0.4, "sys": cpu * 0.6}}))
    return session(scenario="loopback", run_id="r", runs=runs)


def test_the_embedded_default_answers_the_reference_question_in_paired_rounds():
    """`./setup.sh run` (no scenario) compares reuseport with main-sub in rounds that alternate
    the order, on the server process's CPU per request, in about a minute (README), and its
    answer is a ratio with its interval: a call only when the interval excludes 1."""
    from orchestrator import cli, compare

    name, text = cli._scenario_path(None)
    sc = scenario.load(name, text=text).scenario
    c = sc.compare
    assert c is not None and (c.factor, c.baseline, c.metric) == ("server.arch", "main-sub",
                                                                   "process_cpu_us_per_request")
    p = plan.expand(sc)
    assert p.rounds is not None
    assert p.rounds.orders[:2] == (("reuseport", "main-sub"), ("main-sub", "reuseport"))
    assert [(r.repetition, r.arch) for r in p.runs[:4]] == [(1, "reuseport"), (1, "main-sub"),
                                                             (2, "main-sub"), (2, "reuseport")]
    assert p.expected_seconds <= 90, p.expected_seconds  # README: about a minute (73 s), all rounds run
    (ch,) = compare.paired(_default_rounds([0.9, 1.1, 0.95, 1.05]), c.factor, c.baseline, metrics=[c.metric])
    assert ch.ratio.low < 1 < ch.ratio.high
    assert ch.line().startswith("threads=1 connections=64: reuseport / main-sub process CPU µs/request: ")
    width = f"{ch.ratio.half_width_pct:.1f}"
    assert ch.line().endswith(f"(4 rounds): not resolved here (interval \u00b1{width}%)")
    steady = _default_rounds([0.9, 0.91, 0.89, 0.9])
    (cheaper,) = compare.paired(steady, c.factor, c.baseline, metrics=[c.metric])
    assert cheaper.ratio.high < 1 and cheaper.word == "better", cheaper.line()
