"""The records at the results seam: a run (`Run`), its analysis (`Analysis`), a matrix point over
repetitions (`Point`) and a whole results folder's `Summary`, with the versioned load and dump of
summary.json (pyperf's Run/Benchmark, asv's Results.update_to_N).

Pydantic models rather than dataclasses: summary.json is input too (`report`, `compare` and
`--resume` read folders written by older versions and by other people), so the load must check
every field and refuse a bad one in one line naming its key, and pydantic does that and the
JSON round trip from the same declaration. The models are frozen (a derived record is a
`model_copy(update=...)`, which does not validate: update with records, never dicts), and refuse
keys they do not declare (`extra="forbid"`): a misspelt key is an error naming its path, and a
producer declares a new field here first. The one exception is `HostFacts` (what a provider
found on a host, open by nature: kept as recorded). No key an older format wrote has been
removed since, so no upgrade strips any; one that is must come with an upgrade function (see
UPGRADES). A field every producer writes is required (a host-noise reading, a window, iperf3's
results, a client's host and rate); the others have a default, each for a reason: a part not
measured (a failed or partial run, a remote provider), a figure older formats did not keep, or
one generator's only; tests/test_records_fields.py lists the optional fields without a reason on
their line (most only for the tests' hand-made records), a list that may only shrink.

Bulky telemetry detail stays a typed-but-opaque mapping (`Opaque`): the raw collector windows
(`telemetry`), the observer's per-host cost (`observer`), the affinity read-back, the native
generator's request counts and the host facts' extras. Analysis reads a few of them by key, and
typing a collector's every column here would duplicate its adapter's dataclass for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from orchestrator.errors import UserError
from orchestrator.point import CLASSIC, PointKey, Value, classic

# summary.json format history (refuse what we do not know, like pyperf):
#   1: first format (runs with qps, latency_ms, errors, server/client CPU, baseline)
#   2: the typed records below: a run's `rate` is always {target, achieved, sustained}; a
#      point also holds each latency percentile's median and the median achieved rate (version-1
#      points are dropped on upgrade: they are derived, and analysis.summarise_points remakes
#      them from the runs); the summary names its `topology` when it can
#   3: N-axis points (orchestrator/point.py): a run, a point, a capacity search and an
#      auto-scale record keep the classic four fields plus `axes`, the other swept keys in
#      order (server.work_us, load.keepalive, variant, ...); their `key` is a PointKey.
#      Version-2 points of a summary whose runs had axes are dropped on upgrade (they were
#      merged across those axes) and remade from the runs
FORMAT_VERSION = 3

Opaque = Mapping[str, Any]  # kept as recorded, read by key where needed


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # JSON null for a field that is never None reads as its default: early and partial
        # runs wrote null where a part was not measured (other nulls are kept as written)
        if isinstance(data, dict):
            fields = cls.model_fields
            return {k: v for k, v in data.items()
                    if v is not None or k not in fields or fields[k].default is None}
        return data

    def to_json(self) -> dict[str, Any]:
        """The JSON-shaped dict summary.json holds: the fields a record was given, so a loaded
        summary is written back as it was read."""
        return self.model_dump(mode="json", exclude_unset=True)


def _measured(v: Any) -> Any:
    """A per-host mapping without its hosts that were not measured (null)."""
    return {k: x for k, x in v.items() if x is not None} if isinstance(v, dict) else v


# ---------------------------------------------------------------- parts of a run

class Latency(Record):
    """Milliseconds. wrk reports p50..p99 and max; the native generator also the tail."""

    # both generators set p50..p99, max and mean; a run that did not measure latency (null in
    # early and partial runs, Record._null_is_absent) reads as the empty Latency() (Measurement)
    p50: float | None = None  # None: not measured (the comment above)
    p75: float | None = None  # as p50
    p90: float | None = None  # as p50
    p99: float | None = None  # as p50
    p99_9: float | None = None  # the native generator's tail: wrk does not report it
    p99_99: float | None = None  # as p99_9
    p99_999: float | None = None  # as p99_9
    max: float | None = None  # as p50
    mean: float | None = None  # as p50

    def at(self, key: str) -> float | None:
        """A percentile by name ("p99", "p99_9", "max", ...), None when not recorded."""
        v = getattr(self, key, None)
        return v if isinstance(v, int | float) else None


class Rate(Record):
    """An open-loop run's offered rate, what was achieved, and the generator's own verdict.

    `sustained` is both self-checks at once; the two are kept apart because they blame
    different sides. `send_fidelity` is the client's (did it send on schedule: p99 send lag
    within max(1 ms, 10% of the interval)); `completion` is the server's (answered per second
    over offered). None: not recorded (summaries written before the split)."""

    target: float | None = None  # None: closed loop (orchestrate-load reports its achieved rate)
    achieved: float | None = None  # None: a version-1 record's bare target (Measurement._rate_object)
    sustained: bool | None = None  # as achieved
    per_second: tuple[float, ...] | None = None  # the run's only: a client's share has none (load.py)
    send_fidelity: bool | None = None  # None: summaries written before the split (above)
    completion: float | None = None  # as send_fidelity


class LoadSettings(Record):
    """The scenario's load settings as a run used them (execute writes every field)."""

    tool: str | None = None  # version-1 summaries lack it (wrk was the only generator)
    threads: int
    pipeline: int
    duration_s: float
    warmup_s: float | None = None  # version-1 summaries lack it (wrk has no warm-up)
    clients: int


