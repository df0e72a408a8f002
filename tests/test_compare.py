"""compare and the regression gate on results folders (hand-made summaries with known numbers;
tests/test_cross_host.py does it with real runs on a lab)."""

from __future__ import annotations

import json

import pytest

from orchestrator import compare, history, store
from orchestrator.errors import UserError

from testkit import orchestrate


def summary(qps_by_point, *, scenario="s", machine="cpu-x", status="complete", run_id="r1"):
    runs = []
    for (arch, threads, conns, _rate), values in qps_by_point.items():
        for i, q in enumerate(values, 1):
            runs.append({"run_id": f"{len(runs) + 1:03d}-{arch}-t{threads}-c{conns}-r{i}", "arch": arch,
                         "server_threads": threads, "connections": conns, "repetition": i, "qps": q,
                         "latency_ms": {"p50": 1.0, "p99": 2.0},
                         "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}})
    return {"scenario": scenario, "run_id": run_id, "status": status, "provider": "local",
            "started": f"2026-11-27T00:00:0{run_id[-1]}Z",
            "topology": {"server": "h"}, "hosts": {"h": {"cpu_model": machine, "cpus": 2}}, "runs": runs}


P = ("reuseport", 1, 64, None)  # arch, threads, connections, rate (closed loop)


def test_judge_words():
    assert compare.judge([100, 101, 99], [100.5, 99.5, 100])[2] == "no significant change"
    assert compare.judge([100, 101, 99], [80, 81, 79])[2] == "worse"
    assert compare.judge([100, 101, 99], [120, 121, 119])[2] == "better"
    # significant by the test but below the minimum effect: noise, not a change
    assert compare.judge([100.0, 100.1, 99.9], [101.0, 101.1, 100.9])[2] == "no significant change"
    change, p, word = compare.judge([100], [50])
    assert word == "too few repetitions" and p is None and change == -50.0


def test_compare_matches_points_and_warns_about_machines():
    a = summary({P: [100, 101, 99], ("main-sub", 1, 64, None): [50, 51, 49]})
    b = summary({P: [80, 81, 79], ("reuseport", 2, 64, None): [1, 2, 3]}, machine="cpu-y")
    c = compare.compare(a, b)
    assert [ch.point for ch in c.changes] == [P]
    assert c.changes[0].word == "worse" and c.changes[0].change_pct == pytest.approx(-20.0)
    assert c.only_a == (("main-sub", 1, 64, None),) and c.only_b == (("reuseport", 2, 64, None),)
    assert any("different machines" in w for w in c.warnings)
    assert [ch.point for ch in c.regressions(10)] == [P] and c.regressions(25) == []
    text = compare.render(c)
    assert "100 ->          80 qps (-20.0%, n=3/3" in text and text.rstrip().endswith(
        "only in B: reuseport threads=2 conns=64")


def write(tmp_path, name, s):
    folder = tmp_path / name
    store.ResultsDir(folder).save_summary(s)
    return folder


def test_cli_compare_and_history(tmp_path):
    a = write(tmp_path, "a", summary({P: [100, 101, 99]}))
    b = write(tmp_path, "b", summary({P: [100, 100.5, 99.5]}, run_id="r2"))
    done = orchestrate("compare", str(a), str(b))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("no significant change")
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
    done = orchestrate("run", "--fail-on-regression", "5")
    assert done.returncode == 2 and "--fail-on-regression needs --baseline" in done.stderr
    done = orchestrate("run", "--baseline", str(tmp_path / "nope"))
    assert done.returncode == 2 and "not a results folder" in done.stderr


def test_last_n_pools_every_repetition_of_the_window(tmp_path):
    """A slow drift: each night 2% below the one before. Against the latest run alone no step
    is significant; against the last 5 pooled, the drift shows."""
    db = tmp_path / "h.sqlite"
    h = history.open_history(db)
    for night, level in enumerate((100.0, 98.0, 96.0, 94.0, 92.0), 1):
        s = summary({P: [level, level + 0.5, level - 0.5]}, run_id=f"n{night}")
        s["started"] = f"2026-11-0{night}T02:30:00Z"
        h.record(s, write(tmp_path, f"n{night}", s))
    tonight = summary({P: [90.0, 90.5, 89.5]}, run_id="n6")
    name, latest = compare.baseline("latest", scenario="s", history=h, exclude="n6")
    assert name == "latest (n5)"
    assert compare.compare(latest, tonight).regressions(5) == []  # -2.2%: not a drop past 5%
    name, pooled = compare.baseline("last:5", scenario="s", history=h, exclude="n6")
    assert name == "last:5 (5 runs: n1 .. n5)"
    (change,) = compare.compare(pooled, tonight).changes
    assert len(change.before) == 15 and change.word == "worse" and change.change_pct == pytest.approx(-6.25)
    assert [c.point for c in compare.compare(pooled, tonight).regressions(5)] == [P]
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
