"""Baseline: the network's packet-rate ceiling per path, measured with iperf3 before any load."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator import remote, tools
from orchestrator.context import Context, pause_point
from orchestrator.errors import RunFailed
from orchestrator.hosts import Host
from orchestrator.records import BaselinePath, Ceiling, RunCeilings, UdpCeiling
from orchestrator.remote import each
from orchestrator.tools import iperf3


def measure(ctx: Context) -> dict[str, BaselinePath]:
    """iperf3 per path before any load: small-packet UDP PPS both ways, and TCP throughput.

    A ceiling is only a ceiling if iperf3 itself was not the limit. When it was CPU-bound
    (iperf3's own CPU figures, or its pinned cores from /proc/stat), the UDP test is repeated
    with more iperf3 processes, each pinned to its own core within the client and server
    roles' CPUs, until the rate stops rising or the cores run out; a result still CPU-bound
    is marked `lower_bound`. With several clients, all of them also measure at once: the
    server's aggregate ceiling (`udp_aggregate` in every path's entry)."""
    b = ctx.sc.baseline.iperf3
    server = ctx.lab.server
    out: dict[str, BaselinePath] = {}
    workdir = f"{server.workdir}/baseline"
    srv_cpus = ctx.cpus(server, "server")
    width = max(len(ctx.lab.clients),
                *(min(len(srv_cpus), len(ctx.cpus(c, "client"))) for c in ctx.lab.clients))
    # one iperf3 server per parallel process: an iperf3 server runs one test at a time
    servers = [ctx.table.spawn(server.name, f"iperf3-server-{i}" if i else "iperf3-server",
                               tools.base.join(iperf3.server_command(b.port + i, one_off=False)),
                               workdir=workdir, cpus=[srv_cpus[i % len(srv_cpus)]], env=iperf3.ENV)
               for i in range(width)]
    try:
        for i, srv in enumerate(servers):
            wait_port(ctx, server, b.port + i, srv)
        pause_point(ctx, "baseline")
        for client in ctx.lab.clients:
            out[f"{client.name}->{server.name}"] = _measure_path(ctx, client)
        if len(ctx.lab.clients) > 1:
            for reverse in (False, True):
                name = "udp_aggregate_reverse" if reverse else "udp_aggregate"
                ctx.progress(f"orchestrate: baseline all clients -> {server.name} at once, iperf3 {name}")
                agg = _udp_together(ctx, reverse)
                out = {p: entry.model_copy(update={name: agg}) for p, entry in out.items()}
    finally:
        for srv in servers:
            ctx.table.stop(srv)
    return out


def _measure_path(ctx: Context, client: Host) -> BaselinePath:
    """One client's path to the server: UDP each way (scaled until iperf3 is not the limit), TCP."""
    b = ctx.sc.baseline.iperf3
    server = ctx.lab.server
    path = f"{client.name}->{server.name}"
    entry: dict[str, Any] = {"client": client.name, "server": server.name}
    ways = [False] if ctx.lab.single_machine else [False, True]
    for reverse in ways:
        name = "udp_reverse" if reverse else "udp"
        ctx.progress(f"orchestrate: baseline {path} iperf3 {name}")
        entry[name] = _udp_scaled(ctx, client, reverse)
    if b.tcp:
        cpus = ctx.cpus(client, "client")[:1]
        for reverse in ways:  # the bandwidth ceiling each way (-R: the server sends)
            name = "tcp_reverse" if reverse else "tcp"
            ctx.progress(f"orchestrate: baseline {path} iperf3 {name}")
            argv = iperf3.tcp_command(server.address, b.port, duration_s=b.tcp_duration,
                                      reverse=reverse)
            text = _run(ctx, client, [(cpus[0], argv)], name, b.tcp_duration)[0]
            entry[name] = _parse(ctx, client, name, text, iperf3.parse_tcp)
    udp, tcp = entry["udp"], entry.get("tcp")
    ctx.progress(f"      {path}: {udp.pps_delivered:,.0f} pps delivered of "
                 f"{udp.pps_sent:,.0f} sent ({udp.loss_pct:.1f}% loss, "
                 f"{udp.processes} iperf3 process(es))"
                 + (f", LOWER BOUND: iperf3 CPU-bound ({udp.cpu_bound})" if udp.lower_bound else "")
                 + (f", TCP {tcp.bits_per_second / 1e9:.2f} Gbit/s" if tcp else ""))
    return BaselinePath(**entry)