class Errors(Record):
    """The generator's error counters by kind; a kind it did not report is None (not measured,
    never read as 0 errors)."""

    connect: int | None = None  # None: not reported (above), as the three below
    read: int | None = None  # as connect
    write: int | None = None  # as connect
    timeout: int | None = None  # as connect

    @property
    def missing(self) -> tuple[str, ...]:
        """The kinds not reported."""
        return tuple(k for k in ("connect", "read", "write", "timeout") if getattr(self, k) is None)

    @property
    def total(self) -> int | None:
        """All kinds summed; None when any kind was not measured."""
        if self.missing:
            return None
        return (self.connect or 0) + (self.read or 0) + (self.write or 0) + (self.timeout or 0)


class ClientResult(Record):
    """One load generator's share of a run (both generators set host, qps, requests and latency)."""

    host: str
    qps: float
    requests: int
    rate: Rate | None = None  # orchestrate-load only: wrk has no rate
    started: float | None = None  # its first request (wrk: first thread connecting), epoch s, our clock
    latency_ms: Latency


class ThreadCpu(Record):
    """A pidstat row: one thread (or, with tid None, a process total) over the load window."""

    tgid: int
    tid: int | None = None  # None: the process total (pidstat's TGID row; a run keeps threads only)
    command: str
    usr: float
    sys: float
    busy: float
    wait: float | None = None  # None: summaries recorded before %wait was kept (loopback-sample)
    cswch_s: float
    nvcswch_s: float
    n: int
    cpus: tuple[int, ...]


class ServerCpu(Record):
    """The server's threads (pidstat) and their sums."""

    threads: tuple[ThreadCpu, ...] = ()
    usr: float | None = None  # None: no pidstat sample of the server (execute._server_cpu), as below
    sys: float | None = None  # as usr
    cswch_s: float | None = None  # as usr
    nvcswch_s: float | None = None  # as usr


class CpuLoad(Record):
    """An mpstat row: one CPU's split over the load window (busy includes softirq and irq)."""

    cpu: int
    usr: float
    nice: float
    sys: float
    iowait: float
    irq: float
    soft: float | None = None  # None: not measured (mpstat has it; analysis says so, never reads 0)
    steal: float
    idle: float
    busy: float
    n: int


class RoleCpu(Record):
    """The CPUs a role was pinned to (keys are CPU numbers as strings) and their mean busy %."""

    cpus: dict[str, CpuLoad] = {}
    busy: float | None = None  # None: no mpstat row for those CPUs (execute._cpu_of)
    # the server's CPUs: other tasks' time there, % of one CPU summed over them (mpstat.other_share)
    other: float | None = None  # None: a client role's, or not read (telemetry.OTHER)


class BusiestThread(Record):
    """The load generator's busiest thread on one host (pidstat %CPU and %wait)."""

    busy: float
    wait: float
    threads: tuple[ThreadCpu, ...] = ()
    capacity: float | None = None  # the host's CPUs' worth under its quota (None: no quota)
    of_capacity: float | None = None  # all the generator's threads' CPU, % of that capacity
    # its host's cgroup under that quota over the window (cpu.stat; None: not read): the CFS
    # periods it had work in, % of them the quota throttled it in, % of the time throttled
    periods: int | None = None  # None: not read (above), as the two below
    throttled_periods: float | None = None  # as periods
    throttled: float | None = None  # as periods


