"""The comparison explains itself: paired intervals per component and one sentence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator import explain, records, store
from orchestrator.point import PointKey

import testkit


def run(usr: float, sys: float, soft: float, qps: float = 20_000.0, switches_s: float = 4_000.0,
        packets: float = 2.0) -> records.Run:
    return records.Run.model_validate({
        **testkit.run_record(qps=qps), "analysis": {
            "cpu_us_per_request": {"usr": usr, "sys": sys, "soft": soft, "total": usr + sys + soft},
            "switches": {"voluntary_s": switches_s, "involuntary_s": 0.0},
            "packets_per_request": {"total": packets, "source": "sar DEV eth0 on srv"}},
        "server_counters": testkit.server_counters(testkit.counter_thread(requests=1000, bytes_in=80_000,
                                                                          bytes_out=120_000))})


def test_a_sys_time_change_is_named_with_its_share_and_interval():
    pairs = [(run(10, 20, 5), run(10.2, 31, 5.1)), (run(11, 21, 5), run(10.9, 32.5, 5)),
             (run(10, 19, 6), run(10.1, 30.2, 6.1))]
    e = explain.explain(pairs, "main-sub", "reuseport")
    assert e is not None
    assert e.sentence.startswith("main-sub costs 1.3")
    assert ("the server CPU per request of reuseport, and sys time moved most (sys 1.5" in e.sentence
            and "9" in e.sentence.split("sys 1.5")[1])  # ~96% of the change
    names = [c.part.name for c in e.components]
    assert names == ["cpu_us_per_request", "cpu_usr_us_per_request", "cpu_sys_us_per_request",
                     "cpu_softirq_us_per_request", "switches_per_request", "packets_per_request",
                     "bytes_per_request"]
    assert e.components[6].ratio.estimate == pytest.approx(1.0)  # 200 bytes a request both sides


def test_without_a_cpu_change_the_component_that_moved_most_is_named():
    pairs = [(run(10, 20, 5, packets=2.0), run(10, 20, 5, packets=3.1)),
             (run(10, 20, 5.1, packets=2.1), run(10.1, 20, 5, packets=3.0)),
             (run(10, 20.2, 5, packets=1.9), run(10, 20, 5.1, packets=2.9))]
    e = explain.explain(pairs, "B", "A")
    assert e is not None and e.sentence.startswith("packets per request moved most: B/A 1.5")
    same = explain.explain([(run(10, 20, 5), run(10, 20, 5)), (run(10, 20, 5), run(10, 20, 5))], "B", "A")
    assert same is not None and same.sentence.startswith("no measured component of B against A moved")
    bare = records.Run.model_validate(testkit.run_record())  # nothing measured per request
    assert explain.explain([(bare, bare)], "B", "A") is None


def test_by_cell_pairs_each_variant_with_the_baseline_round_by_round():
    def at(arch: str, rep: int, sys: float) -> records.Run:
        r = run(10, sys, 5)
        return r.model_copy(update={"arch": arch, "server_threads": 1, "connections": 64, "repetition": rep})

    runs = [at("reuseport", 1, 20), at("main-sub", 1, 30), at("main-sub", 2, 31), at("reuseport", 2, 21),
            at("reuseport", 3, 19), at("main-sub", 3, 29.5)]
    cells = explain.by_cell(runs, "server.arch", "reuseport")
    assert [v for _, v in cells] == ["main-sub"]
    e = cells[next(iter(cells))]
    assert e.sentence == ("main-sub costs 1.29x [1.25, 1.33] the server CPU per request of reuseport, and "
                          "sys time moved most (sys 1.51x [1.42, 1.61], 100% of the change).")


def test_work_us_0_against_3_names_usr_cpu_per_request(work_factor_run):
    """On the shared real run of scenarios/factor-work.yaml (tests/conftest.py: server.work_us 0
    against 3 in 4 paired rounds, one connection with 16 requests pipelined, pidstat)."""
    folder, _ = work_factor_run
    assert folder is not None
    cells = explain.by_cell(store.load_summary(folder).runs, "server.work_us", 0)
    assert list(cells) == [(PointKey([("server.arch", "reuseport"), ("server.threads", 1),
                                       ("load.connections", 1), ("load.rate", None)]), 3)]
    e = next(iter(cells.values()))
    assert e is not None, "no component measured"
    assert re.search(r"usr (time|CPU µs per request) moved most", e.sentence), e.lines()
    usr = next(c for c in e.components if c.part.name == "cpu_usr_us_per_request")
    shown = testkit.orchestrate("compare", str(folder), "--factor", "server.work_us", "--baseline", "0")
    assert shown.returncode == 0, shown.stderr
    assert f"why, at server.arch=reuseport server.threads=1 load.connections=1: {e.sentence}" in shown.stdout
    assert "  usr CPU µs per request: " in shown.stdout
    # more usr CPU a request (pidstat's tick accounting read +0.9 µs of the 3 with 16
    # unpipelined connections, 2026-12-06)
    assert usr.ratio.low > 1.0 and usr.change > 0


def sys_summary() -> dict:
    """Three rounds of main-sub against reuseport, main-sub paying ~50% more sys time a request."""
    runs = []
    for rep, (base_sys, var_sys) in enumerate(((20, 30), (21, 31), (19, 29.5)), start=1):
        for arch, sys in (("reuseport", base_sys), ("main-sub", var_sys)):
            r = run(10, sys, 5).model_dump(mode="json", exclude_none=True)
            runs.append({**r, "run_id": f"{rep}-{arch}", "arch": arch, "server_threads": 1,
                         "connections": 64, "repetition": rep})
    return testkit.session(scenario="s", run_id="r", runs=runs,
                           rounds={"factor": "server.arch", "baseline": "reuseport",
                                   "metric": "cpu_us_per_request", "run": 3,
                                   "stopped": "all 3 planned rounds run"})


SENTENCE = ("main-sub costs 1.29x [1.25, 1.33] the server CPU per request of reuseport, and "
            "sys time moved most (sys 1.51x [1.42, 1.61], 100% of the change).")


def test_the_gate_names_why_a_factor_regressed():
    from orchestrator import compare

    s = sys_summary()
    changes = compare.paired(s, "server.arch", "reuseport", metrics=["cpu_us_per_request"])
    bad = compare.paired_regressions(changes, 5)
    assert [(c.at, c.variant) for c in bad] == [("threads=1 connections=64", "main-sub")]
    why = compare.explanations(s, "server.arch", "reuseport")
    assert set(why) == {("threads=1 connections=64", "main-sub")}
    (line,) = compare.paired_gate_lines(bad, "server.arch", 5.0, "noise floor not measured here", why)
    assert line.startswith("threads=1 connections=64: server.arch=main-sub against reuseport: "
                           "CPU µs/request 1.29")
    assert "(3 rounds), beyond 5% (noise floor not measured here); why: " + SENTENCE in line
    assert "why:" not in compare.paired_gate_lines(bad, "server.arch", 5.0, "x")[0]


def test_the_report_explains_each_cell_of_the_comparison(tmp_path: Path):
    from orchestrator.report import render

    store.ResultsDir(tmp_path).save_summary(sys_summary())
    paths = render.build(tmp_path)
    md = paths.md.read_text()
    answer = md[md.index("## The answer: each architecture against reuseport"):md.index("## Verdicts")]
    assert f"**Why, at threads=1 connections=64, main-sub against reuseport:** {SENTENCE}" in answer
    rows = {line.split(" | ")[0][2:]: line for line in answer.splitlines() if line.startswith("| ")}
    assert rows["sys CPU µs per request"] == "| sys CPU µs per request | 1.51x [1.42, 1.61] | 3 | yes |"
    assert rows["bytes per request (server, in + out)"].endswith("| 3 | no |")  # 200 bytes both sides
    assert answer.index("**Why, at") > answer.index("| threads=1 connections=64 | main-sub | CPU µs/request")
    html = paths.html.read_text()
    assert html.index('class="why-components"') < html.index('id="verdict-section"')


def noisy_summary() -> dict:
    """sys_summary with the verdicts recorded, a sysctl that differed on main-sub's runs, and
    steal that rose from before the windows to after them."""
    s = sys_summary()
    for r in s["runs"]:
        r["analysis"]["verdict"] = "server-cpu-bound" if r["arch"] == "main-sub" or r["repetition"] > 1 \
            else "client-bound"
        r["sysctl"] = {"srv": {"net.core.somaxconn": "128" if r["arch"] == "main-sub" else "4096",
                               "net.ipv4.tcp_fin_timeout": "60"}}
    reading = {"when": "before", "seconds": 1.0, "cpus": [0, 1], "busy_pct": {"0": 1.0, "1": 2.0},
               "steal_pct": 0.1, "intruders": [], "pauses": {"0": {"lost_pct": 0.01}}}
    s["host_noise"] = {"before": reading, "after": {**reading, "when": "after", "steal_pct": 4.2}}
    return s


def test_the_explanation_carries_the_verdicts_and_the_environment_diff(tmp_path: Path):
    from orchestrator import compare
    from orchestrator.report import render

    s = noisy_summary()
    (e,) = compare.explanations(s, "server.arch", "reuseport").values()
    assert e.sentence == SENTENCE  # the sentence is the components'; the diff stands beside it
    assert e.verdicts == ("verdicts: reuseport server-cpu-bound x2, client-bound x1; "
                          "main-sub server-cpu-bound x3")
    assert e.environment == ("sysctl srv net.core.somaxconn: 4096 vs 128",  # not fin_timeout: same
                             "host noise: steal 0.1% before the windows vs 4.2% after")
    assert e.lines()[-1] == ("  environment differs: sysctl srv net.core.somaxconn: 4096 vs 128; "
                             "host noise: steal 0.1% before the windows vs 4.2% after")
    bad = compare.paired_regressions(compare.paired(s, "server.arch", "reuseport",
                                                    metrics=["cpu_us_per_request"]), 5)
    (line,) = compare.paired_gate_lines(bad, "server.arch", 5.0, "x", compare.explanations(
        s, "server.arch", "reuseport"))
    assert line.endswith(f"why: {SENTENCE}; " + e.environment_line)
    store.ResultsDir(tmp_path).save_summary(s)
    md = render.build(tmp_path).md.read_text()
    assert "verdicts: reuseport server-cpu-bound x2, client-bound x1; main-sub server-cpu-bound x3. " \
           "environment differs: sysctl srv net.core.somaxconn: 4096 vs 128" in md
    # nothing differing is said too, and the gate line then stays the sentence alone
    (quiet,) = compare.explanations(sys_summary(), "server.arch", "reuseport").values()
    assert quiet.environment == () and quiet.verdicts is None
    assert quiet.lines()[-1] == ("  environment: no recorded fact differs between the sides (same "
                                 "hosts, rounds interleaved)")


def test_compare_of_two_folders_explains_each_point_with_unpaired_intervals():
    from orchestrator import compare

    def folder(rid: str, sys: tuple[float, ...]) -> dict:
        runs = []
        for rep, s in enumerate(sys, start=1):
            r = run(10, s, 5).model_dump(mode="json", exclude_none=True)
            r["analysis"]["verdict"] = "server-cpu-bound"
            runs.append({**r, "run_id": f"{rid}-{rep}", "arch": "reuseport", "server_threads": 1,
                         "connections": 64, "repetition": rep})
        return testkit.session(scenario="s", run_id=rid, runs=runs)

    c = compare.compare(folder("a", (20, 21, 19)), folder("b", (30, 31, 29.5)), names=("night-1", "night-2"))
    ((point, e),) = c.why
    assert e.sentence.startswith("night-2 costs 1.2") and "sys time moved most (sys 1.5" in e.sentence
    assert e.verdicts == "verdicts: night-1 server-cpu-bound x3; night-2 server-cpu-bound x3"
    text = compare.render(c)
    assert f"why, at {compare.label(point)} (unpaired intervals): {e.sentence}\n" in text
    assert "\n  sys CPU µs per request: 1.5" in text
    assert text.count("environment") == 1  # said once, at the top, not per point
