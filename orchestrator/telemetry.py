"""Telemetry during the load: collectors on every host, their summaries over the load window,
ENA allowance counters, and perf flame graphs."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from orchestrator import remote, tools
from orchestrator.context import Context, plain
from orchestrator.errors import RunFailed
from orchestrator.hosts import Host
from orchestrator.plan import RunSpec
from orchestrator.remote import each
from orchestrator.tools import ethtool, mpstat, nstat, perf, pidstat


class Collector(NamedTuple):
    proc: remote.Process  # proc.name labels its output: "pidstat", "pidstat-load", ...
    host: Host
    tool: str  # the adapter that parses it
    started: float | None = None  # when it was spawned (this machine's clock): its 1 s phase


LOAD_PIDSTAT = "pidstat-load"  # pidstat on the load generator's own threads
# other tasks' time on the server's CPUs over mpstat's intervals in the window (mpstat.other_share)
OTHER = "mpstat-other"
COLLECTOR_STARTUP_S = 0.005  # spawn to a collector's first reading (fork, exec, sadc)
PHASE_SLACK_S = 0.1  # how far an interval may stray outside the window (spawn timing, drift)
# Keep a collector's interval ends this far from a whole second (its clock's): see edge_wait
PHASE_EDGE_S = 0.05


def start(ctx: Context, spec: RunSpec, server_pids: list[int]) -> list[Collector]:
    """The scenario's collectors on every host, on the CPUs the run leaves free (if any);
    pidstat and perf watch the server's processes."""
    def start(h: Host) -> list[Collector]:
        wanted: list[tuple[str, list[str] | str]] = []
        for name in ctx.sc.telemetry.collectors:
            if name in ("pidstat", "perf") and "server" not in h.roles:
                continue
            if name == "mpstat" and "server" in h.roles:  # with other tasks' time on its CPUs
                wanted.append((name, mpstat.with_other(server_pids, ctx.cpus(h, "server"))))
                continue
            wanted.append((name, pidstat.command(server_pids) if name == "pidstat" else
                           perf.record_command(server_pids, f"{h.workdir}/{spec.run_id}/perf.data")
                           if name == "perf" else tools.get(name).command()))
        return [_spawn(ctx, spec, h, label, label, argv) for label, argv in wanted]

    return [c for per_host in each(list(ctx.lab.hosts), start) for c in per_host]


def watch_load(ctx: Context, spec: RunSpec, generators: dict[str, int]) -> list[Collector]:
    """pidstat on each load generator's own threads (host -> its pid, which it keeps when the
    waiting process execs into it): its %CPU and %wait say whether the client was the limit."""
    if "pidstat" not in ctx.sc.telemetry.collectors:
        return []
    hosts = [h for h in ctx.lab.clients if h.name in generators]
    return each(hosts, lambda h: _spawn(ctx, spec, h, LOAD_PIDSTAT, "pidstat",
                                        pidstat.command([generators[h.name]])))


def _spawn(ctx: Context, spec: RunSpec, h: Host, label: str, tool: str, argv: list[str] | str) -> Collector:
    """A collector from its argv, or from an sh script (a str)."""
    time.sleep(edge_wait(time.time(), ctx.facts.get(h.name, {}).get("clock_offset_s") or 0.0))
    sent = time.time()
    cmd = argv if isinstance(argv, str) else tools.base.join(argv)
    proc = ctx.table.spawn(h.name, label, cmd, cpus=ctx.collector_cpus(h),
                           workdir=f"{h.workdir}/{spec.run_id}", env=tools.get(tool).ENV,
                           shell=isinstance(argv, str))
    return Collector(proc, h, tool, (sent + time.time()) / 2)


