"""Helpers shared by the tests (imported as `testkit`; conftest.py only holds fixtures)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The embedded default compares server.arch in paired rounds; a test that measures one
# architecture, or repeats a point, runs it without the comparison.
NO_COMPARE = ["--set", "compare=null", "--set", "rounds=null"]


def run_extras(*, report: bool = False, host_noise: bool = False) -> list[str]:
    """What the tests add to an `orchestrate run`: it skips its report (--no-report: ~2 s of
    charts) and its host-noise readings (host_noise: false, ~1.7 s), which only the tests that
    read them need, and ask for with report=True, host_noise=True (the session's shared runs
    keep both: conftest.py). A --resume gets the same, so its scenario is the run's."""
    return [*([] if report else ["--no-report"]), *([] if host_noise else ["--set", "host_noise=false"])]


def orchestrate(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None,
                report: bool = False, host_noise: bool = False) -> subprocess.CompletedProcess:
    """The CLI as a user runs it (a real process, real exit code); a `run` with run_extras."""
    import os

    if args[:1] == ("run",):
        args = (*args, *run_extras(report=report, host_noise=host_noise))
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True,
                          text=True, cwd=cwd or REPO, timeout=timeout, env={**os.environ, **(env or {})})


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """terminate, wait up to `grace` s, then kill: a test's helper process never outlives it."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def path_without(tool: str, tmp_path: Path, *, also: tuple[str, ...] = ()) -> Path:
    """A bin folder linking every tool orchestrator.packages knows that this machine has, except
    `tool`, plus `also` (what the test's own commands need); for a PATH that lacks just one."""
    from orchestrator import packages

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in packages.TOOL_PACKAGES:
        found = packages.which(name)
        if name != tool and found:
            (bin_dir / name).symlink_to(found)
    for name in also:
        (bin_dir / name).symlink_to(packages.which(name) or f"/usr/bin/{name}")
    return bin_dir


@contextmanager
def listener(greeting: bytes) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that sends `greeting` to each connection; yields its port."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(greeting)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join()
        srv.close()


# Hand-made telemetry rows, with every field their parser sets (records.ThreadCpu, CpuLoad and
# CounterThread require them): a test names the numbers that decide its case, the rest is an
# idle, unremarkable row. Defaults read as an absent field did before (0 where analysis read
# None as 0; a thread's cpus empty: not placed, see test_analysis.placed).

def thread_cpu(tid: int | None = 1, busy: float = 0.0, **fields: Any) -> dict[str, Any]:
    """A pidstat row (tools/pidstat.summarize): usr is what busy leaves after sys."""
    row: dict[str, Any] = {"tgid": 1, "tid": tid, "command": "server", "sys": 0.0, "busy": busy,
                           "wait": 0.0, "cswch_s": 0.0, "nvcswch_s": 0.0, "n": 10, "cpus": [],
                           **fields}
    row.setdefault("usr", busy - row["sys"])
    return row


def cpu_load(cpu: int = 0, busy: float = 0.0, **fields: Any) -> dict[str, Any]:
    """An mpstat row (tools/mpstat.summarize): idle is 100 - busy, usr what busy leaves after
    sys, soft and irq."""
    row: dict[str, Any] = {"cpu": cpu, "nice": 0.0, "sys": 0.0, "iowait": 0.0, "irq": 0.0, "soft": 0.0,
                           "steal": 0.0, "idle": 100.0 - busy, "busy": busy, "n": 10, **fields}
    row.setdefault("usr", busy - row["sys"] - row["soft"] - row["irq"])
    return row


def counter_thread(thread: int = 0, requests: int = 0, connections: int = 0, **fields: Any) -> dict[str, Any]:
    """A server thread's own counters (tools/server.parse_stats), thread i pinned on CPU i."""
    return {"thread": thread, "cpu": thread, "connections": connections, "requests": requests,
            "tid": 100 + thread, "bytes_in": 0, "bytes_out": 0, **fields}


def server_counters(*threads: dict[str, Any], arch: str = "reuseport") -> dict[str, Any]:
    """The server's stats event as parse_stats reads it (no acceptor: reuseport has none)."""
    return {"arch": arch, "threads": list(threads)}


def client_result(host: str, qps: float, **fields: Any) -> dict[str, Any]:
    """One generator's share of a run (load.py), over a 10 s run at a flat 1 ms latency."""
    return {"host": host, "qps": qps, "requests": int(qps * 10),
            "latency_ms": dict.fromkeys(("p50", "p75", "p90", "p99", "max", "mean"), 1.0), **fields}


def cpu_cost(total: float) -> dict[str, Any]:
    """A run's server CPU per request (analysis.cost_per_request: usr and sys always, soft when
    mpstat measured it), split 30/50/20 over a `total` in µs."""
    return {"usr": total * 0.3, "sys": total * 0.5, "soft": total * 0.2, "total": total}


def udp_ceiling(pps: float = 100_000.0, **fields: Any) -> dict[str, Any]:
    """iperf3's small-datagram test (tools/iperf3.parse_udp) over 1 s, nothing lost."""
    n = int(pps)
    return {"length": 64, "packets_sent": n, "packets_delivered": n, "packets_lost": 0, "pps_sent": pps,
            "pps_delivered": pps, "loss_pct": 0.0, "duration_s": 1.0, "cpu_sender_pct": 50.0,
            "cpu_receiver_pct": 20.0, **fields}


def run_record(**fields: Any) -> dict[str, Any]:
    """A hand-made run: what execute always records (execute._record: the matrix point it ran,
    its QPS and request count, load settings, window, ...; nothing measured beyond the QPS), with
    `fields` over them."""
    return {"index": 0, "arch": "reuseport", "server_threads": 1, "connections": 64, "repetition": 1,
            "run_id": "000-test", "qps": 1000.0, "requests": 10_000,
            "load": {"tool": "wrk", "threads": 1, "pipeline": 1, "duration_s": 10.0, "clients": 1},
            "server_cpu": {}, "server_host_cpu": {}, "affinity": {}, "window": {"start": 0.0, "end": 10.0},
            "baseline": {}, "server_stopped_cleanly": True, **fields}


def session(**fields: Any) -> dict[str, Any]:
    """A hand-made summary's header: the scenario and its source, the session's id, provider,
    start and status, which execute always writes (execute._open_results, _Session.save), with
    `fields` over them."""
    return {"scenario": "test", "source": "test.yaml", "run_id": "test-session", "provider": "local",
            "started": "2026-01-01T00:00:00Z", "status": "complete", **fields}
