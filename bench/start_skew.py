#!/usr/bin/env python3
"""How far apart do 8 wrk processes on ONE shared CPU start when all are aimed at one instant?
(a benchmark, not part of CI; needs tcpdump and a built server)

The lab's client hosts share one CPU on this VM, so whatever starts a generator late on that CPU
shows here. Two ways to start wrk at an instant, alternating:
- sleeper: a Python sleeper wakes at the instant, notes the time and execs wrk (orchestrate
  until 2026-11-30): every wrk then starts, loads its script and connects after the instant,
  while the first ones already take the CPU. Its note is the exec, before any connection;
- script:  wrk is started at once and waits inside its Lua init() (LuaJIT ffi, clock_nanosleep)
  until the instant, and each thread notes the time just before it connects
  (`orchestrator.tools.wrk.command(start_at=)`).
The truth is on the wire: each wrk targets its own loopback address, and tcpdump on lo times
its first load connection's SYN to the server (pinned to CPU 0); wrk's own probe connection at
its start, closed at once, is left out. Also printed: the spread of the notes the orchestrator
reads (`start_skew_ms`), and how far after its note a wrk's first SYN came.

    python3 bench/start_skew.py --rounds 3 --cpu 1
"""

from __future__ import annotations

import argparse
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from orchestrator.tools import wrk  # noqa: E402

SERVER = ROOT / "server/build/release/orchestrate-server"
PORT = 18081
SLEEPER = ("import os, sys, time; time.sleep(max(0.0, {at:.6f} - time.time())); "
           "os.write(2, ('{mark}' + repr(time.time()) + '\\n').encode()); "
           "os.execvp(sys.argv[1], sys.argv[1:])")


def one(how: str, n: int, cpu: int, script: Path, conns: int) -> dict[str, float]:
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-tt", "-l", "-B", "16384",
                             f"tcp dst port {PORT} and tcp[tcpflags] & (tcp-syn|tcp-fin) != 0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1.0)  # tcpdump is listening
    at = time.time() + 1.0
    procs = {}
    for k in range(n):
        addr = f"127.0.0.{k + 1}"  # one address per wrk: its SYNs are told apart
        url = f"http://{addr}:{PORT}/"
        if how == "sleeper":
            argv = wrk.command(url, threads=1, connections=conns, duration_s=1, timeout_s=2,
                               script_path=str(script))
            cmd = ["python3", "-c", SLEEPER.format(at=at, mark=wrk.START_MARK), *argv]
        else:
            cmd = wrk.command(url, threads=1, connections=conns, duration_s=1, timeout_s=2,
                              script_path=str(script), start_at=at)
        procs[addr] = subprocess.Popen(["taskset", "-c", str(cpu), *cmd], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
    notes = {a: t for a, p in procs.items() if (t := wrk.started_at(p.communicate()[1])) is not None}
    time.sleep(0.2)
    dump.terminate()
    syns: dict[tuple[str, str], float] = {}
    fins: dict[tuple[str, str], float] = {}
    for line in dump.communicate()[0].splitlines():
        m = re.match(r"(\d+\.\d+) IP (\S+) > (127\.0\.0\.\d+)\.\d+: Flags \[(\w+)", line)
        if m:
            (syns if "S" in m[4] else fins).setdefault((m[3], m[2]), float(m[1]))
    # wrk.resolve() test-connects the address when wrk starts and closes at once: that
    # connection is not load; the load's connections close at the end of the run. tcpdump
    # drops packets when both CPUs are busy, so some wrks may have no SYN on record.
    first: dict[str, float] = {}
    for (addr, _), t in syns.items():
        if fins.get((addr, _), t + 1) - t > 0.1:
            first[addr] = min(t, first.get(addr, t))
    both = [a for a in notes if a in first]
    return {"late_ms": (min(notes.values()) - at) * 1e3,
            "note_spread_ms": (max(notes.values()) - min(notes.values())) * 1e3,
            "syn_seen": len(first),
            "syn_spread_ms": (max(first.values()) - min(first.values())) * 1e3 if first else float("nan"),
            "syn_minus_note_ms": max(first[a] - notes[a] for a in both) * 1e3 if both else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--cpu", type=int, default=1)
    ap.add_argument("--connections", type=int, default=4)
    args = ap.parse_args()
    server = subprocess.Popen(["taskset", "-c", "0", str(SERVER), "--arch", "reuseport", "--threads", "1",
                               "--port", str(PORT), "--bind", "0.0.0.0"], stdout=subprocess.DEVNULL)
    results: dict[str, list[dict[str, float]]] = {"sleeper": [], "script": []}
    try:
        time.sleep(0.5)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "report.lua"
            script.write_text(wrk.LUA_SCRIPT)
            for _ in range(args.rounds):
                for how in results:  # alternating
                    r = one(how, args.processes, args.cpu, script, args.connections)
                    results[how].append(r)
                    print(f"{how:7} first note {r['late_ms']:5.1f} ms after the instant, notes first to "
                          f"last {r['note_spread_ms']:5.1f} ms; first SYNs ({r['syn_seen']:.0f} of "
                          f"{args.processes} seen) first to last {r['syn_spread_ms']:5.1f} ms, at most "
                          f"{r['syn_minus_note_ms']:.2f} ms after their wrk's note", flush=True)
    finally:
        server.terminate()
        server.wait()
    for how, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"median {how:7}: first note +{med['late_ms']:.1f} ms, note spread "
              f"{med['note_spread_ms']:.1f} ms, SYN spread {med['syn_spread_ms']:.1f} ms  "
              f"({shlex.join(sys.argv)})")


if __name__ == "__main__":
    main()