def cpu_reading(ctx: Context, collectors: list[Collector]) -> dict[str, remote.CpuTimes]:
    """CPU used so far by each host's collectors and its sshd (and a quota-held host's
    throttling): one command per host, taken just outside the measurement window on both sides."""
    def read(h: Host) -> remote.CpuTimes:
        mine = [c.proc.pid for c in collectors if c.host.name == h.name]
        facts = ctx.facts.get(h.name) or {}
        # a host held to a CPU quota: its cgroup's throttling (see throttling())
        cgroup = str(facts.get("cgroup") or "") if facts.get("cpu_quota") else ""
        return remote.cpu_times(ctx.t(h), mine, sshd=h.ssh is not None, cgroup=cgroup)

    hosts = list(ctx.lab.hosts)
    return dict(zip([h.name for h in hosts], each(hosts, read), strict=True))


def observer(ctx: Context, collectors: list[Collector], window: tuple[float, float],
             before: dict[str, remote.CpuTimes], after: dict[str, remote.CpuTimes],
             own_cpu_s_per_s: float | None) -> dict[str, Any]:
    """What measuring cost the measured hosts during the window: each collector's CPU, sshd's
    CPU (our commands), where the collectors ran, and the commands that reached each host
    inside the window (by construction none; the command log is the proof)."""
    inside = ctx.log.inside(*window)

    def rate(key: str, b: remote.CpuTimes | None, a: remote.CpuTimes | None,
             less: float = 0.0) -> float | None:
        if b is None or a is None or key not in b.cpu_s or key not in a.cpu_s or a.clock <= b.clock:
            return None
        return round(max(0.0, a.cpu_s[key] - b.cpu_s[key] - less) / (a.clock - b.clock), 5)

    hosts: dict[str, Any] = {}
    for h in ctx.lab.hosts:
        b, a = before.get(h.name), after.get(h.name)
        mine = [(c.proc, c.proc.name) for c in collectors if c.host.name == h.name]
        per = {name: {"cpu_s_per_s": rate(str(p.pid), b, a),
                      "ran_on": (a.last_cpus.get(str(p.pid)) if a else None)} for p, name in mine}
        known = [c for v in per.values() if isinstance(c := v["cpu_s_per_s"], float)]
        pinned = ctx.collector_cpus(h) if mine else None
        hosts[h.name] = {
            "collectors": per,
            "collectors_cpu_s_per_s": round(sum(known), 5) if len(known) == len(per) else None,
            "collector_cpus": pinned,  # None: not pinned (no CPU to spare)
            "shares_measured_cpus": bool(mine) and (pinned is None
                                                    or bool(set(pinned) & ctx.measured_cpus(h))),
            # the reading's own shell ends after it: that is charged to sshd, not to the window
            "sshd_cpu_s_per_s": rate("sshd", b, a, less=b.own_s if b else 0.0) if h.ssh else None,
            "remote_commands_in_window": sum(1 for r in inside if r.host == h.name),
        }
    return {"window": {"start": window[0], "planned_end": window[1]},
            "remote_commands_in_window": len(inside),
            "commands_in_window": [f"{r.host}: {r.kind} {r.what[:80]}" for r in inside[:10]],
            "orchestrator_cpu_s_per_s": own_cpu_s_per_s,
            "hosts": hosts}


def throttling(before: remote.CpuTimes | None, after: remote.CpuTimes | None) -> dict[str, Any]:
    """A quota-held host's cgroup between two readings (cpu.stat): the CFS periods it had work
    in, the share of them its quota throttled it in, and the share of the time it spent
    throttled (summed over its CPUs' run queues). Empty: not read (no quota, cgroup v2)."""
    b, a = (before.cpu_stat if before else None), (after.cpu_stat if after else None)
    keys = ("nr_periods", "nr_throttled", "throttled_time")
    if not b or not a or any(k not in b or k not in a for k in keys) or a is b:
        return {}
    assert before is not None and after is not None
    periods, secs = a["nr_periods"] - b["nr_periods"], after.clock - before.clock
    if periods <= 0 or secs <= 0:
        return {}
    return {"periods": periods,
            "throttled_periods": round(100.0 * (a["nr_throttled"] - b["nr_throttled"]) / periods, 2),
            "throttled": round(min(100.0, (a["throttled_time"] - b["throttled_time"]) / 1e7 / secs), 2)}


