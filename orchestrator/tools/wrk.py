"""wrk (HTTP load generator): command line, a reporting Lua script, output parsing, merging.

The Lua script (`LUA_SCRIPT`, written to a file by the caller and passed with `-s`) does two
things wrk cannot do from its flags:
- pipelining: with depth N > 1, `init` concatenates N `wrk.format()` requests and defines a
  global `request()` returning them. wrk counts the requests in that buffer
  (script_verify_request) and expects N responses per send, so `requests` counts responses.
  With depth 1 no `request()` is defined and wrk keeps its faster static request.
- reporting: `done()` prints one line `ORCH_JSON {...}` with the summary, the error counters
  and the full latency histogram, walked with wrk's stats API (script.c): `#latency` is the
  number of distinct values, `latency(i)` returns the i-th distinct (value_us, count).

Latency facts worth knowing (wrk.c, stats.c, wrk 4.1):
- one latency sample is recorded per send, i.e. per pipelined batch, not per request;
- before reporting, wrk applies `stats_correct` (coordinated-omission correction), which
  adds synthetic samples, so the histogram's total can exceed `requests`. The histogram is
  exactly the distribution wrk's own percentiles come from, so percentiles computed from it
  (with wrk's rank rule) equal wrk's.
- walking the histogram costs about distinct_values x (max - min) / 2 steps (each
  `latency(i)` scans from the minimum); above a budget (the script's optional second
  argument, default 2e7 steps, ~10 ms) the script instead samples about 1000 percentiles
  (wrk's reported ones, 500 evenly to p99, 499 log-spaced through the tail to one sample from
  the top, and the max), each valued at its own percentile and weighted up to its rank in the
  estimated sample count, and marks the histogram `exact: false`. wrk's percentiles come back
  exactly; any other reads high by at most the gap to the next sampled one.
  (5e8 cost up to 0.2 s of CPU per wrk at exit: 16 lab clients on one CPU reported one
  after another for up to 2.9 s.)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from orchestrator.records import Latency
from orchestrator.tools.base import ToolError

BINARY = "wrk"
ENV: dict[str, str] = {"LC_ALL": "C"}
JSON_PREFIX = "ORCH_JSON "
START_MARK = "orchestrate: wrk started at "
WALK_BUDGET = 2e7  # steps allowed for the exact histogram walk (see the module's docstring)
SCRIPT_NAME = "wrk.lua"

# The script is a real Lua file beside this module (package data), run by wrk as it is; its
# START_MARK and default walk budget are the constants above (tests/tools/test_wrk.py holds them equal).
LUA_SCRIPT = resources.files("orchestrator.tools").joinpath(SCRIPT_NAME).read_text()


def _checked(latency: Latency) -> Latency:
    """wrk's summary as the run record keeps it (records.Latency: wrk has no tail beyond p99),
    refused when it is not a distribution."""
    given = (latency.p50, latency.p75, latency.p90, latency.p99, latency.max, latency.mean)
    if any(v is None or v < 0 or not math.isfinite(v) for v in given):
        raise ValueError(f"latency values must be finite and >= 0: {latency}")
    vals = [v for v in given[:5] if v is not None]  # all of them (checked above)
    # a tiny tolerance: text output rounds each value on its own
    if any(a > b * 1.0001 + 1e-9 for a, b in zip(vals, vals[1:], strict=False)):
        raise ValueError(f"latency percentiles must not decrease: {latency}")
    return latency


@dataclass(frozen=True)
class WrkResult:
    """One wrk run (or several merged). `histogram` is ((latency_us, count), ...) sorted by
    latency; it is empty when no request completed in time, or when `source` is "text"
    (only wrk's own report was available: no histogram, so it cannot be merged)."""

    requests: int
    duration_s: float
    bytes: int
    qps: float
    latency_ms: Latency
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    non_2xx: int  # wrk's "status" errors: responses with status > 399
    histogram: tuple[tuple[int, int], ...] = ()
    histogram_exact: bool = True
    hosts: int = 1  # how many wrk outputs were merged into this one
    source: str = "json"  # "json" (ORCH_JSON line) or "text" (wrk's report)

    def __post_init__(self) -> None:
        counts = (self.requests, self.bytes, self.connect_errors, self.read_errors,
                  self.write_errors, self.timeouts, self.non_2xx)
        if any(c < 0 for c in counts):
            raise ValueError(f"wrk counters must be >= 0: {self}")
        if self.source not in ("json", "text"):
            raise ValueError(f"unknown wrk result source {self.source!r}")
        if self.duration_s <= 0 or self.qps < 0:
            raise ValueError(f"wrk duration must be > 0 and qps >= 0: {self}")
        prev = -1
        for value, count in self.histogram:
            if value <= prev or count <= 0:
                raise ValueError("histogram must be sorted by latency with positive counts")
            prev = value

    @property
    def socket_errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts


def _seconds(value: float, what: str) -> str:
    # wrk reads times as whole numbers with a unit (units.c scan_time)
    if value <= 0 or value != int(value):
        raise ToolError("wrk", f"{what} must be a whole number of seconds > 0, got {value}")
    return f"{int(value)}s"


def command(
    url: str,
    *,
    threads: int,
    connections: int,
    duration_s: float,
    timeout_s: float,
    script_path: str,
    pipeline: int = 1,
    headers: Mapping[str, str] | None = None,
    start_at: float | None = None,
    walk_budget: float = WALK_BUDGET,
    method: str = "GET",
    body: str | None = None,
    close: bool = False,
) -> list[str]:
    """wrk's argv; `script_path` must hold LUA_SCRIPT.

    The method, the body and `close` (Connection: close: a new connection per request) reach
    the script as named arguments; wrk's -H carries the other headers.

    With `start_at` (epoch seconds, the host's clock) wrk starts at once but waits for that
    instant inside its script, before its threads connect; each thread notes when it is about
    to send its first request (`started_at`).
    """
    if threads < 1 or connections < threads:
        raise ToolError("wrk", f"needs threads >= 1 and connections >= threads, got {threads} threads "
                        f"and {connections} connections")
    if pipeline < 1:
        raise ToolError("wrk", f"pipeline depth must be >= 1, got {pipeline}")
    if not url.startswith(("http://", "https://")):
        raise ToolError("wrk", f"needs an http(s) URL, got {url!r}")
    argv = [BINARY, "--latency", "-t", str(threads), "-c", str(connections),
            "-d", _seconds(duration_s, "duration"), "--timeout", _seconds(timeout_s, "timeout"),
            "-s", str(script_path)]
    if close and pipeline > 1:
        raise ToolError("wrk", "pipelining needs keep-alive connections (close=True given)")
    if not method or any(c.isspace() or c == "=" for c in method):
        raise ToolError("wrk", f"bad method {method!r}")
    for name, value in (headers or {}).items():
        if not name or ":" in name or any(c in f"{name}{value}" for c in "\r\n"):
            raise ToolError("wrk", f"bad header {name!r}: {value!r}")
        argv += ["-H", f"{name}: {value}"]  # wrk only splits on ": "
    args = [str(pipeline), f"{walk_budget:g}"]
    if start_at is not None:
        args.append(f"{start_at:.6f}")
    if method != "GET":
        args.append(f"method={method}")
    if body is not None:
        args.append(f"body={body}")
    if close:
        args.append("close=1")
    return [*argv, url, "--", *args]


# ---------------------------------------------------------------- parsing

_WRK_PERCENTILE_KEYS = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p99": 99.0}


def percentile(histogram: Sequence[tuple[int, int]], p: float) -> int:
    """The p-th percentile (us) of a histogram, with wrk's own rank rule (stats.c)."""
    total = sum(c for _, c in histogram)
    if total == 0:
        return 0
    # C round() rounds halves away from zero; Python's round() would round to even
    rank = math.floor(p / 100.0 * total + 0.5 + 0.5)
    running = 0
    for value, count in histogram:
        running += count
        if running >= rank:
            return value
    return histogram[-1][0]


def _latency_from_histogram(hist: Sequence[tuple[int, int]], mean_us: float | None) -> Latency:
    total = sum(c for _, c in hist)
    if mean_us is None:
        mean_us = sum(v * c for v, c in hist) / total if total else 0.0
    pcts = {k: percentile(hist, p) / 1000.0 for k, p in _WRK_PERCENTILE_KEYS.items()}
    return _checked(Latency(**pcts, max=(hist[-1][0] if hist else 0) / 1000.0, mean=mean_us / 1000.0))


def _from_json(doc: dict) -> WrkResult:
    try:
        errors = doc["errors"]
        lat = doc["latency_us"]
        # sampled histograms repeat values: fold them together
        hist = merge_histograms([[(int(v), int(c)) for v, c in lat["histogram"] if int(c) > 0]])
        duration_s = doc["duration_us"] / 1e6
        requests = int(doc["requests"])
        latency = _latency_from_histogram(hist, float(lat["mean"]))
        if hist:
            # wrk's own max: a sampled histogram stops at its top percentile
            latency = _checked(latency.model_copy(update={"max": int(lat["max"]) / 1000.0}))
        return WrkResult(
            requests=requests, duration_s=duration_s, bytes=int(doc["bytes"]),
            qps=requests / duration_s, latency_ms=latency,
            connect_errors=int(errors["connect"]), read_errors=int(errors["read"]),
            write_errors=int(errors["write"]), timeouts=int(errors["timeout"]),
            non_2xx=int(errors["status"]), histogram=hist,
            histogram_exact=bool(lat.get("exact", True)),
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise ToolError("wrk", f"malformed {JSON_PREFIX.strip()} line: {exc}") from exc


_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_BINARY_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ToolError("wrk", f"unexpected time value {text!r}")
    return float(m[1]) * _TIME_UNITS[m[2]]


def _from_text(text: str) -> WrkResult:
    m = re.search(r"^\s*(\d+) requests in ([\d.]+\w+), ([\d.]+)([KMGTP]?)B read", text, re.M)
    if not m:
        raise ToolError("wrk", "no result in output")
    requests = int(m[1])
    duration_s = _ms(m[2]) / 1000.0
    nbytes = round(float(m[3]) * _BINARY_UNITS[m[4]])
    qps_m = re.search(r"^Requests/sec:\s*([\d.]+)", text, re.M)
    qps = float(qps_m[1]) if qps_m else requests / duration_s
    # wrk prints these two lines only when a count is non-zero: their absence is wrk's 0, measured
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    conn, read, write, timeout = (int(x) for x in se.groups()) if se else (0, 0, 0, 0)
    st = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)\s*$", text, re.M))
    stats = re.search(r"^\s+Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)", text, re.M)
    if len(dist) != 4 or not stats:
        raise ToolError("wrk", "no latency distribution in output (was --latency given?)")
    latency = _checked(Latency(p50=_ms(dist["50"]), p75=_ms(dist["75"]), p90=_ms(dist["90"]),
                               p99=_ms(dist["99"]), max=_ms(stats[3]), mean=_ms(stats[1])))
    return WrkResult(requests=requests, duration_s=duration_s, bytes=nbytes, qps=qps,
                     latency_ms=latency, connect_errors=conn, read_errors=read,
                     write_errors=write, timeouts=timeout, non_2xx=int(st[1]) if st else 0,
                     histogram=(), histogram_exact=False, source="text")


def started_at(stderr: str) -> float | None:
    """When wrk's first thread was about to connect and send (the script's note, the host's
    clock); None when wrk was not started at an instant."""
    for line in stderr.splitlines():
        if line.startswith(START_MARK):
            return float(line[len(START_MARK):])
    return None


def parse(stdout: str, stderr: str = "") -> WrkResult:
    """Parse wrk's stdout: the ORCH_JSON line when present, else wrk's text report.

    When wrk produced no result, raise ToolError with wrk's own message (from stderr or
    stdout, e.g. 'unable to connect to 127.0.0.1:1 Connection refused').
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(JSON_PREFIX):
            try:
                doc = json.loads(line[len(JSON_PREFIX):])
            except json.JSONDecodeError as exc:
                raise ToolError("wrk", f"truncated {JSON_PREFIX.strip()} line: {exc}") from exc
            return _from_json(doc)
    if re.search(r"requests in .* read", stdout):
        return _from_text(stdout)
    for line in (*stderr.splitlines(), *stdout.splitlines()):
        if line.strip() and not line.startswith(("Running ", "  ", START_MARK)):
            raise ToolError("wrk", line.strip())
    raise ToolError("wrk", "no result in output")


# ---------------------------------------------------------------- merging

def merge_histograms(
    histograms: Iterable[Sequence[tuple[int, int]]],
) -> tuple[tuple[int, int], ...]:
    total: dict[int, int] = {}
    for hist in histograms:
        for value, count in hist:
            total[value] = total.get(value, 0) + count
    return tuple(sorted(total.items()))


def merge(results: Sequence[WrkResult]) -> WrkResult:
    """Combine wrk runs made at the same time on several hosts into one result.

    Counters and qps are summed, duration is the longest, and latency percentiles come from
    the merged histograms (percentiles cannot be averaged). Every input needs a histogram,
    i.e. was run with LUA_SCRIPT; a text-only result raises ValueError.
    """
    if not results:
        raise ToolError("wrk", "no result to merge")
    if len(results) == 1:
        return results[0]
    if any(r.source == "text" for r in results):
        raise ToolError("wrk", "merging needs the latency histogram of every result (LUA_SCRIPT)")
    hist = merge_histograms(r.histogram for r in results)
    weights = [sum(c for _, c in r.histogram) for r in results]
    # mean and max are set in every result (_checked)
    mean_us = (sum((r.latency_ms.mean or 0.0) * 1000 * w for r, w in zip(results, weights, strict=True))
               / sum(weights)) if sum(weights) else 0.0
    latency = _latency_from_histogram(hist, mean_us)
    latency = _checked(latency.model_copy(update={"max": max(r.latency_ms.max or 0.0 for r in results)}))
    return WrkResult(
        requests=sum(r.requests for r in results),
        duration_s=max(r.duration_s for r in results),
        bytes=sum(r.bytes for r in results),
        qps=sum(r.qps for r in results),
        latency_ms=latency,
        connect_errors=sum(r.connect_errors for r in results),
        read_errors=sum(r.read_errors for r in results),
        write_errors=sum(r.write_errors for r in results),
        timeouts=sum(r.timeouts for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        histogram=hist,
        histogram_exact=all(r.histogram_exact for r in results),
        hosts=sum(r.hosts for r in results),
    )
