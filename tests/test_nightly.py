"""The nightly job runs the commit that last passed against HEAD, as named variants on the same
hosts: `last-passed` is read from the history's gate verdicts (the candidate a passing gate
judged), HEAD with itself on the first night; the workflow checks out the full history."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from orchestrator import refs, scenario
from orchestrator.history import open_history

import testkit

NIGHTLY = testkit.REPO / "scenarios" / "nightly.yaml"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """A scratch repository with three commits (the lookup reads history, it builds nothing)."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    shas = []
    for n in range(3):
        (path / "f").write_text(f"{n}\n")
        git(path, "add", "-A")
        git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"c{n}")
        shas.append(git(path, "rev-parse", "HEAD"))
    return path, shas


def night(history, tmp_path: Path, rid: str, started: str, *, scenario_name: str = "nightly",
          status: str = "complete", gate: dict | None = None) -> None:
    folder = tmp_path / "results" / rid
    folder.mkdir(parents=True)
    history.record(testkit.session(scenario=scenario_name, run_id=rid, status=status, started=started,
                                   runs=[]), folder)
    if gate is not None:
        history.record_gate(rid, gate)


def passed(sha: str) -> dict:
    return {"threshold_pct": 5, "regressed": [], "lines": [], "passed": {"ref": "HEAD", "sha": sha}}


def test_last_passed_is_the_candidate_of_the_newest_passing_night(tmp_path, repo):
    path, (c0, c1, c2) = repo
    h = open_history(tmp_path / "h.sqlite")
    loaded = scenario.load(NIGHTLY, [f"server.repo={path}"]).scenario
    # the first night: nothing passed yet, so HEAD against itself
    sets, why = refs.last_passed_sets(loaded, h)
    assert sets == [f"variants.last-passed.server.ref={c2}"]
    assert why == (f"server.ref last-passed = HEAD {c2[:12]}: no run of nightly has passed its gate "
                   "yet (kept in history), so this run compares HEAD with itself")
    night(h, tmp_path, "n1", "2026-12-01T02:30:00", gate=passed(c0))
    night(h, tmp_path, "n2", "2026-12-02T02:30:00", gate=passed(c1))
    night(h, tmp_path, "n3", "2026-12-03T02:30:00",  # regressed: HEAD did not pass
          gate={"threshold_pct": 5, "regressed": ["x variant=head"], "lines": ["..."]})
    night(h, tmp_path, "n4", "2026-12-04T02:30:00", status="failed")  # no gate at all
    night(h, tmp_path, "o1", "2026-12-05T02:30:00", scenario_name="other", gate=passed(c2))
    assert refs.last_passed(h, "nightly") == (c1, "n2")
    sets, why = refs.last_passed_sets(loaded, h)
    assert sets == [f"variants.last-passed.server.ref={c1}"]
    assert why == f"server.ref last-passed = {c1[:12]}: the commit run n2 of nightly passed"
    # the scenario as run: last-passed is that commit, head is HEAD; compared as the variant factor
    got = scenario.load(NIGHTLY, [f"server.repo={path}", *sets]).scenario
    assert refs.scenario_refs(got) == [c1, "HEAD"]
    assert got.compare is not None
    assert (got.compare.factor, got.compare.baseline) == ("variant", "last-passed")
    # what a passing night records as passed: the candidate, HEAD, with its commit
    assert refs.candidate(got, {c1: {"sha": c1}, "HEAD": {"sha": c2}}) == {"ref": "HEAD", "sha": c2}
    # a commit the checkout lacks (a shallow clone) is exit 2 naming it
    night(h, tmp_path, "n5", "2026-12-06T02:30:00", gate=passed("ab" * 20))
    with pytest.raises(refs.UserError, match=f"server.ref {'ab' * 20}: no such commit"):
        refs.last_passed_sets(loaded, h)


def test_the_cli_plans_the_nightly_with_the_commit_that_last_passed(tmp_path, repo):
    path, (c0, _, c2) = repo
    h = open_history(tmp_path / "h.sqlite")
    night(h, tmp_path, "n1", "2026-12-01T02:30:00", gate=passed(c0))
    done = testkit.orchestrate("plan", str(NIGHTLY), "--set", f"server.repo={path}",
                               env={"ORCHESTRATE_HISTORY": str(tmp_path / "h.sqlite"),
                                    "ORCHESTRATE_BUILD_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    assert f"server.ref last-passed = {c0[:12]}: the commit run n1 of nightly passed" in done.stderr
    assert f"server.ref {c0} = {c0[:12]} 'c0'" in done.stdout
    assert f"server.ref HEAD = {c2[:12]} 'c2'" in done.stdout


def test_the_workflow_checks_out_the_full_history_and_runs_the_nightly():
    flow = yaml.safe_load((testkit.REPO / ".github" / "workflows" / "nightly-benchmark.yml").read_text())
    steps = flow["jobs"]["benchmark"]["steps"]
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # depth 1 lacks the commit that last passed
    assert any("orchestrate run scenarios/nightly.yaml" in str(s.get("run", "")) for s in steps)
    sc = scenario.load(NIGHTLY).scenario
    assert {n: scenario.variant_scenario(sc, n).server.ref for n in sc.variants} == {
        "last-passed": refs.LAST_PASSED, "head": "HEAD"}


SHORT = ["--set", "hosts={provider: local}", "--set", "server.arch=reuseport", "--set", "server.port=18426",
         "--set", "load.duration=1s", "--set", "baseline.enabled=false", "--set", "telemetry=[]",
         "--set", "rounds=2"]  # the suite's time is tight: the gate reads QPS, 2 rounds pair


@pytest.mark.slow
def test_two_real_nights_the_second_runs_what_the_first_passed(tmp_path):
    """Night 1 on a clone of this repository: no passing night yet, HEAD against itself (built
    once), passes, and records HEAD's commit as passed. A docs-only commit lands; night 2 runs
    that commit (last-passed) against the new HEAD: same build inputs, built once, passes."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(testkit.REPO), str(clone)], check=True)
    first = git(clone, "rev-parse", "HEAD")
    env = {"ORCHESTRATE_HISTORY": str(tmp_path / "h.sqlite")}  # the usual build cache: keyed by inputs

    def run_night() -> subprocess.CompletedProcess[str]:
        return testkit.orchestrate("run", str(NIGHTLY), "--set", f"server.repo={clone}", *SHORT,
                                   "--results", str(tmp_path / "results"), "--fail-on-regression", "5",
                                   "--yes", env=env, timeout=600)

    one = run_night()
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-2000:]
    assert f"server.ref last-passed = HEAD {first[:12]}: no run of nightly has passed" in one.stderr
    assert "regression gate: no variant of variant worse by more than 5%" in one.stdout
    (clone / "NOTES.md").write_text("a docs-only change\n")
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "docs only")
    two = run_night()
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    h = open_history(tmp_path / "h.sqlite")
    (newest, older) = [s["results_id"] for s in h.sessions(scenario="nightly", limit=5)]
    assert f"server.ref last-passed = {first[:12]}: the commit run {older} of nightly passed" in two.stderr
    assert "same build inputs" not in two.stderr  # (said by plan; run says cached)
    assert f"server.ref {first} = {first[:12]}" in two.stderr and "server.ref HEAD = " in two.stderr
    assert refs.last_passed(h, "nightly") == (git(clone, "rev-parse", "HEAD"), newest)