def summarize(ctx: Context, collectors: list[Collector],
              raw: dict[tuple[str, str], str], start: float, end: float) -> dict[str, dict[str, Any]]:
    """Each collector's output averaged over the load window: {label: {host: summary}}, the
    summary as its adapter returns it (pidstat: [ThreadCpu], mpstat: {cpu: CpuLoad}, ...) or
    {"error": why}; `plain` of it is what a run's `telemetry` holds."""
    # start..end is the load itself: the common start plus wrk's own duration (not
    # when we noticed wrk had ended).

    telemetry: dict[str, dict[str, Any]] = {}
    for c in collectors:
        h, name = c.host, c.proc.name
        if c.tool == "perf":
            continue  # folded into a flame graph, not averaged
        mod = tools.get(c.tool)
        off = (ctx.facts.get(h.name, {}).get("clock_offset_s") or 0.0)
        text = raw.get((h.name, name), "")
        try:
            samples = mod.parse(text)
            for lo, hi in stamp_windows(c.started, start, end, off):
                summary = mod.summarize(samples, lo + off, hi + off)
                if not empty(summary):
                    break
        except (tools.ToolError, ValueError) as exc:
            telemetry.setdefault(name, {})[h.name] = {"error": str(exc)}
            continue
        telemetry.setdefault(name, {})[h.name] = summary
        if c.tool == "mpstat" and mpstat.OTHER in text:  # over the very intervals averaged above
            other = mpstat.other_in_window(text, samples, lo + off, hi + off)
            telemetry.setdefault(OTHER, {})[h.name] = other
    return telemetry


def edge_wait(now: float, off: float) -> float:
    """Seconds to wait before spawning a collector at `now` (this machine's clock; the host's
    is `off` ahead) so that its intervals end at least PHASE_EDGE_S from a whole second.
    Stamps are the ends truncated, and the phase is known to ~15 ms (the spawn's round trip):
    an end estimated at x.004 that fell at (x-1).990 carries the stamp before, and the window
    is then taken a second late (here a 2 s load at 19,500/s read 15,631 packets/s: its last
    interval, 0.8 of it inside the load). At most 2 x PHASE_EDGE_S, for a tenth of spawns."""
    phase = (now + off + COLLECTOR_STARTUP_S) % 1.0
    return (PHASE_EDGE_S - phase) % 1.0 if min(phase, 1.0 - phase) < PHASE_EDGE_S else 0.0


def stamp_windows(started: float | None, start: float, end: float,
                  off: float) -> list[tuple[float, float]]:
    """Ranges of a collector's timestamps to average over the load start..end (this machine's
    clock), best first. Timestamps mark the END of each 1 s interval, on the host's clock
    (`off` ahead of ours), truncated to whole seconds. Keep the intervals wholly inside the
    load: exactly, from the collector's phase (its intervals end a whole number of seconds
    after it started); without one, those inside whatever the true end; for a load too
    short to hold any, the ones mostly inside."""
    out = [(start + 1.0, end - 1.0), (start + 0.5, end + 0.5)]
    if started is not None:
        phase = (started + off + COLLECTOR_STARTUP_S) % 1.0
        out.insert(0, (start - phase + 1.0 - PHASE_SLACK_S, end - phase + PHASE_SLACK_S))
    return out


def empty(summary: Any) -> bool:
    """A telemetry summary with no samples in it (shapes differ per collector)."""
    summary = plain(summary)
    if isinstance(summary, dict) and "interfaces" in summary:
        return not summary["interfaces"]
    return not summary


