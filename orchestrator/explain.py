"""Why a paired comparison moved: the same paired intervals for what each request cost, and one
sentence naming the component that moved most.

Every run records the server's CPU per request split into usr, sys and softirq, its context
switches, and the packets and bytes per request; a comparison of two variants run in rounds gives
each of these a per-round ratio, and stats.paired_ratio an interval. "Moved most" is the largest
|log ratio| among the components whose interval excludes 1; CPU, the cost, comes first. The
sentence leads with the server's CPU per request when its interval excludes 1, naming the part
(usr, sys, softirq) that moved most and its share of the mean absolute change; else with the
part that moved most; then the non-CPU component that moved most (switches, packets, bytes per
request); with none moved it says so. (System calls per request are not here: counting them
disturbs the window.)

Beside the intervals: the verdicts on each side (analysis.py's, counted over the rounds), and the
environment diff, what differed between the two sides' records. Paired rounds share their
hosts, so the host facts (kernel, governor, CPU model, tool versions) are the same on both sides
by construction; what can differ is each run's own record (the sysctl values in force on each
host) and, over the whole run, the host's noise read before the first window against after the
last (fingerprint.noise_differences). With nothing differing the line says so.

compare.py calls by_cell(runs, factor, baseline) for a paired comparison (each variant at each
combination of the other axes, paired by round as metrics.rounds pairs them), or
explain(pairs, variant, baseline) with the runs of one cell, round by round.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from orchestrator import stats
from orchestrator.history.fingerprint import noise_differences, noise_facts
from orchestrator.metrics import paired_runs
from orchestrator.point import PointKey, Value, text
from orchestrator.records import Run, Summary


def _cpu(part: str) -> Callable[[Run], float | None]:
    def read(run: Run) -> float | None:
        a = run.analysis
        cost = a.cpu_us_per_request if a is not None else None
        return getattr(cost, part) if cost is not None else None

    return read


def _switches(run: Run) -> float | None:
    s = run.analysis.switches if run.analysis is not None else None
    if s is None or not run.qps or s.voluntary_s is None:
        return None
    return (s.voluntary_s + (s.involuntary_s or 0.0)) / run.qps


def _packets(run: Run) -> float | None:
    p = run.analysis.packets_per_request if run.analysis is not None else None
    return p.total if p is not None else None


def _bytes(run: Run) -> float | None:
    c = run.server_counters
    if c is None or not c.threads:
        return None
    requests = sum(t.requests or 0 for t in c.threads)
    moved = sum((t.bytes_in or 0) + (t.bytes_out or 0) for t in c.threads)
    return moved / requests if requests and moved else None


@dataclass(frozen=True)
class Part:
    name: str
    label: str  # as the sentence says it
    read: Callable[[Run], float | None]


CPU_TOTAL = Part("cpu_us_per_request", "server CPU µs per request", _cpu("total"))
CPU_PARTS = (Part("cpu_usr_us_per_request", "usr", _cpu("usr")),
             Part("cpu_sys_us_per_request", "sys", _cpu("sys")),
             Part("cpu_softirq_us_per_request", "softirq", _cpu("soft")))
OTHERS = (Part("switches_per_request", "context switches per request", _switches),
          Part("packets_per_request", "packets per request", _packets),
          Part("bytes_per_request", "bytes per request (server, in + out)", _bytes))
PARTS = (CPU_TOTAL, *CPU_PARTS, *OTHERS)


@dataclass(frozen=True)
class Component:
    part: Part
    ratio: stats.Ratio
    change: float  # mean per-round absolute change, variant - baseline (in the part's unit)

    @property
    def label(self) -> str:
        return f"{self.part.label} CPU µs per request" if self.part in CPU_PARTS else self.part.label

    def line(self) -> str:
        return f"{self.label}: {self.ratio.text(2)}"


@dataclass(frozen=True)
class Explanation:
    components: tuple[Component, ...]
    sentence: str
    verdicts: str | None = None  # "verdicts: reuseport cpu-bound x3; main-sub cpu-bound x3"
    environment: tuple[str, ...] = ()  # what differed between the sides' records; () none
    paired: bool = True  # False: two results folders (compare A B), whose warnings hold the diff

    @property
    def environment_line(self) -> str:
        if not self.environment:
            return ("environment: no recorded fact differs between the sides (same hosts, "
                    "rounds interleaved)")
        return "environment differs: " + "; ".join(self.environment)

    def lines(self) -> list[str]:
        env = [f"  {self.environment_line}"] if self.paired else []
        return [self.sentence, *(f"  {c.line()}" for c in self.components),
                *([f"  {self.verdicts}"] if self.verdicts else []), *env]


def components(pairs: Sequence[tuple[Run, Run]]) -> list[Component]:
    """Each part with at least 2 rounds measured on both sides: its paired ratio variant/baseline."""
    out = []
    for part in PARTS:
        values = [(part.read(a), part.read(b)) for a, b in pairs]
        both = [(x, y) for x, y in values if x is not None and y is not None and x > 0 and y > 0]
        if len(both) >= 2:
            ratio = stats.paired_ratio([x for x, _ in both], [y for _, y in both])
            out.append(Component(part, ratio, statistics.fmean(y - x for x, y in both)))
    return out


def _most(cs: Sequence[Component]) -> Component | None:
    return max(cs, key=lambda c: abs(math.log(c.ratio.estimate)), default=None)


def sentence(found: Sequence[Component], variant: str, baseline: str) -> str:
    by = {c.part.name: c for c in found}
    total = by.get(CPU_TOTAL.name)
    moved = [c for c in found if c.ratio.excludes_one and c.part is not CPU_TOTAL]
    part = _most([c for c in moved if c.part in CPU_PARTS])
    other = _most([c for c in moved if c.part in OTHERS])
    beyond = (f" Beyond CPU, {other.part.label} moved most: {other.ratio.text(2)}." if other else "")
    cpu = f" (server CPU per request {total.ratio.text(2)})" if total is not None else ""
    if total is not None and total.ratio.excludes_one:
        where = ""
        if part is not None:
            share = f", {abs(part.change / total.change):.0%} of the change" if total.change else ""
            where = f", and {part.part.label} time moved most ({part.part.label} {part.ratio.text(2)}{share})"
        return (f"{variant} costs {total.ratio.text(2)} the server CPU per request of {baseline}{where}."
                f"{beyond}")
    if part is not None:  # a part of the cost moved though the total is not resolved
        return (f"{part.part.label} CPU µs per request moved most: {variant}/{baseline} {part.ratio.text(2)}"
                f"{cpu}.{beyond}")
    if other is not None:
        return (f"{other.part.label} moved most: {variant}/{baseline} {other.ratio.text(2)}"
                f"{cpu}.")
    return f"no measured component of {variant} against {baseline} moved beyond its interval{cpu}."


def _count(runs: Iterable[Run]) -> str:
    got = Counter(r.analysis.verdict for r in runs if r.analysis is not None and r.analysis.verdict)
    return ", ".join(f"{v} x{n}" for v, n in got.most_common()) or "none recorded"


def verdicts(pairs: Sequence[tuple[Run, Run]], variant: str, baseline: str) -> str | None:
    """The verdicts on each side, counted over the rounds; None when no run has one."""
    a, b = _count(x for x, _ in pairs), _count(y for _, y in pairs)
    if a == b == "none recorded":
        return None
    return f"verdicts: {baseline} {a}; {variant} {b}"


def _sysctls(runs: Iterable[Run]) -> dict[str, set[str]]:
    """"host key" -> every value it had in these runs' records."""
    out: dict[str, set[str]] = {}
    for r in runs:
        for host, values in (r.sysctl or {}).items():
            for key, value in values.items():
                out.setdefault(f"{host} {key}", set()).add(str(value))
    return out


