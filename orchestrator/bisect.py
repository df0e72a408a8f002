"""`orchestrate bisect`: the first commit between a good and a bad ref that moved a metric.

Like `git bisect`, with paired statistics in place of a person's judgement (Chromium Pinpoint's
idea). Each step builds one commit and runs it against `good` in paired rounds (server.ref as an
axis: both builds in every round, on the same hosts); the per-round ratio other/good is
stats.paired_ratio's. The first step runs `bad` against `good` and confirms they differ; its
ratio sets the direction and, unless --threshold is given, the threshold: half the measured
difference (on the log scale). A midpoint is

  bad        when its whole interval lies beyond the threshold, towards bad,
  good       when its whole interval lies short of it,
  undecided  otherwise: more rounds, up to max; still undecided, it is skipped (git bisect skip)
             and a neighbour is tried.

Every batch of rounds is an ordinary run (a results folder, a line in the history). The state
(every batch measured) is kept in the bisect's own folder after each batch: Ctrl-C keeps it and
--resume continues, re-measuring nothing. The search itself is a pure function of the recorded
measurements, so a stand-in runner drives it in the tests.

A step compares like with like: one point of the matrix, good and other at it in every round.
A scenario that sweeps more (the embedded default sweeps server.arch: reuseport, main-sub) is
bisected at its first point, each swept axis fixed at its first value and the line saying so
(one_point); an axis that cannot be fixed that way (named variants) is refused, naming it.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import stats
from orchestrator.errors import UserError
from orchestrator.refs import REPO, Commit, resolve

# bisect.json history: 1: parameters, commits, batches (good/other values per round, results)
VERSION = 1
GOOD, BAD, UNDECIDED, SKIPPED = "good", "bad", "undecided", "skipped"
METRICS: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "qps": lambda r: r.get("qps"),
    "p99": lambda r: (r.get("latency_ms") or {}).get("p99"),
    "cpu_us_per_request": lambda r: (((r.get("analysis") or {}).get("cpu_us_per_request") or {})
                                     .get("total")),
}


@dataclass(frozen=True)
class Batch:
    """Rounds of `other` against `good`, measured in one run: values[i] = (good, other)."""

    values: tuple[tuple[float, float], ...]
    results: str = ""  # the run's results folder

    def as_json(self) -> dict[str, Any]:
        return {"values": [list(v) for v in self.values], "results": self.results}


# (good commit, other commit, rounds, what the step is) -> that many more rounds
Runner = Callable[[Commit, Commit, int, str], Batch]


@dataclass
class Step:
    commit: Commit
    role: str  # "confirm" (bad against good) or "midpoint"
    batches: list[Batch] = field(default_factory=list)
    ratio: stats.Ratio | None = None
    call: str = UNDECIDED

    @property
    def rounds(self) -> int:
        return sum(len(b.values) for b in self.batches)

    def line(self, threshold: float | None) -> str:
        r = self.ratio
        interval = f"{r.text()} ({self.rounds} rounds)" if r else "no interval"
        limit = f", threshold {threshold:.3f}x" if threshold else ""
        return f"{self.role:<8} {self.commit.short} {self.commit.subject!r}: {interval}{limit} -> {self.call}"


@dataclass
class Result:
    status: str  # found | no difference | ambiguous | interrupted
    first_bad: Commit | None
    steps: list[Step]
    threshold: float | None  # as a ratio (> 1 or < 1: the direction of bad)
    candidates: tuple[Commit, ...] = ()  # ambiguous: one of these
    message: str = ""

    def lines(self) -> list[str]:
        out = [f"step {i}: {s.line(self.threshold)}" for i, s in enumerate(self.steps, 1)]
        if self.status == "found" and self.first_bad:
            out.append(f"first bad commit: {self.first_bad.sha} {self.first_bad.subject!r} "
                       f"(after {len(self.steps)} steps)")
        elif self.status == "ambiguous":
            out.append("first bad commit: one of " + ", ".join(f"{c.short} {c.subject!r}"
                                                             for c in self.candidates)
                       + " (the others between were skipped: undecided at max rounds)")
        else:
            out.append(self.message)
        return out


@dataclass
class State:
    """What a bisect has measured, kept in its folder's bisect.json after every batch."""

    scenario: str
    good: Commit
    bad: Commit
    commits: tuple[Commit, ...]  # (good, bad], oldest first
    metric: str
    threshold_pct: float | None
    min_rounds: int
    max_rounds: int
    batches: dict[str, list[Batch]] = field(default_factory=dict)  # sha -> batches against good

    def as_json(self) -> dict[str, Any]:
        def c(x: Commit) -> dict[str, str]:
            return {"ref": x.ref, "sha": x.sha, "subject": x.subject}

        return {"version": VERSION, "scenario": self.scenario, "good": c(self.good), "bad": c(self.bad),
                "commits": [c(x) for x in self.commits], "metric": self.metric,
                "threshold_pct": self.threshold_pct, "min_rounds": self.min_rounds,
                "max_rounds": self.max_rounds,
                "batches": {k: [b.as_json() for b in v] for k, v in self.batches.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        if data.get("version") != VERSION:
            raise UserError(f"bisect.json version {data.get('version')!r}, expected {VERSION}")

        def c(x: dict[str, str]) -> Commit:
            return Commit(x["ref"], x["sha"], x["subject"])

        return cls(data["scenario"], c(data["good"]), c(data["bad"]), tuple(c(x) for x in data["commits"]),
                   data["metric"], data["threshold_pct"], data["min_rounds"], data["max_rounds"],
                   {k: [Batch(tuple(tuple(v) for v in b["values"]), b.get("results", ""))
                        for b in bs] for k, bs in data["batches"].items()})


def commits_between(good: Commit, bad: Commit, repo: Path = REPO) -> tuple[Commit, ...]:
    """The commits after good up to bad, oldest first (first-parent line: merges count as one)."""
    done = subprocess.run(["git", "-C", str(repo), "rev-list", "--reverse", "--first-parent",
                           "--format=%H %s", f"{good.sha}..{bad.sha}"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise UserError(f"bisect: cannot list the commits {good.ref}..{bad.ref}: {done.stderr.strip()}")
    out = []
    for line in done.stdout.splitlines():
        if line.startswith("commit "):
            continue
        sha, _, subject = line.partition(" ")
        out.append(Commit(sha[:12], sha, subject))
    if not out or out[-1].sha != bad.sha:
        raise UserError(f"bisect: {bad.ref} does not descend from {good.ref}")
    return tuple(out)


def _classify(r: stats.Ratio, threshold: float) -> str:
    """Against a threshold ratio on the bad side of 1 (above 1: bad is higher)."""
    up = threshold > 1
    lo, hi = (r.low, r.high) if up else (1 / r.high, 1 / r.low)
    t = threshold if up else 1 / threshold
    if lo > t:
        return BAD
    if hi < t:
        return GOOD
    return UNDECIDED


def _measure(state: State, commit: Commit, role: str, run: Runner, save: Callable[[], None],
             decide: Callable[[stats.Ratio], str]) -> Step:
    """Rounds of `commit` against good until `decide` calls it or max rounds are spent: recorded
    batches first (a resumed bisect measures nothing twice), then new ones through `run`."""
    step = Step(commit, role)
    recorded = state.batches.setdefault(commit.sha, [])
    i = 0
    while True:
        if step.rounds >= state.max_rounds:
            break
        if i < len(recorded):
            batch = recorded[i]
        else:
            want = state.min_rounds if step.rounds == 0 else min(state.min_rounds,
                                                                 state.max_rounds - step.rounds)
            batch = run(state.good, commit, want, role)
            recorded.append(batch)
            save()
        i += 1
        step.batches.append(batch)
        values = [v for b in step.batches for v in b.values if v[0] > 0 and v[1] > 0]
        if len(values) >= 2:
            step.ratio = stats.paired_ratio([a for a, _ in values], [b for _, b in values])
            step.call = decide(step.ratio)
            if step.call != UNDECIDED:
                return step
    return step


def search(state: State, run: Runner, save: Callable[[], None] = lambda: None,
           progress: Callable[[str], None] = lambda _: None) -> Result:
    """The bisect, from whatever `state` recorded, measuring the rest through `run`."""
    steps: list[Step] = []
    commits = state.commits

    def confirm_call(r: stats.Ratio) -> str:
        if not r.excludes_one:
            return UNDECIDED
        if state.threshold_pct is not None:  # bad must lie beyond the given threshold too
            t = 1 + state.threshold_pct / 100
            return BAD if _classify(r, t if r.estimate > 1 else 1 / t) == BAD else UNDECIDED
        return BAD

    first = _measure(state, state.bad, "confirm", run, save, confirm_call)
    steps.append(first)
    progress(f"step 1: {first.line(None)}")
    if first.call != BAD or first.ratio is None:
        return Result("no difference", None, steps, None,
                      message=f"good and bad do not differ here: {state.bad.short}/{state.good.short} "
                      f"{state.metric} {first.ratio.text() if first.ratio else '(no interval)'} after "
                      f"{first.rounds} rounds; nothing to bisect (a longer load or more rounds may "
                      "resolve it)")
    up = first.ratio.estimate > 1
    if state.threshold_pct is not None:
        t = 1 + state.threshold_pct / 100
        threshold = t if up else 1 / t
    else:  # half the good-bad difference measured, on the log scale
        threshold = math.sqrt(first.ratio.estimate)
    lo, hi = -1, len(commits) - 1  # commits[hi] is bad; commits[lo] good (-1: good itself)
    skipped: set[int] = set()
    while hi - lo > 1:
        open_ = [i for i in range(lo + 1, hi) if i not in skipped]
        if not open_:
            return Result("ambiguous", None, steps, threshold, candidates=commits[lo + 1: hi + 1])
        middle = (lo + hi) / 2
        mid = min(open_, key=lambda i: (abs(i - middle), i))
        step = _measure(state, commits[mid], "midpoint", run, save, lambda r: _classify(r, threshold))
        steps.append(step)
        if step.call == BAD:
            hi = mid
        elif step.call == GOOD:
            lo = mid
        else:
            step.call = SKIPPED
            skipped.add(mid)
        progress(f"step {len(steps)}: {step.line(threshold)}")
    return Result("found", commits[hi], steps, threshold)


# --- the command -----------------------------------------------------------------------------


def folder(results_root: Path, scenario: str, bisect_id: str) -> Path:
    return results_root / f"{scenario}-bisect" / bisect_id


def save_state(path: Path, state: State) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "bisect.json.new"
    tmp.write_text(json.dumps(state.as_json(), indent=1) + "\n")
    tmp.replace(path / "bisect.json")


def report(result: Result, state: State, path: Path) -> Path:
    """bisect.md: the answer first, then every step with its interval and its runs."""
    lines = [f"# Bisect of {state.scenario}: {state.metric}, {state.good.short}..{state.bad.short}", ""]
    lines += [result.lines()[-1], ""]
    lines += ["| step | role | commit | subject | other/good | rounds | call | runs |",
              "|---|---|---|---|---|---|---|---|"]
    for i, s in enumerate(result.steps, 1):
        runs = ", ".join(f"`{b.results}`" for b in s.batches if b.results)
        lines.append(f"| {i} | {s.role} | `{s.commit.short}` | {s.commit.subject} | "
                     f"{s.ratio.text() if s.ratio else '-'} | {s.rounds} | {s.call} | {runs} |")
    if result.threshold:
        lines += ["", f"Threshold: {result.threshold:.3f}x"
                  + (" (half the good-bad difference measured in step 1, log scale)"
                     if state.threshold_pct is None else f" (--threshold {state.threshold_pct:g}%)")]
    lines += ["", f"Intervals: {stats.PAIRED}.", ""]
    out = path / "bisect.md"
    out.write_text("\n".join(lines))
    return out


def one_point(sc: Any) -> tuple[list[str], str]:
    """--set overrides fixing every axis the scenario sweeps with more than one value (server.ref
    aside: bisect sets it) at its first value, and the line that says so; ([], "") when it
    sweeps one point. UserError for an axis --set cannot fix (named variants)."""
    from orchestrator.scenario import swept

    sets, fixed = [], []
    for axis, values in swept(sc):
        if axis.name == "server.ref" or len(values) < 2:
            continue
        if axis.name == "variant":
            raise UserError(f"bisect compares one point, and {sc.name} sweeps named variants "
                            f"({', '.join(map(str, values))}); bisect a scenario without them")
        value = json.dumps(values[0])
        key = axis.name if not axis.name.startswith("kernel.") else None
        if key is None:  # a sysctl's key holds dots of its own: --set cannot name it
            raise UserError(f"bisect compares one point, and {sc.name} sweeps {axis.name} "
                            f"({', '.join(map(str, values))}); write one value for it")
        sets.append(f"{key}={value}")
        fixed.append(f"{key}={values[0]} (of {', '.join(map(str, values))})")
    if not fixed:
        return [], ""
    if getattr(sc, "compare", None) is not None:  # its factor may be fixed now; each step sets its own
        sets = ["compare=null", "rounds=null", *sets]
    return sets, (f"bisect compares one point, like with like: {'; '.join(fixed)}; choose another "
                  "with --set KEY=VALUE")


def real_runner(source: str, text: str | None, sets: Sequence[str], repo: Path, results_root: Path,
                metric: str, history: str | None, progress: Callable[[str], None]) -> Runner:
    """Each batch: the scenario with server.ref: [good, other] compared in `rounds` paired rounds
    (compare.factor server.ref, baseline good: the order alternates round by round), run like
    `orchestrate run` (results folder, history)."""
    from orchestrator import execute, refs, scenario, store

    read = METRICS[metric]

    def run(good: Commit, other: Commit, rounds: int, role: str) -> Batch:
        loaded = scenario.load(source, [*sets, f"server.ref=['{good.short}', '{other.short}']",
                                        f"server.repo={repo}", "repeat=1",
                                        f"compare={{factor: server.ref, baseline: '{good.short}'}}",
                                        f"rounds={rounds}"], text=text)
        progress(f"orchestrate bisect: {role} {other.short} {other.subject!r} against good "
                 f"{good.short}: {rounds} rounds")
        refs.prepare(loaded.scenario, progress=progress)  # builds the midpoint (or finds it cached)
        done = execute.run(loaded, results_root=results_root, history=history, progress=progress)
        plan = json.loads((done.results / "plan.json").read_text())
        ref_of = {p["run_id"]: (p["axes"].get("server.ref"), p["repetition"]) for p in plan}
        by: dict[int, dict[str, float]] = {}
        points = {json.dumps([p.get("arch"), p.get("server_threads"), p.get("connections"), p.get("rate"),
                              {k: v for k, v in (p.get("axes") or {}).items() if k != "server.ref"}])
                  for p in plan}
        if len(points) > 1:  # one_point fixed the axes: two points here would pair unlike runs
            raise UserError(f"bisect: {done.results} ran {len(points)} points; a step compares one")
        for r in store.load_summary(done.results).model_dump(mode="json")["runs"]:
            ref, rep = ref_of.get(r.get("run_id"), (None, None))
            value = read(r)
            if ref is not None and value:
                by.setdefault(rep, {})[ref] = float(value)
        values = tuple((v[good.short], v[other.short]) for _, v in sorted(by.items())
                       if good.short in v and other.short in v)
        return Batch(values, str(done.results))

    return run


def start(scenario_name: str, good_ref: str, bad_ref: str, *, repo: Path, metric: str,
          threshold_pct: float | None, min_rounds: int, max_rounds: int) -> State:
    good, bad = resolve(good_ref, repo), resolve(bad_ref, repo)
    if good.sha == bad.sha:
        raise UserError(f"bisect: --good {good_ref} and --bad {bad_ref} are the same commit")
    commits = commits_between(good, bad, repo)
    short = lambda c: Commit(c.sha[:12], c.sha, c.subject)  # noqa: E731
    return State(scenario_name, short(good), short(bad), commits, metric, threshold_pct, min_rounds,
                 max_rounds)


def new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())
