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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from orchestrator import kernel
from orchestrator.point import PointKey
from orchestrator.records import (
    Analysis,
    Balance,
    BusiestThread,
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
    ThreadCpu,
)
from orchestrator.tools.loadgen import send_lag_limit_ms

NETWORK, SERVER, CLIENT = "network-bound", "server-bound", "client-bound"
CONCURRENCY, INCONCLUSIVE = "concurrency-bound", "inconclusive"
LATENCY = "latency-bound"  # one run, nothing saturated, QPS = C/L: more connections or a serial server
ACCEPT, LOSS = "accept-bound", "loss-bound"  # the kernel's side: listen queue full; segments lost
VERDICTS = (NETWORK, ACCEPT, LOSS, SERVER, CLIENT, LATENCY, CONCURRENCY, INCONCLUSIVE)


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
    throttled_periods: float = 50.0  # % of a quota-held host's CFS periods throttled: at its quota
    loss_retrans: float = 1.0  # % of a host's segments sent that were retransmissions: loss-bound
    loss_drops_per_s: float = 10.0  # receive-side socket drops per second: loss-bound

    @classmethod
    def from_scenario(cls, sc: Any) -> Thresholds:
        t = sc.thresholds
        return cls(t.ceiling_use, t.server_busy, t.client_busy, t.packets_per_request)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Thresholds:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# Every evidence sentence the analysis can print, by name (tests render each one).
TEMPLATES: dict[str, str] = {
    "missing": "{what} not measured: cannot tell whether it was saturated",
    "ceiling": "QPS {qps} x {ppr} packets/request ({ppr_source}) = {rate} pps ({where}) = "
               "{use} {rel} {threshold} of the {cap} pps ceiling measured by iperf3 ({scope})",
    "bandwidth": "QPS {qps} x {bpr} bytes/request of TCP payload ({source}) = {rate} Mbit/s ({where}) "
                 "= {use} {rel} {threshold} of the {cap} Mbit/s TCP bandwidth ceiling measured by "
                 "iperf3 ({scope}; {basis})",
    "lower-bound": "the {cap} ceiling ({scope}) is a lower bound: iperf3 was CPU-bound "
                   "({why}); the load reached {use} of it, so the network's limit is unknown",
    "lower-bound-stale": "the {cap} ceiling ({scope}) is a lower bound: {why} (client hosts added since "
                         "the baseline); the load reached {use} of it, so the network's limit is unknown",
    "allowance": "{host}: NIC allowance counters grew over {seconds} s: {counters}",
    "allowance-small": "{host}: NIC allowance counters grew too slowly to matter over {seconds} s "
                       "(< {threshold}/s): {counters}",
    "server-cpu": "server CPU {cpu} busy {busy} {rel} {threshold} (usr {usr}, sys {sys}, "
                  "softirq {soft}, other {other})",
    "server-work": "server work on CPU {cpu}: its threads {threads} + softirq and irq not charged to "
                   "them {extra} = {work} {rel} {threshold} (the CPU was {busy} busy in all, softirq "
                   "{soft} + irq {irq}; {basis})",
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
    "client-throttled": "load generator on {host}: its CPU quota throttled it in {share} of {periods} "
                        "CFS periods {rel} {threshold} ({throttled} of the time), and it waited for a "
                        "CPU {other} of the time besides {orel} {wait_threshold} (other work on its CPUs)",
    "send-lag": "load generator send lag {lag} ms mean >= {threshold} ms: it could not send on schedule",
    "queued": "{share} of the load generator's requests waited for a free connection (all {conns} "
              "busy; up to {depth} waiting) while its CPU was below {threshold}: its send lag is "
              "that wait, set by the server or the network, not by the generator",
    "send-fidelity": "load generator did not send on schedule: send lag p99 {lag} ms > {limit} ms "
                     "(send fidelity, its own self-check; {basis})",
    "send-fidelity-queued": "load generator's send lag p99 {lag} ms > {limit} ms is the wait for a free "
                            "connection, not its own sending (send fidelity as {basis} counts that wait)",
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
    "accept": "ListenOverflows {overflows} ({per_s}/s, {per_request} per request) and ListenDrops "
              "{drops} on {host}: the listen queue was full, so the kernel dropped completed "
              "handshakes the server had not accepted yet (a queue holds min(backlog, "
              "net.core.somaxconn)){shared}",
    "accept-and-client": "the server's listen queue overflowed (accept-bound, flagged) while the load "
                         "generator was saturated: both limit the run; give the load generator more "
                         "CPUs to find the server's limit",
    "loss": "{retrans} of {segs} segments retransmitted by {side} ({pct} {rel} {threshold}), "
            "{timeouts} retransmission timeouts, {drops} receive-side drops ({drops_s}/s; "
            "threshold {drops_threshold}/s) on the path {path}",
}


def say(name: str, **values: Any) -> str:
    return TEMPLATES[name].format(**values)


# An open-loop run's two self-checks, in words (the README's verdict section ends with them).
SELF_CHECKS: dict[str, str] = {
    "send fidelity": "the client's own check: did the generator send on schedule (send lag p99 "
                     "within max(1 ms, 10% of the interval between requests)). Lag that was the wait "
                     "for a free connection (at least {queued_share:g}% of requests queued, all "
                     "connections busy, the generator's CPU clear) is the server's or the network's "
                     "slowness, not the generator's. Only this check failing, or the generator's CPU, "
                     "makes a run client-bound or makes auto-scale add a client host",
    "completion": "the server's check: answered per second against offered. Below "
                  "{completion:g}% the server fell short of the offered rate (server-completion); it "
                  "is never client evidence. A summary written before the two were recorded apart "
                  "has them derived from its rate and send lag, and says so",
}


def rules_markdown(th: Thresholds | None = None) -> str:
    """The README's list of rules, from RULES and the default thresholds, then the open loop's
    self-checks (SELF_CHECKS)."""
    th = th or Thresholds()
    values = {f.name: getattr(th, f.name) for f in fields(th)}
    rules = [f"- **{r.verdict}** ({r.name}): {r.text.format(**values)}" for r in RULES]
    checks = [f"- **self-check: {k}**: {v.format(**values)}" for k, v in SELF_CHECKS.items()]
    return "\n".join(rules + checks)


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
    rkb, tkb = _num(iface.get("rx_kbs")), _num(iface.get("tx_kbs"))
    if rkb is not None and tkb is not None:
        # TCP payload: the interface's bytes less the headers of each packet sar counted (a
        # GSO/GRO packet is counted once with one set of headers, as its bytes are)
        for d, kb, pps in (("rx", rkb, rx), ("tx", tkb, tx)):
            payload = max(0.0, kb * 1024 - pps * HEADER_BYTES)
            out[f"{d}_payload_bps"] = payload * 8
            out[f"{d}_bytes_per_request"] = payload / qps
    return out


HEADER_BYTES = 66  # Ethernet 14 + IPv4 20 + TCP 20 with the timestamp option 12
BANDWIDTH_BASIS = (f"TCP payload on both sides: sar's interface bytes less {HEADER_BYTES} bytes of "
                   "Ethernet, IP and TCP headers per packet it counted, against iperf3's TCP goodput")


def _unowned(busy: float, threads: float, kernel: float, other: float = 0.0) -> float:
    """The softirq and irq time of a CPU not already charged to the server's threads there.

    With tick-based CPU accounting and no IRQ time accounting (CONFIG_IRQ_TIME_ACCOUNTING
    unset, as on this project's VM) a tick that lands in softirq is counted as the CPU's
    %soft *and* charged to the running task's system time: softirq that ran in a server
    thread's context is in that thread's %CPU already. Softirq charged to no server thread
    (to the idle task, ksoftirqd or another process) is part of the CPU's busy time the
    threads were not charged for, so it is at most busy - threads - `other` (other tasks'
    measured time on the CPU: without it, their time would let softirq already in the threads'
    time be added again). With IRQ time accounting, softirq is charged to no task and this is
    simply softirq + irq."""
    return min(kernel, max(0.0, busy - threads - other))


