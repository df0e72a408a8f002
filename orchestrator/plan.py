"""Matrix expansion: a Scenario becomes an ordered list of RunSpecs (every point of its axes x repeat)."""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import asdict, dataclass
from importlib import resources

from orchestrator import scenario as _scenario
from orchestrator.point import CLASSIC, PointKey, Value, classic, others
from orchestrator.scenario import Scenario, Search

NO_AXES = PointKey()

# overheads.json history: 1: per kind of host (local, ssh), seconds per step, with provenance
OVERHEADS_VERSION = 1


@dataclass(frozen=True)
class Overheads:
    """What orchestration adds to the measuring itself, in seconds, for one kind of host
    (local: no SSH; ssh: lab, static and cloud hosts). Measured, not assumed: the figures
    come from bench/orchestration_overhead.py, which writes data/overheads.json."""

    start_s: float  # lab up, connections, host facts, tool check
    deploy_s: float  # the playbook on remote hosts (here: the server build) with nothing to change
    per_run_s: float  # one run beyond its load: start, readiness, collectors, stop, fetch
    per_client_s: float  # each client host beyond the first, per run
    per_baseline_test_s: float  # one iperf3 test beyond its own duration
    report_s: float  # report, history and teardown at the end
    provenance: str = ""


def overheads(kind: str) -> Overheads:
    doc = json.loads(resources.files("orchestrator").joinpath("data", "overheads.json").read_text())
    if doc.get("version") != OVERHEADS_VERSION:
        raise ValueError(f"overheads.json version {doc.get('version')!r}, expected {OVERHEADS_VERSION}")
    return Overheads(**doc[kind], provenance=str(doc.get("provenance", "")))


@dataclass(frozen=True)
class RunSpec:
    """One measured run: a point of the matrix and which repetition it is."""

    index: int  # 1-based position in the plan
    arch: str
    server_threads: int
    connections: int
    repetition: int  # 1-based
    rate: float | None = None  # open loop: requests/s in total over the clients; None: closed loop
    clients: int | None = None  # client hosts loading (auto-scale); None: all the lab's clients
    axes: PointKey = NO_AXES  # the scenario's other swept keys (scenario.AXES), in order

    @property
    def run_id(self) -> str:
        """Stable name of this run; the same plan always gives the same ids (for --resume).
        The classic four are always there (ids of older results stay valid), other axes short."""
        rate = f"-q{self.rate:g}" if self.rate is not None else ""
        clients = f"-n{self.clients}" if self.clients is not None else ""
        more = f"-{self.axes.short(_scenario.axes_of(self.axes))}" if self.axes else ""
        return (f"{self.index:03d}-{self.arch}-t{self.server_threads}-c{self.connections}{rate}"
                f"{more}{clients}-r{self.repetition}")

    @property
    def point(self) -> PointKey:
        """The matrix point, shared by all repetitions of it."""
        return classic(self.arch, self.server_threads, self.connections, self.rate, self.axes)

    def as_dict(self) -> dict[str, object]:
        return {**{k: v for k, v in asdict(self).items() if k != "axes"},
                "axes": self.axes.as_json(), "run_id": self.run_id}




@dataclass(frozen=True)
class SearchSpec:
    """One capacity search: a matrix point without a rate (the search chooses the rates)."""

    arch: str
    server_threads: int
    connections: int
    repetition: int  # 1-based: `repeat` searches a point this many times, independently
    axes: PointKey = NO_AXES  # the scenario's other swept keys

    @property
    def point(self) -> PointKey:
        return classic(self.arch, self.server_threads, self.connections, None, self.axes)


@dataclass(frozen=True)
class Rounds:
    """A factor compared in paired rounds: round k runs every value of the factor once at each
    combination of the other axes, in `orders[k-1]`; from round `min` on, execute stops once
    every variant's interval on `metric` is within +-`until` % (None: all `max` rounds)."""

    factor: str
    baseline: Value
    metric: str
    min: int
    max: int
    until: float | None
    order: str  # alternate | random
    seed: int
    orders: tuple[tuple[Value, ...], ...]  # each round's order of the factor's values

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "orders": [list(o) for o in self.orders]}

    def lines(self) -> list[str]:
        until = (f", stopping from round {self.min} once every interval on {self.metric} is within "
                 f"\u00b1{self.until:g}% (width, never significance)" if self.until is not None else "")
        many = f"{self.min}-{self.max}" if self.min != self.max else str(self.max)
        out = [f"  compare {self.factor}: each value against {value_text(self.baseline)}, paired by "
               f"round; {many} rounds{until}; order {self.order}"
               + (f" (seed {self.seed})" if self.order == "random" else "")]
        out += [f"    round {k}: {' -> '.join(value_text(v) for v in o)}"
                for k, o in enumerate(self.orders, 1)]
        return out


