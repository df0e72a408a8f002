"""The regression gate works or refuses: fewer than 3 repetitions per point is bad input at
the `repeat` line before anything starts, and every shipped schedule runs a scenario the
gate can judge."""

from __future__ import annotations

import re
import shlex

import pytest

from orchestrator import compare, scenario

from testkit import NO_COMPARE, REPO, orchestrate

SCHEDULES = [REPO / "scenarios" / "schedule" / "crontab.txt",
             REPO / "scenarios" / "schedule" / "orchestrate-nightly.service",
             REPO / ".github" / "workflows" / "nightly-benchmark.yml"]


def test_a_gate_on_one_repetition_is_refused_at_the_repeat_line(tmp_path):
    done = orchestrate("run", "scenarios/cross-host.yaml", "--baseline", "latest", "--fail-on-regression",
                       "5", "--results", str(tmp_path))
    assert done.returncode == 2
    line = next(i for i, text in enumerate((REPO / "scenarios/cross-host.yaml").read_text().splitlines(), 1)
                if text.startswith("repeat:"))
    assert done.stderr == (f"scenarios/cross-host.yaml:{line}: repeat: --fail-on-regression needs at least "
                           "3 repetitions per point to judge a drop, got 1; set repeat: 3 or more\n")
    assert not any(tmp_path.iterdir()) and done.stdout == ""


def test_a_gate_on_a_set_repeat_names_the_override(tmp_path):
    done = orchestrate("run", "scenarios/cross-host.yaml", "--set", "repeat=2", "--baseline", "last:5",
                       "--fail-on-regression", "5", "--results", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("scenarios/cross-host.yaml (--set repeat=2): repeat: ")
    assert "got 2" in done.stderr
    assert not any(tmp_path.iterdir())


def test_the_embedded_default_without_repeat_points_at_its_first_line(tmp_path):
    done = orchestrate("run", *NO_COMPARE, "--baseline", "latest", "--fail-on-regression", "5",
                       "--results", str(tmp_path))
    assert done.returncode == 2 and re.match(r"<embedded loopback.yaml>:\d+: repeat: ", done.stderr)


@pytest.mark.parametrize("ref,msg", [("last:0", "expected last:N"), ("last:", "expected last:N"),
                                     ("last:x", "expected last:N"), ("nope", "not a results folder")])
def test_a_bad_baseline_is_refused_before_starting(ref, msg, tmp_path):
    done = orchestrate("run", "scenarios/nightly.yaml", "--baseline", ref, "--results", str(tmp_path))
    assert done.returncode == 2 and msg in done.stderr and done.stderr.count("\n") == 1
    assert not any(tmp_path.iterdir())


def gated_commands(path) -> list[list[str]]:
    """Every `orchestrate run ... --fail-on-regression` command in a schedule file."""
    out = []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or "--fail-on-regression" not in line:
            continue
        rest = line[line.index("orchestrate run ") + len("orchestrate run "):]
        out.append(shlex.split(rest.split(">>")[0].split("||")[0]))
    return out


@pytest.mark.parametrize("path", SCHEDULES, ids=lambda p: p.name)
def test_every_shipped_schedule_runs_a_scenario_the_gate_can_judge(path):
    commands = gated_commands(path)
    assert commands, f"{path}: no gated run"
    for words in commands:
        loaded = scenario.load(REPO / words[0])
        assert compare.gate_problems(loaded) == [], words
        # side by side: a factor in paired rounds, not tonight against earlier nights
        sc = loaded.scenario
        assert sc.compare is not None and "--baseline" not in words, words
        assert scenario.rounds_range(sc).min >= 5
        assert words[words.index("--fail-on-regression") + 1] == "5"


def test_a_factor_gate_needs_no_baseline_but_a_plain_scenario_does(tmp_path):
    done = orchestrate("run", "scenarios/cross-host.yaml", "--fail-on-regression", "5", "--results",
                       str(tmp_path))
    assert done.returncode == 2 and "or a scenario with compare: {factor, baseline}" in done.stderr
    assert not any(tmp_path.iterdir())