def _accounting(busy: float, threads: float, kernel: float) -> str:
    """Which accounting the figures show (the basis the evidence states)."""
    if threads + kernel > busy + 0.5:  # they disagree: some softirq is in the threads' time
        return (f"softirq charged to the running thread (tick accounting): its threads + softirq + irq "
                f"would be {pct(threads + kernel)}, more than the CPU's busy")
    return "threads + softirq + irq are within the CPU's busy: none of it counted twice"


def _less(other: float | None) -> str:
    """The cost basis's words for other tasks' time on the server's CPUs, subtracted or not."""
    return " - other tasks' time there (cpuacct)" if other is not None else ""


def _server_cpus(run: Run) -> dict[str, Any]:
    """The server's pinned CPUs (mpstat: busy includes softirq) and its threads (pidstat)."""
    host = run.server_host_cpu
    rows = {k: c for k, c in host.cpus.items() if c.busy is not None}
    out: dict[str, Any] = {}
    other = host.other  # other tasks' time on these CPUs (cpuacct, in sum): one CPU's is its own
    one = other if other is not None and len(rows) == 1 else 0.0
    threads = [t for t in run.server_cpu.threads if t.busy is not None]
    placed = [t for t in threads if t.cpus]
    if rows:
        out["busy"] = statistics.fmean(c.busy or 0.0 for c in rows.values())

        def on_cpu(k: str) -> float:
            return sum((t.busy or 0.0) / len(t.cpus or ()) for t in placed if int(k) in (t.cpus or ()))

        def kernel(k: str) -> float:
            return (rows[k].soft or 0.0) + (rows[k].irq or 0.0)

        def work(k: str) -> float:
            # The server's own work on CPU k, counted once: its threads' %CPU there (pidstat) plus
            # the softirq and irq (the network stack working for it) not charged to them (_unowned).
            # Other tasks' time is not its work; if it crowds the server out, its run-queue wait shows.
            t = on_cpu(k)
            return t + _unowned(rows[k].busy or 0.0, t, kernel(k), one)

        if placed:
            top = max(rows, key=work)
            t = on_cpu(top)
            out["max_work"], out["max_threads"] = work(top), t
            out["max_unowned"] = out["max_work"] - t
            unmeasured = "softirq not measured on this CPU: the server's work is at least its threads'"
            out["max_basis"] = (unmeasured if rows[top].soft is None
                                else _accounting(rows[top].busy or 0.0, t, kernel(top)))
            per_cpu = sum(_unowned(rows[k].busy or 0.0, on_cpu(k), kernel(k)) for k in rows)
            # other tasks' time is known in sum over the CPUs only: taken out of their sum
            out["unowned"] = per_cpu if other is None else _unowned(
                sum(c.busy or 0.0 for c in rows.values()), sum(map(on_cpu, rows)), per_cpu, other)
            out["cost_basis"] = ("softirq and irq not charged to the server's threads, per pinned CPU "
                                 "(mpstat busy - the threads there" + _less(other) + ", at most its "
                                 "softirq + irq)")
        else:  # threads not placed on CPUs (or not measured): the CPU's busy time is all we have
            top = max(rows, key=lambda k: rows[k].busy or 0.0)
            sc = run.server_cpu
            own = (sc.usr or 0.0) + (sc.sys or 0.0) if sc and sc.usr is not None else 0.0
            out["unowned"] = _unowned(sum(c.busy or 0.0 for c in rows.values()), own,
                                      sum(kernel(k) for k in rows), other or 0.0)
            out["cost_basis"] = ("softirq and irq not charged to the server, over its pinned CPUs "
                                 "(mpstat busy - the process's usr + sys" + _less(other) + ", at most "
                                 "their softirq + irq)")
        out["max_busy"], out["max_cpu"] = float(rows[top].busy or 0.0), top
        out["max_split"] = {k: float(getattr(rows[top], k) or 0.0) for k in ("usr", "sys", "soft", "irq")}
        out["split"] = {k: statistics.fmean(getattr(c, k) or 0.0 for c in rows.values())
                        for k in ("usr", "sys", "soft")}
        out["n_cpus"] = len(rows)
        if any(c.soft is None for c in rows.values()):  # not measured is not 0
            out.pop("unowned")
            out["soft_unmeasured"] = sorted(k for k, c in rows.items() if c.soft is None)
    if threads:
        out.update(_thread_demand(threads))
    return out


def _thread_demand(threads: list[ThreadCpu]) -> dict[str, Any]:
    """The busiest server thread's demand and the runner-up's: kept apart from the CPU rows above."""
    # A thread's demand is the time it ran plus the time it was runnable but waited for a
    # CPU: on a shared or quota-limited CPU it is full while its own %CPU is not.
    rows_t = sorted(((t.busy or 0.0, t.wait or 0.0) for t in threads),
                    key=lambda bw: -(bw[0] + bw[1]))
    out: dict[str, Any] = {}
    out["thread_busy_max"], out["thread_busy_wait"] = rows_t[0]
    out["thread_others_max"] = rows_t[1][0] + rows_t[1][1] if len(rows_t) > 1 else None
    out["n_threads"] = len(rows_t)
    out["thread_wait_max"] = max(w for _, w in rows_t)
    return out


def _client_cpus(run: Run, skip: Iterable[str] = ()) -> dict[str, Any] | None:
    """The busiest of the load generators' pinned CPUs (on hosts not in `skip`): a one-thread
    wrk on two CPUs is one CPU at 100%, not two at 50% (the per-host `busy` execute.py stores
    is their mean)."""
    best: tuple[float, str, str] | None = None
    skip = set(skip)
    for host, c in run.client_cpu.items():
        if host in skip:
            continue
        cands = [(v.busy, host, k) for k, v in c.cpus.items() if v.busy is not None]
        if not cands and c.busy is not None:
            cands = [(c.busy, host, "(mean)")]
        for cand in cands:
            if best is None or cand[0] > best[0]:
                best = cand
    return {"busy": best[0], "host": best[1], "cpu": best[2]} if best else None


def _soft(srv: dict[str, Any]) -> str:
    """The busiest CPU's softirq share, or that it was not measured."""
    if srv["max_cpu"] in srv.get("soft_unmeasured", ()):
        return "not measured"
    return pct(srv["max_split"]["soft"])


def cost_per_request(run: Run, server_cpus: dict[str, Any]) -> CpuCost | None:
    """Server CPU microseconds per request, counted once: usr and sys from the process's own
    accounting (pidstat, all threads), and as `soft` only the softirq and irq on its pinned
    CPUs not already charged to it (mpstat; see _unowned). `basis` says how; softirq unmeasured
    (no mpstat) leaves soft and total None."""
    qps = run.qps or 0.0
    sc = run.server_cpu
    if qps <= 0 or sc is None or sc.usr is None:
        return None
    per = 1e6 / 100.0 / qps  # % of one CPU -> us per request
    usr, sys_ = sc.usr * per, (sc.sys or 0.0) * per
    if "unowned" not in server_cpus:
        unmeasured = server_cpus.get("soft_unmeasured")
        why = (f"softirq not measured on CPU {', '.join(unmeasured)}" if unmeasured
               else "softirq not measured (no mpstat on the server's CPUs)")
        return CpuCost(usr=round(usr, 3), sys=round(sys_, 3), soft=None, total=None,
                       basis=f"{why}: total unknown")
    soft = server_cpus["unowned"] * per
    return CpuCost(usr=round(usr, 3), sys=round(sys_, 3), soft=round(soft, 3),
                   total=round(usr + sys_ + soft, 3), basis=server_cpus["cost_basis"])


