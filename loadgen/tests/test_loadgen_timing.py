"""Open-loop timing against the project's server on loopback (server on CPU 0, generator on CPU 1):
pacing accuracy at 20/50/80% of closed-loop capacity, the 100 ms-a-second stall (coordinated
omission: ours against wrk), and overload at 150% (sustained: false).

Server and generator run under SCHED_FIFO (chrt): on a shared 2-core machine other people's
processes on CPUs 0 and 1 otherwise delay both by milliseconds, which shows up (correctly) as
send lag and makes the pacing figures about the neighbours rather than the generator. On a
quiet machine it changes nothing. The 256 connections of the pacing runs keep a server hiccup
from filling every connection (which would queue requests and count as send lag too).

Figures are printed (pytest -s) and kept in the test's JSON under build/timing/ for the record.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import loadkit
import pytest
from loadkit import Staller, run_load

from orchestrator.tools import wrk

RECORD = loadkit.LOADGEN_DIR / "build" / "timing"


def record(name: str, data: dict) -> None:
    RECORD.mkdir(parents=True, exist_ok=True)
    (RECORD / f"{name}.json").write_text(json.dumps(data, indent=1))
    print(name, json.dumps(data))


@pytest.fixture(scope="module")
def capacity(generators, realtime_server) -> float:
    """Closed-loop capacity: 50 connections, the best of two 1.5 s runs."""
    best = 0.0
    for _ in range(2):
        run = run_load(generators["release"], "-c", "50", "-d", "1.5", "-w", "0.3", "--cpus", "1",
                       realtime_server.url, realtime=True)
        best = max(best, run.doc["rate"]["achieved"])
    record("capacity", {"closed_loop_qps": best})
    return best


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8])
def test_pacing_accuracy(generators, realtime_server, capacity, fraction):
    """The sends made within 1% of the target's (those the server kept waiting for a free
    connection counted as unsent), answers at least 99% of it, and the generator's own send-lag
    p99 under 1 ms.
    Closed-loop capacity on one client core is set by the client itself here (loopback TCP
    costs the sender most of its CPU), and open loop costs more per request (every request
    wakes both sides), so at 80% the generator can run out of its core: then it must say so
    itself (sustained: false while its CPU is above 85% of its core during the load), never
    report a rate it did not deliver as sustained."""
    rate = round(capacity * fraction)
    runs = []
    for _ in range(3):  # a busy machine can still preempt: up to 3 tries, every try recorded
        run = run_load(generators["release"], "-c", "256", "-R", str(rate), "-d", "2", "-w", "0.5",
                       "--cpus", "1", realtime_server.url, realtime=True)
        runs.append({"target": rate, "achieved": run.doc["rate"]["achieved"],
                     "send_lag_p99_ms": run.pct("send_lag", "99"),
                     "client_send_lag_p99_ms": run.pct("client_send_lag", "99"),
                     "latency_p99_ms": run.pct("latency", "99"),
                     "sustained": run.doc["rate"]["sustained"],
                     "due": run.counts["requests"], "sent": run.counts["sent"],
                     "unsent": run.counts["unsent"], "queued": run.counts["queued"],
                     "window_s": run.doc["window"]["measured_s"],
                     # busy share of the loaded 2.5 s (warm-up + window)
                     "generator_cpu": round(run.cpu_s / 2.5, 3)})
        if run.doc["rate"]["sustained"]:
            break
    record(f"pacing_{int(fraction * 100)}", {"capacity": capacity, "runs": runs})
    last = runs[-1]
    if fraction < 0.8 or last["sustained"]:
        assert last["sustained"] is True, runs
        # pacing: the window's schedule holds the target, and every request due is sent or,
        # never sent, counted as unsent (its latency runs to the drain's end)
        assert abs(last["due"] / last["window_s"] - rate) <= 0.01 * rate, runs
        assert last["sent"] + last["unsent"] == last["due"], runs
        if last["queued"] == 0:
            # no request waited for a free connection, so any send short of those due is the
            # generator's own: the sends made are the sends due
            assert last["sent"] >= 0.99 * last["due"], runs
        # else the server held every connection for a while (CI once: 1.3% unsent at 80% with
        # a 203 ms server queue, the client's own lag 0.66 ms, answers 102.5% of the target):
        # those sends were the server's to wait for, and the lag check below is the generator's
        # answers: at least 99% of the target; more is possible near the server's capacity,
        # where requests queued in the warm-up are answered inside the window (CI once read
        # 101.7% at 80%, with a 66 ms server queue)
        assert last["achieved"] >= 0.99 * rate, runs
        # the generator's own pacing: its lag from when a connection was free (send_lag also
        # holds the wait for a free connection, which at 80% of the server's capacity is the
        # server's queue: 26 ms here once, with the client's own lag at 0.33 ms)
        assert last["client_send_lag_p99_ms"] < 1.0, runs
    else:
        assert all(r["generator_cpu"] > 0.85 for r in runs), runs
    # the self-check agrees with the figures it is made of, every time (its lag is the client's
    # own, from when a connection was free)
    for r in runs:
        ok = r["achieved"] >= 0.99 * rate and r["client_send_lag_p99_ms"] <= 1.0
        assert r["sustained"] is ok, r


def wrk_p99_under_stall(server: loadkit.ServerProcess, connections: int) -> float:
    with Staller(server.proc.pid, first=time.time() + 0.4, stall_s=0.1, period_s=1.0):
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", "-d3s", "--latency",
                              server.url], capture_output=True, text=True, timeout=30)
    assert re.search(r"requests in", out.stdout), out.stdout + out.stderr
    return wrk.parse(out.stdout).latency_ms.p99


@pytest.mark.slow
def test_stall_corrected_latency(generators, realtime_server, capacity):
    """SIGSTOP 100 ms once a second at 2,000 req/s (far below capacity): about 10% of the intended
    sends fall in a stall and wait 0-100 ms, so the corrected p99 is ~90 ms while the p50 stays
    small. With 8 connections only 8 requests per stall are on the wire; the other ~190 wait in
    the generator's queue, so service time (what a closed-loop tool sees) misses the stall."""
    rate = 2000
    assert rate < capacity / 10
    with Staller(realtime_server.proc.pid, first=time.time() + 0.4, stall_s=0.1, period_s=1.0):
        run = run_load(generators["release"], "-c", "8", "-R", str(rate), "-d", "3", "--timeout", "2",
                       "--cpus", "1", realtime_server.url, realtime=True)  # wrk's default timeout
    p50, p99 = run.pct("latency", "50"), run.pct("latency", "99")
    service_p99 = run.pct("service_time", "99")
    wrk_p99 = wrk_p99_under_stall(realtime_server, 8)
    record("stall", {"rate": rate, "connections": 8, "latency_p50_ms": p50, "latency_p99_ms": p99,
                     "latency_p99_9_ms": run.pct("latency", "99.9"), "service_p99_ms": service_p99,
                     "send_lag_p99_ms": run.pct("send_lag", "99"), "queued": run.counts["queued"],
                     "wrk_c8_p99_ms": wrk_p99})
    assert 70 <= p99 <= 100, run.doc["latency"]["percentiles"]
    assert p50 < 5
    assert service_p99 < p99 / 5
    assert run.counts["queued"] > 300  # ~190 per stall waited for a connection, none dropped
    # every request answered (those in flight at the end in the drain), each with its latency
    assert run.counts["responses"] == run.counts["requests"] == run.doc["latency"]["count"]


