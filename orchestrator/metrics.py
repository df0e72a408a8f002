"""What a paired comparison reads from a run: the metrics, which way is better, and the rounds.

A run's figure on a metric (QPS, server CPU per request, a latency percentile, ...), its full
matrix point (the classic four axes and any other swept key), and the pairing of a factor's
values round by round. compare, the gate, the report and execute's `rounds: {until}` stop rule
all read runs through this one module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.point import PointKey, Value


@dataclass(frozen=True)
class Metric:
    """A per-run figure a paired comparison can judge, and which way is better."""

    name: str
    unit: str
    higher_is_better: bool

    def read(self, run: Any) -> float | None:
        """The figure of one run (capacity is read from searches, not runs)."""
        a = run.analysis
        if self.name == "qps":
            return run.qps
        if self.name == "cpu_us_per_request":
            return a.cpu_us_per_request.total if a and a.cpu_us_per_request else None
        if self.name == "process_cpu_us_per_request":
            c = a.cpu_us_per_request if a else None
            return (c.usr or 0.0) + (c.sys or 0.0) if c and c.usr is not None and c.sys is not None else None
        if self.name == "packets_per_request":
            return a.packets_per_request.total if a and a.packets_per_request else None
        if self.name == "capacity":
            return None
        return run.latency_ms.at(self.name)


PAIRED_METRICS = {m.name: m for m in (
    Metric("qps", "req/s", True), Metric("capacity", "req/s capacity", True),
    Metric("cpu_us_per_request", "CPU µs/request", False),
    # the server process's own CPU (usr + sys, pidstat) per request, without the softirq share
    # read from mpstat on its CPUs, which on a shared machine also carries other processes' work
    Metric("process_cpu_us_per_request", "process CPU µs/request", False),
    Metric("packets_per_request", "packets/request", False),
    Metric("p50", "ms p50", False), Metric("p99", "ms p99", False), Metric("p99_9", "ms p99.9", False))}
NAMES = tuple(PAIRED_METRICS)
CLASSIC = ("server.arch", "server.threads", "load.connections", "load.rate")


def run_point(run: Any) -> PointKey:
    """A run's whole matrix point: the classic four axes, then the others it recorded."""
    key = getattr(run, "key", None)
    if isinstance(key, PointKey):
        return key
    target = run.rate.target if getattr(run, "rate", None) else None
    p = PointKey(zip(CLASSIC, (run.arch, run.server_threads, run.connections, target), strict=True))
    extra = getattr(run, "model_extra", None) or {}
    for axis, value in (extra.get("axes") or {}).items():
        p = p.with_axis(axis, value)
    return p


def same(a: Value, b: Value) -> bool:
    """Whether two axis values are the same value (a YAML `0` and a recorded 0.0 are; `0` and
    `false` are not)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    return a == b or str(a) == str(b)


def paired_runs(runs: Iterable[Any], factor: str, baseline: Value
                ) -> dict[tuple[PointKey, Value], list[tuple[int, Any, Any]]]:
    """Each (other axes, variant value) of a factor compared in rounds: its rounds as (round,
    baseline's run, variant's run), where both ran. A run's repetition is its round."""
    cells: dict[PointKey, dict[Value, dict[int, Any]]] = {}
    for r in runs:
        p = run_point(r)
        if factor not in p:
            continue
        cells.setdefault(p.without(factor), {}).setdefault(p[factor], {})[r.repetition] = r
    out: dict[tuple[PointKey, Value], list[tuple[int, Any, Any]]] = {}
    for at, by_value in cells.items():
        base = next((runs_ for v, runs_ in by_value.items() if same(v, baseline)), None)
        if base is None:
            continue
        for value, runs_ in by_value.items():
            if not same(value, baseline):
                out[(at, value)] = [(k, base[k], runs_[k]) for k in sorted(base) if k in runs_]
    return out


def rounds(runs: Iterable[Any], factor: str, baseline: Value, metric: Metric
           ) -> dict[tuple[PointKey, Value], list[tuple[int, float, float]]]:
    """Each (other axes, variant value): its rounds as (round, baseline's figure, variant's),
    a round counted where both sides measured the metric (> 0). A run's repetition is its round."""
    out: dict[tuple[PointKey, Value], list[tuple[int, float, float]]] = {}
    for cell, pairs in paired_runs(runs, factor, baseline).items():
        got = []
        for k, a, b in pairs:
            x, y = metric.read(a), metric.read(b)
            if x and y and x > 0 and y > 0:
                got.append((k, x, y))
        out[cell] = got
    return out
