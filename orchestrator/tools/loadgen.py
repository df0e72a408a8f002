"""orchestrate-load (the project's own load generator, loadgen/): command line, parsing, merging.

Closed loop (`rate=None`: N connections as fast as they are answered, wrk's model) or open loop
(`rate=R` requests/s in total: every request has an intended send time and latency counts from
it, so a stalled server cannot hide behind a waiting client: no coordinated omission).

Its stdout is one JSON document (format history, "version"):
  1: first release. Only answered requests (and those still unanswered when the window closed,
     at end - intended) were in the histograms: timed-out and lost ones were only counted.
  2: every request of the window is in the histograms: timed out (at least the timeout after
     its intended time), lost with its connection (until that was known), still in flight at
     the window's end (drained: answered, or timed out), never sent (until the drain's end).
     Adds counts.failed_by (the failed requests by kind) and window.drain_s / drain_cut.
     Later, within 2: client_send_lag, the open loop's send lag counted from when a connection
     was free (max(intended, free)), not from the intended time: the client's own lag, which
     send fidelity (and rate.sustained) is judged on; waiting for a busy connection is the
     server's slowness. Without it (older output) send fidelity falls back to send_lag.
Both are read (`LoadResult.complete` says which); an unknown version is refused.
Histograms are HdrHistogram-layout bucket counts in microseconds (lowest 1, highest 60 s,
3 significant digits): `[[lowest_equivalent_value, count], ...]`. Bucket boundaries depend only
on those three constants, so histograms of threads and hosts merge exactly by adding counts
(`merge`), and percentiles here are computed with HdrHistogram's own rule, the same as the
generator's (checked by the tests on recorded outputs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from orchestrator.records import Latency
from orchestrator.tools.base import ToolError, cpu_list

BINARY = "orchestrate-load"
ENV: dict[str, str] = {}
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
REPO_LOADGEN_DIR = Path(__file__).resolve().parents[2] / "loadgen"

# The layout every histogram must have to be merged (the generator's Histogram.h).
LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3
_SUB_BUCKET_HALF_MAGNITUDE = 10  # 3 digits: 2048 sub-buckets, half of them 1024
_SUB_BUCKET_MASK = (1 << (_SUB_BUCKET_HALF_MAGNITUDE + 1)) - 1

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0), ("p75", 75.0), ("p90", 90.0), ("p99", 99.0),
    ("p99_9", 99.9), ("p99_99", 99.99), ("p99_999", 99.999),
)
ERROR_KINDS = ("connect", "reset", "read", "write", "timeout", "closed", "protocol")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


def build_command(source_dir: str | Path, build_dir: str | Path) -> str:
    """Configure and build the Release generator (incremental when already built)."""
    return (f"cmake -S {source_dir} -B {build_dir} -DCMAKE_BUILD_TYPE=Release >/dev/null && "
            f"cmake --build {build_dir} -j2 >/dev/null")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_args(targets: list[str], threads: int, connections: int, duration_s: float,
                warmup_s: float, timeout_s: float, rate: float | None, pipeline: int, close: bool,
                method: str) -> None:
    """Refuse arguments orchestrate-load would refuse, here, with a message naming the limit."""
    if not targets or any(not u.startswith("http://") for u in targets):
        raise ToolError(BINARY, f"needs one or more http:// URLs, got {targets!r}")
    if threads < 1 or connections < threads:
        raise ToolError(BINARY, f"needs threads >= 1 and connections >= threads, got {threads} threads "
                        f"and {connections} connections")
    if not (0 < duration_s <= 86400) or not (0 <= warmup_s <= 86400):
        raise ToolError(BINARY, f"duration must be in (0, 86400] s and warm-up in [0, 86400] s, got "
                        f"{duration_s} and {warmup_s}")
    if not (0 < timeout_s <= 60):
        raise ToolError(BINARY, f"timeout must be in (0, 60] s, got {timeout_s}")
    if rate is not None and not (math.isfinite(rate) and rate >= 1):
        raise ToolError(BINARY, f"rate must be >= 1 request/s, got {rate}")
    if not (1 <= pipeline <= 1024):
        raise ToolError(BINARY, f"pipeline depth must be in [1, 1024], got {pipeline}")
    if close and pipeline > 1:
        raise ToolError(BINARY, "pipelining needs keep-alive connections (close=True given)")
    if not method or any(c.isspace() for c in method):
        raise ToolError(BINARY, f"bad method {method!r}")


def command(
    urls: str | Sequence[str],
    *,
    threads: int,
    connections: int,
    duration_s: float,
    rate: float | None = None,
    warmup_s: float = 0.0,
    pipeline: int = 1,
    timeout_s: float = 5.0,
    start_at: float | None = None,
    cpus: Sequence[int] | None = None,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
    http10: bool = False,
    close: bool = False,
    min_sleep_us: float | None = None,
    binary: str = BINARY,
) -> list[str]:
    """orchestrate-load's argv. `rate` (total requests/s) makes the run open-loop;
    `start_at` (epoch seconds) lets several hosts start at the same instant."""
    targets = [urls] if isinstance(urls, str) else list(urls)
    _check_args(targets, threads, connections, duration_s, warmup_s, timeout_s, rate, pipeline,
                close, method)
    argv = [binary, "--threads", str(threads), "--connections", str(connections),
            "--duration", _number(duration_s), "--warmup", _number(warmup_s),
            "--timeout", _number(timeout_s), "--pipeline", str(pipeline), "--method", method]
    if rate is not None:
        argv += ["--rate", _number(rate)]
    if start_at is not None:
        argv += ["--start-at", f"{start_at:.6f}"]
    if cpus:
        argv += ["--cpus", cpu_list(cpus)]
    for name, value in (headers or {}).items():
        if not name or ":" in name or any(c in f"{name}{value}" for c in "\r\n"):
            raise ToolError(BINARY, f"bad header {name!r}: {value!r}")
        argv += ["--header", f"{name}: {value}"]
    if body is not None:
        argv += ["--body", body]
    if http10:
        argv.append("--http1.0")
    if close:
        argv.append("--close")
    if min_sleep_us is not None:
        if not (0 <= min_sleep_us <= 1e6):
            raise ToolError(BINARY, f"min_sleep_us must be in [0, 1e6], got {min_sleep_us}")
        argv += ["--min-sleep-us", _number(min_sleep_us)]
    return [*argv, *targets]


# ---------------------------------------------------------------- histograms

def _bucket_of(value: int) -> int:
    return (value | _SUB_BUCKET_MASK).bit_length() - (_SUB_BUCKET_HALF_MAGNITUDE + 1)


def lowest_equivalent(value: int) -> int:
    b = _bucket_of(value)
    return (value >> b) << b


def highest_equivalent(value: int) -> int:
    low = lowest_equivalent(value)
    return low + (1 << _bucket_of(low)) - 1


@dataclass(frozen=True)
class Histogram:
    """Bucket counts in microseconds: ((lowest_equivalent_value, count), ...) sorted by value.
    `max_us`/`min_us` are the exact extremes recorded; `mean_us` the exact mean."""

    buckets: tuple[tuple[int, int], ...]
    min_us: int
    max_us: int
    mean_us: float

    def __post_init__(self) -> None:
        prev = -1
        for value, count in self.buckets:
            if value <= prev or count <= 0 or value != lowest_equivalent(value) or value > HIGHEST_US:
                raise ValueError("histogram buckets must be sorted bucket starts with positive counts")
            prev = value
        if self.buckets and not (self.buckets[0][0] <= self.min_us <= self.max_us
                                 <= highest_equivalent(self.buckets[-1][0])):
            raise ValueError(f"histogram min/max outside its buckets: {self.min_us}..{self.max_us}")

    @property
    def count(self) -> int:
        return sum(c for _, c in self.buckets)

    def percentile_us(self, p: float) -> int:
        """HdrHistogram's valueAtPercentile: the first bucket whose running count reaches
        max(1, round(p/100 * count)), as its highest equivalent value, capped at the max."""
        total = self.count
        if total == 0:
            return 0
        rank = max(1, int(min(p, 100.0) / 100.0 * total + 0.5))
        running = 0
        for value, count in self.buckets:
            running += count
            if running >= rank:
                return min(highest_equivalent(value), self.max_us)
        return self.max_us

    @classmethod
    def of_buckets(cls, buckets: Iterable[Sequence[int]]) -> Histogram:
        """A histogram from its bucket counts alone (as a run's latency-histograms.json keeps
        them): the extremes are the buckets' ends and the mean their starts' weighted mean,
        which is all percentiles need."""
        b = tuple((int(v), int(c)) for v, c in buckets)
        n = sum(c for _, c in b)
        return cls(buckets=b, min_us=b[0][0] if b else 0, max_us=highest_equivalent(b[-1][0]) if b else 0,
                   mean_us=sum(v * c for v, c in b) / n if n else 0.0)

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        hists = list(histograms)
        total: dict[int, int] = {}
        for h in hists:
            for value, count in h.buckets:
                total[value] = total.get(value, 0) + count
        nonempty = [h for h in hists if h.buckets]
        n = sum(h.count for h in nonempty)
        return cls(
            buckets=tuple(sorted(total.items())),
            min_us=min((h.min_us for h in nonempty), default=0),
            max_us=max((h.max_us for h in nonempty), default=0),
            mean_us=sum(h.mean_us * h.count for h in nonempty) / n if n else 0.0,
        )


def distribution(hist: Histogram) -> Latency:
    """A histogram's percentiles, max and mean in milliseconds, as the run record keeps them
    (its count is the histogram's, and the run's requests_detail)."""
    pct = {name: hist.percentile_us(p) / 1000.0 for name, p in PERCENTILES}
    return Latency(**pct, max=hist.max_us / 1000.0, mean=hist.mean_us / 1000.0)


# ---------------------------------------------------------------- the result

@dataclass(frozen=True)
class Rate:
    """Open loop: the target (total req/s), what was achieved, and the generator's self-check:
    sustained is False when achieved < 99% of target or p99 send lag > max(1 ms, 10% of the
    interval between requests). The two halves are kept apart, since they blame different
    sides: send_fidelity (the lag half, the client's) and completion (achieved / target, the
    server's). Closed loop: target, sustained, send_fidelity and completion are None."""

    target: float | None
    achieved: float
    sustained: bool | None
    per_second: tuple[int, ...]  # responses completed in each whole second of the window
    send_fidelity: bool | None = None
    completion: float | None = None


_KINDED = ("status", "errors", "failed_by")  # Counts' fields that are (kind, count) pairs


@dataclass(frozen=True)
class Counts:
    """Requests whose intended send time fell in the window, and what became of them."""

    requests: int
    sent: int
    responses: int
    unanswered: int  # still waiting at the end: counted in latency as (end - intended)
    unsent: int      # of the unanswered, never sent (no free connection)
    failed: int      # timed out, or lost with their connection
    queued: int      # waited for a free connection
    max_queue: int
    connects: int
    non_2xx: int
    status: tuple[tuple[str, int], ...]  # ("1xx", n) ... ("5xx", n), ("other", n)
    errors: tuple[tuple[str, int], ...]  # by kind (ERROR_KINDS), whole run incl. warm-up
    # the failed requests of the window by kind (ERROR_KINDS); None: not reported (format 1)
    failed_by: tuple[tuple[str, int], ...] | None = None

    def __post_init__(self) -> None:
        nums = [getattr(self, f.name) for f in fields(self) if f.name not in _KINDED]
        kinded = (*self.status, *self.errors, *(self.failed_by or ()))
        if any(v < 0 for v in (*nums, *(v for _, v in kinded))):
            raise ValueError(f"counts must be >= 0: {self}")

    def error(self, kind: str) -> int:
        return dict(self.errors)[kind]

    @property
    def socket_errors(self) -> int:
        return sum(v for _, v in self.errors)


@dataclass(frozen=True)
class LoadResult:
    """One orchestrate-load run, or several merged (`hosts` > 1). Latencies in ms."""

    mode: str                 # "open" | "closed"
    threads: int
    connections: int
    pipeline: int
    duration_s: float         # the window measured (shorter than asked when interrupted)
    interrupted: bool
    start_epoch: float
    qps: float                # responses per second in the window (= rate.achieved)
    rate: Rate
    latency_ms: Latency       # from the intended send time (corrected)
    service_time_ms: Latency  # from the actual send
    send_lag_ms: Latency      # actual send - intended (waiting for a connection included)
    latency_hist: Histogram
    service_time_hist: Histogram
    send_lag_hist: Histogram
    counts: Counts
    hosts: int = 1
    first_send_epoch: float | None = None  # when the first request actually left (host clock)
    # Every request of the window is in the latency histogram (format 2); False: timed-out and
    # lost requests were left out of it (format 1), so its tail reads short.
    complete: bool = True
    drain_s: float | None = None  # after the window, reading answers to what was in flight
    # Open loop: actual send - max(intended, when a connection was free), the client's own lag
    # (send fidelity is judged on it). None: not reported (older output, or closed loop merged
    # with older output); fidelity then falls back to send_lag.
    client_send_lag_ms: Latency | None = None
    client_send_lag_hist: Histogram | None = None

    @property
    def fidelity_lag_hist(self) -> Histogram:
        """The send lag send fidelity is judged on: the client's own when reported."""
        return self.client_send_lag_hist if self.client_send_lag_hist is not None else self.send_lag_hist

    def __post_init__(self) -> None:
        if self.mode not in ("open", "closed"):
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.duration_s < 0 or self.qps < 0:
            raise ValueError(f"duration and qps must be >= 0: {self.duration_s}, {self.qps}")


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _histogram(doc: Mapping[str, Any]) -> Histogram:
    h = doc["histogram"]
    layout = (int(h["lowest"]), int(h["highest"]), int(h["significant_digits"]))
    if layout != (LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS):
        raise ValueError(f"histogram layout {layout} is not {LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS}")
    buckets = tuple((int(v), int(c)) for v, c in h["buckets"])
    return Histogram(buckets=buckets, min_us=int(doc["min"]), max_us=int(doc["max"]),
                     mean_us=float(doc["mean"]))


def send_lag_limit_ms(target: float) -> float:
    """The send-fidelity bound on p99 send lag: max(1 ms, 10% of the interval between requests)."""
    return max(1.0, 0.1 * 1e3 / target)


def _send_fidelity(target: float, send_lag: Histogram) -> bool:
    return send_lag.percentile_us(99) <= 1000.0 * send_lag_limit_ms(target)


def _sustained(target: float, achieved: float, send_lag: Histogram) -> bool:
    return achieved >= 0.99 * target and _send_fidelity(target, send_lag)


def _rate(target: float | None, achieved: float, sustained: bool | None, per_second: tuple[int, ...],
          send_lag: Histogram) -> Rate:
    if target is None or target <= 0:
        return Rate(target, achieved, sustained, per_second)
    return Rate(target, achieved, sustained, per_second, _send_fidelity(target, send_lag),
                round(achieved / target, 4))


def _from_doc(doc: Mapping[str, Any]) -> LoadResult:
    params, counts, rate = doc["parameters"], doc["counts"], doc["rate"]
    hists = {k: _histogram(doc[k]) for k in ("latency", "service_time", "send_lag")}
    client_lag = _histogram(doc["client_send_lag"]) if "client_send_lag" in doc else None
    status = tuple((k, int(counts["status"][k])) for k in STATUS_CLASSES)
    errors = tuple((k, int(counts["errors"][k])) for k in ERROR_KINDS)
    v1 = doc["version"] == 1
    failed_by = None if v1 else tuple((k, int(counts["failed_by"][k])) for k in ERROR_KINDS)
    target = None if rate["target"] is None else float(rate["target"])
    sustained = None if rate["sustained"] is None else bool(rate["sustained"])
    achieved = float(rate["achieved"])
    return LoadResult(
        mode=str(params["mode"]), threads=int(params["threads"]),
        connections=int(params["connections"]), pipeline=int(params["pipeline"]),
        duration_s=float(doc["window"]["measured_s"]), interrupted=bool(doc["interrupted"]),
        start_epoch=float(doc["window"]["start_epoch"]), qps=achieved,
        first_send_epoch=_optional_float(doc["window"].get("first_send_epoch")),
        complete=not v1, drain_s=None if v1 else float(doc["window"]["drain_s"]),
        rate=_rate(target, achieved, sustained, tuple(int(x) for x in rate["per_second"]),
                   hists["send_lag"] if client_lag is None else client_lag),
        latency_ms=distribution(hists["latency"]),
        service_time_ms=distribution(hists["service_time"]),
        send_lag_ms=distribution(hists["send_lag"]),
        latency_hist=hists["latency"], service_time_hist=hists["service_time"],
        send_lag_hist=hists["send_lag"],
        client_send_lag_ms=None if client_lag is None else distribution(client_lag),
        client_send_lag_hist=client_lag,
        counts=Counts(
            requests=int(counts["requests"]), sent=int(counts["sent"]),
            responses=int(counts["responses"]), unanswered=int(counts["unanswered"]),
            unsent=int(counts["unsent"]), failed=int(counts["failed"]),
            queued=int(counts["queued"]), max_queue=int(counts["max_queue"]),
            connects=int(counts["connects"]), non_2xx=int(counts["non_2xx"]),
            status=status, errors=errors, failed_by=failed_by),
    )


def parse(stdout: str, stderr: str = "") -> LoadResult:
    """The JSON document orchestrate-load printed; ToolError with its own words when there is
    none (bad option, unresolvable host) or when the document is malformed or of another version."""
    text = stdout.strip()
    if not text:
        why = next((ln.strip() for ln in stderr.splitlines() if ln.strip()), "no output")
        raise ToolError(BINARY, why)
    try:
        doc = json.loads(text.splitlines()[-1])
    except json.JSONDecodeError as exc:
        raise ToolError(BINARY, f"output is not one JSON document: {exc}") from None
    if not isinstance(doc, dict) or doc.get("tool") != BINARY:
        raise ToolError(BINARY, "output is not an orchestrate-load document")
    if doc.get("version") not in READABLE_VERSIONS:
        raise ToolError(BINARY, f"unknown output format version {doc.get('version')!r} "
                        f"(this adapter reads {', '.join(map(str, READABLE_VERSIONS))})")
    try:
        return _from_doc(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ToolError(BINARY, f"malformed output: {exc!r}") from None


# ---------------------------------------------------------------- merging

def _merged_counts(c: list[Counts]) -> Counts:
    """Several hosts' counts added: plain counts summed, kinded ones (status, errors) per kind."""
    def add(pairs: Iterable[tuple[tuple[str, int], ...]]) -> tuple[tuple[str, int], ...]:
        total: dict[str, int] = {}
        for items in pairs:
            for k, v in items:
                total[k] = total.get(k, 0) + v
        return tuple(total.items())

    return Counts(
        **{f.name: sum(getattr(x, f.name) for x in c) for f in fields(Counts) if f.name not in _KINDED},
        status=add(x.status for x in c), errors=add(x.errors for x in c),
        failed_by=(None if any(x.failed_by is None for x in c)
                   else add(x.failed_by for x in c if x.failed_by is not None)))


def merge(results: Sequence[LoadResult]) -> LoadResult:
    """Runs made at the same time (threads of one host are already merged by the generator;
    this merges hosts). Histograms add bucket counts exactly, so merged percentiles are those
    of all requests together; counts, targets and achieved rates add; the window is the
    longest. Merged `sustained`: every host sustained and the totals pass the same self-check.
    """
    if not results:
        raise ToolError(BINARY, "no result to merge")
    if len(results) == 1:
        return results[0]
    modes = {r.mode for r in results}
    if len(modes) != 1:
        raise ToolError(BINARY, f"cannot merge open- and closed-loop runs: {sorted(modes)}")
    hists = {name: Histogram.merged(getattr(r, name) for r in results)
             for name in ("latency_hist", "service_time_hist", "send_lag_hist")}
    client_lag = (None if any(r.client_send_lag_hist is None for r in results)
                  else Histogram.merged(r.client_send_lag_hist for r in results
                                        if r.client_send_lag_hist is not None))
    fidelity_lag = hists["send_lag_hist"] if client_lag is None else client_lag
    achieved = sum(r.rate.achieved for r in results)
    width = max(len(r.rate.per_second) for r in results)
    per_second = tuple(sum(r.rate.per_second[i] for r in results if i < len(r.rate.per_second))
                       for i in range(width))
    if modes == {"open"}:
        total = sum(r.rate.target or 0.0 for r in results)
        target: float | None = total
        sustained: bool | None = (all(bool(r.rate.sustained) for r in results)
                                  and _sustained(total, achieved, fidelity_lag))
    else:
        target, sustained = None, None
    counts = _merged_counts([r.counts for r in results])
    return LoadResult(
        mode=results[0].mode, threads=sum(r.threads for r in results),
        connections=sum(r.connections for r in results), pipeline=results[0].pipeline,
        duration_s=max(r.duration_s for r in results),
        interrupted=any(r.interrupted for r in results),
        start_epoch=min(r.start_epoch for r in results), qps=achieved,
        rate=_rate(target, achieved, sustained, per_second, fidelity_lag),
        latency_ms=distribution(hists["latency_hist"]),
        service_time_ms=distribution(hists["service_time_hist"]),
        send_lag_ms=distribution(hists["send_lag_hist"]),
        latency_hist=hists["latency_hist"], service_time_hist=hists["service_time_hist"],
        send_lag_hist=hists["send_lag_hist"], counts=counts,
        client_send_lag_ms=None if client_lag is None else distribution(client_lag),
        client_send_lag_hist=client_lag,
        hosts=sum(r.hosts for r in results),
        first_send_epoch=min((r.first_send_epoch for r in results if r.first_send_epoch is not None),
                             default=None),
        complete=all(r.complete for r in results),
        drain_s=None if any(r.drain_s is None for r in results) else max(r.drain_s or 0.0 for r in results),
    )
