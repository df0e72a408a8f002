#!/usr/bin/env python3
"""Closed-loop efficiency of orchestrate-load against wrk (a benchmark, not part of CI).

The project's server (reuseport, 1 thread) runs on CPU 0; each client runs alone on CPU 1
(wrk -t1 under taskset, orchestrate-load -t1 --cpus 1), same connections, same duration.
Rounds alternate the order (wrk first, then ours first, ...) so drift on a shared machine
hits both alike; the summary is the median of the rounds. Client CPU is the client process's
own user + system time (getrusage of the child) over the requests it completed. Both get the
same timeout (TIMEOUT_S, wrk's default and the scenarios' load.timeout).

    python3 bench/loadgen_vs_wrk.py                      # 6 rounds x 5 s, 50 connections
    python3 bench/loadgen_vs_wrk.py --rounds 4 --duration 3 --ab
    python3 bench/loadgen_vs_wrk.py --profile            # + where orchestrate-load's CPU goes

--ab adds ApacheBench (ab -k, one thread) as a third client for reference. --profile runs
one more orchestrate-load pass under `strace -c` (syscalls per request) and one under
`perf record -e cpu-clock` (software clock: works in VMs), and prints the kernel/user split
and the top symbols.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator import stats  # noqa: E402
from orchestrator.tools import loadgen, server, wrk  # noqa: E402

LOADGEN_BUILD = REPO / "loadgen" / "build" / "release"
SERVER_BUILD = REPO / "server" / "build" / "release"
TIMEOUT_S = 2  # both clients: a request unanswered this long is a timeout (issue 22)


def build() -> tuple[Path, Path]:
    for cmd in (loadgen.build_command(REPO / "loadgen", LOADGEN_BUILD),
                server.build_command(REPO / "server", SERVER_BUILD)):
        subprocess.run(cmd, shell=True, check=True, timeout=900)
    return LOADGEN_BUILD / loadgen.BINARY, SERVER_BUILD / server.BINARY


def timed(argv: list[str], timeout: float) -> tuple[str, float]:
    """Runs argv to completion; returns stdout and the child's user+system CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return proc.stdout, cpu


def run_ours(binary: Path, url: str, args: argparse.Namespace) -> dict:
    argv = loadgen.command(url, threads=1, connections=args.connections, duration_s=args.duration,
                           pipeline=args.pipeline, timeout_s=TIMEOUT_S, cpus=[args.client_cpu],
                           binary=str(binary))
    out, cpu = timed(argv, args.duration + 30)
    r = loadgen.parse(out)
    return {"qps": r.qps, "requests": r.counts.responses, "cpu_s": cpu,
            "p99_ms": r.latency_ms.p99, "errors": r.counts.socket_errors}


def run_wrk(url: str, args: argparse.Namespace, script: Path) -> dict:
    argv = ["taskset", "-c", str(args.client_cpu),
            *wrk.command(url, threads=1, connections=args.connections, duration_s=args.duration,
                         timeout_s=TIMEOUT_S, script_path=str(script), pipeline=args.pipeline)]
    out, cpu = timed(argv, args.duration + 30)
    r = wrk.parse(out)
    return {"qps": r.qps, "requests": r.requests, "cpu_s": cpu, "p99_ms": r.latency_ms.p99,
            "errors": r.socket_errors}


def run_ab(url: str, args: argparse.Namespace) -> dict:
    n = int(250_000 * args.duration)  # ab stops at -t or -n, whichever first
    argv = ["taskset", "-c", str(args.client_cpu), "ab", "-k", "-q", "-c", str(args.connections),
            "-t", str(int(args.duration)), "-n", str(n), url]
    out, cpu = timed(argv, args.duration + 60)
    done = int(re.search(r"Complete requests:\s+(\d+)", out)[1])
    secs = float(re.search(r"Time taken for tests:\s+([\d.]+)", out)[1])
    p99 = re.search(r"^\s+99%\s+(\d+)", out, re.M)
    return {"qps": done / secs, "requests": done, "cpu_s": cpu,
            "p99_ms": float(p99[1]) if p99 else float("nan"), "errors": 0}