def cpu_cost(run: Run) -> CpuCost | None:
    """The run's CPU µs per request counted once: as recorded when it was (its `basis` says
    how), else (a record from before softirq was counted once) recomputed from the run's own
    mpstat and pidstat figures, so compare and history show no step that is only the fix (a
    record without them keeps its figure, its basis None marking it as of the old count)."""
    cost = run.analysis.cpu_us_per_request if run.analysis else None
    if cost is None or cost.basis is not None:
        return cost
    again = cost_per_request(run, _server_cpus(run))
    return again if again and again.total is not None else cost


def upgrade_costs(summary: Summary) -> Summary:
    """The summary with every run's CPU µs per request counted once (cpu_cost): a summary
    written before the fix reads, wherever it is compared, as if measured after it."""
    runs = []
    for r in summary.runs:
        a = r.analysis
        cost = cpu_cost(r) if a else None
        runs.append(r if a is None or cost is a.cpu_us_per_request
                    else r.model_copy(update={"analysis": a.model_copy(update={"cpu_us_per_request": cost})}))
    return summary.model_copy(update={"runs": tuple(runs)})


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


def _duration(run: Run) -> float:
    w = run.window
    return w.end - w.start if w.end > w.start else run.load.duration_s


def in_flight(run: Run) -> int | None:
    """C of Little's law: connections per load generator x pipeline depth x generators."""
    conns = run.connections
    if not isinstance(conns, int) or conns <= 0:
        return None
    return conns * (run.load.pipeline or 1) * (run.load.clients or 1)


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


def _client_lag(run: Run) -> Latency | None:
    """The generator's own send lag: from when a connection was free where it was recorded
    (orchestrate-load), else from the intended time (which counts the wait for a connection)."""
    return run.client_send_lag_ms or run.send_lag_ms


def self_checks(run: Run) -> SelfChecks | None:
    """The two self-checks of an open-loop run; a summary written before they were recorded
    apart has them derived from its rate and send-lag p99 (and says so)."""
    rate = run.rate
    if not rate or not rate.target:
        return None
    target = rate.target
    client_lag = _client_lag(run)
    lag = client_lag.p99 if client_lag else None
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
    kind: str = "packets"  # packets: pps against iperf3 UDP; bandwidth: bits/s against iperf3 TCP
    stale: bool = False  # lower_bound because it was measured with fewer clients than the run had

    @property
    def cap_text(self) -> str:
        return f"{self.cap:,.0f} pps" if self.kind == "packets" else f"{self.cap / 1e6:,.1f} Mbit/s TCP"

    @property
    def assumed(self) -> bool:
        """The rate is QPS x an assumed packets/request: it decides nothing."""
        return self.ppr_source == "assumed"

    @property
    def use(self) -> float:
        return 100.0 * self.rate / self.cap


def _packets_per_request(pk: dict[str, Any] | None, loopback: bool, th: Thresholds,
                         flags: list[str]) -> tuple[dict[str, float], str]:
    """Packets per request per direction and where the figure came from (measured or assumed)."""
    if pk:
        return {"rx": pk["rx_per_request"], "tx": pk["tx_per_request"]}, f"measured on {pk['interface']}"
    # Assumed packets per request, per direction: across hosts half go each way; on lo
    # all of them show as rx (so the rate printed is exactly QPS x the ratio printed).
    each = th.packets_per_request if loopback else th.packets_per_request / 2
    flags.append(f"packets per request not measured; assumed {th.packets_per_request:g}")
    return {"rx": each, "tx": each}, "assumed"


def _ceiling_why(c: Ceiling, d: str) -> str | None:
    """Why a ceiling is only a lower bound in direction d (None: it is a real ceiling)."""
    if not c.lower_bound:
        return None
    if c.cpu_bound_rx is None and c.cpu_bound_tx is None:  # recorded before directions were
        return c.cpu_bound or "iperf3 CPU-bound"
    return c.cpu_bound_rx if d == "rx" else c.cpu_bound_tx


def _ceiling_cap(c: Ceiling, d: str) -> float | None:
    """A ceiling's packet rate in direction d (the reverse measurement for tx when there is one)."""
    return (c.pps_delivered_reverse if d == "tx" else None) or c.pps_delivered


def _path_checks(run: Run, server: str, paths: dict[str, Ceiling], directions: tuple[str, ...],
                 ppr: dict[str, float], source: str, flags: list[str]) -> list[_Check]:
    """Each client's share held to its own path's ceiling (multi-client runs only)."""
    checks: list[_Check] = []
    for c in run.clients:
        p = paths.get(f"{c.host}->{server}")
        cq = c.qps
        if not p and cq:
            flags.append(f"no ceiling measured for the path {c.host}->{server} (a client host added "
                         "after the baseline): its share is held to none")
        if not p or not cq:
            continue
        for d in directions:
            cap = _ceiling_cap(p, d)
            if cap:
                checks.append(_Check(f"path {c.host}->{server}",
                                     f"{c.host} {'->' if d == 'rx' else '<-'} server", d, False,
                                     cq, cq * ppr[d], ppr[d], source, cap, _ceiling_why(p, d)))
    return checks


def _ceiling_checks(run: Run, pk: dict[str, Any] | None, server: str, loopback: bool,
                    th: Thresholds, flags: list[str]) -> list[_Check]:
    base = run.baseline
    qps = run.qps or 0.0
    if qps <= 0:
        return []
    ppr, source = _packets_per_request(pk, loopback, th, flags)
    checks: list[_Check] = []
    directions = ("rx",) if loopback else ("rx", "tx")
    clients = run.clients
    paths = base.paths if base else {}
    multi = len(clients) > 1
    if multi and paths:
        checks += _path_checks(run, server, paths, directions, ppr, source, flags)
    agg = base.aggregate if multi and base else None
    if multi and not agg:
        flags.append("aggregate ceiling not measured (all clients at once): the server's total "
                     "packet rate is held to no ceiling")
    top = agg or (None if multi else base)
    # an aggregate measured with fewer clients than the run had (auto-scale added hosts since)
    # is stale: what more clients at once could push is unknown, so it is only a lower bound
    stale = (f"measured with {agg.clients} clients at once, the run had {len(clients)}"
             if agg and agg.clients and agg.clients < len(clients) else None)
    if top:
        for d in directions:
            cap = _ceiling_cap(top, d)
            if not cap:
                continue
            rate = pk[f"{d}_pps"] if pk else qps * ppr[d]
            scope = "loopback" if loopback else ("aggregate of all clients" if multi else "path")
            checks.append(_Check(scope, "loopback" if loopback else f"server {d}", d, True,
                                 qps, rate, ppr[d], source, cap, stale or _ceiling_why(top, d),
                                 stale=bool(stale)))
    if pk and "rx_payload_bps" in pk and not loopback:  # over lo a TCP figure is a memory copy
        checks += _bandwidth_checks(run, pk, server, paths, multi, directions, flags)
    return checks


