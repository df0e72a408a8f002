"""compare and the regression gate on results folders (hand-made summaries with known numbers;
tests/test_cross_host.py does it with real runs on a lab)."""

from __future__ import annotations

import json
import math
import random

import pytest

from orchestrator import compare, history, stats, store
from orchestrator.errors import UserError

from testkit import NO_COMPARE, cpu_cost, orchestrate, run_record, session


def summary(qps_by_point, *, scenario="s", machine="cpu-x", status="complete", run_id="r1"):
    runs = []
    for (arch, threads, conns, _rate), values in qps_by_point.items():
        for i, q in enumerate(values, 1):
            runs.append(run_record(run_id=f"{len(runs) + 1:03d}-{arch}-t{threads}-c{conns}-r{i}", arch=arch,
                                   server_threads=threads, connections=conns, repetition=i, qps=q,
                                   latency_ms={"p50": 1.0, "p99": 2.0},
                                   errors={"connect": 0, "read": 0, "write": 0, "timeout": 0}))
    return session(scenario=scenario, run_id=run_id, status=status,
                   started=f"2026-11-27T00:00:0{run_id[-1]}Z", topology={"server": "h"},
                   hosts={"h": {"cpu_model": machine, "cpus": 2}}, runs=runs)


P = ("reuseport", 1, 64, None)  # arch, threads, connections, rate (closed loop)


def t(point):
    """A point's values, as the tuples these tests build summaries from."""
    return tuple(point.values())


def test_judge_words():
    assert compare.judge([100, 101, 99], [100.5, 99.5, 100])[1] == "not resolved here (interval \u00b12.1%)"
    ratio, word = compare.judge([100, 101, 99], [80, 81, 79])
    assert word == "worse" and ratio is not None and ratio.high < 0.83
    assert compare.judge([100, 101, 99], [120, 121, 119])[1] == "better"
    # zero spread on both sides is never certainty (no p = 0 shortcut)
    ratio, word = compare.judge([100, 100, 100], [100.1, 100.1, 100.1])
    assert word == "not resolved here (no spread to test with)" and ratio.p_value is None
    # below a measured floor: never "no change"
    floor = compare.Floor(4.0, 3)
    assert compare.judge([100, 101, 99], [100.5, 99.5, 100], floor=floor)[1] == \
        "not detectable here (floor 4.0% at 3 rounds)"
    ratio, word = compare.judge([100], [50])
    assert word == "too few repetitions" and ratio is None


def test_compare_matches_points_and_warns_about_machines():
    a = summary({P: [100, 101, 99], ("main-sub", 1, 64, None): [50, 51, 49]})
    b = summary({P: [80, 81, 79], ("reuseport", 2, 64, None): [1, 2, 3]}, machine="cpu-y")
    c = compare.compare(a, b)
    assert [t(ch.point) for ch in c.changes] == [P]
    assert c.changes[0].word == "worse" and c.changes[0].change_pct == pytest.approx(-20.0, abs=0.1)
    assert list(map(t, c.only_a)) == [("main-sub", 1, 64, None)]
    assert list(map(t, c.only_b)) == [("reuseport", 2, 64, None)]
    assert any("different machines" in w for w in c.warnings)
    # the gate acts on the whole interval: beyond a 10% drop, yes; beyond 25%, no
    assert [t(ch.point) for ch in c.regressions(10)] == [P] and c.regressions(25) == []
    # a measured floor larger than the requested effect raises the bar
    assert compare.compare(a, b, floor=compare.Floor(30.0, 3)).regressions(10) == []
    text = compare.render(c)
    assert "100 ->          80 qps (-20.0%, 0.800x [" in text and "n=3/3" in text
    assert "unpaired: A and B ran at different times" in text
    assert text.rstrip().endswith("only in B: reuseport threads=2 conns=64")


def test_holm_applies_across_points():
    """Each point alone would be called (p ~ 0.017), but five of them at once are not."""
    before, after = [100, 102, 98, 101, 99], [96, 98, 95, 99, 97]
    alone = compare.compare(summary({P: before}), summary({P: after}))
    assert alone.changes[0].word == "worse" and alone.changes[0].ratio.p_value < 0.05
    points = [("reuseport", 1, c, None) for c in (16, 32, 64, 128, 256)]
    many = compare.compare(summary(dict.fromkeys(points, before)), summary(dict.fromkeys(points, after)))
    assert len(many.changes) == 5
    for ch in many.changes:
        assert ch.ratio.excludes_one and ch.p_adjusted == pytest.approx(5 * ch.ratio.p_value)
        assert ch.word.startswith("not resolved here")