def value_text(v: Value) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else f"{v:g}" if isinstance(v, float) else str(v)


def round_orders(values: list[Value], n: int, order: str, seed: int) -> tuple[tuple[Value, ...], ...]:
    """The factor's order in each of n rounds. alternate: round k starts at value k (A B, B A,
    A B, ... for two; a rotation for more), so each value takes each position equally often.
    random: a shuffle per round from `seed` (random.Random, reproducible: --resume and the
    recorded seed give the same plan)."""
    if order == "random":
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            o = list(values)
            rng.shuffle(o)
            out.append(tuple(o))
        return tuple(out)
    k = len(values)
    return tuple(tuple(values[(r + i) % k] for i in range(k)) for r in range(n))


@dataclass(frozen=True)
class Plan:
    runs: tuple[RunSpec, ...]  # a capacity search plans none: its runs follow from its results
    load_duration_s: float
    baseline_s: float  # the iperf3 tests, their own durations plus their overhead
    start_s: float  # everything before the baseline (lab, facts, deploy, tool check)
    per_run_s: float  # one run, load included
    report_s: float
    overheads: Overheads
    searches: tuple[SearchSpec, ...] = ()
    search_runs: int = 0  # a likely number of runs per search (expected_search_runs)
    search_runs_max: int = 0  # the most one search can take
    scale_runs_max: int = 0  # auto-scale: the most runs it may add (each point from min to max clients)
    # orchestrate-load drains after each window: it reads the answers to what is still in flight,
    # each request up to load.timeout. Against a server that answers, that takes about one
    # latency (ms), inside the settling time per_run_s already has (measured); requests the
    # server leaves unanswered make it last the timeout. So it is in the estimate at its usual
    # length and in `seconds_at_most_draining` at its bound: this many seconds per run (wrk: 0).
    drain_max_s: float = 0.0
    rounds: Rounds | None = None  # compare: a factor in paired rounds

    @property
    def expected_runs(self) -> int:
        return len(self.runs) + len(self.searches) * self.search_runs

    @property
    def expected_seconds(self) -> float:
        """An estimate from measured overheads (see Overheads), not a promise."""
        return self.seconds_for(self.expected_runs, with_baseline=True)

    def seconds_for(self, runs: int, *, with_baseline: bool, drains: bool = False) -> float:
        """The estimate for `runs` of this plan's runs (a resumed sweep has fewer left);
        `drains`: every run's drain at its bound (a server leaving requests unanswered)."""
        per_run = self.per_run_s + (self.drain_max_s if drains else 0.0)
        return (self.start_s + (self.baseline_s if with_baseline else 0.0) + per_run * runs
                + self.report_s)

    def rounds_cost(self) -> str | None:
        """Paired rounds: how many rounds of how many runs, and what they cost, fewest (the
        width stop at `min`) to most; None without rounds."""
        r = self.rounds
        if r is None or not self.runs:
            return None
        per_round = len(self.runs) // r.max
        cost = fmt_seconds(per_round * self.per_run_s)
        if r.until is None or r.min == r.max:
            return f"  rounds: {r.max} x {per_round} runs = {len(self.runs)} runs, {cost} a round"
        fewest = self.seconds_for(per_round * r.min, with_baseline=True)
        return (f"  rounds: {r.min}-{r.max} x {per_round} runs = {per_round * r.min}-{len(self.runs)} "
                f"runs, {cost} a round: {fmt_seconds(fewest)} in all if the interval is within "
                f"\u00b1{r.until:g}% after round {r.min}; the estimate below is for all {r.max}")

    @property
    def seconds_at_most_draining(self) -> float:
        """The expected runs with every drain at its bound (load.timeout each)."""
        return self.seconds_for(self.expected_runs, with_baseline=True, drains=True)


