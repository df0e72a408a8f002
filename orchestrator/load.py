"""The load step: a generator on every client host, all starting at one instant, and their
results merged into the run record's load fields. Two generators, one face (`Generator`):

  wrk               closed loop (the reference's tool); a wait wrapper starts it on time
  orchestrate-load  closed or open loop (load.rate); latency from each request's intended send
                    time; it starts itself at --start-at; histograms merge exactly across hosts

The tool adapters (tools/wrk.py, tools/loadgen.py) build command lines and parse outputs; this
module knows the scenario, the hosts and the record.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Protocol

from orchestrator import records, scenario, tools
from orchestrator.context import Context
from orchestrator.errors import RunFailed
from orchestrator.hosts import Host
from orchestrator.plan import RunSpec
from orchestrator.scenario import Scenario
from orchestrator.tools import loadgen, wrk


@dataclasses.dataclass(frozen=True)
class Measured:
    """What the generators measured: the run record's load fields (execute adds the run's
    identity), the measured window as (offset, end) from the start instant, and when each
    client began."""

    fields: records.Measurement
    window_s: tuple[float, float]
    started: dict[str, float]

    def given(self) -> dict[str, Any]:
        """The load fields as set, as records (for the Run execute assembles)."""
        return {k: getattr(self.fields, k) for k in self.fields.model_fields_set}


class Generator(Protocol):
    name: str  # the process name: its outputs are raw/<run>/<host>/<name>.txt
    binary: str  # what must be installed on client hosts

    def prepare(self, ctx: Context, spec: RunSpec, client: Host) -> None: ...

    def command(self, ctx: Context, spec: RunSpec, client: Host, url: str, at: float) -> tuple[str, bool]:
        """(command line, needs a shell) starting the load at epoch `at` on the host's clock."""
        ...

    def busy_s(self, ctx: Context) -> float:
        """From the start instant to the planned end of the load."""
        ...

    def record(self, ctx: Context, spec: RunSpec, outputs: list[tuple[Host, str, str]]) -> Measured:
        """The run record's load fields from each client's (host, stdout, stderr)."""
        ...


HISTOGRAMS = "latency-histograms.json"  # raw/<run>/: orchestrate-load's bucket counts, in µs


def latency_histogram(path: Path) -> loadgen.Histogram:
    """A run's corrected latency histogram, all client hosts merged, read back from the
    HISTOGRAMS file NativeLoad.record wrote (the run record names it)."""
    return loadgen.Histogram.of_buckets(json.loads(path.read_text())["merged"]["latency"])


def for_scenario(ctx: Context) -> Generator:
    return NativeLoad() if ctx.sc.load.tool == loadgen.BINARY else WrkLoad()


def _parsed(ctx: Context, host: Host, parse: Any, stdout: str, stderr: str) -> Any:
    try:
        return parse(stdout, stderr)
    except tools.ToolError as exc:
        raise RunFailed(str(exc), host=host.name, phase=ctx.phase) from None


def _nothing_answered(ctx: Context, tool: str) -> RunFailed:
    # a server that never answers shows as 0 requests and 0 errors
    return RunFailed(f"{tool} completed no requests against {ctx.lab.server.address}:{ctx.sc.server.port} "
                     f"in {ctx.sc.load.duration:g}s (server not answering?)", host=ctx.lab.server.name,
                     phase=ctx.phase)


def _starts(ctx: Context, firsts: list[tuple[Host, float | None]]) -> dict[str, float]:
    """When each client's load began (its first request; wrk: its first thread about to
    connect), on this machine's clock: the host's reading less its measured clock offset."""
    return {h.name: round(t - (ctx.facts.get(h.name, {}).get("clock_offset_s") or 0.0), 6)
            for h, t in firsts if t is not None}


def _skew_ms(starts: dict[str, float]) -> float | None:
    """The spread of the clients' start instants: how long some loaded while others did not."""
    return round((max(starts.values()) - min(starts.values())) * 1000, 3) if starts else None


def _shape(sc: Scenario, spec: RunSpec) -> dict[str, Any]:
    """The request's shape for this run, the same for both generators (load.keepalive may
    be an axis)."""
    return {"method": sc.load.method, "headers": sc.load.headers, "body": sc.load.body,
            "close": not scenario.at(sc, spec.point, "load.keepalive")}