def _noisy(rng, level, n=10, sd=0.03):
    return [level * math.exp(rng.gauss(0, sd)) for _ in range(n)]


def test_a_constructed_8pct_step_is_detected_and_a_constructed_a_a_is_not():
    rng = random.Random(24)
    points = [("reuseport", 1, c, None) for c in (16, 32, 64, 128)]
    a = {p: _noisy(rng, 1000) for p in points}
    step = {p: _noisy(rng, 920 if p == points[2] else 1000) for p in points}
    c = compare.compare(summary(a), summary(step))
    assert [t(ch.point) for ch in c.changes if ch.significant] == [points[2]]
    assert [t(ch.point) for ch in c.regressions(5)] == [points[2]]
    # A/A: 200 comparisons of 4 points each on fresh noise; the family-wise false-"changed"
    # rate stays within 5% (Holm), here 95% binomial interval's upper end included
    fired = sum(any(ch.significant for ch in compare.compare(
        summary({p: _noisy(rng, 1000) for p in points}),
        summary({p: _noisy(rng, 1000) for p in points})).changes) for _ in range(200))
    assert fired <= 16, fired  # 5% of 200 is 10; 16 is the binomial 95% upper bound


def write(tmp_path, name, s):
    folder = tmp_path / name
    store.ResultsDir(folder).save_summary(s)
    return folder


def test_cli_compare_and_history(tmp_path):
    a = write(tmp_path, "a", summary({P: [100, 101, 99]}))
    b = write(tmp_path, "b", summary({P: [100, 100.5, 99.5]}, run_id="r2"))
    done = orchestrate("compare", str(a), str(b))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("not resolved here (interval \u00b12.1%)")
    assert "unpaired: A and B ran at different times" in done.stdout
    db = tmp_path / "h.sqlite"
    history.record_history(json.loads((a / "summary.json").read_text()), a, db)
    history.record_history(json.loads((b / "summary.json").read_text()), b, db)
    done = orchestrate("history", "--history", str(db), "--scenario", "s")
    assert done.returncode == 0 and done.stdout.count("complete") == 2
    df = history.history_frame(db)
    assert len(df) == 6 and set(df["results_id"]) == {"r1", "r2"} and df["qps"].max() == 101
    # 'latest' is the newest complete run of the scenario, not the one being judged
    assert compare.resolve_ref("latest", scenario="s", exclude="r2", db=db) == a.resolve()
    with pytest.raises(UserError, match="no earlier complete run of scenario 'other'"):
        compare.resolve_ref("latest", scenario="other", db=db)


def test_bad_inputs_exit_2(tmp_path):
    done = orchestrate("compare", str(tmp_path), str(tmp_path))
    assert done.returncode == 2 and "no summary.json here" in done.stderr
    newer = write(tmp_path, "n", summary({P: [1]}))
    data = json.loads((newer / "summary.json").read_text())
    data["version"] = 99
    (newer / "summary.json").write_text(json.dumps(data))
    done = orchestrate("compare", str(newer), str(newer))
    assert done.returncode == 2 and "format version 99 is not one this orchestrate reads" in done.stderr
    done = orchestrate("run", *NO_COMPARE, "--fail-on-regression", "5")
    assert done.returncode == 2 and "--fail-on-regression needs --baseline" in done.stderr
    done = orchestrate("run", "--baseline", str(tmp_path / "nope"))
    assert done.returncode == 2 and "not a results folder" in done.stderr


