"""The verdict corpus: real runs of induced bottlenecks, each with the verdict it must get and
the deciding number named in the evidence (issue 12). Loads are short (3 s) and local; CPU
quotas come from cgroup v1's cpu controller (tests/cgroupkit.py). The packet-rate-capped lab
(network-bound) is tests/test_cross_host.py; the shared-CPU cases are tests/test_verdicts.py."""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from pathlib import Path

import cgroupkit
import pytest
import yaml

from orchestrator import analysis, store
from orchestrator.records import Analysis, Run, Summary
from orchestrator.tools import server as server_tool

from testkit import REPO, orchestrate

pytestmark = pytest.mark.slow

SERVER_BINARY = REPO / "server" / "build" / "release" / "orchestrate-server"

# One thread, one selector loop, 1 ms asleep per request: requests are served one at a time
# (shared with the generator's timing test).
SLEEPER = REPO / "loadgen" / "tests" / "sleeper.py"

# Two threads, each with its own SO_REUSEPORT listener, serving a connection until it closes
# with a little CPU work per request: one connection keeps one thread busy, the other idle.
HOT = r'''
import socket, sys, threading
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n"
def serve(port):
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(128)
    while True:
        c, _ = lst.accept()
        buf = b""
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                buf += data
                n = buf.count(b"\r\n\r\n")
                buf = buf.rsplit(b"\r\n\r\n", 1)[1] if n else buf
                for _ in range(n):
                    sum(i * i for i in range(5000))  # the work a request costs: ~0.3 ms
                c.sendall(RESPONSE * n)
        except OSError:
            pass
        c.close()
threads = [threading.Thread(target=serve, args=(int(sys.argv[1]),), daemon=True) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scenario(port: int, **over) -> dict:
    sc = {"name": "corpus", "hosts": {"provider": "local"},
          "server": {"arch": "reuseport", "threads": 1, "cpus": [0], "port": port},
          "load": {"threads": 1, "connections": 64, "duration": "3s", "cpus": [1]},
          "baseline": {"enabled": False}, "telemetry": ["pidstat", "mpstat", "sar"], "repeat": 1}
    for key, value in over.items():
        sc[key] = {**sc[key], **value} if isinstance(value, dict) else value
    return sc


def run(tmp_path: Path, run_id: str, sc: dict, wrk_quota: float = 1.0) -> tuple[Summary, int]:
    """`orchestrate run` of `sc`, with wrk (a wrapper first on PATH that joins a cgroup, then
    execs it, keeping its pid) under a CPU quota of `wrk_quota` CPUs: the summary the run
    recorded, and how often wrk's quota throttled it. The verdict is the one the run recorded:
    pidstat watches wrk's own threads (`client_proc`)."""
    real_wrk = next(p for p in ("/usr/bin/wrk", "/usr/local/bin/wrk") if Path(p).exists())
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(sc))
    with cgroupkit.quota(wrk_quota) as cg:
        (bindir / "wrk").write_text(f"#!/bin/sh\n{cg.join()}\nexec {real_wrk} \"$@\"\n")
        (bindir / "wrk").chmod(0o755)
        env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
        deadline = time.monotonic() + 240
        while True:
            done = orchestrate("run", str(path), "--results", str(tmp_path / "results"), "--run-id", run_id,
                               timeout=300, env=env)
            # another run holds this host (a shared machine): wait for it rather than measure beside it
            if "is running against this host" not in done.stderr or time.monotonic() > deadline:
                break
            time.sleep(5)
        throttles = cg.stat()["nr_throttled"]
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = (tmp_path / "results").glob("*/*/summary.json")
    s = store.load_summary(summary.parent)
    if "pidstat" in sc["telemetry"]:  # wrk's own threads were watched: they, not its CPU's busy %, decide
        for r in s.runs:
            assert r.client_proc and r.client_proc["localhost"].threads, r.client_proc
    return s, throttles


@pytest.fixture(scope="module", autouse=True)
def _built_server() -> None:
    """The cases that start the server by command need its Release build, which nothing else
    may have made when this module runs alone: the product's own incremental build (a no-op
    when it is there)."""
    import subprocess

    subprocess.run(server_tool.build_command(REPO / "server", SERVER_BINARY.parent), shell=True,
                   check=True)
    assert os.access(SERVER_BINARY, os.X_OK)


def builtin(port: int, threads: int = 1, cpus: tuple[int, ...] = (0,)) -> str:
    return " ".join(server_tool.builtin_command(str(SERVER_BINARY), arch="reuseport", threads=threads,
                                                cpus=list(cpus), port=port, bind="127.0.0.1",
                                                body="hello\n")).replace("hello\n", "hello")


def show(case: str, s: Summary) -> None:
    """One line per run for bench/RESULTS.md (seen with pytest -s)."""
    for r, a in runs_analysed(s):
        print(f"CORPUS {case} | c={r.connections} | QPS {r.qps or 0:,.0f} | {a.verdict} ({a.rule}) | "
              + " | ".join(a.evidence[:2]))


def runs_analysed(s: Summary) -> list[tuple[Run, Analysis]]:
    """Each run with the analysis it recorded (every run of the corpus has one)."""
    out = []
    for r in s.runs:
        assert r.analysis is not None, r.run_id
        out.append((r, r.analysis))
    return out


def busy(r: Run) -> float:
    """The load generator's busiest thread on this host (pidstat %CPU)."""
    assert r.client_proc and r.client_proc["localhost"].busy is not None, r.client_proc
    return r.client_proc["localhost"].busy


def pct_in(evidence: tuple[str, ...], pattern: str) -> float:
    """The number a deciding evidence line printed (the first line matching `pattern`)."""
    for e in evidence:
        m = re.search(pattern, e)
        if m:
            return float(m[1])
    raise AssertionError(f"no evidence matches {pattern!r}: {evidence}")


def test_server_starved_by_a_cpu_quota_is_server_bound(tmp_path, run_id):
    """Case 3: the server process tree in a cgroup at 25% of a CPU; the generator is free."""
    port = free_port()
    with cgroupkit.quota(0.25) as cg:
        sc = scenario(port, server={"arch": "quota25", "command": cg.enter_command(builtin(port))})
        s, _ = run(tmp_path, run_id, sc)
        throttled = cg.stat()["nr_throttled"]
    show("3 server quota 25%", s)
    assert throttled > 10  # the quota did bite
    ((r, a),) = runs_analysed(s)
    # the wait decides; on a busy machine the shared core may be full as well (rule server-cpu)
    assert a.verdict == "server-bound", a.evidence
    assert a.rule in ("server-kept-from-running", "server-thread", "server-cpu"), a
    wait = pct_in(a.evidence, r"a server thread waited for a CPU ([\d.]+)% >= 30%")
    assert wait >= 40  # throttled ~75% of the time: far from the 20% threshold
    assert busy(r) < 90


def test_hot_thread_is_server_bound(tmp_path, run_id):
    """Case 4: two server threads (a user command), one connection, pipelined: the kernel gives
    the connection to one thread, which works flat out while the other idles."""
    port = free_port()
    script = tmp_path / "hot.py"
    script.write_text(HOT)
    sc = scenario(port, server={"arch": "hot", "threads": 2, "cpus": [0],
                                "command": f"{sys.executable} {script} {{port}}"},
                  load={"connections": 1, "pipeline": 16})
    s, _ = run(tmp_path, run_id, sc)
    show("4 hot thread", s)
    ((r, a),) = runs_analysed(s)
    threads = sorted((t.busy or 0.0 for t in (r.server_cpu.threads if r.server_cpu else ())), reverse=True)
    assert len(threads) >= 2 and threads[1] < 50, threads
    assert a.verdict == "server-bound", a.evidence
    assert any(e.startswith("hot thread: ") for e in a.evidence), a.evidence
    busiest = pct_in(a.evidence, r"hot thread: .* waiting for a CPU = ([\d.]+)% >= 90%")
    assert busiest >= 90


def test_server_that_serialises_requests_is_server_bound_not_client_bound(tmp_path, run_id):
    """Case 5: a single-threaded server sleeping 1 ms per request (a user command): idle CPUs
    everywhere; across connections 2 -> 8 QPS stays flat while latency grows."""
    port = free_port()
    sc = scenario(port, server={"arch": "sleeper", "command": f"{sys.executable} {SLEEPER} {{port}}"},
                  load={"connections": [2, 8]})
    s, _ = run(tmp_path, run_id, sc)
    show("5 sleeping server", s)
    by_c = {r.connections: r.qps or 0.0 for r in s.runs}
    assert set(by_c) == {2, 8}
    assert by_c[8] < 1.25 * by_c[2] and by_c[2] < 1000  # 1 ms each, in series
    for r, a in runs_analysed(s):
        assert (a.verdict, a.rule) == ("server-bound", "server-serialised"), a.evidence
        assert a.evidence[0].startswith("connections 2 -> 8 (x4) but QPS "), a.evidence
        assert busy(r) < 90
        # within the run: C / L is what the loop could do, and it did (not less). wrk's mean may
        # overstate L (its back-filled samples), so QPS may read above C/L: flagged, not asserted.
        assert a.littles_law and (a.littles_law.below_pct or 0.0) < 20
    assert {p.verdict_text for p in s.points} == {"server-bound (1 of 1)"}


def test_closed_loop_with_one_connection_is_latency_bound_and_the_ceiling_a_lower_bound(tmp_path, run_id):
    """Case 6 (and 7 over loopback): one connection against the fast built-in server; the
    baseline's iperf3 is CPU-bound over loopback, so its ceiling is only a lower bound."""
    port = free_port()
    sc = scenario(port, load={"connections": 1},
                  baseline={"enabled": True, "iperf3": {"duration": "1s", "tcp": False,
                                                        "port": free_port()}})
    s, _ = run(tmp_path, run_id, sc)
    show("6+7 one connection, loopback ceiling", s)
    (e,) = s.baseline.values()
    assert e.udp and e.udp.pps_delivered
    print(f"CORPUS 7 loopback ceiling {e.udp.pps_delivered:,.0f} pps: {e.udp.cpu_bound}")
    ((r, a),) = runs_analysed(s)
    # issue 22: one run cannot tell more connections from a serialising server: both named
    assert (a.verdict, a.rule) == ("latency-bound", "latency-bound"), a.evidence
    assert a.evidence[0].startswith("Little's law: 1 requests in flight / ")
    assert a.evidence[1] == analysis.say("latency-bound")
    assert busy(r) < 90
    (entry,) = s.baseline.values()
    assert entry.udp and entry.udp.lower_bound is True, entry.udp
    assert re.search(r"% of a CPU|could not keep up", entry.udp.cpu_bound or "")
    assert r.baseline and r.baseline.lower_bound is True and a.ceiling_lower_bound is True
    assert a.verdict != "network-bound"


def test_server_telemetry_missing_is_inconclusive(tmp_path, run_id):
    """Case 8: no pidstat or mpstat: whatever the load generator did, nothing is concluded."""
    port = free_port()
    s, _ = run(tmp_path, run_id, scenario(port, telemetry=["sar"]))
    show("8 no server telemetry", s)
    ((r, a),) = runs_analysed(s)
    assert (a.verdict, a.rule) == ("inconclusive", "unmeasured"), a.evidence
    assert a.evidence[0] == analysis.say("missing", what="server CPU (mpstat) and threads (pidstat)")
    assert a.server_busy_pct is None


def test_load_generator_starved_by_a_cpu_quota_is_client_bound(tmp_path, run_id):
    """Case 2: wrk in a cgroup at 20% of a CPU against the fast server. mpstat shows wrk's
    core mostly idle (throttled time is idle time); wrk's own run-queue wait shows the quota."""
    port = free_port()
    s, throttles = run(tmp_path, run_id, scenario(port), wrk_quota=0.2)
    show("2 wrk quota 20%", s)
    assert throttles > 10
    ((r, a),) = runs_analysed(s)
    assert (a.verdict, a.rule) == ("client-bound", "client"), a.evidence
    assert pct_in(a.evidence, r"load generator on localhost waited for a CPU ([\d.]+)% >= 30%") >= 50
    assert busy(r) < 30  # it ran no more than its quota


def test_uncapped_lab_ceiling_is_a_lower_bound_and_never_network_bound(tmp_path, run_id):
    """Case 7: an uncapped lab link (veth between namespaces): iperf3 runs out of CPU before
    the link runs out of packets, so its ceiling is only a lower bound, and no run on it is
    called network-bound. The run brings its lab up and takes it down."""
    from orchestrator.hosts import netns

    lab = f"u{os.getpid() % 10000}"
    try:
        done = orchestrate("run", str(REPO / "scenarios" / "cross-host.yaml"), "--results", str(tmp_path),
                           "--run-id", run_id, "--set", f"hosts.lab={lab}", "--set", "server.arch=reuseport",
                           "--set", "load.duration=3s", "--set", "baseline.iperf3.duration=2s",
                           "--set", "baseline.iperf3.tcp=false", timeout=600)
    finally:
        netns.down(lab)  # safe when the run already took it down
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = tmp_path.glob("*/*/summary.json")
    s = store.load_summary(summary.parent)
    (entry,) = s.baseline.values()
    assert entry.udp and entry.udp_reverse
    for way in (entry.udp, entry.udp_reverse):
        assert way.lower_bound is True, way
        assert re.search(r"% of a CPU|could not keep up", way.cpu_bound or "")
    ((r, a),) = runs_analysed(s)
    print(f"CORPUS 7 uncapped lab | c={r.connections} | QPS {r.qps or 0:,.0f} | {a.verdict} "
          f"({a.rule}) | ceiling {entry.udp.pps_delivered or 0:,.0f} pps, lower bound: "
          f"{entry.udp.cpu_bound} "
          f"| reverse: {entry.udp_reverse.cpu_bound} | ceiling use {a.ceiling_use}")
    assert r.baseline and r.baseline.lower_bound is True and a.ceiling_lower_bound is True
    assert a.verdict != "network-bound", a.evidence


@pytest.fixture(scope="module")
def bandwidth_run(tmp_path_factory) -> Summary:
    """A lab link capped at 50 Mbit/s (tbf rate, no packet-size floor) and 64 KiB responses:
    the link's bytes fill long before its packets or any CPU. The run brings its lab up and down."""
    from orchestrator.hosts import netns

    tmp = tmp_path_factory.mktemp("bandwidth")
    lab = f"bw{os.getpid() % 10000}"
    sc = {"name": "bandwidth", "hosts": {"provider": "netns", "lab": lab, "roles": {"server": 1, "client": 1},
                                         "link": {"rate": "50mbit"}},
          "server": {"arch": "reuseport", "threads": 1, "cpus": [0], "port": 8000, "body": "x" * 65536},
          "load": {"threads": 1, "connections": 8, "duration": "4s", "cpus": [1]},
          "baseline": {"iperf3": {"duration": "1s", "tcp_duration": "2s"}},
          "telemetry": ["pidstat", "mpstat", "sar"], "repeat": 1}
    path = tmp / "scenario.yaml"
    path.write_text(yaml.safe_dump(sc))
    try:
        done = orchestrate("run", str(path), "--results", str(tmp / "results"), "--run-id", "bw", timeout=600)
    finally:
        netns.down(lab)
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = (tmp / "results").glob("*/*/summary.json")
    return store.load_summary(summary.parent)


def test_bandwidth_capped_link_with_large_responses_is_network_bound_by_bandwidth(bandwidth_run):
    """Issue 22: a link capped by bandwidth with 64 KiB responses is network-bound by the
    bandwidth ceiling (iperf3 TCP, -R for the server's tx), at 0.95-1.05 of it on the stated
    basis (TCP payload both sides)."""
    s = bandwidth_run
    (entry,) = s.baseline.values()
    assert entry.tcp and entry.tcp_reverse, entry
    ((r, a),) = runs_analysed(s)
    print(f"CORPUS bandwidth 50mbit | QPS {r.qps or 0:,.0f} | {a.verdict} ({a.rule}) | {a.evidence[0]} | "
          f"ceiling {a.bandwidth_bps} use {a.bandwidth_use} bytes/request {a.bytes_per_request} "
          f"packets/request {a.packets_per_request}")
    assert (a.verdict, a.rule) == ("network-bound", "ceiling"), a.evidence
    assert re.match(r"QPS [\d,]+ x [\d,]+ bytes/request of TCP payload \(measured on \S+\) = [\d.]+ Mbit/s "
                    r"\(server tx\) = [\d.]+% >= 90% of the [\d.]+ Mbit/s TCP bandwidth ceiling",
                    a.evidence[0])
    assert "TCP payload on both sides" in a.evidence[0]
    assert a.bandwidth_use and 0.95 <= (a.bandwidth_use.tx or 0) <= 1.05, a.bandwidth_use
    assert a.bytes_per_request and 65_536 <= (a.bytes_per_request.tx or 0) <= 67_000
    assert a.packets_per_request and a.packets_per_request.tx  # both figures in the record
    assert a.ceiling_use and (a.ceiling_use.tx or 0) < 0.9  # not the packet rate


@pytest.fixture(scope="module")
def slow_server_run(tmp_path_factory) -> Summary:
    """A server that takes 1 ms a request on one thread (about 1,000 req/s), offered 5,000 req/s
    open loop from one client host of a lab, with `hosts.roles.client: {min: 1, max: 4}`."""
    from orchestrator.hosts import netns

    tmp = tmp_path_factory.mktemp("slow")
    lab = f"sl{os.getpid() % 10000}"
    sc = {"name": "slow-server", "hosts": {"provider": "netns", "lab": lab,
                                           "roles": {"server": 1, "client": {"min": 1, "max": 4}}},
          "server": {"arch": "sleeper", "threads": 1, "cpus": [0], "port": 8000,
                     "command": f"{sys.executable} {SLEEPER} {{port}} 0.0.0.0"},
          "load": {"tool": "orchestrate-load", "threads": 1, "connections": 32, "rate": 5000,
                   "warmup": "500ms", "duration": "3s", "cpus": [1]},
          "baseline": {"enabled": False}, "telemetry": ["pidstat", "mpstat", "sar"], "repeat": 1}
    path = tmp / "scenario.yaml"
    path.write_text(yaml.safe_dump(sc))
    try:
        done = orchestrate("run", str(path), "--results", str(tmp / "results"), "--run-id", "slow",
                           timeout=600)
    finally:
        netns.down(lab)
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = (tmp / "results").glob("*/*/summary.json")
    return store.load_summary(summary.parent)


def test_a_slow_server_is_server_bound_and_no_client_host_is_added(slow_server_run):
    """Issue 22: answers short of the offered rate are the server's. Send fidelity (the
    client's check) passes, completion (the server's) shows ~1,000 of 5,000, and auto-scale
    adds no client host, saying why."""
    s = slow_server_run
    ((r, a),) = runs_analysed(s)
    print(f"CORPUS slow server 5,000/s | QPS {r.qps or 0:,.0f} | {a.verdict} ({a.rule}) | "
          + " | ".join(a.evidence[:3]) + f" | rate {r.rate} | autoscale {s.autoscale}")
    assert a.verdict == "server-bound", a.evidence
    assert r.rate and r.rate.completion is not None and 0.1 <= r.rate.completion <= 0.3, r.rate
    assert any(re.search(r"the server answered [\d,]+ of 5,000 requests/s offered", e) for e in a.evidence)
    assert not any("did not send on schedule" in e for e in a.evidence), a.evidence
    # The generator's send lag counts from when a connection was free (loadgen/ client_send_lag),
    # so the wait for a busy connection is the server's and the client's own check passes. Its
    # p99 is printed: a few µs here (5 runs alone, 2026-12-07: 6-9 µs); above 1 ms only when
    # something took the generator's CPU between reading an answer and sending the next request.
    print(f"CORPUS slow server send_fidelity {r.rate.send_fidelity} client_send_lag {r.client_send_lag_ms}")
    assert r.rate.send_fidelity is True, (r.rate, r.client_send_lag_ms)
    (scale,) = s.autoscale
    assert scale.clients == 1 and [p.clients for p in scale.path] == [1], scale
    assert scale.stopped.startswith("not client-bound with 1 client host(s): server-bound"), scale.stopped


# ---------------------------------------------------------------- issue 22: slow answers counted
# (a separate block: every request gets a latency, so a server that answers a few requests past
# the timeout can no longer show a clean tail or pass a latency SLO)

# One request in 200 (counted over all connections) is answered after 3 s, the rest at once.
SLOW_ONE_IN_200 = r'''
import asyncio, sys
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n"
EVERY, DELAY = 200, 3.0
seen = 0
async def serve(reader, writer):
    global seen
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            seen += 1
            if seen % EVERY == 0:
                await asyncio.sleep(DELAY)
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=512)
    async with server:
        await server.serve_forever()
