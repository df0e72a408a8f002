#!/usr/bin/env python3
"""Where wrk's coordinated-omission back-fill is wrong (issue 10's optional ask); a benchmark.

wrk 4.1 (wrk.c, stats.c) corrects after the run: interval e = runtime_us / (complete /
connections), and every latency sample v > 2e gets extra samples v-e, v-2e, ... (down to > e),
as if each connection had kept sending every e µs through the stall. orchestrate-load in open
loop measures each request from its intended send time; since issue 22 a request still in flight
at the end is drained (answered, or timed out at least --timeout after its intended time) and one
never sent counts to the drain's end. Both clients get the case's timeout (`wrk_timeout_s`).
(The recorded bench/wrk_heuristic.json predates both: ours then had --timeout 10 throughout and
cut the unanswered at the window's end.)

Each case stalls the project's server (reuseport, 1 thread, CPU 0) with SIGSTOP in a pattern,
runs wrk -t1 (CPU 1) and orchestrate-load -t1 (CPU 1; at wrk's achieved rate from the case's
first round) against it, alternating which goes first, and compares both with the *truth* for
an open-loop user at the same rate: a send at time t inside a stall [a, b) waits b - t, and
after the stall the backlog drains at the server's spare capacity (1 - rho of it; rho = rate /
capacity, capacity = ours closed loop with 50 connections), so a stall of length s affects the
sends of s / (1 - rho) seconds, each waiting uniformly 0..s, on top of the latency the same
user sees unstalled (ours at that rate, no stall). The recorded stalls are used, clipped to
the client's window; a stall still open at the end counts as end - t (a lower bound, as ours
counts it). Server, clients and the staller run under SCHED_FIFO.

    python3 bench/wrk_heuristic.py                    # every case, 3 rounds, writes the json
    python3 bench/wrk_heuristic.py --rounds 1 --cases end_stall,paced_c4
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "loadgen" / "tests"))
from loadkit import Staller  # noqa: E402  (the generator's tests stall a server the same way)

from orchestrator.tools import loadgen, server, wrk  # noqa: E402

LOADGEN_BUILD = REPO / "loadgen" / "build" / "release"
SERVER_BUILD = REPO / "server" / "build" / "release"
SERVER_CPU, CLIENT_CPU = 0, 1
STALLER_PRIORITY = 20  # SCHED_FIFO, above anything else here: stalls start and end on time
QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99_9", 0.999))


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    wrk_connections: int     # 1 or 2 flat out: wrk -c4 would use ~93% of its core (RT throttling)
    stall_ms: float          # each stall ("tail": the stall lasts from its start past the end)
    period_ms: float = 0     # one stall every period ("periodic", "one_of_two")
    pattern: str = "periodic"  # periodic | once | tail | one_of_two
    first_ms: float = 300    # the first stall, after the client's start ("tail": before its end)
    duration_s: int = 3      # wrk takes whole seconds
    wrk_delay_ms: int = 0    # > 0: wrk paced by a Lua delay() before each request
    wrk_timeout_s: int = 10  # wrk's --timeout (its default is 2 s)
    ours_connections: int = 32
    body_size: int = 0       # > 0: the server answers this many bytes (a busier server per request)


CASES = {c.name: c for c in (
    Case("end_stall", "server stopped for the last 0.5 s of a 3 s window (still stopped at the end)",
         wrk_connections=2, stall_ms=500, pattern="tail", first_ms=500),
    Case("beyond_timeout", "one 2.5 s stall in a 6 s window, wrk at its default --timeout 2s",
         wrk_connections=2, stall_ms=2500, pattern="once", first_ms=1500, duration_s=6, wrk_timeout_s=2),
    Case("short_stalls_c1", "1 connection flat out, 3 ms stalls 10 times a second",
         wrk_connections=1, stall_ms=3, period_ms=100),
    Case("short_stalls_c2", "2 connections flat out, 2 ms stalls 20 times a second",
         wrk_connections=2, stall_ms=2, period_ms=50),
    Case("busy_server_c1", "1 connection flat out against 128 KiB answers (server ~1/3 busy), "
         "3.5 ms stalls 5 times a second", wrk_connections=1, stall_ms=3.5, period_ms=200, body_size=131072),
    Case("paced_c4", "4 connections paced by delay() 2 ms, 5 ms stalls 10 times a second",
         wrk_connections=4, stall_ms=5, period_ms=100, wrk_delay_ms=2),
    Case("paced_c4_long", "4 connections paced by delay() 2 ms, 20 ms stalls 5 times a second",
         wrk_connections=4, stall_ms=20, period_ms=200, wrk_delay_ms=2),
    Case("one_of_two", "two servers on one port (SO_REUSEPORT), one stopped 20 ms 5 times a second",
         wrk_connections=2, stall_ms=20, period_ms=200, pattern="one_of_two"),
)}
# Server and clients alike under SCHED_FIFO (as loadgen/tests/test_loadgen_timing.py): at normal
# priority, even at nice -20, the neighbours on this 2-vCPU VM add 2-5 ms hiccups (ours unstalled at
# 14k req/s: p99.9 3.2 ms at nice -20, 0.22 ms under FIFO). No client here is busier than ~60% of
# its core (wrk -c2 flat out: 55%), so the kernel's RT throttling (950 ms a second) never starts.
RT = ["chrt", "-f", "10"]


# ---------------------------------------------------------------- processes

class Server:
    """orchestrate-server, reuseport, 1 thread on SERVER_CPU; port 0 picks one, a given port joins it."""

    def __init__(self, binary: Path, port: int = 0, body_size: int = 0):
        argv = [*RT, str(binary), "--arch", "reuseport", "--threads", "1", "--cpus", str(SERVER_CPU),
                "--acceptor-cpu", str(SERVER_CPU), "--bind", "127.0.0.1", "--port", str(port),
                *(["--body-size", str(body_size)] if body_size else [])]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready = server.parse_ready(self.proc.stdout.readline())
        if ready is None:
            self.stop()
            raise RuntimeError("server did not start")
        self.port = ready.port

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
        self.proc.communicate(timeout=20)


def staller_of(case: Case, pid: int, start: float) -> Staller:
    """The case's stalls for a client whose window starts at `start`."""
    if case.pattern == "tail":
        return Staller(pid, first=start + case.duration_s - case.first_ms / 1000, stall_s=None,
                       period_s=0, priority=STALLER_PRIORITY)
    return Staller(pid, first=start + case.first_ms / 1000, stall_s=case.stall_ms / 1000,
                   period_s=case.period_ms / 1000, priority=STALLER_PRIORITY)