def test_last_n_counts_each_night_once(tmp_path):
    """Five nights around 100 (a night's repetitions agree more than nights do). Tonight 10%
    down is called against the nights' spread; tonight 1% down is not, though its repetitions
    alone, pooled with every night's as if independent, would have called it."""
    db = tmp_path / "h.sqlite"
    h = history.open_history(db)
    for night, level in enumerate((100.0, 102.0, 99.0, 101.0, 98.0), 1):
        s = summary({P: [level, level + 0.2, level - 0.2]}, run_id=f"n{night}")
        s["started"] = f"2026-11-0{night}T02:30:00Z"
        h.record(s, write(tmp_path, f"n{night}", s))
    name, latest = compare.baseline("latest", scenario="s", history=h, exclude="n6")
    assert name == "latest (n5)"
    name, window = compare.baseline("last:5", scenario="s", history=h, exclude="n6")
    assert name == "last:5 (5 runs: n1 .. n5)" and len(window) == 5
    down10 = summary({P: [90.0, 90.2, 89.8]}, run_id="n6")
    c = compare.compare(window, down10)
    (change,) = c.changes
    assert len(change.before) == 5 and change.word == "worse"
    assert change.change_pct == pytest.approx(-10, abs=0.1)
    assert c.statistic == stats.NIGHTS and [t(ch.point) for ch in c.regressions(5)] == [P]
    down1 = summary({P: [99.0, 99.2, 98.8]}, run_id="n6")
    (change,) = compare.compare(window, down1).changes
    assert change.word.startswith("not resolved here") and change.ratio.n == 5
    pooled = summary({P: [v for lv in (100.0, 102.0, 99.0, 101.0, 98.0) for v in (lv, lv + .2, lv - .2)]})
    assert compare.compare(pooled, down1).changes[0].word == "worse"  # what pooling would claim
    # a window larger than the history takes what there is; the judged run never counts
    name, _ = compare.baseline("last:50", scenario="s", history=h, exclude="n5")
    assert name == "last:50 (4 runs: n1 .. n4)"
    assert compare.baseline("last:3", scenario="other", history=h) is None  # first night: nothing


def test_environment_differences_are_warned_about():
    a = summary({P: [100, 101, 99]})
    b = summary({P: [100, 101, 99]}, run_id="r2")
    a["hosts"]["h"].update(kernel="6.1.0-18-amd64", microcode="0xa0", governor="performance",
                           mitigations={"spectre_v2": "Mitigation: IBRS", "mds": "Not affected"},
                           tool_versions={"wrk": "4.1.0"}, instance_type="c7i.large", roles=["server"])
    b["hosts"]["h"].update(kernel="6.1.0-21-amd64", microcode="0xa0", governor="powersave",
                           mitigations={"spectre_v2": "Vulnerable", "mds": "Not affected"},
                           tool_versions={"wrk": "4.2.0"}, instance_type="c7i.large", roles=["server"])
    warnings = [w for w in compare.compare(a, b).warnings if w.startswith("environment differs")]
    assert warnings == ["environment differs: server kernel: 6.1.0-18-amd64 vs 6.1.0-21-amd64",
                        "environment differs: server CPU governor: performance vs powersave",
                        "environment differs: server mitigations: spectre_v2 Mitigation: IBRS vs Vulnerable",
                        "environment differs: server tool versions: wrk 4.1.0 vs 4.2.0"]
    assert not [w for w in compare.compare(a, a).warnings if w.startswith("environment")]
    assert "\nenvironment: no recorded fact differs between A and B" in compare.render(compare.compare(a, a))
    assert "environment: no recorded fact" not in compare.render(compare.compare(a, b))


def rounds_summary(rng, n, *, qps_ratio=1.0, cpu_ratio=1.0, drift=0.05, noise=0.01):
    """n rounds of reuseport against main-sub: each round drifts the machine by up to `drift`
    (both variants alike), and each run has its own `noise`."""
    runs = []
    for k in range(1, n + 1):
        level = math.exp(rng.uniform(-drift, drift))
        for arch, qr, cr in (("main-sub", 1.0, 1.0), ("reuseport", qps_ratio, cpu_ratio)):
            q = 100_000 * level * qr * math.exp(rng.gauss(0, noise))
            cpu = 8.0 / level * cr * math.exp(rng.gauss(0, noise))
            runs.append(run_record(run_id=f"{k}-{arch}", arch=arch, repetition=k, qps=q,
                                   latency_ms={"p99": 1.0 * math.exp(rng.gauss(0, noise))},
                                   analysis={"cpu_us_per_request": cpu_cost(cpu)}))
    return session(scenario="s", run_id="r", runs=runs)