def _run(ctx: Context, client: Host, jobs: list[tuple[int, list[str]]], name: str,
         duration: float, at: float | None = None) -> list[str]:
    """Run iperf3 clients at once on `client`, each pinned to its CPU; their outputs, in order.
    `at`: an absolute start time (this machine's clock), so several hosts' tests coincide."""
    raw = ctx.results.raw("baseline", client.name, f"iperf3-{name}")
    raw.parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{client.workdir}/baseline-{client.name}-{name}"  # netns hosts share one filesystem
    wait = ""
    if at is not None:
        when = at + (ctx.facts.get(client.name, {}).get("clock_offset_s") or 0.0)
        wait = f"python3 -c 'import time; time.sleep(max(0.0, {when:.3f} - time.time()))'; "
    script = f"mkdir -p {tmp}; {wait}" + " & ".join(
        f"taskset -c {cpu} {tools.base.join(argv)} > {tmp}/{i}.json 2>&1"
        for i, (cpu, argv) in enumerate(jobs)) + " & wait"
    t = ctx.t(client)
    t.run(script, timeout=60 + duration, check=False, env=iperf3.ENV)
    texts = [remote.read(t, f"{tmp}/{i}.json") for i in range(len(jobs))]
    raw.write_text("\n".join(texts))
    return texts


def _parse(ctx: Context, client: Host, name: str, text: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(text)
    except tools.ToolError as exc:
        b = ctx.sc.baseline.iperf3
        raise RunFailed(f"iperf3 {name} to {ctx.lab.server.address}:{b.port}: {exc.message}",
                        host=client.name, phase="baseline") from None


def _proc_stat(ctx: Context, host: Host) -> dict[int, tuple[int, int]]:
    """irq + softirq and total jiffies per CPU (/proc/stat) on iperf3's pinned cores."""
    text = ctx.t(host).run("grep '^cpu[0-9]' /proc/stat", timeout=15, check=False).stdout
    out = {}
    for line in text.splitlines():
        name, *vals = line.split()
        v = [int(x) for x in vals[:8]]
        if len(v) == 8:
            out[int(name[3:])] = (v[5] + v[6], sum(v))
    return out


def _rcvbuf_errors(ctx: Context, host: Host) -> int | None:
    """UDP datagrams dropped at full receive buffers on `host` so far (/proc/net/snmp)."""
    text = ctx.t(host).run("grep '^Udp:' /proc/net/snmp", timeout=15, check=False).stdout.splitlines()
    if len(text) < 2:
        return None
    row = dict(zip(text[0].split(), text[1].split(), strict=False))
    return int(row["RcvbufErrors"]) if row.get("RcvbufErrors", "").isdigit() else None


def _softirq(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]],
             cpus: list[int]) -> float | None:
    """The highest irq + softirq share of `cpus` over the test: the network stack's work for
    iperf3, which its own CPU figure leaves out. (Not the cores' busy %: on a shared machine
    that counts other people's work too.)"""
    shares = [100.0 * (after[c][0] - before[c][0]) / (after[c][1] - before[c][1])
              for c in cpus if c in before and c in after and after[c][1] > before[c][1]]
    return max(shares) if shares else None