def profile(binary: Path, url: str, args: argparse.Namespace) -> str:
    lines = []
    argv = loadgen.command(url, threads=1, connections=args.connections, duration_s=3,
                           pipeline=args.pipeline, cpus=[args.client_cpu], binary=str(binary))
    st = subprocess.run(["strace", "-f", "-c", "-o", "/dev/stderr", *argv], capture_output=True,
                        text=True, timeout=60)
    n = loadgen.parse(st.stdout).counts.responses
    lines.append(f"strace -c (3 s, {n} responses; strace slows the run, the ratios are what count):")
    for row in st.stderr.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", row)
        if m and int(m[1]) > 100:
            lines.append(f"  {m[2]:<14} {int(m[1]):>9}  {int(m[1]) / max(n, 1):.3f} per response")
    data = Path("/tmp/orchestrate-load.perf.data")
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-g", "-o", str(data),
                    "--", *argv], capture_output=True, text=True, timeout=60, check=True)
    rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                          "--sort", "dso,sym", "-g", "none", "--percent-limit", "1.5"],
                         capture_output=True, text=True, timeout=120)
    kernel = sum(float(m[1]) for m in re.finditer(r"^\s+([\d.]+)%\s+\[kernel\.kallsyms\]", rep.stdout, re.M))
    lines.append(f"perf (cpu-clock, 3 s): symbols >= 1.5%, kernel share of those {kernel:.1f}%:")
    lines += ["  " + ln.strip() for ln in rep.stdout.splitlines() if re.match(r"^\s+[\d.]+%", ln)]
    dso = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso",
                          "-g", "none"], capture_output=True, text=True, timeout=120)
    lines.append("by binary:")
    lines += ["  " + ln.strip() for ln in dso.stdout.splitlines() if re.match(r"^\s+[\d.]+%", ln)]
    return "\n".join(lines)


def table(rounds: list[dict[str, dict]], names: list[str], args: argparse.Namespace) -> None:
    """Medians per client; ratios to wrk as stats.paired_ratio (chosen before the data: the
    geometric mean of per-round ratios, 95% t interval on the logs; a round's runs share the
    machine's state), judged against the goal (>= 1.15x wrk's QPS, <= 1.0x its CPU/request)."""
    def per_req(r: dict) -> float:
        return r["cpu_s"] / max(r["requests"], 1) * 1e6

    def med(name: str, key: str) -> float:
        if key == "cpu_per_req_us":
            return statistics.median(per_req(r[name]) for r in rounds)
        return statistics.median(r[name][key] for r in rounds)

    print(f"\nClosed loop, {args.connections} connections, pipeline {args.pipeline}, {args.duration:g} s x "
          f"{len(rounds)} alternating rounds; server CPU {args.server_cpu}, client CPU {args.client_cpu}; "
          f"medians; ratios: {stats.PAIRED}.\n")
    print("| client | req/s | client CPU us/req | p99 ms | QPS vs wrk | CPU/req vs wrk |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        if name == "wrk":
            ratios = "1 | 1"
        else:
            q = stats.paired_ratio([r["wrk"]["qps"] for r in rounds], [r[name]["qps"] for r in rounds])
            c = stats.paired_ratio([per_req(r["wrk"]) for r in rounds], [per_req(r[name]) for r in rounds])
            ratios = f"{q.text(2)} | {c.text(2)}"
            if name == "orchestrate-load":
                ratios = (f"{q.text(2)} {q.judge(1.15, float('inf'))} | "
                          f"{c.text(2)} {c.judge(0.0, 1.0)}")
        print(f"| {name} | {med(name, 'qps'):,.0f} | {med(name, 'cpu_per_req_us'):.2f} | "
              f"{med(name, 'p99_ms'):.2f} | {ratios} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--ab", action="store_true", help="also run ab -k as a reference")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", type=Path, help="write every round here")
    ap.add_argument("--table", type=Path, metavar="JSON", help="only print the table of recorded rounds")
    args = ap.parse_args()
    if args.table:
        rounds = json.loads(args.table.read_text())
        table(rounds, list(rounds[0]), args)
        return 0
    gen, srv_bin = build()
    script = Path("/tmp/orchestrate_wrk_bench.lua")
    script.write_text(wrk.LUA_SCRIPT)
    srv = subprocess.Popen([str(srv_bin), "--arch", "reuseport", "--threads", "1", "--cpus",
                            str(args.server_cpu), "--acceptor-cpu", str(args.server_cpu),
                            "--bind", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout is not None
        ready = server.parse_ready(srv.stdout.readline())
        assert ready is not None, "server not ready"
        url = f"http://127.0.0.1:{ready.port}/"
        clients = {"orchestrate-load": lambda: run_ours(gen, url, args),
                   "wrk": lambda: run_wrk(url, args, script)}
        if args.ab:
            clients["ab"] = lambda: run_ab(url, args)
        rounds: list[dict[str, dict]] = []
        for i in range(args.rounds):
            names = list(clients) if i % 2 else list(reversed(clients))
            row = {}
            for name in names:
                row[name] = clients[name]()
                time.sleep(0.5)
            rounds.append(row)
            print(f"round {i + 1}: " + "  ".join(
                f"{n} {r['qps']:,.0f} req/s {r['cpu_s'] / max(r['requests'], 1) * 1e6:.2f} us/req"
                for n, r in row.items()), file=sys.stderr)
        prof = profile(gen, url, args) if args.profile else ""
    finally:
        srv.terminate()
        srv.wait(20)

    table(rounds, list(clients), args)
    if prof:
        print("\n" + prof)
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