def expand(sc: Scenario) -> Plan:
    """The plan: every matrix point `repeat` times.

    Repetitions are interleaved (all points once, then again) so slow drift of
    the machine spreads over all points instead of biasing one.
    """
    points = _scenario.points(sc)
    runs: list[RunSpec] = []
    searches: list[SearchSpec] = []
    rounds = _rounds(sc, points)
    order = (_in_rounds(points, rounds) if rounds is not None
             else list(itertools.product(range(1, sc.repeat + 1), points)))
    for rep, p in order:
        arch, threads, conns, rate = (p[a] for a in CLASSIC)
        arch, threads, conns = str(arch), int(threads or 0), int(conns or 0)
        if sc.load.search is not None:
            searches.append(SearchSpec(arch, threads, conns, rep, others(p)))
        else:
            runs.append(RunSpec(len(runs) + 1, arch, threads, conns, rep,
                                None if rate is None else float(rate), axes=others(p)))
    remote = sc.hosts.provider != "local"
    o = overheads("ssh" if remote else "local")
    clients = sc.hosts.roles.clients
    baseline_s = 0.0
    if sc.baseline.enabled:
        b = sc.baseline.iperf3
        # per client: UDP (both ways across hosts) and TCP; several clients also all at once,
        # both ways. (A CPU-bound iperf3 is retried wider: not foreseeable, not counted.)
        udp = b.duration + o.per_baseline_test_s
        per_path = udp * (2 if remote else 1) + (b.tcp_duration + o.per_baseline_test_s if b.tcp else 0)
        baseline_s = per_path * clients + (2 * udp if clients > 1 else 0.0)
    start_s = o.start_s + (o.deploy_s if sc.hosts.deploy or not remote else 0.0)  # local: the build
    per_run_s = sc.load.warmup + sc.load.duration + o.per_run_s + o.per_client_s * (clients - 1)
    search = sc.load.search
    scale = sc.hosts.roles.autoscale  # repetitions reuse the count found: only first ones scale
    return Plan(tuple(runs), sc.load.duration, baseline_s, start_s, per_run_s, o.report_s, o,
                searches=tuple(searches),
                search_runs=expected_search_runs(search) if search else 0,
                search_runs_max=max_search_runs(search) if search else 0,
                scale_runs_max=len(points) * (scale.max - scale.min) if scale else 0,
                drain_max_s=sc.load.timeout if sc.load.tool == "orchestrate-load" else 0.0,
                rounds=rounds)


def _rounds(sc: Scenario, points: list[PointKey]) -> Rounds | None:
    r = _scenario.rounds_range(sc)
    if r is None or sc.compare is None:
        return None
    values = list(dict.fromkeys(p[sc.compare.factor] for p in points))
    c = sc.compare
    return Rounds(c.factor, c.baseline, c.metric, r.min, r.max, r.until, r.order, r.seed,
                  round_orders(values, r.max, r.order, r.seed))


def _in_rounds(points: list[PointKey], rounds: Rounds) -> list[tuple[int, PointKey]]:
    """Round by round: in each, every combination of the other axes (a block) runs the
    factor's values back to back in that round's order, so a pair's runs are minutes apart at
    most and the order moves between rounds."""
    blocks: dict[PointKey, dict[Value, PointKey]] = {}
    for p in points:
        blocks.setdefault(p.without(rounds.factor), {})[p[rounds.factor]] = p
    return [(k, block[v]) for k, o in enumerate(rounds.orders, 1) for block in blocks.values() for v in o]


def max_search_runs(search: Search) -> int:
    """The most runs one capacity search can take (capacity.py): every doubling, every
    bisection, each step repeated max_repeat times (confirming the pass that bounds the
    bracket re-runs a doubling step, it adds none)."""
    doublings = math.ceil(math.log2(search.max_rate / search.min_rate)) + 1
    bisections = math.ceil(math.log2(100.0 / search.precision))
    return (doublings + bisections) * search.max_repeat


def expected_search_runs(search: Search) -> int:
    """A likely count, for the estimate: half the doublings at one run each, the failure that
    ends them confirmed, the pass below it and every bisection at knee_runs, a fifth more."""
    doublings = math.ceil(math.log2(search.max_rate / search.min_rate) / 2) + 1
    bisections = math.ceil(math.log2(100.0 / search.precision))
    return math.ceil((doublings + 1 + (bisections + 1) * search.runs_near_knee) * 1.2)


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")