def connections_by_pid(port: int) -> dict[int, int]:
    """Established server-side connections on `port`, by owning process (ss -p)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    counts: dict[int, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[int(pid)] = counts.get(int(pid), 0) + 1
    return counts


def wrk_script(delay_ms: int) -> Path:
    path = Path(f"/tmp/wrk_heuristic_{delay_ms}.lua")
    text = wrk.LUA_SCRIPT
    if delay_ms:  # wrk waits delay() ms (its timer's granularity) before each request
        text += f"\ndelay = function() return {delay_ms} end\n"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- the truth

def truth_ms(stalls: list[tuple[float, float]], start: float, end: float, rho: float,
             quiet: list[tuple[int, int]], share: float = 1.0, stuck_per_stall: float = 0.0,
             rate: float = 0.0, n: int = 1_000_000) -> dict[str, float]:
    """Percentiles an open-loop user at utilisation rho sees over [start, end] (module doc),
    when a `share` of its sends goes to the stalled server: its quiet latency (`quiet`, the
    unstalled run's buckets in µs) plus, for the sends a stall affects, their wait (a stall
    picked in proportion to how long it affects sends). Sampled (fixed seed, 10^6 draws).
    stuck_per_stall > 0: a pool user instead (one_of_two, ours: a request goes to the next free
    connection, so only that many requests, one per connection to the stalled server, are
    caught per stall, each waiting about the whole stall)."""
    window = end - start
    # per stall: how long sends are affected (d), and the range of their waits (lo..hi)
    d, lo, hi = [], [], []
    for a, b in stalls:
        a = max(a, start)
        if a >= end or b <= a:
            continue
        if b >= end:  # still stopped at the end: a send at t counts end - t (no drain seen)
            s = end - a
            d.append(s), lo.append(0.0), hi.append(s)
        else:  # waits fall from s by (1 - rho) per second until the backlog is gone
            s = b - a
            dur = min(s / (1 - rho), end - a)
            d.append(dur), lo.append(s - (1 - rho) * dur), hi.append(s)
    dur_, lo_, hi_ = (np.array(x, dtype=float) for x in (d, lo, hi))
    if stuck_per_stall:
        waiting = min(1.0, stuck_per_stall * dur_.size / (rate * window)) if rate else 0.0
    else:
        waiting = min(1.0, share * dur_.sum() / window) if window > 0 else 0.0
    rng = np.random.default_rng(1)
    values = np.array([v for v, _ in quiet], dtype=float) / 1000
    counts = np.array([c for _, c in quiet], dtype=float)
    lat = rng.choice(values, size=n, p=counts / counts.sum())
    hit = rng.random(n) < waiting
    if dur_.size and hit.any():
        k = int(hit.sum())
        i = rng.choice(dur_.size, size=k, p=dur_ / dur_.sum())
        u = np.ones(k) if stuck_per_stall else rng.random(k)
        lat[hit] += (lo_[i] + u * (hi_[i] - lo_[i])) * 1000
    pct = np.percentile(lat, [q * 100 for _, q in QUANTILES])
    out = {name: round(float(v), 3) for (name, _), v in zip(QUANTILES, pct, strict=True)}
    out["waiting_share"] = round(waiting, 4)
    return out


# ---------------------------------------------------------------- runs

def client(argv: list[str], case: Case, servers: list[Server], start: float
           ) -> tuple[str, list[tuple[float, float]], float, float]:
    """Runs one client under the case's stalls: its stdout, the stalls, the stalled server's
    share of its connections, and its CPU time over its wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with staller_of(case, servers[0].proc.pid, start) as st:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        share = _share(case, servers)
        out, err = proc.communicate(timeout=case.duration_s + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {err.strip()[-300:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return out, st.stalls, share, round(cpu / (time.monotonic() - t0), 3)


def run_wrk(case: Case, servers: list[Server]) -> dict:
    url = f"http://127.0.0.1:{servers[0].port}/"
    argv = [*RT, "taskset", "-c", str(CLIENT_CPU),
            *wrk.command(url, threads=1, connections=case.wrk_connections, duration_s=case.duration_s,
                         timeout_s=case.wrk_timeout_s, script_path=str(wrk_script(case.wrk_delay_ms)))]
    t0 = time.time()
    out, stalls, share, cpu = client(argv, case, servers, t0)
    r = wrk.parse(out)
    line = next(ln for ln in out.splitlines() if ln.startswith(wrk.JSON_PREFIX))
    doc = json.loads(line[len(wrk.JSON_PREFIX):])
    runtime_us = doc["duration_us"]
    per_conn = r.requests // case.wrk_connections
    interval_us = runtime_us // per_conn if per_conn else 0
    recorded = sum(c for _, c in r.histogram)
    pct = {name: wrk.percentile(r.histogram, q * 100) / 1000 for name, q in QUANTILES}
    return {"tool": "wrk", "qps": round(r.qps), "connections": case.wrk_connections,
            "requests": r.requests, "interval_us": interval_us,
            "samples": recorded, "backfilled": recorded - r.requests, "timeouts": doc["errors"]["timeout"],
            "window": (t0, t0 + runtime_us / 1e6), "stalls": stalls, "share": share, "client_cpu": cpu,
            **{k: round(v, 3) for k, v in pct.items()}}


def run_ours(case: Case, servers: list[Server], binary: Path, rate: float) -> dict:
    url = f"http://127.0.0.1:{servers[0].port}/"
    start = time.time() + 0.2
    argv = RT + loadgen.command(url, threads=1, connections=case.ours_connections,
                                  duration_s=case.duration_s, rate=rate, timeout_s=case.wrk_timeout_s,
                                  start_at=start,
                                  cpus=[CLIENT_CPU], binary=str(binary))
    out, stalls, share, cpu = client(argv, case, servers, start)
    r = loadgen.parse(out)
    lat = r.latency_ms
    return {"tool": "orchestrate-load", "qps": round(r.qps), "connections": case.ours_connections,
            "target": rate, "sustained": r.rate.sustained,
            "requests": r.counts.requests, "unanswered": r.counts.unanswered, "queued": r.counts.queued,
            "window": (start, start + r.duration_s), "stalls": stalls, "share": share, "client_cpu": cpu,
            "service_p99": round(r.service_time_ms.p99, 3),
            "p50": round(lat.p50, 3), "p90": round(lat.p90, 3), "p99": round(lat.p99, 3),
            "p99_9": round(lat.p99_9, 3)}


def _share(case: Case, servers: list[Server]) -> float:
    """The stalled server's share of the client's connections (1.0 unless two servers)."""
    if case.pattern != "one_of_two":
        return 1.0
    time.sleep(0.8)
    byp = connections_by_pid(servers[0].port)
    total = sum(byp.get(s.proc.pid, 0) for s in servers)
    return round(byp.get(servers[0].proc.pid, 0) / total, 3) if total else 0.0


def judge(run: dict, capacity: float, quiet: list[tuple[int, int]]) -> dict:
    """Adds the truth for an open-loop user at this run's rate over this run's window."""
    start, end = run["window"]
    rho = min(0.9, run["qps"] / capacity) if capacity else 0.0
    stalls = run["stalls"]
    out = {k: v for k, v in run.items() if k != "window"}
    out["stall_count"] = len(stalls)
    out["stall_ms_mean"] = round(1000 * statistics.fmean([b - a for a, b in stalls]), 3) if stalls else 0.0
    out["rho"] = round(rho, 3)
    pool = run["tool"] == "orchestrate-load" and run["share"] < 1.0
    out["truth"] = truth_ms(stalls, start, end, rho, quiet, run["share"],
                            stuck_per_stall=run["share"] * run["connections"] if pool else 0.0,
                            rate=run["qps"])
    out["stalls"] = [(round(a - start, 4), round(b - start, 4)) for a, b in stalls]  # from window start
    for p in ("p99", "p99_9"):
        out[f"{p}_vs_truth"] = float(f"{out[p] / out['truth'][p]:.3g}") if out["truth"][p] else None
    return out


def quiet_latency(binary: Path, srv: Server, rate: float, connections: int) -> loadgen.Histogram:
    """Latency of an open-loop user at `rate` with no stall: the truth's floor."""
    argv = loadgen.command(f"http://127.0.0.1:{srv.port}/", threads=1, connections=connections,
                           duration_s=1.5, warmup_s=0.2, rate=rate, cpus=[CLIENT_CPU], binary=str(binary))
    out = subprocess.run(RT + argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return loadgen.parse(out).latency_hist


def capacity_of(binary: Path, srv: Server) -> float:
    """Closed-loop responses/s with 50 connections (client-bound here: an upper bound on rho).
    Not under FIFO: flat out, the kernel would throttle it."""
    argv = loadgen.command(f"http://127.0.0.1:{srv.port}/", threads=1, connections=50, duration_s=1.5,
                           warmup_s=0.3, cpus=[CLIENT_CPU], binary=str(binary))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return loadgen.parse(out).qps


def build() -> tuple[Path, Path]:
    for cmd in (loadgen.build_command(REPO / "loadgen", LOADGEN_BUILD),
                server.build_command(REPO / "server", SERVER_BUILD)):
        subprocess.run(cmd, shell=True, check=True, timeout=900, capture_output=True)
    return LOADGEN_BUILD / loadgen.BINARY, SERVER_BUILD / server.BINARY


def run_case(case: Case, rounds: int, gen: Path, srv_bin: Path) -> dict:
    servers = [Server(srv_bin, body_size=case.body_size)]
    if case.pattern == "one_of_two":
        servers.append(Server(srv_bin, port=servers[0].port))
    try:
        capacity = capacity_of(gen, servers[0])
        runs: list[dict] = []
        rate = None
        for i in range(rounds):
            order = ["wrk", "ours"] if i % 2 == 0 or rate is None else ["ours", "wrk"]
            for tool in order:
                if tool == "wrk":
                    w = run_wrk(case, servers)
                    rate = rate or float(max(w["qps"], 100))  # ours at wrk's first achieved rate
                    runs.append(w | {"round": i})
                else:
                    assert rate is not None
                    runs.append(run_ours(case, servers, gen, rate) | {"round": i})
                time.sleep(0.3)
        assert rate is not None
        quiet = quiet_latency(gen, servers[0], rate, case.ours_connections)
        qd = loadgen.Distribution.of(quiet)
        return {"case": asdict(case), "capacity": round(capacity), "ours_rate": rate,
                "quiet_ms": {"p50": qd.p50, "p99": qd.p99, "p99_9": qd.p99_9},
                "runs": [judge(r, capacity, list(quiet.buckets)) for r in runs]}
    finally:
        for s in servers:
            s.stop()


def summary(result: dict) -> dict:
    out = {}
    for tool in ("wrk", "orchestrate-load"):
        rs = [r for r in result["runs"] if r["tool"] == tool]
        med = {k: round(statistics.median(r[k] for r in rs), 3) for k in ("qps", "p50", "p99", "p99_9")}
        med["truth_p99"] = round(statistics.median(r["truth"]["p99"] for r in rs), 3)
        med["truth_p99_9"] = round(statistics.median(r["truth"]["p99_9"] for r in rs), 3)
        for k in ("p99_vs_truth", "p99_9_vs_truth"):  # per run, then the median
            med[k] = float(f"{statistics.median(r[k] for r in rs):.3g}")
        if tool == "wrk":
            med["interval_us"] = statistics.median(r["interval_us"] for r in rs)
            med["backfilled"] = statistics.median(r["backfilled"] for r in rs)
        out[tool] = med
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "wrk_heuristic.json")
    args = ap.parse_args()
    names = [n for n in args.cases.split(",") if n]
    bad = [n for n in names if n not in CASES]
    if bad or args.rounds < 1:
        print(f"--cases: unknown {bad} (known: {', '.join(CASES)}); --rounds >= 1", file=sys.stderr)
        return 2
    gen, srv_bin = build()
    results = []
    for name in names:
        t0 = time.monotonic()
        res = run_case(CASES[name], args.rounds, gen, srv_bin)
        res["summary"] = summary(res)
        results.append(res)
        print(name, f"{time.monotonic() - t0:.0f} s", json.dumps(res["summary"]), flush=True)
    print()
    print("medians of the rounds, latencies in ms; x truth = the median of each run's ratio")
    print(f"{'case':<16} {'tool':<16} {'req/s':>7} {'p99':>9} {'truth':>9} {'x truth':>7} {'p99.9':>9} "
          f"{'truth':>9} {'x truth':>7}")
    for res in results:
        for tool, m in res["summary"].items():
            print(f"{res['case']['name']:<16} {tool:<16} {m['qps']:>7.0f} {m['p99']:>9} {m['truth_p99']:>9} "
                  f"{m['p99_vs_truth']:>7} {m['p99_9']:>9} {m['truth_p99_9']:>9} {m['p99_9_vs_truth']:>7}")
    args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                     "rounds": args.rounds,
                                     "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