class CounterThread(Record):
    """One server thread's own counters."""

    thread: int
    cpu: int  # -1: the server did not say (tools/server.parse_stats)
    tid: int | None = None  # None in Balance's copy (analysis.balance), as the two bytes below
    connections: int
    requests: int
    bytes_in: int | None = None  # as tid
    bytes_out: int | None = None  # as tid


class ServerCounters(Record):
    """The server's own counters (tools/server.parse_stats): per thread, and its acceptor's."""

    arch: str
    threads: tuple[CounterThread, ...] = ()
    acceptor_connections: int | None = None  # None: no acceptor thread (reuseport), or not printed

    @property
    def requests(self) -> int:
        return sum(t.requests or 0 for t in self.threads)


class Window(Record):
    """The measured load window, epoch seconds."""

    start: float
    end: float


class Ceiling(Record):
    """A packet-rate ceiling from the baseline, as this run is held to it."""

    path: str | None = None  # None: no baseline (an empty RunCeilings), or a path's or the aggregate's own
    pps_delivered: float | None = None  # None: no UDP baseline measured (an empty RunCeilings)
    pps_sent: float | None = None  # as path
    loss_pct: float | None = None  # as path
    pps_delivered_reverse: float | None = None  # None: no reverse UDP test on that path
    lower_bound: bool | None = None  # either direction (the reasons joined in cpu_bound)
    cpu_bound: str | None = None  # None: not a lower bound (lower_bound False), or no baseline
    # Per direction, as the server sees it (rx: clients -> server; tx: the reverse test).
    # Both None with lower_bound set: a record from before directions were kept.
    cpu_bound_rx: str | None = None  # None: not CPU-bound that way, or a record from before (above)
    cpu_bound_tx: str | None = None  # as cpu_bound_rx
    tcp_bits_per_second: float | None = None  # None: no TCP test that way (baseline._tcp), as the three below
    # the server's tx (iperf3 -R: the server sends); *_cpu_bound: why that direction's TCP
    # figure is only a lower bound (iperf3 at a full CPU), None when it is not
    tcp_bits_per_second_reverse: float | None = None  # as tcp_bits_per_second
    tcp_cpu_bound: str | None = None  # as tcp_bits_per_second, or not CPU-bound (above)
    tcp_cpu_bound_reverse: str | None = None  # as tcp_cpu_bound
    clients: int | None = None  # None: not the aggregate (the one ceiling of several clients at once)


class RunCeilings(Ceiling):
    """The tightest path at the top level, every path's own, and all clients at once."""

    paths: dict[str, Ceiling] = {}
    aggregate: Ceiling | None = None  # None: one client, or no aggregate test (baseline.compared)


class Perf(Record):
    """The folded stacks kept with the run (paths relative to the results folder), or why none."""

    folded: str | None = None  # None: no profile (error says why), as the four below
    flamegraph: str | None = None  # as folded
    title: str | None = None  # as folded
    samples: int | None = None  # as folded
    top_frames: tuple[tuple[str, float], ...] | None = None  # as folded
    error: str | None = None  # None: the profile was made (telemetry.flame_stacks)


class NicAllowance(Record):
    exceeded: dict[str, int | float] = {}  # counter growth over the run, by ethtool counter name
    reset: bool  # a counter went down: the driver restarted (tools/ethtool.delta)


class KernelCounters(Record):
    """One host's (or lab namespace's) TCP counters over the window (tools/nstat.py's names):
    the rise per run, per request and per second; NET_RX/NET_TX softirq counts per pinned CPU.
    `shared`: on loopback the client and the server are one kernel, one set of counters that
    no rule may assign to a side."""

    run: dict[str, int | None] = {}
    per_request: dict[str, float | None] = {}
    per_second: dict[str, float | None] = {}
    softirqs: dict[int, dict[str, int]] = {}
    roles: tuple[str, ...] = ()  # what ran on this host: server, client
    shared: bool = False
    reset: bool | None = None  # a counter went down (its namespace restarted): figures are partial


# ---------------------------------------------------------------- the analysis of one run

class Pair(Record):
    rx: float | None = None  # None: that direction not checked (ceiling_use, bandwidth_*), as tx
    tx: float | None = None  # as rx


class PacketsPerRequest(Pair):
    """analysis._packets_record: sar's packets per request on the server's interface."""

    total: float
    tcp_segments: float | None = None  # None: sar gave no TCP segment counts
    source: str