def _bandwidth_checks(run: Run, pk: dict[str, Any], server: str, paths: Mapping[str, Ceiling],
                      multi: bool, directions: tuple[str, ...], flags: list[str]) -> list[_Check]:
    """The run's TCP payload rate each way against iperf3's TCP throughput that way: each
    client's share (QPS x bytes/request) against its path's, one client's total against its
    path's (several clients at once have no aggregate TCP figure: flagged)."""
    source = f"measured on {pk['interface']}"

    def tcp(c: Ceiling, d: str) -> tuple[float | None, str | None]:
        cap = c.tcp_bits_per_second if d == "rx" else c.tcp_bits_per_second_reverse
        if "tcp_cpu_bound" not in c.model_fields_set:
            return cap, "recorded before iperf3's CPU was checked for TCP"
        return cap, c.tcp_cpu_bound if d == "rx" else c.tcp_cpu_bound_reverse

    checks = []
    if multi:
        flags.append("aggregate TCP ceiling not measured (all clients at once): the server's total "
                     "bytes/s are held to each client's path only")
        for c in run.clients:
            p = paths.get(f"{c.host}->{server}")
            if not p or not c.qps:
                continue
            for d in directions:
                cap, lower = tcp(p, d)
                if cap:
                    bpr = pk[f"{d}_bytes_per_request"]
                    checks.append(_Check(f"path {c.host}->{server}",
                                         f"{c.host} {'->' if d == 'rx' else '<-'} server", d, False,
                                         c.qps, c.qps * bpr * 8, bpr, source, cap, lower, "bandwidth"))
    else:
        for d in directions:
            cap, lower = tcp(run.baseline, d)
            if cap:
                checks.append(_Check("path", f"server {d}", d, True, run.qps or 0.0, pk[f"{d}_payload_bps"],
                                     pk[f"{d}_bytes_per_request"], source, cap, lower, "bandwidth"))
    return checks


def _allowances(run: Run, th: Thresholds) -> tuple[list[str], list[str]]:
    """(evidence of allowance counters growing at a rate that matters, notes of ones that don't)."""
    seconds = _duration(run)
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


# ---------------------------------------------------------------- the evidence, one group each
# Each group reads the run and returns a record of what it measured: the sentences it can print
# and the figures the rules compare. The rules (RULES, below) read the records, never the run's
# raw figures, so a rule is one row: its name, its verdict, its condition and its sentence.

Line = tuple[str, str]  # (the rule a sentence shows saturated, "" when it only informs; the sentence)


@dataclass(frozen=True)
class NetworkEvidence:
    """Packets on the server's interface, every ceiling comparison, and cloud NIC allowances."""

    packets: dict[str, Any] | None  # packets(): per request and per second, None when not counted
    checks: tuple[_Check, ...]
    trusted: _Check | None  # the highest use at or above ceiling_use of a trusted ceiling, measured
    unknown: _Check | None  # ... reached only on an assumed packets/request
    bounded: _Check | None  # ... of a ceiling that is a lower bound
    allowance: tuple[str, ...]  # allowance counters growing at a rate that matters
    flags: tuple[str, ...]
    near: tuple[str, ...]


@dataclass(frozen=True)
class ServerEvidence:
    """The server's pinned CPUs (mpstat) and threads (pidstat), and its context switches."""

    cpus: dict[str, Any]  # _server_cpus()
    lines: tuple[Line, ...]
    voluntary_s: float | None
    involuntary_s: float | None
    near: tuple[str, ...]

    @property
    def measured(self) -> bool:
        return "max_busy" in self.cpus or "thread_busy_max" in self.cpus

    @property
    def cpus_measured(self) -> bool:
        """Its pinned CPUs (softirq included) were measured."""
        return "max_busy" in self.cpus

    @property
    def rules(self) -> tuple[str, ...]:
        """The server rules its figures reach, in the order of its lines."""
        return tuple(r for r, _ in self.lines if r)

    @property
    def saturated(self) -> bool:
        return bool(self.rules)


@dataclass(frozen=True)
class ClientEvidence:
    """The load generator's threads and CPUs, its send lag and an open loop's two self-checks
    (send fidelity, the client's; completion, the server's: `completion` is the server's line)."""

    lines: tuple[tuple[bool, str], ...]  # (saturated, sentence)
    busiest: dict[str, Any] | None  # _client_cpus()
    threads: bool  # per-thread figures (pidstat) for some host
    checks: SelfChecks | None
    waited: bool  # its lag was the wait for a free connection, its CPU clear
    short: bool  # the server answered less than `completion` of the offered rate
    completion: str | None  # the completion line (server evidence)
    flags: tuple[str, ...]
    near: tuple[str, ...]

    @property
    def measured(self) -> bool:
        return bool(self.lines)

    @property
    def saturated(self) -> bool:
        return any(s for s, _ in self.lines)


@dataclass(frozen=True)
class ConcurrencyEvidence:
    """Little's law for the loop: C requests in flight over the mean latency."""

    littles_law: dict[str, float] | None
    flags: tuple[str, ...]


def _near(label: str, value: float, threshold: float, th: Thresholds) -> list[str]:
    if abs(value - threshold) < th.near:
        return [f"near threshold: {label} {pct(value, threshold)} vs {threshold:g}%"]
    return []


def network_evidence(run: Run, *, server: str, interface: str | None, loopback: bool,
                     th: Thresholds) -> NetworkEvidence:
    pk = packets(run, server, interface, loopback)
    flags: list[str] = []
    checks = _ceiling_checks(run, pk, server, loopback, th, flags)
    near = [n for c in checks
            for n in _near(f"ceiling use ({c.scope}, {c.where})", c.use, th.ceiling_use, th)]
    hit = [c for c in checks if c.use >= th.ceiling_use]
    trusted = max((c for c in hit if not c.lower_bound and not c.assumed), key=lambda c: c.use,
                  default=None)
    # reached only on an assumed packets/request: the network may or may not be the limit
    unknown = max((c for c in hit if not c.lower_bound and c.assumed), key=lambda c: c.use, default=None)
    bounded = max((c for c in hit if c.lower_bound), key=lambda c: c.use, default=None)
    allowance, allowance_small = _allowances(run, th)
    return NetworkEvidence(pk, tuple(checks), trusted, unknown, bounded, tuple(allowance),
                           (*flags, *allowance_small), tuple(near))


def server_evidence(run: Run, th: Thresholds) -> ServerEvidence:
    srv = _server_cpus(run)
    near: list[str] = []
    lines: list[Line] = []  # (rule, evidence) of each way it is saturated
    if "max_work" in srv:
        w, s = srv["max_work"], srv["max_split"]
        near += _near(f"server work on CPU {srv['max_cpu']}", w, th.server_busy, th)
        text = say("server-work", cpu=srv["max_cpu"], threads=pct(srv["max_threads"], decimals=1),
                   extra=pct(srv["max_unowned"], decimals=1), soft=_soft(srv), irq=pct(s["irq"]),
                   work=pct(w, th.server_busy, 1), rel=rel(w, th.server_busy),
                   threshold=f"{th.server_busy:g}%", busy=pct(srv["max_busy"], decimals=1),
                   basis=srv["max_basis"])
        lines.append(("server-cpu" if w >= th.server_busy else "", text))
    elif "max_busy" in srv:
        b, s = srv["max_busy"], srv["max_split"]
        near += _near(f"server CPU {srv['max_cpu']}", b, th.server_busy, th)
        text = say("server-cpu", cpu=srv["max_cpu"], busy=pct(b, th.server_busy), rel=rel(b, th.server_busy),
                   threshold=f"{th.server_busy:g}%", usr=pct(s["usr"]), sys=pct(s["sys"]),
                   soft=_soft(srv), other=pct(max(0.0, b - s["usr"] - s["sys"] - s["soft"])))
        lines.append(("server-cpu" if b >= th.server_busy else "", text))
    if "thread_busy_max" in srv:
        tb, tw = srv["thread_busy_max"], srv["thread_busy_wait"]
        demand = tb + tw
        near += _near("busiest server thread (running + waiting)", demand, th.server_busy, th)
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
        lines.append(("server-thread" if demand >= th.server_busy else "", text))
        wait = srv["thread_wait_max"]
        if wait >= 1.0:
            near += _near("server run-queue wait", wait, th.run_queue_wait, th)
            lines.append(("server-kept-from-running" if wait >= th.run_queue_wait else "",
                          say("wait", wait=pct(wait, th.run_queue_wait), rel=rel(wait, th.run_queue_wait),
                              threshold=f"{th.run_queue_wait:g}%")))
    vol, invol = run.server_cpu.cswch_s, run.server_cpu.nvcswch_s
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
        lines.append(("", say("switches", vol=f"{vol:,.0f}", invol=f"{invol:,.0f}",
                              share=pct(share, th.preempted_share), note=note)))
    return ServerEvidence(srv, tuple(lines), vol, invol, tuple(near))


