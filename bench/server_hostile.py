#!/usr/bin/env python3
"""orchestrate-server under hostile input: the loads of server/tests/test_hostile.py, bigger and longer.

For each architecture (release build, fd limit raised in both processes):

- idle: N idle connections (default 10,000) held for S seconds (default 30);
- slowloris: N connections (default 5,000) trickling one header byte every
  0.2 s each for S seconds (default 30) with a short --header-timeout-ms; a
  connection timed out is replaced by a new one, so the crowd stays N strong;
- corpus: the malformed-request corpus (server/tests/corpus) replayed R times
  (default 100) against the release and the ASan+UBSan build: whole and
  half-closed, in random pieces and half-closed, and every 10th round left
  open (the server times it out).

Meanwhile a normal client opens a connection and GETs every ~50 ms. Recorded:
server peak RSS (VmRSS sampled, and VmHWM), fd count, the normal client's
latency p50/p99/max, timeouts, corpus mismatches, crashes (a server that died,
exited non-zero or printed a sanitizer report). Prints a markdown report;
--json writes the raw figures. Traffic goes to 127.0.0.1 only; every server
started is stopped.

    python3 bench/server_hostile.py                     # full run, ~5 min
    python3 bench/server_hostile.py --idle-seconds 5 --slow-seconds 5 --corpus-rounds 10
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server" / "tests"))

import support  # noqa: E402
import test_hostile as h  # noqa: E402

ARCHS = ["reuseport", "main-sub", "uring"]


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.splitlines()
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (f"{model}, {os.cpu_count()} CPUs, {mem_kib // 1024 // 1024} GiB RAM, "
            f"kernel {platform.release()}; {cxx[0] if cxx else 'c++ ?'}; Python {platform.python_version()}")


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms" if x >= 0.001 else f"{x * 1e6:.0f} us"


def crashed(s: support.ServerProcess) -> str:
    """'' if the server is alive and then exits 0 with stats and no sanitizer report."""
    if s.proc.poll() is not None:
        s.stop()
        return f"died rc={s.returncode}: {s.stderr[-500:]}"
    stats = s.stop()
    if s.returncode != 0 or stats is None:
        return f"bad exit rc={s.returncode}: {s.stderr[-500:]}"
    if s.sanitizer_reports() or "runtime error" in s.stderr or "AddressSanitizer" in s.stderr:
        return f"sanitizer report: {s.stderr[-2000:]}"
    return ""


def run_idle(binary: Path, arch: str, n: int, seconds: float, limit: int) -> dict:
    s = support.ServerProcess(binary, arch, threads=2, preexec_fn=h.nofile_preexec(limit))
    try:
        rep = h.idle_crowd(s, n, hold_s=seconds)
        hwm = h.hwm_kib(s.pid)
        healthy = h.timed_get(s.port)
    finally:
        crash = crashed(s)
    lat = rep.latencies
    return {"load": "idle", "arch": arch, "n": n, "seconds": seconds, "connected": rep.connected,
            "accepted": rep.accepted, "refused_by_server": rep.refused, "open_s": round(rep.open_s, 2),
            "baseline_rss_kib": rep.baseline_rss_kib, "peak_rss_kib": rep.peak_rss_kib, "hwm_kib": hwm,
            "baseline_fds": rep.baseline_fds, "peak_fds": rep.peak_fds, "fds_after": rep.fds_after,
            "probes": len(lat), "p50_s": h.percentile(lat, 50), "p99_s": h.percentile(lat, 99),
            "max_s": max(lat), "after_s": healthy, "crash": crash}


def run_slowloris(binary: Path, arch: str, n: int, seconds: float, limit: int, timeout_ms: int) -> dict:
    s = support.ServerProcess(binary, arch, threads=2, extra=("--header-timeout-ms", timeout_ms),
                              preexec_fn=h.nofile_preexec(limit))
    try:
        base_fds = h.settled_fd_count(s.pid)
        rep = h.slowloris(s, n, duration_s=seconds, trickle_interval=0.2)
        h.wait_for(lambda: h.fd_count(s.pid) <= base_fds + 2, timeout=10)
        fds_after = h.fd_count(s.pid)
        hwm = h.hwm_kib(s.pid)
        healthy = h.timed_get(s.port)
    finally:
        crash = crashed(s)
    lat = rep.latencies
    return {"load": "slowloris", "arch": arch, "n": n, "seconds": seconds, "header_timeout_ms": timeout_ms,
            "opened": rep.opened, "got_408": rep.got_408, "closed_no_response": rep.closed_no_response,
            "other": len(rep.other), "max_lifetime_s": round(rep.max_lifetime_s, 3),
            "trickled_bytes": rep.trickled_bytes, "baseline_rss_kib": rep.baseline_rss_kib,
            "peak_rss_kib": rep.peak_rss_kib, "hwm_kib": hwm, "baseline_fds": base_fds,
            "peak_fds": rep.peak_fds, "fds_after": fds_after, "probes": len(lat),
            "p50_s": h.percentile(lat, 50), "p99_s": h.percentile(lat, 99), "max_s": max(lat),
            "after_s": healthy, "crash": crash}


def run_corpus(binary: Path, build: str, arch: str, rounds: int, seed: int = 1) -> dict:
    s = support.ServerProcess(binary, arch, threads=2, sanitized=(build == "asan"),
                              extra=("--header-timeout-ms", 300, "--idle-timeout-ms", 600))
    rng = random.Random(seed)

    def pieces(data: bytes) -> list[bytes]:
        out, i = [], 0
        while i < len(data):
            k = rng.randint(1, 64) if rng.random() < 0.8 else rng.randint(64, 9000)
            out.append(data[i:i + k])
            i += k
        return out

    cases = h.load_corpus()
    data = {name: c[0] for name, c in cases.items()}
    expected = {name: c[1] for name, c in cases.items()}
    mismatches: list[str] = []
    connections = 0
    lat: list[float] = []
    peak_rss = 0
    t0 = time.monotonic()
    try:
        base_fds = h.settled_fd_count(s.pid)
        for r in range(rounds):
            half_close = r % 10 != 9
            got = h.replay(s.port, data, half_close=half_close, chunks=pieces if r % 2 else None)
            connections += len(got)
            mismatches += [f"round {r}: {m}" for m in h.check_replay(expected, got, half_close)]
            lat.append(h.timed_get(s.port))
            peak_rss = max(peak_rss, h.rss_kib(s.pid))
            if s.proc.poll() is not None:
                break
        h.wait_for(lambda: h.fd_count(s.pid) <= base_fds + 2, timeout=5)
        fds_after = h.fd_count(s.pid)
        hwm = h.hwm_kib(s.pid)
    finally:
        crash = crashed(s)
    requests = sum(t["requests"] for t in s.stats["threads"]) if s.stats else 0
    return {"load": "corpus", "build": build, "arch": arch, "rounds": rounds, "cases": len(cases),
            "connections": connections, "server_requests": requests, "mismatches": len(mismatches),
            "mismatch_examples": mismatches[:10], "seconds": round(time.monotonic() - t0, 1),
            "peak_rss_kib": peak_rss, "hwm_kib": hwm, "baseline_fds": base_fds, "fds_after": fds_after,
            "p50_s": h.percentile(lat, 50), "p99_s": h.percentile(lat, 99), "max_s": max(lat) if lat else 0,
            "crash": crash}


def report(results: list[dict], args: argparse.Namespace) -> str:
    out = [f"Machine: {machine()}.",
           f"Client and server share the 2 CPUs unpinned; server `--threads 2`, RLIMIT_NOFILE {args.nofile} "
           "in both processes. Latency: a normal client's new connection + GET + full response, every "
           "~50 ms during the load. RSS: VmRSS sampled with each probe; HWM: VmHWM at the end.",
           "",
           "| load | arch | connections | server fds peak (baseline -> after) | RSS peak / HWM (baseline) "
           "| normal client p50 / p99 / max | timed out | crashes |",
           "|---|---|---|---|---|---|---|---:|"]
    for r in results:
        mib = f"{r['peak_rss_kib'] / 1024:.1f} / {r['hwm_kib'] / 1024:.1f} MiB"
        lat = f"{ms(r['p50_s'])} / {ms(r['p99_s'])} / {ms(r['max_s'])}"
        crash = "1" if r["crash"] else "0"
        if r["load"] == "idle":
            out.append(f"| {r['n']:,} idle, {r['seconds']:g} s | {r['arch']} | {r['accepted']:,} accepted, "
                       f"{r['refused_by_server']} refused | {r['peak_fds']:,} ({r['baseline_fds']} -> "
                       f"{r['fds_after']}) | {mib} ({r['baseline_rss_kib'] / 1024:.1f}) | {lat} "
                       f"({r['probes']} probes) | - | {crash} |")
        elif r["load"] == "slowloris":
            out.append(f"| slowloris {r['n']:,}, {r['seconds']:g} s, header timeout "
                       f"{r['header_timeout_ms']} ms | {r['arch']} | {r['opened']:,} opened "
                       f"| {r['peak_fds']:,} ({r['baseline_fds']} -> "
                       f"{r['fds_after']}) | {mib} ({r['baseline_rss_kib'] / 1024:.1f}) | {lat} "
                       f"({r['probes']} probes) | {r['got_408']:,} x 408, {r['closed_no_response']} closed, "
                       f"{r['other']} other; oldest {r['max_lifetime_s']:.2f} s | {crash} |")
    out += ["", "| corpus replay | arch | build | connections | server responses | mismatches "
            "| RSS peak / HWM | fds baseline -> after | normal client p50 / p99 | time | crashes |",
            "|---|---|---|---:|---:|---:|---|---|---|---:|---:|"]
    for r in results:
        if r["load"] == "corpus":
            out.append(f"| {r['cases']} cases x {r['rounds']} | {r['arch']} | {r['build']} | "
                       f"{r['connections']:,} | {r['server_requests']:,} | {r['mismatches']} | "
                       f"{r['peak_rss_kib'] / 1024:.1f} / {r['hwm_kib'] / 1024:.1f} MiB | "
                       f"{r['baseline_fds']} -> {r['fds_after']} | {ms(r['p50_s'])} / {ms(r['p99_s'])} | "
                       f"{r['seconds']:g} s | {1 if r['crash'] else 0} |")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--idle", type=int, default=10_000)
    p.add_argument("--idle-seconds", type=float, default=30)
    p.add_argument("--slow", type=int, default=5_000)
    p.add_argument("--slow-seconds", type=float, default=30)
    p.add_argument("--header-timeout-ms", type=int, default=2000)
    p.add_argument("--corpus-rounds", type=int, default=100)
    p.add_argument("--corpus-builds", default="release,asan")
    p.add_argument("--nofile", type=int, default=16384)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    if h.raise_nofile(a.nofile) is None:
        sys.exit(f"cannot raise RLIMIT_NOFILE to {a.nofile}")
    builds = a.corpus_builds.split(",") if a.corpus_builds else []
    binaries = {kind: support.build(kind) for kind in {"release", *builds}}
    results: list[dict] = []
    for arch in a.archs.split(","):
        if a.idle:
            results.append(run_idle(binaries["release"], arch, a.idle, a.idle_seconds, a.nofile))
            print(json.dumps(results[-1]), file=sys.stderr)
        if a.slow:
            results.append(run_slowloris(binaries["release"], arch, a.slow, a.slow_seconds, a.nofile,
                                         a.header_timeout_ms))
            print(json.dumps(results[-1]), file=sys.stderr)
        for build in builds:
            results.append(run_corpus(binaries[build], build, arch, a.corpus_rounds))
            print(json.dumps(results[-1]), file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps({"machine": machine(), "args": vars(a) | {"json": str(a.json)},
                                      "results": results}, indent=1) + "\n")
    print(report(results, a))
    bad = [r for r in results if r["crash"] or r.get("mismatches")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