class CpuSplit(Record):
    usr: float
    sys: float
    soft: float | None = None  # None: softirq not measured (CpuCost; cost_per_request)


class CpuCost(CpuSplit):
    """Server CPU µs per request: usr and sys its own (pidstat), soft the softirq and irq on its
    CPUs not already charged to it. `basis` says how soft was counted; None: a record from before
    it was counted once (softirq added in full, possibly twice)."""

    total: float | None = None  # None: soft not measured, so the total is unknown (basis says)
    basis: str | None = None  # None: a record from before soft was counted once (above)


class Switches(Record):
    voluntary_s: float | None = None  # None: no pidstat sample of the server (ServerCpu), as below
    involuntary_s: float | None = None  # as voluntary_s


class LittlesLaw(Record):
    """analysis.littles_law: all of it or none (Analysis.littles_law None)."""

    in_flight: float
    latency_ms: float
    qps_cap: float
    below_pct: float
    over_pct: float
    open_loop: bool | None = None  # latency_ms is then the mean service time


class Balance(Record):
    threads: tuple[CounterThread, ...] = ()
    requests_max_over_mean: float | None = None  # None: a mean of 0 (nothing to share), as below
    connections_max_over_mean: float | None = None  # as requests_max_over_mean


class Analysis(Record):
    """The verdict of one run with the evidence that decided it (analysis.py writes it)."""

    verdict: str | None = None  # None: not analysed (an empty Analysis()), as rule, near_threshold, switches
    rule: str | None = None  # as verdict
    evidence: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    near_threshold: bool | None = None  # as verdict
    packets_per_request: PacketsPerRequest | None = None  # None: no sar packet counts, as packet_rate
    packet_rate: Pair | None = None  # as packets_per_request
    # TCP payload bytes per request and bits/s on the server's interface (sar's bytes less the
    # headers of the packets it counted), and the iperf3 TCP ceiling each way they are held to
    bytes_per_request: Pair | None = None  # None: no sar byte counts, or recorded before they were kept
    payload_bps: Pair | None = None  # as bytes_per_request
    bandwidth_bps: Pair | None = None  # None: no check against a TCP ceiling, or recorded before them
    bandwidth_use: Pair | None = None  # as bandwidth_bps
    bandwidth_basis: str | None = None  # as bandwidth_bps
    ceiling_pps: float | None = None  # None: no packet-rate ceiling on the run's path, as the two below
    ceiling_use: Pair | None = None  # as ceiling_pps
    ceiling_lower_bound: bool | None = None  # as ceiling_pps
    path_use: dict[str, float] | None = None  # None: no other path checked
    server_busy_pct: float | None = None  # None: no mpstat row of the server's CPUs, as the split
    server_cpu_split_pct: CpuSplit | None = None  # as server_busy_pct
    client_busy_pct: float | None = None  # None: no mpstat row of a client's CPUs
    littles_law: LittlesLaw | None = None  # None: no connections, mean latency or QPS (analysis.littles_law)
    cpu_us_per_request: CpuCost | None = None  # None: no QPS, or no pidstat of the server (cost_per_request)
    switches: Switches | None = None  # as verdict
    balance: Balance | None = None  # None: no server counters (analysis.balance)


# ---------------------------------------------------------------- a run, a point, a summary

Axes = dict[str, Value]  # a point's swept keys beyond the classic four, in order


class RunIdentity(Record):
    """Which run of the matrix a record is (plan.RunSpec.as_dict): its point and repetition."""

    index: int
    arch: str
    server_threads: int
    connections: int
    repetition: int
    axes: Axes = {}
    run_id: str


class Measurement(Record):
    """What the load generators measured (load.Measured): a run's load fields, before execute
    composes them with the run's identity and the telemetry into a `Run`."""

    rate: Rate | None = None  # open loop only
    requests: int
    qps: float
    latency_ms: Latency = Latency()
    service_time_ms: Latency | None = None  # open loop: from the actual send
    send_lag_ms: Latency | None = None  # open loop: actual send - intended send
    # open loop (orchestrate-load): actual send - max(intended, when a connection was free), the
    # client's own lag, without the wait for a busy connection (the server's); send fidelity's basis
    client_send_lag_ms: Latency | None = None  # open loop only, as above
    requests_detail: Opaque | None = None  # orchestrate-load's counts: wrk has none
    errors: Errors | None = None  # None: not measured (Run.errors_not_measured says why)
    non_2xx: int | None = None  # None: not measured, never 0 (failed_requests unknown: issue 22)
    clients: tuple[ClientResult, ...] = ()
    start_skew_ms: float | None = None  # between the first and the last client's first request
    histograms: str | None = None  # orchestrate-load's bucket file: wrk has none

    @field_validator("rate", mode="before")
    @classmethod
    def _rate_object(cls, v: Any) -> Any:
        # a version-1 record of a fixed-rate run could hold the spec's bare target
        return {"target": v} if isinstance(v, int | float) and not isinstance(v, bool) else v