@pytest.mark.slow
def test_overload_is_not_sustained(generators, realtime_server, capacity):
    rate = round(capacity * 1.5)
    run = run_load(generators["release"], "-c", "50", "-R", str(rate), "-d", "1.5", "--cpus", "1",
                   realtime_server.url, realtime=True)
    r = run.doc["rate"]
    record("overload", {"capacity": capacity, "target": rate, "achieved": r["achieved"],
                        "sustained": r["sustained"], "send_lag_p99_ms": run.pct("send_lag", "99"),
                        "unsent": run.counts["unsent"], "latency_p99_ms": run.pct("latency", "99")})
    assert r["sustained"] is False
    assert r["achieved"] < 0.99 * rate
    # what could not be sent waited in the queue and counts, from its intended time: counted from
    # the send, no request here could take much longer than 50 connections' turn at capacity
    # (a few ms); CI read p99 87 ms once, where the 1.5x target was nearer the real capacity
    in_flight_ms = 50 / capacity * 1000
    assert run.counts["unsent"] > 0 and run.pct("latency", "99") > max(20.0, 10 * in_flight_ms)


# One thread, 1 ms asleep per request, answering connections in turn: every connection of the
# generator stays busy, so nearly every request waits for one (the corpus's slow server).
SLEEPER = loadkit.LOADGEN_DIR / "tests" / "sleeper.py"


@pytest.mark.slow
def test_waiting_for_a_busy_connection_is_not_the_clients_send_lag(generators):
    """Issue 22: offered 5,000/s against ~1,000/s with all 32 connections busy, the wait for a
    connection is in send_lag (seconds: the server's queue) but not in client_send_lag, which
    counts from the moment a connection was free: µs of the generator's own work."""
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, str(SLEEPER)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        run = run_load(generators["release"], "-c", "32", "-R", "5000", "-d", "2", "-w", "0.1",
                       "--cpus", "1", f"http://127.0.0.1:{port}/", realtime=True)
    finally:
        server.kill()
        server.wait(10)
    c, lag = run.counts, run.doc["client_send_lag"]
    record("busy_connections", {"achieved": run.doc["rate"]["achieved"], "sent": c["sent"],
                                "send_lag_p99_ms": run.pct("send_lag", "99"),
                                "client_send_lag_p99_ms": run.pct("client_send_lag", "99"),
                                "client_send_lag_max_ms": lag["max"] / 1000.0})
    assert run.doc["rate"]["achieved"] < 0.5 * 5000 and c["unsent"] > 0  # the server's queue
    assert lag["count"] == c["sent"] > 300
    assert run.pct("send_lag", "99") > 500  # waited for a connection: the server's slowness
    assert run.pct("client_send_lag", "99") < 1.0, lag  # not the client's
    assert run.doc["rate"]["sustained"] is False  # completion failed: 99% of target not reached