class WrkLoad:
    name = "wrk"
    binary = wrk.BINARY

    def prepare(self, ctx: Context, spec: RunSpec, client: Host) -> None:
        ctx.t(client).put_text(wrk.LUA_SCRIPT, f"{client.workdir}/{spec.run_id}/report.lua")

    def command(self, ctx: Context, spec: RunSpec, client: Host, url: str, at: float) -> tuple[str, bool]:
        sc = ctx.sc
        argv = wrk.command(url, threads=sc.load.threads, connections=spec.connections,
                           duration_s=sc.load.duration, timeout_s=sc.load.timeout,
                           script_path=f"{client.workdir}/{spec.run_id}/report.lua",
                           pipeline=sc.load.pipeline, start_at=at, **_shape(sc, spec))
        return tools.base.join(argv), False  # wrk waits for `at` in its script

    def busy_s(self, ctx: Context) -> float:
        return ctx.sc.load.duration

    def record(self, ctx: Context, spec: RunSpec, outputs: list[tuple[Host, str, str]]) -> Measured:
        per_client = [(h, _parsed(ctx, h, wrk.parse, out, err)) for h, out, err in outputs]
        total = wrk.merge([r for _, r in per_client])
        if total.requests == 0:
            raise _nothing_answered(ctx, "wrk")
        starts = _starts(ctx, [(h, wrk.started_at(err)) for h, _, err in outputs])
        return Measured(records.Measurement(
            requests=total.requests,
            qps=total.qps,
            latency_ms=total.latency_ms,
            errors=records.Errors(connect=total.connect_errors, read=total.read_errors,
                                  write=total.write_errors, timeout=total.timeouts),
            non_2xx=total.non_2xx,
            clients=tuple(records.ClientResult(host=h.name, qps=r.qps, requests=r.requests,
                                               started=starts.get(h.name),
                                               latency_ms=r.latency_ms)
                          for h, r in per_client),
            start_skew_ms=_skew_ms(starts),
        ), (0.0, max(r.duration_s for _, r in per_client)), starts)


class NativeLoad:
    name = "load"
    binary = loadgen.BINARY

    def prepare(self, ctx: Context, spec: RunSpec, client: Host) -> None:
        pass

    def command(self, ctx: Context, spec: RunSpec, client: Host, url: str, at: float) -> tuple[str, bool]:
        sc = ctx.sc
        share = spec.rate / (spec.clients or len(ctx.lab.clients)) if spec.rate is not None else None
        argv = loadgen.command(url, threads=sc.load.threads, connections=spec.connections,
                               duration_s=sc.load.duration, rate=share, warmup_s=sc.load.warmup,
                               pipeline=sc.load.pipeline, timeout_s=sc.load.timeout, start_at=at,
                               binary=ctx.load_binary.get(client.name, loadgen.BINARY),
                               **_shape(sc, spec))
        return tools.base.join(argv), False

    def busy_s(self, ctx: Context) -> float:
        return ctx.sc.load.warmup + ctx.sc.load.duration

    def record(self, ctx: Context, spec: RunSpec, outputs: list[tuple[Host, str, str]]) -> Measured:
        per_client = [(h, _parsed(ctx, h, loadgen.parse, out, err)) for h, out, err in outputs]
        total = loadgen.merge([r for _, r in per_client])
        starts = _starts(ctx, [(h, r.first_send_epoch) for h, r in per_client])
        # Nothing answered at all: no response completed in the window, even to a request sent
        # before it. (Responses only to earlier requests is an overloaded path: a measurement.)
        if total.counts.responses == 0 and not any(total.rate.per_second):
            raise _nothing_answered(ctx, loadgen.BINARY)
        errors = dict(total.counts.errors)
        histograms = ctx.results.write_text(f"raw/{spec.run_id}/{HISTOGRAMS}", json.dumps({
            "unit": "us", "layout": {"lowest": loadgen.LOWEST_US, "highest": loadgen.HIGHEST_US,
                                     "significant_digits": loadgen.SIGNIFICANT_DIGITS},
            "merged": {k: getattr(total, f"{k}_hist").buckets
                       for k in ("latency", "service_time", "send_lag")},
            "hosts": {h.name: r.latency_hist.buckets for h, r in per_client}}) + "\n")
        return Measured(records.Measurement(
            requests=total.counts.responses,
            qps=total.qps,
            latency_ms=total.latency_ms,  # from the intended send time
            service_time_ms=total.service_time_ms,  # from the actual send
            send_lag_ms=total.send_lag_ms,
            # the client's own send lag (from when a connection was free), send fidelity's basis
            client_send_lag_ms=total.client_send_lag_ms,
            rate=records.Rate(target=total.rate.target, achieved=total.rate.achieved,
                              sustained=total.rate.sustained, per_second=tuple(total.rate.per_second),
                              send_fidelity=total.rate.send_fidelity, completion=total.rate.completion),
            requests_detail=dataclasses.asdict(total.counts),
            errors=records.Errors(connect=errors.get("connect", 0),
                                  read=sum(errors.get(k, 0) for k in ("read", "reset", "closed", "protocol")),
                                  write=errors.get("write", 0), timeout=errors.get("timeout", 0)),
            non_2xx=total.counts.non_2xx,
            clients=tuple(records.ClientResult(
                host=h.name, qps=r.qps, requests=r.counts.responses,
                rate=records.Rate(target=r.rate.target, achieved=r.rate.achieved, sustained=r.rate.sustained,
                                  send_fidelity=r.rate.send_fidelity, completion=r.rate.completion),
                started=starts.get(h.name), latency_ms=r.latency_ms) for h, r in per_client),
            start_skew_ms=_skew_ms(starts),
            histograms=str(histograms.relative_to(ctx.results.path)),
        ), (ctx.sc.load.warmup, ctx.sc.load.warmup + total.duration_s), starts)