class Run(Measurement, RunIdentity):
    """One run of the matrix: its identity, what the load generators measured, the telemetry's
    summaries, and its analysis (fields in that order: the bases' first)."""

    load: LoadSettings
    server_cpu: ServerCpu
    client_cpu: dict[str, RoleCpu] = {}
    client_proc: dict[str, BusiestThread] | None = None  # None: no generator pidstat row (execute._record)
    server_host_cpu: RoleCpu
    affinity: Opaque
    server_counters: ServerCounters | None = None  # None: the server printed no stats (server.parse_stats)
    telemetry: Opaque = {}
    window: Window
    baseline: RunCeilings
    server_stopped_cleanly: bool
    observer: Opaque | None = None  # None: version-1 summaries lack it (loopback-sample), as analysis, wall_s
    perf: Perf | None = None  # None: perf not among the scenario's collectors (execute._one_run)
    nic_allowances: dict[str, NicAllowance] | None = None  # None: no host's NIC counters read both sides
    kernel: dict[str, KernelCounters] | None = None  # by host
    sysctl: dict[str, dict[str, str]] | None = None  # host -> the kernel.sysctl values in force
    analysis: Analysis | None = None  # None: as observer (version 1)
    wall_s: float | None = None  # as observer

    _per_host = field_validator("client_cpu", "client_proc", "nic_allowances", mode="before")(_measured)

    @property
    def key(self) -> PointKey:
        """The matrix point this run repeats (the rate is None for a closed loop)."""
        target = self.rate.target if self.rate else None
        return classic(self.arch, self.server_threads, self.connections, target, self.axes)

    @property
    def label(self) -> str:
        return self.run_id

    @property
    def failed_requests(self) -> int | None:
        """Socket errors and non-2xx responses; None when either was not measured."""
        total = self.errors.total if self.errors is not None else None
        return None if total is None or self.non_2xx is None else total + self.non_2xx

    @property
    def errors_not_measured(self) -> str | None:
        """Why the run's failed requests are unknown (None: they were measured)."""
        if self.errors is None:
            return "socket errors not measured (the record has no error counters)"
        if self.errors.missing:
            return f"socket errors not measured ({', '.join(self.errors.missing)} not reported)"
        if self.non_2xx is None:
            return "non-2xx responses not measured (the record has no count of them)"
        return None


class Point(Record):
    """A matrix point over its repetitions: median and spread (pyperf-style median +- MAD), and
    whether the repetitions agree on the verdict (analysis.summarise_points writes it)."""

    arch: str
    server_threads: int
    connections: int
    rate: float | None = None  # the target rate; None for a closed loop
    axes: Axes = {}
    n: int = 0
    qps_median: float
    qps_min: float
    qps_max: float
    qps_mad: float
    qps_stdev: float
    unstable: bool  # std dev >= 10% of the mean (pyperf's warning)
    p50_ms_median: float | None = None  # None: no run of the point measured latency (summarise_points)
    p99_ms_median: float | None = None  # as p50_ms_median
    latency_ms: Latency | None = None  # each percentile's median over the repetitions
    achieved: float | None = None  # open loop: the median achieved rate
    verdicts: dict[str, int] = {}
    verdict_agreement: str | None = None  # None: no run of the point had a verdict (summarise_points)
    verdict_text: str | None = None  # as verdict_agreement

    @property
    def key(self) -> PointKey:
        return classic(self.arch, self.server_threads, self.connections, self.rate, self.axes)

    @staticmethod
    def fields_of(key: PointKey) -> dict[str, Any]:
        """The fields a point record keeps for `key` (the classic four and the other axes)."""
        axes = {a: v for a, v in key.items() if a not in CLASSIC}
        return {"arch": key.get("server.arch"), "server_threads": key.get("server.threads"),
                "connections": key.get("load.connections"), "rate": key.get("load.rate"),
                **({"axes": axes} if axes else {})}


