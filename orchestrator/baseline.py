"""Baseline: the network's packet-rate ceiling per path, measured with iperf3 before any load."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from orchestrator import remote, tools
from orchestrator.context import Context, pause_point
from orchestrator.errors import RunFailed
from orchestrator.hosts import Host
from orchestrator.tools import iperf3


def measure(ctx: Context) -> dict[str, Any]:
    """iperf3 per path before any load: small-packet UDP PPS both ways, and TCP throughput."""
    b = ctx.sc.baseline.iperf3
    server = ctx.lab.server
    out: dict[str, Any] = {}
    workdir = f"{server.workdir}/baseline"
    srv = ctx.table.spawn(server.name, "iperf3-server",
                          tools.base.join(iperf3.server_command(b.port, one_off=False)),
                          workdir=workdir, cpus=ctx.cpus(server, "server")[:1], env=iperf3.ENV)
    try:
        wait_port(ctx, server, b.port, srv)
        pause_point(ctx, "baseline")
        for client in ctx.lab.clients:
            path = f"{client.name}->{server.name}"
            tests: list[tuple[str, list[str], Callable[[str], Any]]] = [
                ("udp", iperf3.udp_command(server.address, b.port, length=b.udp_length,
                                           duration_s=b.duration, bitrate=b.bitrate), iperf3.parse_udp)]
            if not ctx.lab.single_machine:
                tests.append(("udp_reverse", iperf3.udp_command(
                    server.address, b.port, length=b.udp_length, duration_s=b.duration,
                    bitrate=b.bitrate, reverse=True), iperf3.parse_udp))
            if b.tcp:
                tests.append(("tcp", iperf3.tcp_command(server.address, b.port,
                                                        duration_s=b.tcp_duration), iperf3.parse_tcp))
            entry: dict[str, Any] = {"client": client.name, "server": server.name}
            for name, argv, parse in tests:
                ctx.progress(f"orchestrate: baseline {path} iperf3 {name}")
                cpus = ctx.cpus(client, "client")[:1]
                cmd = f"taskset -c {cpus[0]} " + tools.base.join(argv)
                done = ctx.t(client).run(cmd, timeout=60 + b.duration, check=False, env=iperf3.ENV)
                raw = ctx.results.raw("baseline", client.name, f"iperf3-{name}")
                raw.parent.mkdir(parents=True, exist_ok=True)
                raw.write_text(done.stdout + done.stderr)
                try:
                    entry[name] = dataclasses.asdict(parse(done.stdout))
                except tools.ToolError as exc:
                    raise RunFailed(f"iperf3 {name} to {server.address}:{b.port}: {exc.message}",
                                    host=client.name, phase="baseline") from None
            udp = entry["udp"]
            ctx.progress(f"      {path}: {udp['pps_delivered']:,.0f} pps delivered of "
                         f"{udp['pps_sent']:,.0f} sent ({udp['loss_pct']:.1f}% loss)"
                         + (f", TCP {entry['tcp']['bits_per_second'] / 1e9:.2f} Gbit/s"
                            if "tcp" in entry else ""))
            out[path] = entry
    finally:
        ctx.table.stop(srv)
    return out


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


def compared(baseline: dict[str, Any]) -> dict[str, Any]:
    """The ceiling this run is compared against: the tightest measured path."""
    paths = [(p, e["udp"]) for p, e in baseline.items() if e.get("udp")]
    if not paths:
        return {}
    path, udp = min(paths, key=lambda x: x[1]["pps_delivered"])
    out = {"path": path, "pps_delivered": udp["pps_delivered"], "pps_sent": udp["pps_sent"],
           "loss_pct": udp["loss_pct"]}
    rev = baseline[path].get("udp_reverse")
    if rev:
        out["pps_delivered_reverse"] = rev["pps_delivered"]
    tcp = baseline[path].get("tcp")
    if tcp:
        out["tcp_bits_per_second"] = tcp["bits_per_second"]
    return out