def _udp_scaled(ctx: Context, client: Host, reverse: bool) -> UdpCeiling:
    """UDP small-packet rate, with more iperf3 processes while iperf3 is CPU-bound."""
    b = ctx.sc.baseline.iperf3
    server = ctx.lab.server
    c_cpus, s_cpus = ctx.cpus(client, "client"), ctx.cpus(server, "server")
    limit = min(len(c_cpus), len(s_cpus))
    name = "udp_reverse" if reverse else "udp"
    tried: list[dict[str, Any]] = []
    best: tuple[UdpCeiling, str | None] | None = None
    n = 1
    while True:
        jobs = [(c_cpus[i], iperf3.udp_command(server.address, b.port + i, length=b.udp_length,
                                               duration_s=b.duration, bitrate=b.bitrate, reverse=reverse))
                for i in range(n)]
        hosts = [client] if client.name == server.name else [client, server]
        receiving = client if reverse else server
        before = {h.name: _proc_stat(ctx, h) for h in hosts}
        drops0 = _rcvbuf_errors(ctx, receiving)
        texts = _run(ctx, client, jobs, name if n == 1 else f"{name}-x{n}", b.duration)
        drops1 = _rcvbuf_errors(ctx, receiving)
        after = {h.name: _proc_stat(ctx, h) for h in hosts}
        result = iperf3.combine([_parse(ctx, client, name, t, iperf3.parse_udp) for t in texts])
        c_soft = _softirq(before[client.name], after[client.name], c_cpus[:n])
        s_soft = _softirq(before[server.name], after[server.name], s_cpus[:n])
        sender_soft, receiver_soft = (s_soft, c_soft) if reverse else (c_soft, s_soft)
        # iperf3's own CPU plus the softirq on its core: its share of that core
        sender = (result.cpu_sender_pct or 0.0) + (sender_soft or 0.0)
        receiver = (result.cpu_receiver_pct or 0.0) + (receiver_soft or 0.0)
        drops = drops1 - drops0 if drops0 is not None and drops1 is not None else None
        why = iperf3.cpu_bound(result, sender_core=sender, receiver_core=receiver,
                               receiver_buffer_drops=drops)
        tried.append({"processes": n, "pps_delivered": result.pps_delivered, "cpu_bound": why,
                      "receiver_buffer_drops": drops,
                      "sender_core_pct": round(sender, 1), "receiver_core_pct": round(receiver, 1)})
        pps, best_pps = result.pps_delivered or 0.0, (best[0].pps_delivered or 0.0) if best else 0.0
        rising = best is None or pps > 1.1 * best_pps
        if best is None or pps > best_pps:
            best = (result, why)
        if not why or n >= limit or not rising:
            break
        n += 1
    result, why = best
    return result.model_copy(update={"cpu_bound": why, "lower_bound": why is not None,
                                     "scaling": tuple(tried)})


def _udp_together(ctx: Context, reverse: bool) -> UdpCeiling:
    """Every client at once, one iperf3 each (its own server port): the server's aggregate."""
    b = ctx.sc.baseline.iperf3
    server = ctx.lab.server
    clients = ctx.lab.clients
    name = "udp_aggregate_reverse" if reverse else "udp_aggregate"

    # All start at one instant (each on its own clock): rates of tests that only partly
    # overlap would add up to more than the link ever carried at once.
    at = time.time() + 1.5

    def one(client: Host) -> UdpCeiling:
        i = clients.index(client)
        argv = iperf3.udp_command(server.address, b.port + i, length=b.udp_length, duration_s=b.duration,
                                  bitrate=b.bitrate, reverse=reverse)
        text = _run(ctx, client, [(ctx.cpus(client, "client")[0], argv)], name, b.duration, at=at)[0]
        return _parse(ctx, client, name, text, iperf3.parse_udp)

    receiving = clients if reverse else [server]
    drops0 = [_rcvbuf_errors(ctx, h) for h in receiving]
    results = each(clients, one)
    drops1 = [_rcvbuf_errors(ctx, h) for h in receiving]
    total = iperf3.combine(results)
    known = [b1 - b0 for b0, b1 in zip(drops0, drops1, strict=True) if b0 is not None and b1 is not None]
    whys = [w for w in (iperf3.cpu_bound(r) for r in results) if w]
    dropped = iperf3.cpu_bound(total, receiver_buffer_drops=sum(known) if known else None)
    if dropped and dropped.startswith("receiver could not keep up"):
        whys.append(dropped)
    return total.model_copy(update={"cpu_bound": "; ".join(whys) or None, "lower_bound": bool(whys),
                                    "clients": len(clients)})


def wait_port(ctx: Context, host: Host, port: int, proc: remote.Process, timeout: float = 10) -> None:
    t = ctx.t(host)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Alive first: a listener on the port may be someone else's (port already taken).
        alive = remote.alive(t, proc)
        done = t.run(f"ss -Hltn 'sport = :{port}' | grep -c LISTEN || true", timeout=10, check=False)
        if alive and done.stdout.strip() not in ("", "0"):
            time.sleep(0.2)
            if remote.alive(t, proc):
                return
        if not remote.alive(t, proc):
            err = remote.read(t, proc.stderr).strip()
            raise RunFailed(f"{proc.name} exited before listening on port {port}: {err[-300:]}",
                            host=host.name, phase=ctx.phase)
        time.sleep(0.1)
    raise RunFailed(f"{proc.name} did not listen on port {port} within {timeout:.0f}s",
                    host=host.name, phase=ctx.phase)