class Topology(Record):
    server: str
    interface: str | None = None  # None: the provider finds it by address (hosts.Host.interface)
    loopback: bool = False
    clients: tuple[str, ...] | None = None  # summaries upgraded from version 1 lack it (upgrade_1_to_2)


class HostFacts(Record):
    """What `facts` found on a host. The one open record: the keys below are the ones read by
    name; the rest (microcode, governor, cgroup, sysctl, clock offset, instance type, ...) vary
    by provider and kernel and are kept as recorded, for the environment diff to compare."""

    model_config = ConfigDict(frozen=True, extra="allow")

    # execute._host_facts sets all six; a host listed with null facts reads as {} (Summary._facts_or_none)
    hostname: str | None = None  # None: null facts (above), as the five below
    address: str | None = None  # as hostname
    roles: tuple[str, ...] = ()
    kernel: str | None = None  # as hostname
    cpu_model: str | None = None  # as hostname
    cpus: int | None = None  # as hostname
    threads_per_core: int | None = None  # as hostname
    tool_versions: dict[str, str | None] = {}


class UdpCeiling(Record):
    """iperf3's small-datagram UDP test (tools/iperf3.parse_udp makes it, `combine` adds parallel
    processes up) and, once baseline.py has judged it, whether iperf3's own CPU set the rate
    (`cpu_bound`, `lower_bound`: None until it has)."""

    length: int  # UDP payload bytes
    packets_sent: int
    packets_delivered: int
    packets_lost: int  # sent - delivered: dropped anywhere, or still in flight at the end
    pps_sent: float
    pps_delivered: float
    loss_pct: float
    duration_s: float
    cpu_sender_pct: float
    cpu_receiver_pct: float
    reverse: bool = False
    streams: int = 1
    processes: int = 1  # iperf3 client processes whose results were added up
    lower_bound: bool | None = None  # None: baseline.py has not judged it yet (as the docstring)
    cpu_bound: str | None = None  # as lower_bound; once judged, None: iperf3's CPU did not set the rate
    clients: int | None = None  # the all-clients-at-once aggregate: how many
    scaling: tuple[Opaque, ...] | None = None  # each process count tried while iperf3 was CPU-bound

    @model_validator(mode="after")
    def _consistent(self) -> UdpCeiling:
        if min(self.packets_sent, self.packets_delivered, self.packets_lost) < 0:
            raise ValueError("iperf3 packet counts must be >= 0")
        if self.packets_delivered > self.packets_sent:
            raise ValueError("iperf3 delivered more packets than were sent")
        if self.duration_s <= 0 or self.length <= 0:
            raise ValueError("iperf3 duration and length must be > 0")
        if not 0.0 <= self.loss_pct <= 100.0:
            raise ValueError("iperf3 loss must be within 0..100%")
        return self


class TcpThroughput(Record):
    """iperf3's TCP test (tools/iperf3.parse_tcp): the rate as received, retransmits (None when
    iperf3 could not read them) and each end's CPU."""

    bits_per_second: float
    bits_per_second_sent: float
    retransmits: int | None = None  # None: iperf3 could not read them
    duration_s: float
    cpu_sender_pct: float
    cpu_receiver_pct: float
    reverse: bool = False

    @model_validator(mode="after")
    def _in_range(self) -> TcpThroughput:
        if (self.bits_per_second < 0 or self.duration_s <= 0
                or (self.retransmits is not None and self.retransmits < 0)):
            raise ValueError("iperf3 TCP result out of range")
        return self


class BaselinePath(Record):
    """iperf3 on one client -> server path (the aggregate runs ride on the tightest path)."""

    client: str
    server: str
    udp: UdpCeiling
    udp_reverse: UdpCeiling | None = None  # None: one machine (loopback): one way only (baseline.py)
    tcp: TcpThroughput | None = None  # None: baseline.tcp off
    tcp_reverse: TcpThroughput | None = None  # iperf3 -R: the server sends
    udp_aggregate: UdpCeiling | None = None  # None: one client (all at once needs more), as the reverse
    udp_aggregate_reverse: UdpCeiling | None = None  # as udp_aggregate


class SearchStep(Record):
    """One rate a capacity search tried (capacity.py): the figures it was decided on, and the
    decision."""

    rate: float
    passed: bool
    reason: str = ""  # the deciding figures with their limits
    repeated: str | None = None  # why it took more than one run
    achieved: float | None = None  # the mean over its runs
    # True: latency_ms is of all its runs' requests (histograms merged); False (searches before
    # pooling, or runs without histograms): the medians of the runs' percentiles
    pooled: bool = False
    latency_ms: dict[str, float] = {}
    run_ids: tuple[str, ...] = ()
    verdicts: tuple[str | None, ...] = ()


