"""Matrix expansion: a Scenario becomes an ordered list of RunSpecs (arch x threads x conns x repeat)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from orchestrator.scenario import Scenario

# Measured on this project's lab: start, readiness, collector start/stop and
# fetches add about this much to each run's load duration (bench/ records it).
RUN_OVERHEAD_S = 3.0
BASELINE_OVERHEAD_S = 2.0


@dataclass(frozen=True)
class RunSpec:
    """One measured run: a point of the matrix and which repetition it is."""

    index: int  # 1-based position in the plan
    arch: str
    server_threads: int
    connections: int
    repetition: int  # 1-based

    @property
    def run_id(self) -> str:
        """Stable name of this run; the same plan always gives the same ids (for --resume)."""
        return f"{self.index:03d}-{self.arch}-t{self.server_threads}-c{self.connections}-r{self.repetition}"

    @property
    def point(self) -> tuple[str, int, int]:
        """The matrix point, shared by all repetitions of it."""
        return (self.arch, self.server_threads, self.connections)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "run_id": self.run_id}


@dataclass(frozen=True)
class Plan:
    runs: tuple[RunSpec, ...]
    load_duration_s: float
    baseline_s: float

    @property
    def expected_seconds(self) -> float:
        per_run = self.load_duration_s + RUN_OVERHEAD_S
        return self.baseline_s + per_run * len(self.runs)


def expand(sc: Scenario) -> Plan:
    """The plan: every matrix point `repeat` times.

    Repetitions are interleaved (all points once, then again) so slow drift of
    the machine spreads over all points instead of biasing one.
    """
    points = list(itertools.product(sc.server.arch, sc.server.threads, sc.load.connections))
    runs = []
    for rep, (arch, threads, conns) in itertools.product(range(1, sc.repeat + 1), points):
        runs.append(RunSpec(len(runs) + 1, arch, threads, conns, rep))
    baseline_s = 0.0
    if sc.baseline.enabled:
        b = sc.baseline.iperf3
        baseline_s = b.duration + (b.tcp_duration if b.tcp else 0) + BASELINE_OVERHEAD_S
    return Plan(tuple(runs), sc.load.duration, baseline_s)


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")