def _given(r: Any) -> bool:
    """A measurement recorded with something in it (an empty one, `{}` in an old file, is none)."""
    return r is not None and bool(r.model_fields_set)


def _path_ceiling(entry: BaselinePath) -> dict[str, Any]:
    udp = entry.udp if _given(entry.udp) else None
    rev = entry.udp_reverse if _given(entry.udp_reverse) else None
    whys = [w for w in (udp and udp.cpu_bound, rev and rev.cpu_bound and f"reverse: {rev.cpu_bound}") if w]
    out: dict[str, Any] = {"pps_delivered": udp.pps_delivered if udp else None, "lower_bound": bool(whys),
                           "cpu_bound": "; ".join(whys) or None, **_directions(udp, rev)}
    if rev:
        out["pps_delivered_reverse"] = rev.pps_delivered
    return {**out, **_tcp(entry)}


def _tcp(entry: BaselinePath) -> dict[str, Any]:
    """The path's TCP throughput each way (bits/s of payload, as received) and why a direction
    is only a lower bound: iperf3 at a full CPU on either end set the rate, not the path."""
    out: dict[str, Any] = {}
    for tcp, name in ((entry.tcp, "tcp_bits_per_second"), (entry.tcp_reverse, "tcp_bits_per_second_reverse")):
        if tcp is None or not _given(tcp):
            continue
        out[name] = tcp.bits_per_second
        busy = max(tcp.cpu_sender_pct or 0.0, tcp.cpu_receiver_pct or 0.0)
        out[f"{name.replace('bits_per_second', 'cpu_bound')}"] = (
            f"iperf3 TCP at {busy:.0f}% of a CPU" if busy >= iperf3.CPU_BOUND_PCT else None)
    return out


def compared(baseline: Mapping[str, BaselinePath]) -> RunCeilings:
    """The ceilings this run is compared against: the tightest measured path at the top level
    (as before), every path's own (`paths`), and the aggregate of all clients at once
    (`aggregate`, several clients only); each says whether it is only a `lower_bound`."""
    paths = [(p, e.udp) for p, e in baseline.items() if e.udp is not None and _given(e.udp)]
    if not paths:
        return RunCeilings()
    path, udp = min(paths, key=lambda x: x[1].pps_delivered or 0.0)
    out: dict[str, Any] = {"path": path, "pps_delivered": udp.pps_delivered, "pps_sent": udp.pps_sent,
                           "loss_pct": udp.loss_pct}
    top = _path_ceiling(baseline[path])
    if "pps_delivered_reverse" in top:
        out["pps_delivered_reverse"] = top["pps_delivered_reverse"]
    out["lower_bound"], out["cpu_bound"] = top["lower_bound"], top["cpu_bound"]
    out["cpu_bound_rx"], out["cpu_bound_tx"] = top["cpu_bound_rx"], top["cpu_bound_tx"]
    out.update(_tcp(baseline[path]))
    out["paths"] = {p: Ceiling(**_path_ceiling(baseline[p])) for p, _ in paths}
    agg = baseline[path].udp_aggregate
    if agg is not None and _given(agg):
        rev = baseline[path].udp_aggregate_reverse
        whys = [w for w in (agg.cpu_bound, rev and rev.cpu_bound) if w]
        out["aggregate"] = Ceiling(pps_delivered=agg.pps_delivered,
                                   pps_delivered_reverse=rev.pps_delivered if rev else None,
                                   clients=agg.clients, lower_bound=bool(whys),
                                   cpu_bound="; ".join(whys) or None, **_directions(agg, rev))
    return RunCeilings(**out)


def _directions(forward: UdpCeiling | None, reverse: UdpCeiling | None) -> dict[str, Any]:
    """Why each direction, as the server sees it, is only a lower bound: a CPU-bound reverse
    test leaves the forward ceiling (the server's rx) as trustworthy as it was measured."""
    return {"cpu_bound_rx": forward.cpu_bound if forward else None,
            "cpu_bound_tx": reverse.cpu_bound if reverse else None}