class CapacitySearch(Record):
    """One capacity search of one matrix point (load.search): the highest rate that met the SLO."""

    # None until execute names the point: capacity._result builds the search without it
    arch: str | None = None  # None: not named yet (above), as the two below
    server_threads: int | None = None  # as arch
    connections: int | None = None  # as arch
    axes: Axes = {}
    repetition: int = 1
    capacity: float | None = None  # None: not even min_rate met the SLO
    bound: Literal["found", "below min_rate", "at max_rate"] = "found"
    evidence: str = ""
    slo: str = ""
    runs: int = 0
    steps: tuple[SearchStep, ...] = ()
    verdict_at_capacity: str | None = None  # None: no rate met the SLO, or its run had no verdict
    verdict_above: str | None = None  # at the first rate above it that failed

    def step_at(self, rate: float | None) -> SearchStep | None:
        return next((s for s in self.steps if s.rate == rate), None)

    @property
    def key(self) -> PointKey:
        """The matrix point (closed to rates: the search chose them)."""
        return classic(self.arch, self.server_threads, self.connections, None, self.axes)


class ScaleStep(Record):
    clients: int
    run_id: str
    qps: float | None = None  # None: as its run's (Run.qps)
    verdict: str | None = None  # None: its run had no verdict (execute._autoscale)
    client_limited: str | None = None  # why the client was the limit; None: it was not


class Autoscale(Record):
    """How many client hosts a point needed (hosts.roles.client: {min, max}), and the path."""

    arch: str
    server_threads: int
    connections: int
    rate: float | None = None  # None: a closed loop
    axes: Axes = {}
    clients: int = 1  # the count the point's runs used
    limited: bool = False  # still client-limited at max
    settled: bool = True  # False: the session stopped while this point was scaling
    stopped: str = ""
    path: tuple[ScaleStep, ...] = ()

    @property
    def key(self) -> PointKey:
        return classic(self.arch, self.server_threads, self.connections, self.rate, self.axes)


class Cost(Record):
    """A cloud run's estimated cost: each instance's list price for as long as the run held it
    (per-second billing, 60 s minimum). An estimate, never a bill: `note` says from what."""

    estimate: bool = True
    currency: str
    total: float | None = None  # None: some instance type has no price in the table
    instance_hours: dict[str, float] = {}  # instance type -> hours held, all instances of it
    prices_as_of: str
    note: str


class Intruder(Record):
    """A process of someone else's that ran on the pinned CPUs during a host-noise reading."""

    pid: int
    command: str
    cpu_pct: float  # of one CPU, over the interval


class HostNoise(Record):
    """doctor.noise's reading of the CPUs a run pins, taken while nothing of ours runs there:
    `orchestrate doctor`'s, and a run's before its first window and after its last."""

    when: str  # "before" (the first window), "after" (the last), or "now" (the doctor)
    seconds: float
    cpus: tuple[int, ...]
    busy_pct: dict[int, float]  # per pinned CPU: time not idle (ours is idle then)
    steal_pct: float  # over all CPUs
    intruders: tuple[Intruder, ...] = ()  # busiest first
    # doctor.pauses per pinned CPU ({band: {count, ms}, lost_pct, seconds}); None: not probed
    # (the doctor's own reading; a run probes after each reading)
    pauses: dict[str, Opaque] | None = None  # None: not probed (see above)

    @property
    def worst(self) -> float:
        return max(self.busy_pct.values(), default=0.0)

    @property
    def lost_pct(self) -> float | None:
        """The worst pinned CPU's time lost to pauses; None: not probed."""
        lost = [float(c["lost_pct"]) for c in (self.pauses or {}).values()
                if isinstance(c.get("lost_pct"), int | float)]
        return max(lost) if lost else None

    def line(self) -> str:
        """One line for the report and the doctor."""
        busy = ", ".join(f"cpu{c} {p:.0f}%" for c, p in sorted(self.busy_pct.items()))
        who = "; ".join(f"{i.command} (pid {i.pid}) {i.cpu_pct:.0f}%" for i in self.intruders[:3])
        return (f"{self.when} the windows: pinned CPUs busy {busy or '-'}, steal {self.steal_pct:.1f}%"
                + (f"; foreign processes: {who}" if who else ""))