def _client_thread_lines(host: str, p: BusiestThread, th: Thresholds,
                         lines: list[tuple[bool, str]]) -> list[str]:
    """One host's generator threads judged (demand, wait, quota): appends lines, returns the near misses."""
    near: list[str] = []
    busy, w = p.busy or 0.0, p.wait or 0.0
    # On a host with a CPU quota, pidstat's %wait includes the time the quota throttled
    # it, so wait cannot tell the quota from contention: its use of the quota decides.
    sized = p.of_capacity is not None and bool(p.capacity)
    near += _near(f"load generator thread on {host} (running + waiting)", busy + w, th.client_busy, th)
    if w >= 1.0:
        near += _near(f"load generator run-queue wait on {host}", w, th.run_queue_wait, th)
        lines.append((w >= th.run_queue_wait and not sized,
                      say("client-wait", host=host, wait=pct(w, th.run_queue_wait),
                          rel=rel(w, th.run_queue_wait), threshold=f"{th.run_queue_wait:g}%")))
    lines.append((busy + w >= th.client_busy and not sized,
                  say("client-demand", host=host, busy=pct(busy), wait=pct(w),
                      demand=pct(busy + w, th.client_busy), rel=rel(busy + w, th.client_busy),
                      threshold=f"{th.client_busy:g}%")))
    if sized and p.throttled_periods is not None and p.throttled is not None:
        near += _throttled_line(host, p, w, th, lines)
    if sized:  # busy against the quota
        assert p.of_capacity is not None and p.capacity is not None
        near += _near(f"load generator on {host} of its CPU quota", p.of_capacity, th.client_busy, th)
        lines.append((p.of_capacity >= th.client_busy,
                      say("client-quota", host=host, share=pct(p.of_capacity, th.client_busy),
                          capacity=f"{p.capacity:g}", rel=rel(p.of_capacity, th.client_busy),
                          threshold=f"{th.client_busy:g}%")))
    return near


def _throttled_line(host: str, p: BusiestThread, wait: float, th: Thresholds,
                    lines: list[tuple[bool, str]]) -> list[str]:
    """A quota-held generator's cgroup: throttled in most CFS periods is CPU-bound at its quota;
    waiting for a CPU beyond its throttled time (pidstat's %wait holds both) is other work on
    its CPUs starving it. Either is the client's limit, though it used less than its quota."""
    assert p.throttled_periods is not None and p.throttled is not None
    # throttled time is summed over the cgroup's CPUs: taken whole from one thread's wait, the
    # rest is a lower bound on its wait for other work
    other = max(0.0, wait - p.throttled)
    lines.append((p.throttled_periods >= th.throttled_periods or other >= th.run_queue_wait,
                  say("client-throttled", host=host, share=pct(p.throttled_periods, th.throttled_periods),
                      periods=f"{p.periods or 0:,}", rel=rel(p.throttled_periods, th.throttled_periods),
                      threshold=f"{th.throttled_periods:g}%", throttled=pct(p.throttled),
                      other=pct(other, th.run_queue_wait), orel=rel(other, th.run_queue_wait),
                      wait_threshold=f"{th.run_queue_wait:g}%")))
    return (_near(f"load generator on {host}: periods throttled", p.throttled_periods,
                  th.throttled_periods, th)
            + _near(f"load generator on {host}: wait beyond throttling", other, th.run_queue_wait, th))


def _completion_line(checks: SelfChecks, th: Thresholds, waited: bool, unsustained: bool) -> str:
    """The sentence for a run that completed short of its target, saying what the sending did."""
    assert checks.completion is not None
    return say("completion", achieved=f"{checks.achieved or 0:,.0f}",
               target=f"{checks.target:,.0f}",
               share=pct(checks.completion, th.completion, 2),
               threshold=f"{th.completion:g}%",
               fidelity=("the generator sent on schedule" if checks.send_fidelity
                         else "its send lag was that wait" if waited
                         else "the generator also sent late" if unsustained
                         else "whether the generator sent on schedule is not measured"))


def _client_flags(bare: dict[str, Any] | None, procs: bool, saturated: bool, th: Thresholds,
                  flags: list[str]) -> None:
    """Flag a saturated generator: by its pinned CPUs' busy % or else by its own threads."""
    if bare and bare["busy"] >= th.client_busy:
        flags.append(f"load generator at {pct(bare['busy'], th.client_busy)} CPU (>= {th.client_busy:g}%): "
                     "the result says little about the server's own limit")
    elif procs and saturated:
        flags.append("load generator saturated (its own threads, above): the result says little about "
                     "the server's own limit")


def client_evidence(run: Run, th: Thresholds) -> ClientEvidence:
    cli = _client_cpus(run)
    near: list[str] = []
    flags: list[str] = []
    lines: list[tuple[bool, str]] = []
    # The generator's own threads (pidstat: %CPU + %wait), when the record has them, decide
    # instead of its CPUs' busy %, which counts whatever else runs there.
    procs = {h: p for h, p in (run.client_proc or {}).items() if p.busy is not None}
    for host, p in procs.items():
        near += _client_thread_lines(host, p, th, lines)
    # Each host is judged by what it has: its threads where pidstat watched them, else the
    # busiest of its pinned CPUs (a host without per-thread figures is not ignored).
    bare = _client_cpus(run, skip=procs) if procs else cli
    shown = bare or cli
    if shown:
        near += _near(f"load generator CPU {shown['cpu']} on {shown['host']}", shown["busy"],
                      th.client_busy, th)
        lines.append((bare is not None and shown["busy"] >= th.client_busy,
                      say("client-cpu", cpu=shown["cpu"], host=shown["host"],
                          busy=pct(shown["busy"], th.client_busy), rel=rel(shown["busy"], th.client_busy),
                          threshold=f"{th.client_busy:g}%")))
    # Requests that waited for a free connection are late because every connection was busy
    # (the server or the network kept them), not because the generator's CPU fell behind; with
    # its CPU measured and clear, that lag and a missed rate are not client evidence.
    queued = _queued(run)
    cpu_clear = bool(procs or cli) and not any(s for s, _ in lines)
    waited = cpu_clear and queued is not None and queued[0] >= th.queued_share
    sent_late = _client_lag(run)  # open-loop generators report it; wrk does not
    lag = sent_late.mean if sent_late else None
    late = lag is not None and lag >= th.send_lag_ms
    if late:
        lines.append((not waited, say("send-lag", lag=f"{lag:.2f}", threshold=f"{th.send_lag_ms:g}")))
    checks = self_checks(run)
    unsustained = checks is not None and checks.send_fidelity is False
    if checks and unsustained:
        lines.append((not waited, say("send-fidelity-queued" if waited else "send-fidelity",
                                      lag=_ms(checks.lag_p99_ms), limit=f"{checks.lag_limit_ms:g}",
                                      basis=checks.basis)))
    short = checks is not None and checks.completion is not None and checks.completion < th.completion
    completion = None
    if checks and short:
        completion = _completion_line(checks, th, waited, unsustained)
        if checks.send_fidelity:
            lines.append((False, say("send-fidelity-ok", lag=_ms(checks.lag_p99_ms),
                                     limit=f"{checks.lag_limit_ms:g}", basis=checks.basis)))
    if waited and queued and (late or unsustained or short):
        lines.append((False, say("queued", share=pct(queued[0]), conns=f"{in_flight(run) or '?'}",
                                 depth=f"{queued[1]:,}", threshold=f"{th.client_busy:g}%")))
    _client_flags(bare, bool(procs), any(s for s, _ in lines), th, flags)
    return ClientEvidence(tuple(lines), cli, bool(procs), checks, waited, short, completion, tuple(flags),
                          tuple(near))