def nic_counters(ctx: Context, spec: RunSpec, when: str) -> dict[str, Any]:
    """ENA allowance counters (cloud NIC caps: pps, bandwidth) on hosts that have them."""
    out: dict[str, Any] = {}
    for h in ctx.lab.hosts:
        if not h.vars.get("ena"):
            continue
        t = ctx.t(h)
        iface = h.interface or t.run(f"ip -o addr show to {h.address} | awk '{{print $2}}'",
                                     timeout=10, check=False).stdout.strip()
        if not iface:
            continue
        done = t.run(tools.base.join(ethtool.command(iface)), timeout=15, check=False, env=ethtool.ENV)
        raw = ctx.results.raw(spec.run_id, h.name, f"ethtool-{when}")
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(done.stdout + done.stderr)
        try:
            out[h.name] = ethtool.parse(done.stdout)
        except tools.ToolError:
            continue  # no counters on this NIC: no evidence either way
    return out


def kernel_counters(ctx: Context, spec: RunSpec, when: str) -> dict[str, nstat.Reading]:
    """Every host's TCP counters and softirq counts (one round trip each, all hosts at once);
    the raw text is kept. A host whose kernel shows none is left out: no evidence either way."""
    hosts = [ctx.lab.server] + [c for c in ctx.lab.clients[:spec.clients] if c.name != ctx.lab.server.name]

    def read(h: Host) -> nstat.Reading | None:
        done = ctx.t(h).run(nstat.command(), timeout=15, check=False)
        raw = ctx.results.raw(spec.run_id, h.name, f"nstat-{when}")
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(done.stdout + done.stderr)
        try:
            return nstat.parse(done.stdout)
        except tools.ToolError:
            return None

    return {h.name: r for h, r in zip(hosts, each(hosts, read), strict=True) if r is not None}


NO_PERF_DATA = 3  # perf_script's own exit status: record left no data (its words on stderr)


def perf_script(ctx: Context, sdir: str) -> str | None:
    """`perf script` on the server host, where the samples' symbols resolve, while the server's
    binary is still there. Returns what went wrong, in perf's own words, else None."""
    done = ctx.t(ctx.lab.server).run(
        f"cd {sdir} && if test -s perf.data; then "
        f"{tools.base.join(perf.script_command('perf.data'))} > perf-script.txt; "
        f"else tail -n 3 perf.err >&2; exit {NO_PERF_DATA}; fi", timeout=300, check=False, env=perf.ENV)
    if done.rc == NO_PERF_DATA:
        said = done.stderr.strip().splitlines()
        return f"perf: record wrote no data: {said[-1] if said else 'no message'}"
    try:
        perf.check(done.rc, done.stderr)
    except tools.ToolError as exc:
        return str(exc)
    return None


def flame_stacks(ctx: Context, spec: RunSpec, sdir: str, failure: str | None) -> dict[str, Any]:
    """The server host's samples folded into stacks, kept with the run; the report draws the
    flame graph from them. A failure says why there is none."""
    server = ctx.lab.server
    if failure:
        return {"error": failure}
    text_path = ctx.results.raw(spec.run_id, server.name, "perf-script")
    try:
        ctx.t(server).get(f"{sdir}/perf-script.txt", text_path)
    except (RunFailed, OSError) as exc:
        return {"error": f"perf: cannot fetch its output: {exc}"}
    folded = perf.fold(text_path.read_text(errors="replace"))
    if not folded:
        return {"error": "perf: no stack samples of the server (did it run on the sampled CPUs?)"}
    stacks = text_path.with_name("perf.folded")
    stacks.write_text(perf.dump_folded(folded))
    rel = stacks.relative_to(ctx.results.path)
    return {"folded": str(rel), "flamegraph": str(rel.with_name("flamegraph.svg")),
            "title": f"{ctx.sc.name} {spec.run_id} on {server.name}",
            "samples": sum(folded.values()),
            "top_frames": [[name, round(share, 4)] for name, share in perf.top_frames(folded, 8)]}