class Summary(Record):
    """A results folder's summary.json: the session, its hosts and baseline, runs and points."""

    scenario: str
    run_id: str
    source: str  # the scenario file, or the embedded default's name
    started: str
    finished: str | None = None  # None: the opened record (execute._open_results) until its first save
    status: str
    phase: str | None = None  # None: the session did not stop early (execute._Session.save), as error
    error: str | None = None  # as phase
    resumed: int | None = None  # None: never resumed (execute counts each resume)
    provider: str
    hosts: dict[str, HostFacts] = {}
    topology: Topology | None = None  # None: a version-1 summary whose hosts name no server (upgrade_1_to_2)
    thresholds: Opaque | None = None  # the scenario's, as analysis.Thresholds.from_dict reads them
    baseline: dict[str, BaselinePath] = {}
    timing: Opaque | None = None  # seconds per phase
    runs: tuple[Run, ...] = ()
    points: tuple[Point, ...] = ()
    capacity: tuple[CapacitySearch, ...] = ()  # load.search: one per point and repetition
    autoscale: tuple[Autoscale, ...] = ()  # hosts.roles.client {min, max}: one per point
    cost: Cost | None = None  # cloud providers: what the run's instances cost, estimated
    host_noise: dict[Literal["before", "after"], HostNoise] | None = None  # local hosts only
    rounds: Opaque | None = None  # paired rounds: how many ran, and why they stopped

    @field_validator("hosts", mode="before")
    @classmethod
    def _facts_or_none(cls, v: Any) -> Any:
        # a host whose facts could not be read is still one of the run's hosts
        return {k: ({} if f is None else f) for k, f in v.items()} if isinstance(v, dict) else v

    def dump(self) -> dict[str, Any]:
        """What summary.json holds: the format version first, then the record."""
        return {"version": FORMAT_VERSION, **self.to_json()}


# ---------------------------------------------------------------- versioned load

def upgrade_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2 (asv's update_to_N): early version-1 summaries did not record where the
    server ran; it follows from the host whose roles name the server. Points are derived data
    without the latency medians version 2 has: dropped, to be remade from the runs. Returns a
    new dict."""
    data = dict(data)
    data.pop("points", None)
    if "topology" not in data:
        hosts: dict[str, Any] = data["hosts"] if isinstance(data.get("hosts"), dict) else {}
        server = next((h for h, f in hosts.items()
                       if isinstance(f, dict) and "server" in (f.get("roles") or [])), None)
        if server is not None:
            data["topology"] = {"server": server, "interface": None,
                                "loopback": data.get("provider") == "local"}
    data["version"] = 2
    return data


def upgrade_2_to_3(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 -> 3: the classic fields are unchanged and `axes` defaults to none, so a
    version-2 record reads as it was. Points of a summary whose runs recorded other axes
    (`axes`, written since the plan swept them) were merged across those axes: dropped, to
    be remade from the runs. Returns a new dict."""
    data = dict(data)
    runs: list[Any] = data["runs"] if isinstance(data.get("runs"), list) else []
    if any(isinstance(r, dict) and r.get("axes") for r in runs):
        data.pop("points", None)
    data["version"] = 3
    return data


UPGRADES = {1: upgrade_1_to_2, 2: upgrade_2_to_3}  # version N -> N + 1, applied in turn


def load(data: Any, where: str = "summary.json") -> Summary:
    """A summary from its JSON: older versions upgraded in turn, unknown ones refused, and any
    field of the wrong kind refused in one line naming its key (`where` starts the line)."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: not a summary (a JSON object with version, runs, ...)")
    version = data.get("version")
    if version not in (*UPGRADES, FORMAT_VERSION):
        raise UserError(f"{where}: summary format version {version!r} is not one this orchestrate "
                        f"reads (it reads 1 to {FORMAT_VERSION})")
    while version in UPGRADES:
        data = UPGRADES[version](data)
        version = data["version"]
    body = {k: v for k, v in data.items() if k != "version"}
    try:
        return Summary.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{where}: {key}: {first['msg']} (got {_short(first.get('input'))})") from None


def as_summary(summary: Summary | Mapping[str, Any], where: str = "summary") -> Summary:
    """The typed record of a summary given either way (a dict: summary.json's, or a test's)."""
    if isinstance(summary, Summary):
        return summary
    return load(dict(summary) if "version" in summary else {**summary, "version": FORMAT_VERSION}, where)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