def concurrency_evidence(run: Run, th: Thresholds) -> ConcurrencyEvidence:
    ll = littles_law(run)
    flags = []
    if ll and ll["over_pct"] >= th.littles_law:
        qps = run.qps or 0.0
        flags.append(f"mean {_ll_what(ll)} {ll['latency_ms']:.3f} ms is inconsistent with QPS: Little's law "
                     f"gives C / QPS = {ll['in_flight'] / qps * 1000:.3f} ms (a latency figure to distrust)")
    return ConcurrencyEvidence(ll, tuple(flags))


@dataclass(frozen=True)
class Evidence:
    """Everything one run's rules read: the groups above, and how the run was placed."""

    run: Run
    th: Thresholds
    loopback: bool
    network: NetworkEvidence
    server: ServerEvidence
    client: ClientEvidence
    concurrency: ConcurrencyEvidence

    @property
    def server_lines(self) -> list[str]:
        """The server's sentences, the completion self-check (the server's) last."""
        completion = [self.client.completion] if self.client.completion else []
        return [t for _, t in self.server.lines] + completion

    @property
    def client_lines(self) -> list[str]:
        return [t for _, t in self.client.lines]

    @property
    def cpu_saturated(self) -> bool:
        return self.server.saturated or self.client.saturated

    def ceiling_text(self, c: _Check) -> str:
        th = self.th
        if c.kind == "bandwidth":
            return say("bandwidth", qps=f"{c.qps:,.0f}", bpr=f"{c.ppr:,.0f}", source=c.ppr_source,
                       rate=f"{c.rate / 1e6:,.2f}", where=c.where, use=pct(c.use, th.ceiling_use),
                       rel=rel(c.use, th.ceiling_use), threshold=f"{th.ceiling_use:g}%",
                       cap=f"{c.cap / 1e6:,.2f}", scope=c.scope, basis=BANDWIDTH_BASIS)
        return say("ceiling", qps=f"{c.qps:,.0f}", ppr=f"{c.ppr:.3f}", ppr_source=c.ppr_source,
                   rate=f"{c.rate:,.0f}", where=c.where, use=pct(c.use, th.ceiling_use),
                   rel=rel(c.use, th.ceiling_use), threshold=f"{th.ceiling_use:g}%", cap=f"{c.cap:,.0f}",
                   scope=c.scope)

    def littles_text(self) -> str:
        assert self.concurrency.littles_law is not None
        return _littles_text(self.concurrency.littles_law, self.run.qps or 0.0, self.th)


def gather(run: Run, *, server: str, interface: str | None, loopback: bool, th: Thresholds) -> Evidence:
    return Evidence(run, th, loopback,
                    network_evidence(run, server=server, interface=interface, loopback=loopback, th=th),
                    server_evidence(run, th), client_evidence(run, th), concurrency_evidence(run, th))


# ---------------------------------------------------------------- the rules, in the order tried

@dataclass(frozen=True)
class Decision:
    """What a rule concluded: the verdict and its evidence, deciding sentence first. `rule`
    names another row when a rule finds its own precondition unmeasured (client -> unmeasured)."""

    verdict: str
    evidence: list[str]
    rule: str | None = None


Condition = Callable[[Evidence], Decision | None]


def _unmeasured(ev: Evidence) -> Decision | None:
    if ev.server.measured or ev.network.trusted:
        return None
    return Decision(INCONCLUSIVE, [say("missing", what="server CPU (mpstat) and threads (pidstat)"),
                                   *ev.client_lines])


def _nic_allowance(ev: Evidence) -> Decision | None:
    if not ev.network.allowance:
        return None
    if ev.cpu_saturated:
        return Decision(INCONCLUSIVE, [say("network-and-cpu"), *ev.network.allowance, *ev.server_lines,
                                       *ev.client_lines])
    return Decision(NETWORK, [*ev.network.allowance, *ev.server_lines, *ev.client_lines])


def _ceiling(ev: Evidence) -> Decision | None:
    c = ev.network.trusted
    if not c or (ev.loopback and ev.cpu_saturated):
        return None
    if ev.cpu_saturated:  # as for the allowance counters: both named
        return Decision(INCONCLUSIVE, [say("ceiling-and-cpu"), ev.ceiling_text(c), *ev.server_lines,
                                       *ev.client_lines])
    return Decision(NETWORK, [ev.ceiling_text(c), *ev.server_lines, *ev.client_lines])


def _packets_unknown(ev: Evidence) -> Decision | None:
    c = ev.network.unknown
    if not c or (ev.loopback and ev.cpu_saturated):
        return None
    return Decision(INCONCLUSIVE, [say("packets-unknown", ppr=f"{ev.th.packets_per_request:g}"),
                                   ev.ceiling_text(c), *ev.server_lines, *ev.client_lines])


def _accept_text(a: kernel.Accept) -> str:
    return say("accept", overflows=f"{a.overflows:,}", drops=f"{a.drops:,}", host=a.host,
               per_s=f"{a.per_second:,.1f}" if a.per_second is not None else "?",
               per_request=f"{a.per_request:.4f}" if a.per_request is not None else "?",
               shared=" (loopback: one kernel's counters; only the server listens)" if a.shared else "")


def _loss_text(x: kernel.Loss, ev: Evidence) -> str:
    th = ev.th
    return say("loss", retrans=f"{x.retrans:,}", segs=f"{x.out_segs:,}", side=x.side or x.host,
               pct=pct(x.retrans_pct, th.loss_retrans, 2), rel=rel(x.retrans_pct, th.loss_retrans),
               threshold=f"{th.loss_retrans:g}%", timeouts=f"{x.timeouts:,}", drops=f"{x.drops:,}",
               drops_s=f"{x.drops_per_second:,.1f}" if x.drops_per_second is not None else "?",
               drops_threshold=f"{th.loss_drops_per_s:g}", path=kernel.path_of(x, ev.run))


def _accept(ev: Evidence) -> Decision | None:
    a = kernel.accept(ev.run)
    if a is None or (ev.client.saturated and ev.server.saturated):  # both-saturated, flag beside it
        return None
    if ev.client.saturated:  # the queue and the generator both limit: both-saturated, flag beside it
        return Decision(INCONCLUSIVE, [say("accept-and-client"), *ev.client_lines, *ev.server_lines],
                        rule="both-saturated")
    return Decision(ACCEPT, [_accept_text(a), *ev.server_lines, *ev.client_lines])


def _loss(ev: Evidence) -> Decision | None:
    x = kernel.worst_loss(ev.run, ev.th.loss_retrans, ev.th.loss_drops_per_s)
    if x is None or kernel.accept(ev.run) is not None:  # SYNs resent after overflows: the queue's
        return None
    return Decision(LOSS, [_loss_text(x, ev), *ev.server_lines, *ev.client_lines])


def _both_saturated(ev: Evidence) -> Decision | None:
    if not (ev.server.saturated and ev.client.saturated):
        return None
    return Decision(INCONCLUSIVE, [say("both"), *ev.server_lines, *ev.client_lines])


def _server(rule: str) -> Condition:
    """server-cpu, server-thread, server-kept-from-running: the first the server's figures reach."""

    def decide(ev: Evidence) -> Decision | None:
        if rule not in ev.server.rules:
            return None
        lines = ev.server.lines
        return Decision(SERVER, [t for r, t in lines if r] + [t for r, t in lines if not r]
                        + ([ev.client.completion] if ev.client.completion else []) + ev.client_lines)

    return decide


def _client(ev: Evidence) -> Decision | None:
    if not ev.client.saturated:
        return None
    if not ev.server.cpus_measured:
        return Decision(INCONCLUSIVE, [say("missing", what="server CPUs (mpstat, softirq included)"),
                                       *ev.client_lines, *ev.server_lines], rule="unmeasured")
    lines = ev.client.lines
    return Decision(CLIENT, [t for s, t in lines if s] + [t for s, t in lines if not s] + ev.server_lines)


