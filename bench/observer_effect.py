#!/usr/bin/env python3
"""Fidelity: does `orchestrate run` report what a careful engineer measures by hand?

The same server and wrk commands (same binary, flags, pinning and Lua script), run side by
side in alternating rounds:
  hand       the server pinned, wrk pinned, started directly (no SSH, no collectors)
  orch       `orchestrate run` with the scenario's default telemetry (pidstat, mpstat, sar)
  orch-bare  `orchestrate run` with `telemetry: []`
on loopback (server on CPU 0, wrk on CPU 1) and on a kept 2-host lab (uncapped; server host
pinned to CPU 0, client to CPU 1). The order within a round rotates, so drift and warm-up
spread over all three. Each ratio (orch / hand, orch-bare / hand) is orchestrator.stats'
paired statistic, chosen before the data: the geometric mean of per-round ratios (each run
against the hand-run of its own round) with a 95% t interval on the logs. The goals (QPS
within 2%, p99 within 1.25x) hold when the whole interval lies inside them; an interval wider
than a goal is "not resolved here".

    .venv/bin/python bench/observer_effect.py [--rounds 5] [--duration 5] [--only loopback|lab]

Prints a Markdown table and writes every sample to --json; figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator import deploy, stats  # noqa: E402
from orchestrator.hosts import netns  # noqa: E402
from orchestrator.tools import server as server_tool  # noqa: E402
from orchestrator.tools import wrk  # noqa: E402

PORT, CONNECTIONS, THREADS = 8000, 64, 1
KINDS = ("hand", "orch", "orch-bare")


@dataclass(frozen=True)
class Topology:
    name: str
    scenario: Path
    binary: str
    address: str  # where wrk sends to
    bind: str
    server_ns: str | None  # None: this machine's own namespace
    client_ns: str | None
    sets: tuple[str, ...]  # extra --set values for orchestrate


def in_ns(ns: str | None, argv: list[str]) -> list[str]:
    return (["ip", "netns", "exec", ns] if ns else []) + argv


def wait_listening(topo: Topology, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    probe = in_ns(topo.client_ns, [sys.executable, "-c",
                                   f"import socket; socket.create_connection(('{topo.address}', {PORT}), 1)"])
    while time.monotonic() < deadline:
        if subprocess.run(probe, capture_output=True).returncode == 0:
            return
        time.sleep(0.05)
    raise SystemExit(f"{topo.name}: the hand-run server did not listen on {topo.address}:{PORT}")


Sample = tuple[float, float, float]  # QPS, p99 ms, collectors' CPU s/s (summed over hosts)


def hand_run(topo: Topology, duration: int, tmp: Path) -> Sample:
    """The reference method: server pinned, wrk pinned, nothing else."""
    argv = server_tool.builtin_command(topo.binary, arch="reuseport", threads=THREADS, cpus=[0],
                                       port=PORT, bind=topo.bind, body="hello\n")
    server = subprocess.Popen(in_ns(topo.server_ns, ["taskset", "-c", "0", *argv]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(topo)
        script = tmp / "report.lua"
        script.write_text(wrk.LUA_SCRIPT)
        cmd = wrk.command(f"http://{topo.address}:{PORT}/", threads=THREADS, connections=CONNECTIONS,
                          duration_s=duration, timeout_s=2, script_path=str(script), pipeline=1)
        done = subprocess.run(in_ns(topo.client_ns, ["taskset", "-c", "1", *cmd]), capture_output=True,
                              text=True, env={"PATH": "/usr/bin:/bin", **wrk.ENV}, timeout=duration + 30)
    finally:
        server.terminate()
        server.wait(timeout=10)
    result = wrk.parse(done.stdout, done.stderr)
    return result.qps, result.latency_ms.p99, 0.0


def orch_run(topo: Topology, duration: int, tmp: Path, *, bare: bool) -> Sample:
    cmd = [sys.executable, "-m", "orchestrator", "run", str(topo.scenario), "--results", str(tmp),
           "--set", "server.arch=reuseport", "--set", f"server.threads={THREADS}",
           "--set", f"load.connections={CONNECTIONS}", "--set", f"load.duration={duration}s",
           "--set", "baseline.enabled=false", "--set", "repeat=1",
           "--set", "compare=null", "--set", "rounds=null"]
    for extra in topo.sets:
        cmd += ["--set", extra]
    if bare:
        cmd += ["--set", "telemetry=[]"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{topo.name}: orchestrate run failed:\n{done.stderr[-3000:]}")
    folder = max((p for p in tmp.glob("*/*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    (run,) = json.loads((folder / "summary.json").read_text())["runs"]
    cost = sum(h["collectors_cpu_s_per_s"] or 0.0 for h in run["observer"]["hosts"].values())
    assert run["observer"]["remote_commands_in_window"] == 0, run["observer"]["commands_in_window"]
    return run["qps"], run["latency_ms"]["p99"], cost


def loopback() -> Topology:
    build = server_tool.REPO_SERVER_DIR / "build" / "release"
    subprocess.run(server_tool.build_command(server_tool.REPO_SERVER_DIR, build), shell=True, check=True,
                   capture_output=True)
    return Topology("loopback", REPO / "scenarios" / "loopback.yaml", str(build / server_tool.BINARY),
                    "127.0.0.1", "127.0.0.1", None, None, ())


def lab(name: str, tmp: Path) -> Topology:
    st = netns.up(name, 2)
    sets = (f"hosts.lab={name}",)
    # Deploy once (and warm up) with orchestrate itself; the rounds then skip the playbook.
    server_host = netns.hosts_of(st, run_id="bench")[0]
    topo = Topology("lab", REPO / "scenarios" / "cross-host.yaml", deploy.server_binary(server_host),
                    st.hosts[0].address, "0.0.0.0", st.hosts[0].name, st.hosts[1].name, sets)
    orch_run(topo, 2, tmp, bare=True)
    return Topology(**{**topo.__dict__, "sets": (*sets, "hosts.deploy=false")})


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--only", choices=("loopback", "lab"))
    ap.add_argument("--json", type=Path, default=Path("/tmp/observer_effect.json"))
    ap.add_argument("--table", type=Path, metavar="JSON", help="only print the table of recorded samples")
    args = ap.parse_args()
    if args.table:
        recorded = {k: v for k, v in json.loads(args.table.read_text()).items() if isinstance(v, dict)}
        table(recorded, args.duration)
        return
    samples: dict[str, dict[str, list[Sample]]] = {}
    lab_name = "obsbench"
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        try:
            topos = []
            if args.only in (None, "loopback"):
                topos.append(loopback())
            if args.only in (None, "lab"):
                topos.append(lab(lab_name, tmp))
            for topo in topos:
                samples[topo.name] = {k: [] for k in KINDS}
                for i in range(args.rounds):
                    for kind in KINDS[i % 3:] + KINDS[:i % 3]:  # rotate the order each round
                        got = (hand_run(topo, args.duration, tmp) if kind == "hand" else
                               orch_run(topo, args.duration, tmp, bare=kind == "orch-bare"))
                        samples[topo.name][kind].append(got)
                        print(f"{topo.name} round {i + 1} {kind:9s} {got[0]:10,.0f} req/s  "
                              f"p99 {got[1]:.3f} ms  collectors {got[2]:.4f} CPU s/s",
                              file=sys.stderr, flush=True)
        finally:
            if args.only in (None, "lab"):
                netns.down(lab_name)
    args.json.write_text(json.dumps(samples, indent=1))
    table(samples, args.duration)


QPS_GOAL, P99_GOAL = (0.98, 1.02), (1 / 1.25, 1.25)


def pooled(samples: dict[str, dict[str, list[Sample]]]) -> dict[str, dict[str, list[Sample]]]:
    """Series of one topology recorded apart ('lab', 'lab_second_series', ...) joined into one
    more entry, 'lab, all N rounds': the ratios are per round, so rounds of any series pool."""
    groups: dict[str, list[str]] = {}
    for name in samples:
        groups.setdefault(name.split("_")[0], []).append(name)
    out = dict(samples)
    for base, names in groups.items():
        if len(names) > 1:
            joined = {k: [x for n in names for x in samples[n][k]] for k in KINDS}
            out[f"{base}, all {len(joined['hand'])} rounds"] = joined
    return out


def table(samples: dict[str, dict[str, list[Sample]]], duration: int) -> None:
    """The Markdown table: medians (min-max) per kind; ratios to the hand-run of the same round
    as stats.paired_ratio (the machine's speed drifts between rounds, the pairs share it), the
    one statistic, chosen before the data, judged against the goal by its 95% interval."""
    print(f"\nalternating rounds of {duration} s, reuseport, 1 server thread, "
          f"wrk -t{THREADS} -c{CONNECTIONS}; medians (min-max); ratios: {stats.PAIRED}\n")
    print("| topology (rounds) | run | QPS | p99 ms | QPS / hand | p99 / hand | collectors CPU s/s |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for topo, by_kind in pooled(samples).items():
        hand = by_kind["hand"]
        for kind, xs in by_kind.items():
            qs, ps = [x[0] for x in xs], [x[1] for x in xs]
            ratios = ""
            if kind != "hand":
                q = stats.paired_ratio([h[0] for h in hand], qs)
                p = stats.paired_ratio([h[1] for h in hand], ps)
                ratios = (f"{q.text()} {q.judge(*QPS_GOAL)} | {p.text(2)} {p.judge(*P99_GOAL)}")
            else:
                ratios = "1 | 1"
            print(f"| {topo} ({len(xs)}) | {kind} | {median(qs):,.0f} ({min(qs):,.0f}-{max(qs):,.0f}) | "
                  f"{median(ps):.3f} ({min(ps):.3f}-{max(ps):.3f}) | {ratios} | "
                  f"{median([x[2] for x in xs]):.4f} |")


if __name__ == "__main__":
    main()
