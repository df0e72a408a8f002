"""Explain the number: packets per request, ceiling use, the bottleneck verdict, cost per request.

Reads run records (records.Run), never raw files. Each verdict carries the
numbers that decided it, so a reader can check the reasoning, as the reference
write-up did by hand from iperf3, pidstat and htop.

This module is the one source of truth for the verdict: its names (VERDICTS), its
thresholds (Thresholds), the rules in words (RULES, from which the README's section
is generated: `rules_markdown`) and every evidence sentence (TEMPLATES). Evidence is
formatted from the very numbers the rules compared, and a comparison is printed with
enough digits that the printed numbers never contradict the printed relation.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from orchestrator.point import PointKey
from orchestrator.records import (
    Analysis,
    Balance,
    Ceiling,
    CounterThread,
    CpuCost,
    CpuSplit,
    Latency,
    LittlesLaw,
    PacketsPerRequest,
    Pair,
    Point,
    Run,
    Summary,
    Switches,
)
from orchestrator.tools.loadgen import send_lag_limit_ms

NETWORK, SERVER, CLIENT = "network-bound", "server-bound", "client-bound"
CONCURRENCY, INCONCLUSIVE = "concurrency-bound", "inconclusive"
LATENCY = "latency-bound"  # one run, nothing saturated, QPS = C/L: more connections or a serial server
VERDICTS = (NETWORK, SERVER, CLIENT, LATENCY, CONCURRENCY, INCONCLUSIVE)


@dataclass(frozen=True)
class Thresholds:
    """Percentages unless named otherwise; the scenario's `thresholds` section overrides the
    first four (the others are this module's, named here so rules and README share them)."""

    ceiling_use: float = 90.0
    server_busy: float = 90.0
    client_busy: float = 90.0
    packets_per_request: float = 2.0  # used only when packets could not be counted
    near: float = 3.0  # points either side of a threshold: flagged, the verdict may flip
    run_queue_wait: float = 30.0  # % of the time runnable but not running (shared CPU, quota)
    preempted_share: float = 25.0  # % of context switches that are involuntary
    min_switch_rate: float = 200.0  # switches/s below which switch shares decide nothing
    hot_thread_others: float = 50.0  # other threads at most this busy: one thread is "hot"
    allowance_per_s: float = 10.0  # cloud NIC allowance counter growth that matters, per s
    littles_law: float = 20.0  # % below C/L that QPS may be and still be "QPS = C/L"
    flat_gain: float = 1.25  # connections at least doubled, QPS up by less: not concurrency
    send_lag_ms: float = 1.0  # open-loop mean send lag that shows the generator fell behind
    queued_share: float = 1.0  # % of requests that waited for a free connection: lag is that wait
    completion: float = 99.0  # % of the offered rate answered below which the server fell short

    @classmethod
    def from_scenario(cls, sc: Any) -> Thresholds:
        t = sc.thresholds
        return cls(t.ceiling_use, t.server_busy, t.client_busy, t.packets_per_request)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Thresholds:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Rule:
    name: str
    verdict: str
    text: str  # str.format'ed with the Thresholds' fields


# In the order they are tried. The README's verdict section is rules_markdown().
RULES: tuple[Rule, ...] = (
    Rule("unmeasured", INCONCLUSIVE,
         "the server's CPUs (mpstat) and threads (pidstat) were not measured, and no trusted "
         "network ceiling was reached: unmeasured is never \"not saturated\", so nothing is "
         "concluded and the evidence names what is missing"),
    Rule("nic-allowance", NETWORK,
         "a cloud NIC's allowance counters (`pps_allowance_exceeded`, ...) grew by at least "
         "{allowance_per_s:g}/s over the load while no CPU was saturated; a single count decides "
         "nothing, and with a saturated CPU as well the verdict is inconclusive, naming both"),
    Rule("ceiling", NETWORK,
         "QPS x packets/request reaches `ceiling_use` ({ceiling_use:g}%) of an iperf3 packet-rate "
         "ceiling: each client's path against that path's ceiling, and the server's aggregate "
         "against the ceiling measured by all clients at once. A ceiling measured while iperf3 "
         "itself was CPU-bound is only a lower bound and never gives this verdict (per "
         "direction: a CPU-bound reverse test leaves the forward ceiling trusted); over loopback "
         "a saturated CPU explains the number better than the ceiling, and across hosts a "
         "saturated CPU as well makes it inconclusive, naming both (as for the allowance counters)"),
    Rule("packets-unknown", INCONCLUSIVE,
         "packets were not counted, and only an assumed {packets_per_request:g} packets/request "
         "would reach `ceiling_use`: no verdict rests on an assumed figure (wrong by 10x at "
         "pipeline depth 16), so the network's part is unknown and the evidence says so"),
    Rule("both-saturated", INCONCLUSIVE,
         "the server and the load generator are both saturated by the rules below: give the "
         "load generator more CPUs to find the server's limit"),
    Rule("server-cpu", SERVER,
         "the server's work on one of its pinned CPUs is at or above `server_busy` "
         "({server_busy:g}%): its threads' %CPU there (pidstat) plus that CPU's softirq and irq "
         "(the kernel's network stack works for the server); the evidence shows the split. Other "
         "processes' time on the CPU is not the server's work (if they crowd it out, its "
         "run-queue wait shows it); without per-thread placement the CPU's busy % is used"),
    Rule("server-thread", SERVER,
         "a server thread's demand, the time it ran plus the time it waited for a CPU (pidstat "
         "%CPU + %wait), is at or above `server_busy`; when every other thread's is below "
         "{hot_thread_others:g}% it is a hot thread (few connections hashed onto one thread) and "
         "the evidence shows the balance"),
    Rule("server-kept-from-running", SERVER,
         "a server thread was runnable but waited for a CPU at least {run_queue_wait:g}% of the "
         "time (CPUs shared or too few, or a CPU quota). Context switches only support it: "
         "at least {preempted_share:g}% involuntary at {min_switch_rate:g} switches/s or more "
         "reads as preempted, and rates below that are too few to mean anything; voluntary "
         "switches are never read as \"starved of requests\""),
    Rule("server-serialised", SERVER,
         "across the matrix, with nothing saturated, connections at least doubled but QPS rose "
         "by less than x{flat_gain:g} while mean latency grew: requests queue on the server one "
         "at a time (a lock, a sleep, a slow backend), not on the load generator"),
    Rule("client", CLIENT,
         "the load generator's busiest thread ran or waited for a CPU (pidstat %CPU + %wait) at or "
         "above `client_busy` ({client_busy:g}%) or waited for one {run_queue_wait:g}% of the time "
         "or more (on a host with a CPU quota instead: its threads together used `client_busy` of "
         "what the quota allows, since throttled time reads as waiting), or, when the record has "
         "no per-thread figures "
         "for it, the busiest of its pinned CPUs (the maximum, as for the server) is, or an "
         "open-loop generator's mean send lag is {send_lag_ms:g} ms or more, or its send-fidelity "
         "self-check failed (send lag p99 above max(1 ms, 10% of the interval); a summary that "
         "did not record it has it derived from its send lag p99), while "
         "the server's CPUs were measured and nothing above saturated. Answers short of the "
         "offered rate are never the generator's (see server-completion). Send lag is "
         "not the generator's when at least {queued_share:g}% of its requests waited for a "
         "free connection (all busy: the server or the network held them) while its threads "
         "were measured and below `client_busy`"),
    Rule("latency-bound", LATENCY,
         "nothing is saturated and QPS is no more than {littles_law:g}% below C/L (Little's law: "
         "C requests in flight over mean latency L is the most this loop can do; a QPS above "
         "C/L means the latency figure overstates, and is flagged). In a loop QPS = C/L holds by "
         "construction, so one run cannot tell more connections would help from a server that "
         "serialises: the evidence names both, and a connections axis tells them apart "
         "(server-serialised above, concurrency below)"),
    Rule("concurrency", CONCURRENCY,
         "across the matrix, a latency-bound run's connections at least doubled raised QPS by "
         "x{flat_gain:g} or more: more connections would raise QPS"),
    Rule("server-completion", SERVER,
         "open loop, nothing saturated and not latency-bound: the server answered less than "
         "{completion:g}% of the offered rate (the completion self-check, the server's) while the "
         "generator sent on schedule (its send-fidelity self-check held, or its lag was the wait "
         "for a free connection): the offered rate is more than the server completes"),
    Rule("nothing-fits", INCONCLUSIVE,
         "nothing above applies (for example the load generator's CPUs were not measured, or "
         "the only ceiling reached is a lower bound); the evidence says what is known"),
)

# Every evidence sentence the analysis can print, by name (tests render each one).
TEMPLATES: dict[str, str] = {
    "missing": "{what} not measured: cannot tell whether it was saturated",
    "ceiling": "QPS {qps} x {ppr} packets/request ({ppr_source}) = {rate} pps ({where}) = "
               "{use} {rel} {threshold} of the {cap} pps ceiling measured by iperf3 ({scope})",
    "lower-bound": "the {cap} pps ceiling ({scope}) is a lower bound: iperf3 was CPU-bound "
                   "({why}); the load reached {use} of it, so the network's limit is unknown",
    "allowance": "{host}: NIC allowance counters grew over {seconds} s: {counters}",
    "allowance-small": "{host}: NIC allowance counters grew too slowly to matter over {seconds} s "
                       "(< {threshold}/s): {counters}",
    "server-cpu": "server CPU {cpu} busy {busy} {rel} {threshold} (usr {usr}, sys {sys}, "
                  "softirq {soft}, other {other})",
    "server-work": "server work on CPU {cpu}: its threads {threads} + softirq {soft} + irq {irq} = "
                   "{work} {rel} {threshold} (the CPU was {busy} busy in all)",
    "server-thread": "busiest server thread {busy} running + {wait} waiting for a CPU = {demand} {rel} "
                     "{threshold} of a CPU",
    "hot-thread": "hot thread: {n} server threads, the busiest {busy} running + {wait} waiting for a "
                  "CPU = {demand} {rel} {threshold}, the others at most {others}{balance}",
    "wait": "a server thread waited for a CPU {wait} {rel} {threshold} of the time (run-queue "
            "delay or CPU quota)",
    "switches": "{vol} voluntary vs {invol} involuntary switches/s: {share} involuntary {note}",
    "client-cpu": "load generator CPU {cpu} on {host} busy {busy} {rel} {threshold}",
    "client-wait": "load generator on {host} waited for a CPU {wait} {rel} {threshold} of the time "
                   "(shared CPUs or a CPU quota)",
    "client-demand": "load generator's busiest thread on {host}: {busy} running + {wait} waiting for a "
                     "CPU = {demand} {rel} {threshold}",
    "client-quota": "load generator on {host} used {share} of the {capacity} CPU its host's quota "
                    "allows {rel} {threshold}",
    "send-lag": "load generator send lag {lag} ms mean >= {threshold} ms: it could not send on schedule",
    "queued": "{share} of the load generator's requests waited for a free connection (all {conns} "
              "busy; up to {depth} waiting) while its CPU was below {threshold}: its send lag is "
              "that wait, set by the server or the network, not by the generator",
    "send-fidelity": "load generator did not send on schedule: send lag p99 {lag} ms > {limit} ms "
                     "(send fidelity, its own self-check; {basis})",
    "send-fidelity-ok": "load generator sent on schedule: send lag p99 {lag} ms <= {limit} ms "
                        "(send fidelity; {basis})",
    "completion": "the server answered {achieved} of {target} requests/s offered ({share} < {threshold}; "
                  "completion rate) while {fidelity}",
    "littles-law": "Little's law: {c} requests in flight / {l} ms mean {what} = {cap} req/s; "
                   "QPS {qps} is {diff} {rel} {threshold} below it",
    "littles-law-over": "Little's law: {c} requests in flight / {l} ms mean {what} = {cap} req/s, "
                        "but QPS {qps} is {over} above it: a closed loop cannot exceed C/L, so the "
                        "mean {what} overstates (C / QPS = {implied} ms)",
    "serialised": "connections {c1} -> {c2} (x{cx}) but QPS {q1} -> {q2} (x{qx}, < x{threshold}) "
                  "while mean latency grew {l1} -> {l2} ms: requests queue on the server",
    "scales": "connections {c1} -> {c2} (x{cx}) raised QPS {q1} -> {q2} (x{qx}, >= x{threshold})",
    "latency-bound": "nothing saturated and QPS = C/L: either more connections would raise QPS, or "
                     "the server serialises requests (a lock, a sleep, a slow backend); one run cannot "
                     "tell them apart, a connections axis in the matrix can",
    "both": "server and load generator both saturated: give the load generator more CPUs "
            "to find the server's limit",
    "network-and-cpu": "NIC allowance counters grew while a CPU was saturated: both limit the run",
    "ceiling-and-cpu": "the network ceiling was reached while a CPU was saturated: both limit the run",
    "packets-unknown": "packets per request were not counted (sar on the server's interface): at an "
                       "assumed {ppr} the load reaches the ceiling below, but the real figure may be "
                       "several times smaller or larger (pipelining, large responses), so whether the "
                       "network was the limit is unknown",
    "ceiling-use": "network ceiling use {use} ({scope})",
}


def say(name: str, **values: Any) -> str:
    return TEMPLATES[name].format(**values)


def rules_markdown(th: Thresholds | None = None) -> str:
    """The README's list of rules, from RULES and the default thresholds."""
    th = th or Thresholds()
    values = {f.name: getattr(th, f.name) for f in fields(th)}
    return "\n".join(f"- **{r.verdict}** ({r.name}): {r.text.format(**values)}" for r in RULES)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def pct(value: float, threshold: float | None = None, decimals: int = 0) -> str:
    """`value`% with as few decimals (at least `decimals`) as keep its side of `threshold`
    visible (89.96 -> 89.96%)."""
    for d in range(decimals, 4):
        r = round(value, d)
        if threshold is None or (r >= threshold) == (value >= threshold):
            return f"{r:.{d}f}%"
    return f"{value}%"


def rel(value: float, threshold: float) -> str:
    return ">=" if value >= threshold else "<"


def _sar(run: Run, server: str) -> Mapping[str, Any]:
    """The server host's sar window (telemetry is opaque: the collector's own keys)."""
    sar = run.telemetry.get("sar")
    host = sar.get(server) if isinstance(sar, Mapping) else None
    return host if isinstance(host, Mapping) else {}


def _server_interface(run: Run, server: str, interface: str | None) -> tuple[str, dict] | None:
    """The server host's interface that carried the load: the named one, else the busiest."""
    ifaces = _sar(run, server).get("interfaces") or {}
    if interface and interface in ifaces:
        return interface, ifaces[interface]
    if not ifaces:
        return None
    name = max(ifaces, key=lambda k: (ifaces[k].get("rx_pps") or 0) + (ifaces[k].get("tx_pps") or 0))
    return name, ifaces[name]


def packets(run: Run, server: str, interface: str | None, loopback: bool) -> dict[str, Any] | None:
    """Packets per request and packet rate on the server's interface during the load window.

    Across hosts, rx = requests arriving and tx = responses leaving. On loopback
    every packet is counted once as rx and once as tx on `lo`, so rx alone is
    all the packets of both directions, which is what the loopback ceiling
    (iperf3 over lo) measures.
    """
    found = _server_interface(run, server, interface)
    qps = run.qps or 0.0
    if not found or qps <= 0:
        return None
    name, iface = found
    rx, tx = float(iface.get("rx_pps") or 0), float(iface.get("tx_pps") or 0)
    if rx + tx <= 0:
        return None
    out: dict[str, Any] = {"interface": name, "rx_pps": rx, "tx_pps": tx,
                           "rx_per_request": rx / qps, "tx_per_request": tx / qps,
                           "drops_s": float(iface.get("rx_drop_s") or 0) + float(iface.get("tx_drop_s") or 0)}
    out["per_request"] = out["rx_per_request"] if loopback else out["rx_per_request"] + out["tx_per_request"]
    tcp = _sar(run, server)
    if _num(tcp.get("iseg_s")) is not None:
        segs = tcp["iseg_s"] + tcp.get("oseg_s", 0)
        out["tcp_segments_per_request"] = segs / qps / (2 if loopback else 1)
        out["retrans_s"] = tcp.get("retrans_s")
    return out


def _server_cpus(run: Run) -> dict[str, Any]:
    """The server's pinned CPUs (mpstat: busy includes softirq) and its threads (pidstat)."""
    cpus = run.server_host_cpu.cpus if run.server_host_cpu else {}
    rows = {k: c for k, c in cpus.items() if c.busy is not None}
    out: dict[str, Any] = {}
    threads = [t for t in (run.server_cpu.threads if run.server_cpu else ()) if t.busy is not None]
    placed = [t for t in threads if t.cpus]
    if rows:
        out["busy"] = statistics.fmean(c.busy or 0.0 for c in rows.values())

        def work(k: str) -> float:
            # The server's own work on CPU k: its threads' %CPU there (pidstat), plus softirq
            # and irq (the kernel's network stack, charged to no thread). Other processes'
            # time on the CPU is not the server's work; if it crowds the server out, the
            # server's run-queue wait shows it.
            return min(100.0, on_cpu(k) + (rows[k].soft or 0.0) + (rows[k].irq or 0.0))

        def on_cpu(k: str) -> float:
            return sum((t.busy or 0.0) / len(t.cpus or ()) for t in placed if int(k) in (t.cpus or ()))

        if placed:
            top = max(rows, key=work)
            out["max_work"], out["max_threads"] = work(top), on_cpu(top)
        else:  # threads not placed on CPUs (or not measured): the CPU's busy time is all we have
            top = max(rows, key=lambda k: rows[k].busy or 0.0)
        out["max_busy"], out["max_cpu"] = float(rows[top].busy or 0.0), top
        out["max_split"] = {k: float(getattr(rows[top], k) or 0.0) for k in ("usr", "sys", "soft", "irq")}
        out["split"] = {k: statistics.fmean(getattr(c, k) or 0.0 for c in rows.values())
                        for k in ("usr", "sys", "soft")}
        out["n_cpus"] = len(rows)
    if threads:
        # A thread's demand is the time it ran plus the time it was runnable but waited for a
        # CPU: on a shared or quota-limited CPU it is full while its own %CPU is not.
        rows_t = sorted(((t.busy or 0.0, t.wait or 0.0) for t in threads),
                        key=lambda bw: -(bw[0] + bw[1]))
        out["thread_busy_max"], out["thread_busy_wait"] = rows_t[0]
        out["thread_others_max"] = rows_t[1][0] + rows_t[1][1] if len(rows_t) > 1 else None
        out["n_threads"] = len(rows_t)
        out["thread_wait_max"] = max(w for _, w in rows_t)
    return out


def _client_cpus(run: Run) -> dict[str, Any] | None:
    """The busiest of the load generators' pinned CPUs: a one-thread wrk on two CPUs is one
    CPU at 100%, not two at 50% (the per-host `busy` execute.py stores is their mean)."""
    best: tuple[float, str, str] | None = None
    for host, c in run.client_cpu.items():
        cands = [(v.busy, host, k) for k, v in c.cpus.items() if v.busy is not None]
        if not cands and c.busy is not None:
            cands = [(c.busy, host, "(mean)")]
        for cand in cands:
            if best is None or cand[0] > best[0]:
                best = cand
    return {"busy": best[0], "host": best[1], "cpu": best[2]} if best else None


def cost_per_request(run: Run, server_cpus: dict[str, Any]) -> CpuCost | None:
    """Server CPU microseconds per request: usr and sys from the process's own accounting
    (pidstat, all threads), softirq from its pinned CPUs (mpstat; softirq has no owner)."""
    qps = run.qps or 0.0
    sc = run.server_cpu
    if qps <= 0 or sc is None or sc.usr is None:
        return None
    per = 1e6 / 100.0 / qps  # % of one CPU -> us per request
    soft = server_cpus.get("split", {}).get("soft", 0.0) * server_cpus.get("n_cpus", 0)
    out = {"usr": sc.usr * per, "sys": (sc.sys or 0.0) * per, "soft": soft * per}
    out["total"] = out["usr"] + out["sys"] + out["soft"]
    return CpuCost(**{k: round(v, 3) for k, v in out.items()})


def balance(run: Run) -> Balance | None:
    """Per-thread share from the server's own counters (the kernel's SO_REUSEPORT hash shows here)."""
    threads = run.server_counters.threads if run.server_counters else ()
    if not threads:
        return None

    def ratio(vals: list[int]) -> float | None:
        mean = statistics.fmean(vals)
        return round(max(vals) / mean, 3) if mean > 0 else None

    return Balance(threads=tuple(CounterThread(thread=t.thread, cpu=t.cpu, connections=t.connections,
                                               requests=t.requests) for t in threads),
                   requests_max_over_mean=ratio([t.requests or 0 for t in threads]),
                   connections_max_over_mean=ratio([t.connections or 0 for t in threads]))


def _duration(run: Run) -> float | None:
    w = run.window
    if w and w.start is not None and w.end is not None and w.end > w.start:
        return w.end - w.start
    return run.load.duration_s if run.load else None


def in_flight(run: Run) -> int | None:
    """C of Little's law: connections per load generator x pipeline depth x generators."""
    conns = run.connections
    if not isinstance(conns, int) or conns <= 0:
        return None
    load = run.load
    return conns * ((load.pipeline if load else None) or 1) * ((load.clients if load else None) or 1)


def _queued(run: Run) -> tuple[float, int] | None:
    """(% of the window's requests that waited for a free connection, the longest wait queue),
    from orchestrate-load's counts; None for a generator that does not count them."""
    d = run.requests_detail or {}
    requests, queued = d.get("requests"), d.get("queued")
    if not isinstance(requests, int) or not isinstance(queued, int) or requests <= 0:
        return None
    return 100.0 * queued / requests, int(d.get("max_queue") or 0)


def littles_law(run: Run) -> dict[str, float] | None:
    """The loop's own ceiling: C requests in flight / mean latency L. In open loop the latency
    runs from the intended send, queue wait included; what a connection holds is the service
    time (actual send to response), so that is L there (`open_loop` says which)."""
    c = in_flight(run)
    open_loop = bool(run.rate and run.rate.target and run.service_time_ms)
    mean_ms = (run.service_time_ms.mean if open_loop and run.service_time_ms else run.latency_ms.mean)
    qps = run.qps
    if not c or not mean_ms or mean_ms <= 0 or not qps:
        return None
    cap = c / (mean_ms / 1000.0)
    # below: how far short of the loop's own ceiling QPS is (0 when at or above it)
    return {"in_flight": c, "latency_ms": mean_ms, "qps_cap": cap, "open_loop": float(open_loop),
            "below_pct": max(0.0, 100.0 * (cap - qps) / cap), "over_pct": max(0.0, 100.0 * (qps - cap) / cap)}


@dataclass(frozen=True)
class SelfChecks:
    """An open-loop run's two self-checks, kept apart because they blame different sides:
    send fidelity is the client's (did it send on schedule), completion the server's (answered
    per second over offered). None: not measured."""

    target: float
    achieved: float | None
    completion: float | None  # % of the offered rate answered
    send_fidelity: bool | None
    lag_p99_ms: float | None
    lag_limit_ms: float
    basis: str  # where send_fidelity came from


def self_checks(run: Run) -> SelfChecks | None:
    """The two self-checks of an open-loop run; a summary written before they were recorded
    apart has them derived from its rate and send-lag p99 (and says so)."""
    rate = run.rate
    if not rate or not rate.target:
        return None
    target = rate.target
    lag = run.send_lag_ms.p99 if run.send_lag_ms else None
    limit = send_lag_limit_ms(target)
    if rate.send_fidelity is not None:
        fidelity, basis = rate.send_fidelity, "as the generator recorded it"
    elif lag is not None:
        fidelity, basis = lag <= limit, "derived from the recorded send lag"
    else:
        fidelity, basis = None, "send lag not recorded"
    if rate.completion is not None:
        completion: float | None = 100.0 * rate.completion
    else:
        completion = 100.0 * rate.achieved / target if rate.achieved is not None else None
    return SelfChecks(target, rate.achieved, completion, fidelity, lag, limit, basis)


def _ms(v: float | None) -> str:
    return f"{v:.2f}" if v is not None else "n/a"


@dataclass
class _Check:
    """One ceiling comparison: a rate against the ceiling it is held to."""

    scope: str  # "path c1->srv" (one client's path), "path", "aggregate of all clients", "loopback"
    where: str  # "server rx", "c1 -> server", ...
    direction: str  # rx or tx, as the server sees it
    top: bool  # the server's own total (not one client's share)
    qps: float
    rate: float
    ppr: float
    ppr_source: str
    cap: float
    lower_bound: str | None  # why the ceiling is only a lower bound, else None

    @property
    def assumed(self) -> bool:
        """The rate is QPS x an assumed packets/request: it decides nothing."""
        return self.ppr_source == "assumed"

    @property
    def use(self) -> float:
        return 100.0 * self.rate / self.cap


def _ceiling_checks(run: Run, pk: dict[str, Any] | None, server: str, loopback: bool,
                    th: Thresholds, flags: list[str]) -> list[_Check]:
    base = run.baseline
    qps = run.qps or 0.0
    if qps <= 0:
        return []
    if pk:
        ppr = {"rx": pk["rx_per_request"], "tx": pk["tx_per_request"]}
        source = f"measured on {pk['interface']}"
    else:
        # Assumed packets per request, per direction: across hosts half go each way; on lo
        # all of them show as rx (so the rate printed is exactly QPS x the ratio printed).
        each = th.packets_per_request if loopback else th.packets_per_request / 2
        ppr, source = {"rx": each, "tx": each}, "assumed"
        flags.append(f"packets per request not measured; assumed {th.packets_per_request:g}")

    def why(c: Ceiling, d: str) -> str | None:
        if not c.lower_bound:
            return None
        if c.cpu_bound_rx is None and c.cpu_bound_tx is None:  # recorded before directions were
            return c.cpu_bound or "iperf3 CPU-bound"
        return c.cpu_bound_rx if d == "rx" else c.cpu_bound_tx

    def cap_of(c: Ceiling, d: str) -> float | None:
        return (c.pps_delivered_reverse if d == "tx" else None) or c.pps_delivered

    checks: list[_Check] = []
    directions = ("rx",) if loopback else ("rx", "tx")
    clients = run.clients
    paths = base.paths if base else {}
    multi = len(clients) > 1
    if multi and paths:
        for c in clients:
            p = paths.get(f"{c.host}->{server}")
            cq = c.qps
            if not p or not cq:
                continue
            for d in directions:
                cap = cap_of(p, d)
                if cap:
                    checks.append(_Check(f"path {c.host}->{server}",
                                         f"{c.host} {'->' if d == 'rx' else '<-'} server", d, False,
                                         cq, cq * ppr[d], ppr[d], source, cap, why(p, d)))
    agg = base.aggregate if multi and base else None
    if multi and not agg:
        flags.append("aggregate ceiling not measured (all clients at once): the server's total "
                     "packet rate is held to no ceiling")
    top = agg or (None if multi else base)
    if top:
        for d in directions:
            cap = cap_of(top, d)
            if not cap:
                continue
            rate = pk[f"{d}_pps"] if pk else qps * ppr[d]
            scope = "loopback" if loopback else ("aggregate of all clients" if multi else "path")
            checks.append(_Check(scope, "loopback" if loopback else f"server {d}", d, True,
                                 qps, rate, ppr[d], source, cap, why(top, d)))
    return checks


def _allowances(run: Run, th: Thresholds) -> tuple[list[str], list[str]]:
    """(evidence of allowance counters growing at a rate that matters, notes of ones that don't)."""
    seconds = _duration(run) or 0.0
    big, small = [], []
    for host, d in (run.nic_allowances or {}).items():
        exceeded = {k: v for k, v in d.exceeded.items() if v}
        if not exceeded:
            continue
        counters = ", ".join(f"{k} +{v:,} ({v / seconds:,.1f}/s)" if seconds else f"{k} +{v:,}"
                             for k, v in exceeded.items())
        if seconds and max(exceeded.values()) / seconds >= th.allowance_per_s:
            big.append(say("allowance", host=host, seconds=f"{seconds:.1f}", counters=counters))
        else:
            small.append(say("allowance-small", host=host, seconds=f"{seconds:.1f}",
                             threshold=f"{th.allowance_per_s:g}", counters=counters))
    return big, small


def analyse_run(run: Run, *, server: str, interface: str | None, loopback: bool,
                th: Thresholds) -> Analysis:
    qps = run.qps or 0.0
    pk = packets(run, server, interface, loopback)
    evidence: list[str] = []
    flags: list[str] = []
    near: list[str] = []

    def close(label: str, value: float, threshold: float) -> None:
        if abs(value - threshold) < th.near:
            near.append(f"near threshold: {label} {pct(value, threshold)} vs {threshold:g}%")

    # --- the network -----------------------------------------------------------------------
    checks = _ceiling_checks(run, pk, server, loopback, th, flags)
    for c in checks:
        close(f"ceiling use ({c.scope}, {c.where})", c.use, th.ceiling_use)
    hit = [c for c in checks if c.use >= th.ceiling_use]
    trusted = max((c for c in hit if not c.lower_bound and not c.assumed), key=lambda c: c.use,
                  default=None)
    # reached only on an assumed packets/request: the network may or may not be the limit
    unknown = max((c for c in hit if not c.lower_bound and c.assumed), key=lambda c: c.use, default=None)
    bounded = max((c for c in hit if c.lower_bound), key=lambda c: c.use, default=None)
    allowance, allowance_small = _allowances(run, th)
    flags += allowance_small

    # --- the server ---------------------------------------------------------------------
    srv = _server_cpus(run)
    server_measured = "max_busy" in srv or "thread_busy_max" in srv
    server_ev: list[tuple[str, str]] = []  # (rule, evidence) of each way it is saturated
    if "max_work" in srv:
        w, s = srv["max_work"], srv["max_split"]
        close(f"server work on CPU {srv['max_cpu']}", w, th.server_busy)
        text = say("server-work", cpu=srv["max_cpu"], threads=pct(srv["max_threads"]), soft=pct(s["soft"]),
                   irq=pct(s["irq"]), work=pct(w, th.server_busy), rel=rel(w, th.server_busy),
                   threshold=f"{th.server_busy:g}%", busy=pct(srv["max_busy"]))
        server_ev.append(("server-cpu" if w >= th.server_busy else "", text))
    elif "max_busy" in srv:
        b, s = srv["max_busy"], srv["max_split"]
        close(f"server CPU {srv['max_cpu']}", b, th.server_busy)
        text = say("server-cpu", cpu=srv["max_cpu"], busy=pct(b, th.server_busy), rel=rel(b, th.server_busy),
                   threshold=f"{th.server_busy:g}%", usr=pct(s["usr"]), sys=pct(s["sys"]),
                   soft=pct(s["soft"]), other=pct(max(0.0, b - s["usr"] - s["sys"] - s["soft"])))
        server_ev.append(("server-cpu" if b >= th.server_busy else "", text))
    if "thread_busy_max" in srv:
        tb, tw = srv["thread_busy_max"], srv["thread_busy_wait"]
        demand = tb + tw
        close("busiest server thread (running + waiting)", demand, th.server_busy)
        others = srv["thread_others_max"]
        values = {"busy": pct(tb), "wait": pct(tw), "demand": pct(demand, th.server_busy),
                  "rel": rel(demand, th.server_busy), "threshold": f"{th.server_busy:g}%"}
        # "Hot" needs threads that could share the load: the server's own per-thread counters
        # say how many serve requests (an acceptor thread idling beside one IO thread is not it).
        serving = len(run.server_counters.threads if run.server_counters else ()) or srv["n_threads"]
        if demand >= th.server_busy and others is not None and others < th.hot_thread_others \
                and serving >= 2:
            bal = balance(run)
            ratio = bal.requests_max_over_mean if bal else None
            text = say("hot-thread", n=srv["n_threads"], **values, others=pct(others, th.hot_thread_others),
                       balance=f"; requests max/mean {ratio:.2f} (server counters)" if ratio else "")
        else:
            text = say("server-thread", **values)
        server_ev.append(("server-thread" if demand >= th.server_busy else "", text))
        wait = srv["thread_wait_max"]
        if wait >= 1.0:
            close("server run-queue wait", wait, th.run_queue_wait)
            server_ev.append(("server-kept-from-running" if wait >= th.run_queue_wait else "",
                              say("wait", wait=pct(wait, th.run_queue_wait), rel=rel(wait, th.run_queue_wait),
                                  threshold=f"{th.run_queue_wait:g}%")))
    vol = run.server_cpu.cswch_s if run.server_cpu else None
    invol = run.server_cpu.nvcswch_s if run.server_cpu else None
    if vol is not None and invol is not None:
        total = vol + invol
        share = 100.0 * invol / total if total > 0 else 0.0
        # Switches support, never decide: tens per second flip with noise, and a voluntary
        # switch may be epoll_wait (starved) as well as a lock or a sleep (serialised).
        if total < th.min_switch_rate:
            note = f"(under {th.min_switch_rate:g}/s in all: too few to mean anything)"
        else:
            note = f"{rel(share, th.preempted_share)} {th.preempted_share:g}%" + (
                " (preempted)" if share >= th.preempted_share else "")
        server_ev.append(("",
                          say("switches", vol=f"{vol:,.0f}", invol=f"{invol:,.0f}",
                              share=pct(share, th.preempted_share), note=note)))
    server_rules = [r for r, _ in server_ev if r]
    server_saturated = bool(server_rules)

    # --- the load generator -------------------------------------------------------------
    cli = _client_cpus(run)
    client_ev: list[tuple[bool, str]] = []
    # The generator's own threads (pidstat: %CPU + %wait), when the record has them, decide
    # instead of its CPUs' busy %, which counts whatever else runs there.
    procs = {h: p for h, p in (run.client_proc or {}).items() if p.busy is not None}
    for host, p in procs.items():
        busy, w = p.busy or 0.0, p.wait or 0.0
        # On a host with a CPU quota, pidstat's %wait includes the time the quota throttled
        # it, so wait cannot tell the quota from contention: its use of the quota decides.
        sized = p.of_capacity is not None and bool(p.capacity)
        close(f"load generator thread on {host} (running + waiting)", busy + w, th.client_busy)
        if w >= 1.0:
            close(f"load generator run-queue wait on {host}", w, th.run_queue_wait)
            client_ev.append((w >= th.run_queue_wait and not sized,
                              say("client-wait", host=host, wait=pct(w, th.run_queue_wait),
                                  rel=rel(w, th.run_queue_wait), threshold=f"{th.run_queue_wait:g}%")))
        client_ev.append((busy + w >= th.client_busy and not sized,
                          say("client-demand", host=host, busy=pct(busy), wait=pct(w),
                              demand=pct(busy + w, th.client_busy), rel=rel(busy + w, th.client_busy),
                              threshold=f"{th.client_busy:g}%")))
        if sized:  # busy against the quota
            close(f"load generator on {host} of its CPU quota", p.of_capacity, th.client_busy)
            client_ev.append((p.of_capacity >= th.client_busy,
                              say("client-quota", host=host, share=pct(p.of_capacity, th.client_busy),
                                  capacity=f"{p.capacity:g}", rel=rel(p.of_capacity, th.client_busy),
                                  threshold=f"{th.client_busy:g}%")))
    if cli:
        close(f"load generator CPU {cli['cpu']} on {cli['host']}", cli["busy"], th.client_busy)
        client_ev.append((cli["busy"] >= th.client_busy and not procs,
                          say("client-cpu", cpu=cli["cpu"], host=cli["host"],
                              busy=pct(cli["busy"], th.client_busy), rel=rel(cli["busy"], th.client_busy),
                              threshold=f"{th.client_busy:g}%")))
    # Requests that waited for a free connection are late because every connection was busy
    # (the server or the network kept them), not because the generator's CPU fell behind; with
    # its CPU measured and clear, that lag and a missed rate are not client evidence.
    queued = _queued(run)
    cpu_clear = bool(procs or cli) and not any(s for s, _ in client_ev)
    waited = cpu_clear and queued is not None and queued[0] >= th.queued_share
    sent_late = run.send_lag_ms  # open-loop generators report it; wrk does not
    lag = sent_late.mean if sent_late else None
    late = lag is not None and lag >= th.send_lag_ms
    if late:
        client_ev.append((not waited, say("send-lag", lag=f"{lag:.2f}", threshold=f"{th.send_lag_ms:g}")))
    checks_ = self_checks(run)
    unsustained = checks_ is not None and checks_.send_fidelity is False
    if checks_ and unsustained:
        client_ev.append((not waited, say("send-fidelity", lag=_ms(checks_.lag_p99_ms),
                                          limit=f"{checks_.lag_limit_ms:g}", basis=checks_.basis)))
    short = checks_ is not None and checks_.completion is not None and checks_.completion < th.completion
    if checks_ and short:
        completion_line = say("completion", achieved=f"{checks_.achieved or 0:,.0f}",
                              target=f"{checks_.target:,.0f}",
                              share=pct(checks_.completion, th.completion, 2),
                              threshold=f"{th.completion:g}%",
                              fidelity=("the generator sent on schedule" if checks_.send_fidelity
                                        else "its send lag was that wait" if waited
                                        else "the generator also sent late" if unsustained
                                        else "whether the generator sent on schedule is not measured"))
        server_ev.append(("", completion_line))
        if checks_.send_fidelity:
            client_ev.append((False, say("send-fidelity-ok", lag=_ms(checks_.lag_p99_ms),
                                         limit=f"{checks_.lag_limit_ms:g}", basis=checks_.basis)))
    if waited and queued and (late or unsustained or short):
        client_ev.append((False, say("queued", share=pct(queued[0]), conns=f"{in_flight(run) or '?'}",
                                     depth=f"{queued[1]:,}", threshold=f"{th.client_busy:g}%")))
    client_measured = bool(client_ev)
    client_saturated = any(s for s, _ in client_ev)
    if cli and cli["busy"] >= th.client_busy and not procs:
        flags.append(f"load generator at {pct(cli['busy'], th.client_busy)} CPU (>= {th.client_busy:g}%): "
                     "the result says little about the server's own limit")
    elif procs and client_saturated:
        flags.append("load generator saturated (its own threads, above): the result says little about "
                     "the server's own limit")

    errors = run.failed_requests
    if errors:
        flags.append(f"{errors:,} socket errors or non-2xx responses")
    if pk and pk.get("retrans_s"):
        flags.append(f"{pk['retrans_s']:,.0f} TCP retransmits/s on the server host")
    if pk and pk.get("drops_s"):
        flags.append(f"{pk['drops_s']:,.0f} dropped packets/s on {pk['interface']}")

    def ceiling_text(c: _Check) -> str:
        return say("ceiling", qps=f"{c.qps:,.0f}", ppr=f"{c.ppr:.3f}", ppr_source=c.ppr_source,
                   rate=f"{c.rate:,.0f}", where=c.where, use=pct(c.use, th.ceiling_use),
                   rel=rel(c.use, th.ceiling_use), threshold=f"{th.ceiling_use:g}%", cap=f"{c.cap:,.0f}",
                   scope=c.scope)

    server_lines = [t for _, t in server_ev]
    client_lines = [t for _, t in client_ev]
    ll = littles_law(run)
    if ll and ll["over_pct"] >= th.littles_law:
        flags.append(f"mean {_ll_what(ll)} {ll['latency_ms']:.3f} ms is inconsistent with QPS: Little's law "
                     f"gives C / QPS = {ll['in_flight'] / qps * 1000:.3f} ms (a latency figure to distrust)")
    rule: str
    # --- the rules, in RULES order ------------------------------------------------------------
    if not server_measured and not trusted:
        rule, verdict = "unmeasured", INCONCLUSIVE
        evidence.append(say("missing", what="server CPU (mpstat) and threads (pidstat)"))
        evidence += client_lines
    elif allowance:
        if server_saturated or client_saturated:
            rule, verdict = "nic-allowance", INCONCLUSIVE
            evidence += [say("network-and-cpu"), *allowance, *server_lines, *client_lines]
        else:
            rule, verdict = "nic-allowance", NETWORK
            evidence += [*allowance, *server_lines, *client_lines]
    elif trusted and not (loopback and (server_saturated or client_saturated)):
        if server_saturated or client_saturated:  # as for the allowance counters: both named
            rule, verdict = "ceiling", INCONCLUSIVE
            evidence += [say("ceiling-and-cpu"), ceiling_text(trusted), *server_lines, *client_lines]
        else:
            rule, verdict = "ceiling", NETWORK
            evidence += [ceiling_text(trusted), *server_lines, *client_lines]
    elif unknown and not (loopback and (server_saturated or client_saturated)):
        rule, verdict = "packets-unknown", INCONCLUSIVE
        evidence += [say("packets-unknown", ppr=f"{th.packets_per_request:g}"), ceiling_text(unknown),
                     *server_lines, *client_lines]
    elif server_saturated and client_saturated:
        rule, verdict = "both-saturated", INCONCLUSIVE
        evidence += [say("both"), *server_lines, *client_lines]
    elif server_saturated:
        rule, verdict = server_rules[0], SERVER
        evidence += [t for r, t in server_ev if r] + [t for r, t in server_ev if not r] + client_lines
    elif client_saturated:
        if "max_busy" not in srv:
            rule, verdict = "unmeasured", INCONCLUSIVE
            evidence.append(say("missing", what="server CPUs (mpstat, softirq included)"))
            evidence += [*client_lines, *server_lines]
        else:
            rule, verdict = "client", CLIENT
            evidence += [t for s, t in client_ev if s] + [t for s, t in client_ev if not s] + server_lines
    elif not client_measured:
        rule, verdict = "nothing-fits", INCONCLUSIVE
        evidence += [say("missing", what="load generator CPU (mpstat)"), *server_lines]
    elif ll and ll["below_pct"] <= th.littles_law and not bounded:
        rule, verdict = "latency-bound", LATENCY
        evidence += [_littles_text(ll, qps, th), say("latency-bound"), *server_lines, *client_lines]
    elif short and (checks_ and checks_.send_fidelity or waited) and "max_busy" in srv:
        rule, verdict = "server-completion", SERVER
        evidence += [completion_line, *[t for t in server_lines if t != completion_line], *client_lines]
    else:
        rule, verdict = "nothing-fits", INCONCLUSIVE
        evidence += [*server_lines, *client_lines]
        if ll:
            evidence.append(_littles_text(ll, qps, th))
    if bounded and verdict != NETWORK:
        evidence.append(say("lower-bound", cap=f"{bounded.cap:,.0f}", scope=bounded.scope,
                            why=bounded.lower_bound, use=pct(bounded.use)))
    if checks and verdict != NETWORK:
        worst = max(checks, key=lambda c: c.use)
        evidence.append(say("ceiling-use", use=pct(worst.use, th.ceiling_use), scope=worst.scope))
    if not server_measured and verdict != INCONCLUSIVE:
        evidence.append(say("missing", what="server CPU (mpstat) and threads (pidstat)"))
    flags += near

    server_busy = srv.get("max_busy")
    ceiling = next((c.cap for c in checks if c.top), None)
    use = {c.direction: round(c.use / 100, 4) for c in checks if c.top}
    cost = cost_per_request(run, srv)
    return Analysis(
        verdict=verdict,
        rule=rule,
        evidence=tuple(evidence),
        flags=tuple(flags),
        near_threshold=bool(near),
        packets_per_request=(PacketsPerRequest(
            rx=round(pk["rx_per_request"], 3), tx=round(pk["tx_per_request"], 3),
            total=round(pk["per_request"], 3),
            tcp_segments=(round(pk["tcp_segments_per_request"], 3)
                          if "tcp_segments_per_request" in pk else None),
            source=f"sar DEV {pk['interface']} on {server}") if pk else None),
        packet_rate=Pair(rx=pk["rx_pps"], tx=pk["tx_pps"]) if pk else None,
        ceiling_pps=ceiling,
        ceiling_use=Pair(**use) if use else None,
        ceiling_lower_bound=any(c.lower_bound for c in checks) if checks else None,
        path_use={f"{c.where} ({c.scope})": round(c.use / 100, 4) for c in checks if not c.top} or None,
        server_busy_pct=round(server_busy, 2) if server_busy is not None else None,
        server_cpu_split_pct=CpuSplit(**{k: round(v, 2) for k, v in srv["split"].items()})
        if "split" in srv else None,
        client_busy_pct=round(cli["busy"], 2) if cli else None,
        littles_law=LittlesLaw(**{k: round(v, 3) for k, v in ll.items() if k != "open_loop"},
                               open_loop=bool(ll["open_loop"])) if ll else None,
        cpu_us_per_request=cost,
        switches=Switches(voluntary_s=vol, involuntary_s=invol),
        balance=balance(run),
    )


def _ll_what(ll: dict[str, float]) -> str:
    return "service time" if ll.get("open_loop") else "latency"


def _littles_text(ll: dict[str, float], qps: float, th: Thresholds) -> str:
    common = {"c": f"{int(ll['in_flight']):,}", "l": f"{ll['latency_ms']:.3f}", "what": _ll_what(ll),
              "cap": f"{ll['qps_cap']:,.0f}", "qps": f"{qps:,.0f}"}
    if ll["over_pct"] >= th.near:
        return say("littles-law-over", **common, over=pct(ll["over_pct"]),
                   implied=f"{ll['in_flight'] / qps * 1000:.3f}")
    d = ll["below_pct"]
    return say("littles-law", **common, diff=pct(d, th.littles_law), rel=rel(d, th.littles_law),
               threshold=f"{th.littles_law:g}%")


def along_connections(runs: Iterable[Run], th: Thresholds | None = None) -> list[Run]:
    """Across the matrix: for each (arch, threads), QPS and mean latency along the connections
    axis. Where nothing saturated, QPS that stays flat while connections at least double means
    the server serialises requests (server-bound, 'server-serialised'); QPS that rises with them
    makes a latency-bound run concurrency-bound. Returns the runs, those it concerns with their
    analysis rewritten."""
    th = th or Thresholds()
    runs = list(runs)
    verdict_of: dict[int, Analysis] = {}  # index in runs -> rewritten analysis
    groups: dict[PointKey, dict[int, list[int]]] = {}
    for i, r in enumerate(runs):
        # a closed loop only: at a fixed offered rate QPS follows the rate, not the connections;
        # along connections with every other axis of the point held
        if isinstance(r.connections, int) and r.analysis is not None and r.qps is not None \
                and r.key["load.rate"] is None:
            groups.setdefault(r.key.without("load.connections"), {}).setdefault(r.connections, []).append(i)

    def analysis_of(i: int) -> Analysis:
        return verdict_of.get(i) or runs[i].analysis or Analysis()

    for by_c in groups.values():
        conns = sorted(by_c)
        med = {c: (statistics.median(runs[i].qps or 0.0 for i in by_c[c]),
                   statistics.median(runs[i].latency_ms.mean or 0.0 for i in by_c[c]))
               for c in conns}
        for n, c1 in enumerate(conns):
            c2 = next((c for c in conns[n + 1:] if c >= 2 * c1), None)
            if c2 is None:
                continue
            (q1, l1), (q2, l2) = med[c1], med[c2]
            if q1 <= 0 or l1 <= 0:
                continue
            qx, cx = q2 / q1, c2 / c1
            # only runs where everything was measured and nothing saturated (the concurrency
            # rule held): an unmeasured load generator could be the flat part itself
            idle = [i for c in (c1, c2) for i in by_c[c]
                    if analysis_of(i).rule in ("latency-bound", "concurrency", "server-serialised")]
            values = {"c1": c1, "c2": c2, "cx": f"{cx:g}", "q1": f"{q1:,.0f}", "q2": f"{q2:,.0f}",
                      "qx": f"{qx:.2f}", "threshold": f"{th.flat_gain:g}"}
            if qx < th.flat_gain and l2 > l1:
                text = say("serialised", **values, l1=f"{l1:.3f}", l2=f"{l2:.3f}")
                for i in idle:
                    a = analysis_of(i)
                    evidence = a.evidence if text in a.evidence else (text, *a.evidence)
                    verdict_of[i] = a.model_copy(update={"evidence": evidence, "verdict": SERVER,
                                                         "rule": "server-serialised"})
            elif qx >= th.flat_gain:
                text = say("scales", **values)
                for i in by_c[c1]:
                    a = analysis_of(i)
                    if a.verdict in (LATENCY, CONCURRENCY) and text not in a.evidence:
                        verdict_of[i] = a.model_copy(update={"evidence": (text, *a.evidence),
                                                             "verdict": CONCURRENCY, "rule": "concurrency"})
    return [r.model_copy(update={"analysis": verdict_of[i]}) if i in verdict_of else r
            for i, r in enumerate(runs)]


def _median(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summarise_points(runs: Iterable[Run]) -> list[Point]:
    """Median and spread per matrix point over its repetitions (pyperf-style median +- MAD),
    and whether the repetitions agree on the verdict. The one place a point's medians are
    computed (the report and compare read these). Runs without a QPS are left out; a point
    whose runs have no latency gets None there."""
    groups: dict[PointKey, list[Run]] = {}
    for r in runs:
        if r.qps is not None:
            groups.setdefault(r.key, []).append(r)
    points = []
    for key, rs in groups.items():
        qps = [r.qps or 0.0 for r in rs]
        med = statistics.median(qps)
        mad = statistics.median(abs(q - med) for q in qps)
        verdicts: dict[str, int] = {}
        for r in rs:
            v = r.analysis.verdict if r.analysis else None
            if v:
                verdicts[v] = verdicts.get(v, 0) + 1
        stdev = statistics.stdev(qps) if len(qps) > 1 else 0.0
        n_judged = sum(verdicts.values())
        if not verdicts:
            agreement, verdict_text = None, None
        elif len(verdicts) == 1:
            (v,) = verdicts
            agreement, verdict_text = "agreeing", f"{v} ({n_judged} of {n_judged})"
        else:
            agreement = "split"
            verdict_text = "split: " + ", ".join(f"{v} {k}" for v, k in
                                                 sorted(verdicts.items(), key=lambda kv: -kv[1]))

        points.append(Point(
            **Point.fields_of(key), n=len(rs),
            qps_median=med, qps_min=min(qps), qps_max=max(qps), qps_mad=mad, qps_stdev=stdev,
            # pyperf warns at a std dev of 10% of the mean or more
            unstable=bool(len(qps) > 1 and stdev >= 0.1 * statistics.fmean(qps)),
            p50_ms_median=_median(r.latency_ms.p50 for r in rs),
            p99_ms_median=_median(r.latency_ms.p99 for r in rs),
            latency_ms=Latency(**{k: v for k in Latency.model_fields
                                  if (v := _median(r.latency_ms.at(k) for r in rs)) is not None}),
            achieved=_median(r.rate.achieved if r.rate else None for r in rs),
            verdicts=verdicts, verdict_agreement=agreement, verdict_text=verdict_text,
        ))
    return points


def across_runs(runs: Iterable[Run], th: Thresholds | None = None) -> tuple[list[Run], list[Point]]:
    """What needs every run of the matrix: the matrix-wide rule (along_connections) rewrites
    some analyses, then the points summarise the runs as rewritten."""
    runs = along_connections(runs, th)
    return runs, summarise_points(runs)


def analyse(summary: Summary, *, th: Thresholds, server: str, interface: str | None,
            loopback: bool) -> Summary:
    """The summary with every run analysed again by the current rules, and its points."""
    runs = [r.model_copy(update={"analysis": analyse_run(r, server=server, interface=interface,
                                                         loopback=loopback, th=th)})
            for r in summary.runs]
    runs, points = across_runs(runs, th)
    return summary.model_copy(update={"runs": tuple(runs), "points": tuple(points)})