def _latency_bound(ev: Evidence) -> Decision | None:
    ll = ev.concurrency.littles_law
    if not ev.client.measured or not ll or ll["below_pct"] > ev.th.littles_law or ev.network.bounded:
        return None
    return Decision(LATENCY, [ev.littles_text(), say("latency-bound"), *ev.server_lines, *ev.client_lines])


def _server_completion(ev: Evidence) -> Decision | None:
    c = ev.client
    if not (c.measured and c.short and (c.checks and c.checks.send_fidelity or c.waited)
            and ev.server.cpus_measured):
        return None
    assert c.completion is not None
    return Decision(SERVER, [c.completion, *[t for t in ev.server_lines if t != c.completion],
                             *ev.client_lines])


def _nothing_fits(ev: Evidence) -> Decision:
    if not ev.client.measured:
        return Decision(INCONCLUSIVE, [say("missing", what="load generator CPU (mpstat)"), *ev.server_lines])
    return Decision(INCONCLUSIVE, [*ev.server_lines, *ev.client_lines]
                    + ([ev.littles_text()] if ev.concurrency.littles_law else []))


@dataclass(frozen=True)
class Rule:
    """One row of the verdict table. `decide` is None for a rule that needs the whole matrix
    (along_connections applies it); `templates` name the TEMPLATES its deciding sentence is
    printed from; `text` is the README's, str.format'ed with the Thresholds' fields."""

    name: str
    verdict: str
    decide: Condition | None
    templates: tuple[str, ...]
    text: str