def run_differences(pairs: Sequence[tuple[Run, Run]]) -> list[str]:
    """What differed between the sides' own run records: the sysctl values in force on a host
    (a key only one side recorded is not a difference)."""
    a, b = _sysctls(x for x, _ in pairs), _sysctls(y for _, y in pairs)
    return [f"sysctl {k}: {'/'.join(sorted(a[k]))} vs {'/'.join(sorted(b[k]))}"
            for k in sorted(set(a) & set(b)) if a[k] != b[k]]


def noise_during(summary: Summary | None) -> list[str]:
    """How the host's noise moved over the run: the reading before the first window against the
    one after the last (both sides ran between them), where it moved beyond its margin."""
    recorded = (summary.host_noise if summary is not None else None) or {}
    before, after = noise_facts(recorded.get("before")), noise_facts(recorded.get("after"))
    return [line.replace(" vs ", " before the windows vs ") + " after"
            for line in noise_differences(before, after)]


def explain(pairs: Sequence[tuple[Run, Run]], variant: str, baseline: str,
            environment: Sequence[str] = ()) -> Explanation | None:
    """`pairs`: (baseline run, variant run) of each round; `environment`:
    lines about the whole run (noise_during). None: fewer than 2 rounds with any component
    measured."""
    found = components(pairs)
    if not found:
        return None
    return Explanation(tuple(found), sentence(found, variant, baseline), verdicts(pairs, variant, baseline),
                       (*run_differences(pairs), *environment))


def by_cell(runs: Sequence[Run], factor: str, baseline: Value,
            summary: Summary | None = None) -> dict[tuple[PointKey, Value], Explanation]:
    """Each (other axes, variant value) of a factor compared in rounds: its explanation against
    the baseline value (a run's repetition is its round, as in metrics.rounds). `summary`, when
    given, adds how the host's noise moved over the run to each environment diff."""
    out = {}
    whole = noise_during(summary)
    for (at, value), pairs in paired_runs(runs, factor, baseline).items():
        e = explain([(a, b) for _, a, b in pairs], text(value), text(baseline), whole)
        if e is not None:
            out[(at, value)] = e
    return out


def unpaired(before: Sequence[Run], after: Sequence[Run], variant: str, baseline: str) -> Explanation | None:
    """Two results folders (compare A B): each part's ratio of geometric means over the point's
    repetitions, with Welch's interval on the logs (stats.ratio_of: unpaired, so it carries
    whatever drifted between the runs); `change` is the difference of the means. The
    environment diff is compare's (its warnings), said once for the whole comparison. None:
    fewer than 2 repetitions a side with any part measured."""
    found = []
    for part in PARTS:
        xs = [v for r in before if (v := part.read(r)) is not None and v > 0]
        ys = [v for r in after if (v := part.read(r)) is not None and v > 0]
        if len(xs) >= 2 and len(ys) >= 2:
            found.append(Component(part, stats.ratio_of(xs, ys), statistics.fmean(ys) - statistics.fmean(xs)))
    if not found:
        return None
    a, b = _count(before), _count(after)
    said = None if a == b == "none recorded" else f"verdicts: {baseline} {a}; {variant} {b}"
    return Explanation(tuple(found), sentence(found, variant, baseline), said, (), paired=False)