def test_paired_rounds_cancel_drift_and_judge_each_metric_its_own_way():
    rng = random.Random(8)
    s = rounds_summary(rng, 8, qps_ratio=0.92, cpu_ratio=1.08)
    changes = compare.paired(s, "server.arch", "main-sub", metrics=("qps", "cpu_us_per_request", "p99"))
    by = {c.metric.name: c for c in changes}
    assert by["qps"].word == "worse" and by["qps"].ratio.high < 0.95  # 8% step, ±5% drift a round
    assert by["cpu_us_per_request"].word == "worse" and by["cpu_us_per_request"].ratio.low > 1.05
    assert by["p99"].word.startswith("not resolved here")
    assert by["qps"].line().startswith("threads=1 connections=64: reuseport / main-sub req/s: 0.92")
    assert [c.metric.name for c in compare.paired_regressions(changes, 5)] == ["qps", "cpu_us_per_request"]
    floors = {"qps": compare.Floor(12.0, 8),
              "cpu_us_per_request": compare.Floor(12.0, 8, metric="cpu_us_per_request")}
    assert compare.paired_regressions(changes, 5, floors) == []
    assert [c.metric.name for c in compare.paired_regressions(changes, 5, {"qps": floors["qps"]})] == [
        "cpu_us_per_request"]
    # unpaired, the same runs carry the drift: the interval is several times wider
    reps = {a: [r["qps"] for r in s["runs"] if r["arch"] == a] for a in ("main-sub", "reuseport")}
    unpaired = stats.ratio_of(reps["main-sub"], reps["reuseport"])
    assert unpaired.half_width_pct > 3 * by["qps"].ratio.half_width_pct


def test_paired_a_a_is_not_called_and_a_bad_factor_is_refused():
    rng = random.Random(9)
    fired = sum(any(c.significant for c in compare.paired(rounds_summary(rng, 8), "server.arch", "main-sub",
                                                          metrics=("qps", "cpu_us_per_request")))
                for _ in range(200))
    assert fired <= 16, fired  # 5% of 200 is 10; 16 is the binomial 95% upper bound
    with pytest.raises(UserError, match="compare.factor server.nope: expected one of"):
        compare.paired(rounds_summary(rng, 3), "server.nope", "x")


def test_cli_compare_paired_within_one_folder(tmp_path):
    s = rounds_summary(random.Random(8), 8, qps_ratio=0.92, cpu_ratio=1.08)
    for r in s["runs"]:
        r["run_id"] = f"{r['repetition']:03d}-{r['arch']}"
    folder = write(tmp_path, "f", s)
    done = orchestrate("compare", str(folder), "--factor", "server.arch", "--baseline", "main-sub",
                       "--history", str(tmp_path / "h.sqlite"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "paired by round" in lines[0] and "Holm across 2 comparison(s)" in lines[0]
    assert lines[1].startswith("threads=1 connections=64: reuseport / main-sub req/s: 0.92")
    assert lines[1].endswith("(8 rounds): worse") and lines[2].endswith("worse")
    done = orchestrate("compare", str(folder), "--factor", "server.arch", "--baseline", "nope")
    assert done.returncode == 2 and "--baseline nope: no run of" in done.stderr
    done = orchestrate("compare", str(folder))
    assert done.returncode == 2 and "compare needs two results folders" in done.stderr


def test_every_metric_is_compared_in_its_own_direction():
    from orchestrator import cli

    assert list(compare.METRICS) == cli.METRIC_CHOICES
    s = rounds_summary(random.Random(3), 6, cpu_ratio=1.25, drift=0.0)
    a = {**s, "runs": [r for r in s["runs"] if r["arch"] == "main-sub"]}
    b = {**s, "runs": [{**r, "arch": "main-sub"} for r in s["runs"] if r["arch"] == "reuseport"]}
    c = compare.compare(a, b, metric="cpu_us_per_request")
    (ch,) = c.changes
    assert ch.word == "worse" and ch.ratio.low > 1.15 and "CPU µs/request" in ch.line()
    assert c.regressions(10) == [ch] and c.regressions(30) == []
    (back,) = compare.compare(b, a, metric="cpu_us_per_request").changes
    assert back.word == "better"
