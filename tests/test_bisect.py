"""The bisect's logic, driven by a stand-in runner that returns recorded measurements.

The good side's QPS per round is written in the range a 1-thread loopback run gives on this VM;
each commit's per-round ratios to it are fixed here: a commit before the change within a few percent
of 1, a commit after it near 0.80 (the fourth-commit regression of bench/RESULTS.md's real
bisect), and a noisy one whose rounds straddle any threshold.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from orchestrator import bisect
from orchestrator.refs import Commit

import testkit

GOOD_QPS = [21_480.0, 20_910.0, 22_030.0, 21_150.0, 20_640.0, 21_870.0, 21_300.0, 20_990.0, 21_620.0]
SAME = [1.012, 0.991, 1.004, 0.987, 1.009, 0.996, 1.003, 0.994, 1.006]
SLOWER = [0.803, 0.791, 0.812, 0.797, 0.806, 0.788, 0.801, 0.809, 0.795]
NOISY = [0.81, 1.01, 0.90, 0.79, 1.02, 0.91, 0.80, 1.00, 0.89]


def commit(n: int) -> Commit:
    sha = f"{n:02d}" * 20
    return Commit(sha[:12], sha, f"commit {n}")


class Recorded:
    """A runner that answers from the table above: rounds are taken in order per commit."""

    def __init__(self, ratios: dict[int, list[float]], interrupt_at: int | None = None):
        self.ratios = ratios
        self.calls: list[tuple[int, int]] = []  # (commit number, rounds)
        self.taken: dict[int, int] = {}
        self.interrupt_at = interrupt_at

    def __call__(self, good: Commit, other: Commit, rounds: int, role: str) -> bisect.Batch:
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        n = int(other.sha[:2])
        start = self.taken.get(n, 0)
        self.taken[n] = start + rounds
        self.calls.append((n, rounds))
        values = tuple((GOOD_QPS[i], GOOD_QPS[i] * self.ratios[n][i]) for i in range(start, start + rounds))
        return bisect.Batch(values, f"results/step-{len(self.calls)}")


def state(last: int, **kw) -> bisect.State:
    commits = tuple(commit(n) for n in range(2, last + 1))
    return bisect.State("loopback", commit(1), commits[-1], commits, "qps", kw.get("threshold"),
                        kw.get("min_rounds", 3), kw.get("max_rounds", 6))


def eight(first_bad: int, noisy: int | None = None) -> dict[int, list[float]]:
    return {n: NOISY if n == noisy else (SLOWER if n >= first_bad else SAME) for n in range(2, 9)}


def test_the_fourth_of_eight_is_found_in_four_steps_with_an_interval_at_each():
    run = Recorded(eight(first_bad=4))
    result = bisect.search(state(8), run)
    assert result.status == "found" and result.first_bad == commit(4)
    assert [(s.commit, s.call) for s in result.steps] == [
        (commit(8), "bad"), (commit(4), "bad"), (commit(2), "good"), (commit(3), "good")]
    assert all(s.ratio is not None and s.rounds == 3 for s in result.steps)
    first = result.steps[0].ratio
    assert 0.77 < first.low < first.estimate < first.high < 0.83
    assert result.threshold == pytest.approx(first.estimate ** 0.5)  # half the difference, log scale
    assert result.lines()[-1] == f"first bad commit: {'04' * 20} 'commit 4' (after 4 steps)"


def test_an_undecided_step_gets_more_rounds_then_is_skipped():
    run = Recorded(eight(first_bad=7, noisy=4))
    result = bisect.search(state(8), run)
    assert result.status == "found" and result.first_bad == commit(7)
    calls = [(s.commit, s.call, s.rounds) for s in result.steps]
    assert calls == [(commit(8), "bad", 3), (commit(4), "skipped", 6), (commit(5), "good", 3),
                     (commit(6), "good", 3), (commit(7), "bad", 3)]
    assert run.calls.count((4, 3)) == 2  # two batches, up to max rounds, then skipped
    s = result.steps[1]
    assert s.ratio.low < result.threshold < s.ratio.high  # the interval straddles it


def test_skipped_next_to_the_change_leaves_both_candidates():
    result = bisect.search(state(8), Recorded(eight(first_bad=5, noisy=4)))
    assert result.status == "ambiguous" and result.first_bad is None
    assert result.candidates == (commit(4), commit(5))
    assert "one of 040404040404 'commit 4', 050505050505 'commit 5'" in result.lines()[-1]


def test_good_and_bad_that_do_not_differ_stop_at_the_first_step():
    run = Recorded({n: SAME for n in range(2, 9)})
    result = bisect.search(state(8), run)
    assert result.status == "no difference" and len(result.steps) == 1
    assert run.calls == [(8, 3), (8, 3)]  # undecided: more rounds up to max, then it says so
    assert result.lines()[-1].startswith("good and bad do not differ here: 080808080808/010101010101 qps")


def test_a_given_threshold_is_used_instead_of_half_the_difference():
    # 25%: even the fully slowed commits (0.80x) are not beyond it, so bad itself is not confirmed
    result = bisect.search(state(8, threshold=25.0), Recorded(eight(first_bad=4)))
    assert result.status == "no difference"
    found = bisect.search(state(8, threshold=10.0), Recorded(eight(first_bad=4)))
    assert found.first_bad == commit(4) and found.threshold == pytest.approx(1 / 1.1)


def test_interrupt_keeps_the_steps_done_and_resume_measures_only_the_rest(tmp_path: Path):
    whole = Recorded(eight(first_bad=4))
    expected = bisect.search(state(8), whole)

    st = state(8)
    folder = tmp_path / "loopback-bisect" / "b1"
    first = Recorded(eight(first_bad=4), interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        bisect.search(st, first, save=lambda: bisect.save_state(folder, st))
    assert first.calls == [(8, 3), (4, 3)]
    kept = bisect.State.from_json(json.loads((folder / "bisect.json").read_text()))
    assert sum(len(b) for b in kept.batches.values()) == 2

    rest = Recorded(eight(first_bad=4))
    rest.taken = dict(first.taken)  # the recorded rounds were used
    result = bisect.search(kept, rest, save=lambda: bisect.save_state(folder, kept))
    assert rest.calls == [(2, 3), (3, 3)]  # nothing measured twice
    assert first.calls + rest.calls == whole.calls
    assert [(s.commit, s.call, s.ratio) for s in result.steps] == [
        (s.commit, s.call, s.ratio) for s in expected.steps]
    report = bisect.report(result, kept, folder).read_text()
    assert "first bad commit: 0404" in report and "| 2 | midpoint | `040404040404` | commit 4 |" in report
    assert "`results/step-2`" in report


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_commits_between_and_the_command_line(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    for i in range(1, 5):
        (repo / "f").write_text(str(i))
        git(repo, "add", "f")
        git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"c{i}")
    st = bisect.start("x", "HEAD~3", "HEAD", repo=repo, metric="qps", threshold_pct=None, min_rounds=3,
                      max_rounds=6)
    assert [c.subject for c in st.commits] == ["c2", "c3", "c4"] and st.good.subject == "c1"
    done = testkit.orchestrate("bisect", "--good", "nope", "--bad", "HEAD", "--repo", str(repo),
                               "--results", str(tmp_path / "r"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [  # the embedded default, at its first point
        "orchestrate bisect compares one point, like with like: server.arch=reuseport (of reuseport, "
        "main-sub); choose another with --set KEY=VALUE", f"server.ref nope: no such commit in {repo}"]
    chosen = testkit.orchestrate("bisect", "--good", "nope", "--bad", "HEAD", "--repo", str(repo),
                                 "--set", "server.arch=main-sub", "--results", str(tmp_path / "r"))
    assert chosen.stderr.strip() == f"server.ref nope: no such commit in {repo}"  # one point already
    backwards = testkit.orchestrate("bisect", "--good", "HEAD", "--bad", "HEAD~2", "--repo", str(repo),
                                    "--results", str(tmp_path / "r"))
    assert backwards.returncode == 2 and "HEAD~2 does not descend from HEAD" in backwards.stderr
    missing = testkit.orchestrate("bisect", "--resume", "nothing-here", "--results", str(tmp_path / "r"))
    assert missing.returncode == 2 and "bisect --resume nothing-here: cannot read" in missing.stderr


def test_a_step_compares_one_point_like_with_like(tmp_path: Path):
    from orchestrator import scenario

    default = scenario.load("<embedded>", [], text=(testkit.REPO / "orchestrator" / "defaults" /
                                                    "loopback.yaml").read_text()).scenario
    sets, line = bisect.one_point(default)
    # the default compares server.arch in rounds of its own: that gives way to the step's server.ref
    assert sets == ["compare=null", "rounds=null", 'server.arch="reuseport"']
    assert "server.arch=reuseport (of reuseport, main-sub)" in line
    fixed = scenario.load("<embedded>", sets, text=(testkit.REPO / "orchestrator" / "defaults" /
                                                    "loopback.yaml").read_text()).scenario
    assert len(scenario.points(fixed)) == 1 and bisect.one_point(fixed) == ([], "")
    two = scenario.load(testkit.REPO / "scenarios" / "factor-work.yaml").scenario
    sets, line = bisect.one_point(two)
    assert len(scenario.points(scenario.load(testkit.REPO / "scenarios" / "factor-work.yaml",
                                             sets).scenario)) == 1, sets
    nightly = scenario.load(testkit.REPO / "scenarios" / "nightly.yaml").scenario
    with pytest.raises(bisect.UserError, match="bisect compares one point, and nightly sweeps named "
                                               "variants \\(last-passed, head\\)"):
        bisect.one_point(nightly)