# In the order they are tried; the first whose condition holds decides. Adding a verdict is
# adding a row here (and its sentence to TEMPLATES). The README's section is rules_markdown().
RULES: tuple[Rule, ...] = (
    Rule("unmeasured", INCONCLUSIVE, _unmeasured, ("missing",),
         "the server's CPUs (mpstat) and threads (pidstat) were not measured, and no trusted "
         "network ceiling was reached: unmeasured is never \"not saturated\", so nothing is "
         "concluded and the evidence names what is missing"),
    Rule("nic-allowance", NETWORK, _nic_allowance, ("allowance", "network-and-cpu"),
         "a cloud NIC's allowance counters (`pps_allowance_exceeded`, ...) grew by at least "
         "{allowance_per_s:g}/s over the load while no CPU was saturated; a single count decides "
         "nothing, and with a saturated CPU as well the verdict is inconclusive, naming both"),
    Rule("ceiling", NETWORK, _ceiling, ("ceiling", "bandwidth", "ceiling-and-cpu"),
         "QPS x packets/request reaches `ceiling_use` ({ceiling_use:g}%) of an iperf3 packet-rate "
         "ceiling: each client's path against that path's ceiling, and the server's aggregate "
         "against the ceiling measured by all clients at once. A ceiling measured while iperf3 "
         "itself was CPU-bound is only a lower bound and never gives this verdict (per "
         "direction: a CPU-bound reverse test leaves the forward ceiling trusted); over loopback "
         "a saturated CPU explains the number better than the ceiling, and across hosts a "
         "saturated CPU as well makes it inconclusive, naming both (as for the allowance counters). "
         "Bandwidth likewise: across hosts, the TCP payload bits/s on the server's interface each "
         "way (sar's bytes less each counted packet's headers) reaching `ceiling_use` of iperf3's "
         "TCP throughput that way (payload against payload; the forward test for rx, -R for tx); "
         "the evidence names which ceiling, packet rate or bandwidth"),
    Rule("packets-unknown", INCONCLUSIVE, _packets_unknown, ("packets-unknown",),
         "packets were not counted, and only an assumed {packets_per_request:g} packets/request "
         "would reach `ceiling_use`: no verdict rests on an assumed figure (wrong by 10x at "
         "pipeline depth 16), so the network's part is unknown and the evidence says so"),
    Rule("accept-bound", ACCEPT, _accept, ("accept",),
         "the server host's ListenOverflows or ListenDrops (/proc/net/netstat, read before and "
         "after the window) rose during the run: the listen queue was full and the kernel "
         "dropped connections the server had not accepted yet. When the load generator is "
         "saturated too it is not the verdict but a flag beside both-saturated (the listen queue "
         "and the generator both limit the run, whether or not the server's CPU is saturated); "
         "beside any other verdict it is a flag as well"),
    Rule("loss-bound", LOSS, _loss, ("loss",),
         "a host retransmitted at least {loss_retrans:g}% of the segments it sent, or its sockets "
         "dropped at least {loss_drops_per_s:g} received segments/s (TCPBacklogDrop, RcvPruned, "
         "OfoPruned), and no listen queue overflowed (then the resent SYNs are the queue's). The "
         "evidence names the path and, across hosts, the side that resent; on loopback client "
         "and server share one kernel's counters and no side is named. Where a link's "
         "packet-rate or bandwidth ceiling is also reached the verdict is network-bound (above) "
         "with the loss as its evidence"),
    Rule("both-saturated", INCONCLUSIVE, _both_saturated, ("both", "accept-and-client"),
         "the server and the load generator are both saturated by the rules below (or the load "
         "generator is and the server's listen queue overflowed, above): give the "
         "load generator more CPUs to find the server's limit"),
    Rule("server-cpu", SERVER, _server("server-cpu"), ("server-work", "server-cpu"),
         "the server's work on one of its pinned CPUs is at or above `server_busy` "
         "({server_busy:g}%): its threads' %CPU there (pidstat) plus only the softirq and irq "
         "of that CPU (the kernel's network stack works for the server) not already charged to "
         "them, counted once: with tick accounting and no IRQ time accounting (this project's "
         "VM) a softirq tick is charged to the running thread too, so the part added is at most "
         "the CPU's busy time (mpstat) the threads were not charged for, and the sum never "
         "exceeds the CPU's busy; the evidence shows the split and which accounting the figures "
         "show. CPU µs per request count softirq the same way. Other "
         "processes' time on the CPU is not the server's work (if they crowd it out, its "
         "run-queue wait shows it); without per-thread placement the CPU's busy % is used"),
    Rule("server-thread", SERVER, _server("server-thread"), ("server-thread", "hot-thread"),
         "a server thread's demand, the time it ran plus the time it waited for a CPU (pidstat "
         "%CPU + %wait), is at or above `server_busy`; when every other thread's is below "
         "{hot_thread_others:g}% it is a hot thread (few connections hashed onto one thread) and "
         "the evidence shows the balance"),
    Rule("server-kept-from-running", SERVER, _server("server-kept-from-running"), ("wait",),
         "a server thread was runnable but waited for a CPU at least {run_queue_wait:g}% of the "
         "time (CPUs shared or too few, or a CPU quota). Context switches only support it: "
         "at least {preempted_share:g}% involuntary at {min_switch_rate:g} switches/s or more "
         "reads as preempted, and rates below that are too few to mean anything; voluntary "
         "switches are never read as \"starved of requests\""),
    Rule("server-serialised", SERVER, None, ("serialised",),
         "across the matrix, with nothing saturated, connections at least doubled but QPS rose "
         "by less than x{flat_gain:g} while mean latency grew: requests queue on the server one "
         "at a time (a lock, a sleep, a slow backend), not on the load generator"),
    Rule("client", CLIENT, _client,
         ("client-wait", "client-demand", "client-quota", "client-throttled", "client-cpu", "send-lag",
          "send-fidelity"),
         "the load generator's busiest thread ran or waited for a CPU (pidstat %CPU + %wait) at or "
         "above `client_busy` ({client_busy:g}%) or waited for one {run_queue_wait:g}% of the time "
         "or more (on a host with a CPU quota instead: its threads together used `client_busy` of "
         "what the quota allows, since throttled time reads as waiting; or, its cgroup read "
         "(cpu.stat), the quota throttled it in {throttled_periods:g}% of its CFS periods or more, "
         "or it waited for a CPU {run_queue_wait:g}% of the time or more beyond its throttled time: "
         "other work on its CPUs starved it, while it used less than its quota), or, when the record has "
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
    Rule("latency-bound", LATENCY, _latency_bound, ("littles-law", "littles-law-over"),
         "nothing is saturated and QPS is no more than {littles_law:g}% below C/L (Little's law: "
         "C requests in flight over mean latency L is the most this loop can do; a QPS above "
         "C/L means the latency figure overstates, and is flagged). In a loop QPS = C/L holds by "
         "construction, so one run cannot tell more connections would help from a server that "
         "serialises: the evidence names both, and a connections axis tells them apart "
         "(server-serialised above, concurrency below)"),
    Rule("concurrency", CONCURRENCY, None, ("scales",),
         "across the matrix, a latency-bound run's connections at least doubled raised QPS by "
         "x{flat_gain:g} or more: more connections would raise QPS"),
    Rule("server-completion", SERVER, _server_completion, ("completion",),
         "open loop, nothing saturated and not latency-bound: the server answered less than "
         "{completion:g}% of the offered rate (the completion self-check, the server's) while the "
         "generator sent on schedule (its send-fidelity self-check held, or its lag was the wait "
         "for a free connection): the offered rate is more than the server completes"),
    Rule("nothing-fits", INCONCLUSIVE, _nothing_fits, (),
         "nothing above applies (for example the load generator's CPUs were not measured, or "
         "the only ceiling reached is a lower bound); the evidence says what is known"),
)


def _context_evidence(ev: Evidence, verdict: str, th: Thresholds) -> list[str]:
    """What a verdict other than network-bound still says about the ceilings, and what was missing."""
    net, srv = ev.network, ev.server
    evidence: list[str] = []
    bounded = net.bounded
    if bounded and verdict != NETWORK:
        evidence.append(say("lower-bound-stale" if bounded.stale else "lower-bound", cap=bounded.cap_text,
                            scope=bounded.scope,
                            why=bounded.lower_bound, use=pct(bounded.use)))
    if net.checks and verdict != NETWORK:
        worst = max(net.checks, key=lambda c: c.use)
        scope = worst.scope if worst.kind == "packets" else f"{worst.scope}, TCP bandwidth"
        evidence.append(say("ceiling-use", use=pct(worst.use, th.ceiling_use), scope=scope))
    if not srv.measured and verdict != INCONCLUSIVE:
        evidence.append(say("missing", what="server CPU (mpstat) and threads (pidstat)"))
    return evidence


def _run_flags(run: Run, ev: Evidence, verdict: str) -> list[str]:
    """The run's warnings that do not decide its verdict: errors, retransmits, drops, accept queue."""
    pk = ev.network.packets
    flags = [*ev.network.flags, *ev.client.flags]
    errors = run.failed_requests
    if errors:
        flags.append(f"{errors:,} socket errors or non-2xx responses")
    elif errors is None:  # unknown is not 0 errors
        flags.append(run.errors_not_measured or "errors not measured")
    if pk and pk.get("retrans_s"):
        flags.append(f"{pk['retrans_s']:,.0f} TCP retransmits/s on the server host")
    if pk and pk.get("drops_s"):
        flags.append(f"{pk['drops_s']:,.0f} dropped packets/s on {pk['interface']}")
    flags += ev.concurrency.flags
    accepted = kernel.accept(run)
    if accepted is not None and verdict != ACCEPT:
        flags.append(f"{ACCEPT}: {_accept_text(accepted)}")
    return flags


def _packets_record(pk: dict[str, Any], server: str) -> PacketsPerRequest:
    """The measured packets per request as recorded in the analysis (rounded, with its source)."""
    return PacketsPerRequest(
        rx=round(pk["rx_per_request"], 3), tx=round(pk["tx_per_request"], 3),
        total=round(pk["per_request"], 3),
        tcp_segments=(round(pk["tcp_segments_per_request"], 3)
                      if "tcp_segments_per_request" in pk else None),
        source=f"sar DEV {pk['interface']} on {server}")


def analyse_run(run: Run, *, server: str, interface: str | None, loopback: bool,
                th: Thresholds) -> Analysis:
    """The verdict of one run: its evidence gathered, then the first rule of RULES that holds."""
    ev = gather(run, server=server, interface=interface, loopback=loopback, th=th)
    net, srv, cli, conc = ev.network, ev.server, ev.client, ev.concurrency
    rule, decision = next((r.name, d) for r in RULES if r.decide and (d := r.decide(ev)) is not None)
    rule = decision.rule or rule
    verdict = decision.verdict
    evidence = [*decision.evidence, *_context_evidence(ev, verdict, th)]
    pk = net.packets
    flags = _run_flags(run, ev, verdict)
    lost = kernel.worst_loss(run, th.loss_retrans, th.loss_drops_per_s)
    if lost is not None and verdict == NETWORK:
        evidence.append(_loss_text(lost, ev))
    near = [*net.near, *srv.near, *cli.near]
    flags += near

    s = srv.cpus
    server_busy = s.get("max_busy")
    pchecks = [c for c in net.checks if c.kind == "packets"]
    bchecks = [c for c in net.checks if c.kind == "bandwidth" and c.top]
    ceiling = next((c.cap for c in pchecks if c.top), None)
    use = {c.direction: round(c.use / 100, 4) for c in pchecks if c.top}
    ll = conc.littles_law
    return Analysis(
        verdict=verdict,
        rule=rule,
        evidence=tuple(evidence),
        flags=tuple(flags),
        near_threshold=bool(near),
        packets_per_request=_packets_record(pk, server) if pk else None,
        packet_rate=Pair(rx=pk["rx_pps"], tx=pk["tx_pps"]) if pk else None,
        ceiling_pps=ceiling,
        ceiling_use=Pair(**use) if use else None,
        bytes_per_request=Pair(rx=round(pk["rx_bytes_per_request"], 1),
                               tx=round(pk["tx_bytes_per_request"], 1)) if pk and "rx_bytes_per_request" in pk
        else None,
        payload_bps=Pair(rx=round(pk["rx_payload_bps"]), tx=round(pk["tx_payload_bps"]))
        if pk and "rx_payload_bps" in pk else None,
        bandwidth_bps=Pair(**{c.direction: c.cap for c in bchecks}) if bchecks else None,
        bandwidth_use=Pair(**{c.direction: round(c.use / 100, 4) for c in bchecks}) if bchecks else None,
        bandwidth_basis=BANDWIDTH_BASIS if bchecks else None,
        ceiling_lower_bound=any(c.lower_bound for c in pchecks) if pchecks else None,
        path_use={f"{c.where} ({c.scope})": round(c.use / 100, 4) for c in pchecks if not c.top} or None,
        server_busy_pct=round(server_busy, 2) if server_busy is not None else None,
        server_cpu_split_pct=CpuSplit(**{k: round(v, 2) for k, v in s["split"].items()})
        if "split" in s else None,
        client_busy_pct=round(cli.busiest["busy"], 2) if cli.busiest else None,
        littles_law=LittlesLaw(**{k: round(v, 3) for k, v in ll.items() if k != "open_loop"},
                               open_loop=bool(ll["open_loop"])) if ll else None,
        cpu_us_per_request=cost_per_request(run, s),
        switches=Switches(voluntary_s=srv.voluntary_s, involuntary_s=srv.involuntary_s),
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
            latency_ms=Latency(**{k: m for k in Latency.model_fields
                                  if (m := _median(r.latency_ms.at(k) for r in rs)) is not None}),
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