asyncio.run(main())
'''
SLOW_RATE = 500  # req/s, open loop: far below what the server answers at once (~10,000/s)
SLOW_WINDOW_S = 2


@pytest.fixture(scope="module")
def slow_search(tmp_path_factory) -> tuple[Path, dict, str]:
    """One real `orchestrate run`: a capacity search (SLO p99.9 <= 100 ms, errors <= 5%, so that
    latency alone decides) over the slow-answering server, starting at SLOW_RATE with one run a
    step: its first step is the slow-answers case. (results folder, summary, CLI stderr)."""
    import json
    import secrets

    from orchestrator.remote import LocalTransport, marked_pids

    tmp = tmp_path_factory.mktemp("slow")
    script = tmp / "slow.py"
    script.write_text(SLOW_ONE_IN_200)
    port = free_port()
    sc = scenario(port, server={"arch": "slow200", "command": f"{sys.executable} {script} {{port}}"},
                  load={"tool": "orchestrate-load", "connections": 32, "duration": f"{SLOW_WINDOW_S}s",
                        "timeout": "2s",
                        "search": {"slo": {"p99_9": "100ms", "errors": 5}, "min_rate": SLOW_RATE,
                                   "max_rate": 2 * SLOW_RATE, "max_repeat": 1}},
                  telemetry=["mpstat"])
    path = tmp / "scenario.yaml"
    path.write_text(yaml.safe_dump(sc))
    rid = f"test-{secrets.token_hex(4)}"
    deadline = time.monotonic() + 240
    while True:
        done = orchestrate("run", str(path), "--results", str(tmp / "results"), "--run-id", rid, timeout=300,
                            report=True)
        # another run holds this host (a shared machine): wait for it rather than measure beside it
        if "is running against this host" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert not marked_pids(LocalTransport(), rid)
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = (tmp / "results").glob("*/*/summary.json")
    return summary.parent, json.loads(summary.read_text()), done.stderr


def test_slow_answers_are_counted_in_the_latency(slow_search):
    """1 request in 200 answered after 3 s, timeout 2 s, open loop far below capacity: the
    timed-out requests are in the tail (p99.9 >= 2 s, p50 still small), the errors list them,
    and the histogram holds every request due in the window."""
    from orchestrator.load import latency_histogram
    from orchestrator.tools import loadgen

    folder, s, _ = slow_search
    (r,) = s["runs"]
    print(f"CORPUS 22 slow answers | rate {r['rate']['target']:g} | p50 {r['latency_ms']['p50']} ms | "
          f"p99.9 {r['latency_ms']['p99_9']} ms | errors {r['errors']} | {r['requests_detail']}")
    assert r["rate"]["target"] == SLOW_RATE
    assert r["latency_ms"]["p99_9"] >= 2000 and r["latency_ms"]["p50"] < 5, r["latency_ms"]
    detail = r["requests_detail"]
    assert detail["requests"] == SLOW_RATE * SLOW_WINDOW_S  # due in the window
    assert r["errors"]["timeout"] >= 1 and dict(detail["failed_by"])["timeout"] >= 1, r["errors"]
    hist = latency_histogram(folder / r["histograms"])
    assert hist.count == detail["requests"]
    # the only requests past the timeout are the slow ones, and every one of them is there
    past = sum(n for v, n in hist.buckets if v >= loadgen.lowest_equivalent(2_000_000))
    assert past == dict(detail["failed_by"])["timeout"] >= 1


def test_a_p99_9_slo_fails_on_slow_answers_and_the_report_says_why(slow_search):
    folder, s, stderr = slow_search
    (entry,) = s["capacity"]
    assert entry["capacity"] is None and entry["bound"] == "below min_rate", entry
    assert [st["passed"] for st in entry["steps"]] == [False]
    why = entry["evidence"]
    assert why.startswith(f"even min_rate {SLOW_RATE:,} req/s missed the SLO: ")
    p999 = re.search(r"p99\.9 ([\d,.]+) ms > 100 ms", why)
    assert p999 and float(p999[1].replace(",", "")) >= 2000, why
    assert why in (folder / "report.md").read_text()
