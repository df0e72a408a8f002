"""Hostile input: 10,000 idle connections, a slowloris crowd, a corpus of malformed requests.

Every socket talks to 127.0.0.1; every wait is bounded. The load generators
here are plain functions so that bench/server_hostile.py runs the same loads,
bigger and longer. The corpus is server/tests/corpus/*.txt with the expected
statuses in corpus/expected.json (written by corpus/make_corpus.py).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import support
from support import ARCHS

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
N_IDLE = 10_000
N_SLOW = 2_000
HEADER_TIMEOUT_MS = 1000
NORMAL_LATENCY_S = 0.100
# RSS ceilings. An idle connection costs the server one Connection object
# (~250 bytes: fd, Channel, parser state, two empty std::strings) plus a slot
# in its thread's vector; the kernel's socket memory is not in RSS. Measured
# (release, 2 threads): 3.1 MiB idle, 6.3 MiB with 10,000 connections (about
# 0.33 KiB each, malloc overhead included). The ceiling, 16 MiB + 1 KiB per
# connection (25.8 MiB for 10,000), leaves room for allocator noise but fails
# as soon as anything per connection grows to a buffer: a 4 KiB buffer each
# would be 40 MiB more, a 64 KiB read buffer each 640 MiB.
RSS_BASE_KIB = 16 * 1024
RSS_PER_CONN_KIB = 1


# ---------------------------------------------------------------- helpers


def raise_nofile(wanted: int) -> tuple[int, int] | None:
    """Lifts this process's RLIMIT_NOFILE to at least `wanted` (the hard limit
    too, if privileged). Returns the previous limits, or None if impossible."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft, hard
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= wanted else wanted
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, new_hard))
    except (ValueError, OSError):
        return None
    return soft, hard


def nofile_preexec(limit: int) -> Callable[[], None]:
    """preexec_fn for the server: its own RLIMIT_NOFILE (soft and hard) = limit."""
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return set_limit


def status_kib(pid: int, field: str) -> int:
    """A memory figure from /proc/<pid>/status, in KiB (e.g. VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def rss_kib(pid: int) -> int:
    return status_kib(pid, "VmRSS")


def hwm_kib(pid: int) -> int:
    """Peak RSS of the process so far (VmHWM)."""
    return status_kib(pid, "VmHWM")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fd_count(pid: int, timeout: float = 2.0) -> int:
    """The server's fd count once it stops changing (a connection the server
    has answered with Connection: close may not have been closed yet)."""
    deadline = time.monotonic() + timeout
    last = fd_count(pid)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = fd_count(pid)
        if now == last:
            return now
        last = now
    return last


def wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def timed_get(port: int, timeout: float = 5.0) -> float:
    """One normal client: new connection, GET, full 200 response. Returns seconds."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"GET /normal HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        buf = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
            statuses, rest = parse_responses(buf)
            if statuses and not rest:
                break
    statuses, rest = parse_responses(buf)
    if statuses != [200] or rest:
        raise AssertionError(f"normal client got {statuses} {rest[:200]!r}")
    return time.perf_counter() - t0


def parse_responses(data: bytes) -> tuple[list[int], bytes]:
    """Statuses of the complete responses in data, and the bytes left over."""
    statuses: list[int] = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return statuses, data
        lines = data[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or parts[0] != "HTTP/1.1" or not parts[1].isdigit():
            return statuses, data
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        if len(data) < end + 4 + length:
            return statuses, data
        statuses.append(int(parts[1]))
        data = data[end + 4 + length:]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def set_rst_on_close(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def open_connections(port: int, n: int, batch: int = 1000, timeout: float = 30.0,
                     ) -> tuple[list[socket.socket], int]:
    """Opens n non-blocking connections, `batch` at a time (below the listen
    backlog, so no SYN is dropped); returns (connected sockets, failures)."""
    socks: list[socket.socket] = []
    failed = 0
    ep = select.epoll()
    try:
        while len(socks) + failed < n:
            pending: dict[int, socket.socket] = {}
            for _ in range(min(batch, n - len(socks) - failed)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex(("127.0.0.1", port))
                if err not in (0, errno.EINPROGRESS):
                    s.close()
                    failed += 1
                    continue
                pending[s.fileno()] = s
                ep.register(s.fileno(), select.EPOLLOUT)
            deadline = time.monotonic() + timeout
            while pending and time.monotonic() < deadline:
                for fd, _ in ep.poll(0.5):
                    s = pending.pop(fd)
                    ep.unregister(fd)
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        socks.append(s)
                    else:
                        s.close()
                        failed += 1
            for s in pending.values():
                s.close()
                failed += 1
    finally:
        ep.close()
    return socks, failed


def closed_by_server(socks: list[socket.socket]) -> int:
    """How many of socks the server has already closed (EOF or RST pending)."""
    ep = select.epoll()
    try:
        for s in socks:
            ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        return len(ep.poll(0, maxevents=len(socks) + 1))
    finally:
        ep.close()


def close_all(socks: list[socket.socket]) -> None:
    """Closes half of them with RST (SO_LINGER 0), half with FIN: both paths."""
    for i, s in enumerate(socks):
        if i % 2:
            with contextlib.suppress(OSError):
                set_rst_on_close(s)
        s.close()
    socks.clear()


# ---------------------------------------------------------------- loads


@dataclass
class IdleReport:
    requested: int
    connected: int
    failed: int
    accepted: int          # server fds above baseline once the crowd was in
    refused: int           # connections the server closed
    baseline_fds: int
    peak_fds: int
    fds_after: int
    baseline_rss_kib: int
    peak_rss_kib: int
    latencies: list[float] = field(default_factory=list)
    open_s: float = 0.0


def idle_crowd(server: support.ServerProcess, n: int, hold_s: float, probe_interval: float = 0.05,
               ) -> IdleReport:
    """n idle connections held for hold_s while a normal client probes; then closed."""
    pid, port = server.pid, server.port
    timed_get(port)  # warm-up: page-faults in the response path
    base_fds, base_rss = settled_fd_count(pid), rss_kib(pid)
    t0 = time.monotonic()
    socks, failed = open_connections(port, n)
    open_s = time.monotonic() - t0
    try:
        wait_for(lambda: fd_count(pid) >= base_fds + len(socks), timeout=20)
        peak_fds = fd_count(pid)
        accepted = peak_fds - base_fds  # before any probe connection
        peak_rss = rss_kib(pid)
        lat: list[float] = []
        end = time.monotonic() + hold_s
        while True:
            lat.append(timed_get(port))
            peak_rss = max(peak_rss, rss_kib(pid))
            peak_fds = max(peak_fds, fd_count(pid))
            if time.monotonic() >= end:
                break
            time.sleep(probe_interval)
        refused = closed_by_server(socks)
    finally:
        close_all(socks)
    wait_for(lambda: fd_count(pid) <= base_fds + 2, timeout=20)
    return IdleReport(n, n - failed, failed, accepted, refused, base_fds, peak_fds, fd_count(pid),
                      base_rss, peak_rss, lat, open_s)


@dataclass
class SlowlorisReport:
    opened: int = 0
    got_408: int = 0
    closed_no_response: int = 0
    other: list[bytes] = field(default_factory=list)
    max_lifetime_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    baseline_rss_kib: int = 0
    peak_rss_kib: int = 0
    peak_fds: int = 0
    trickled_bytes: int = 0


SLOW_PREFIX = b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Pad: "


def slowloris(server: support.ServerProcess, n: int, duration_s: float, trickle_interval: float = 0.1,
              probe_interval: float = 0.05) -> SlowlorisReport:
    """Keeps n connections trickling one header byte per trickle_interval each
    for duration_s; a connection that gets its 408 (or is closed) is replaced
    by a new one. A normal client is timed every probe_interval meanwhile."""
    pid, port = server.pid, server.port
    rep = SlowlorisReport(baseline_rss_kib=rss_kib(pid))
    ep = select.epoll()
    live: dict[int, tuple[socket.socket, float, bytearray]] = {}

    def open_some(k: int) -> None:
        socks, _ = open_connections(port, k)
        now = time.monotonic()
        for s in socks:
            try:
                s.send(SLOW_PREFIX)
            except OSError:
                s.close()
                continue
            live[s.fileno()] = (s, now, bytearray())
            ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
            rep.opened += 1

    def finish(fd: int, outcome: str, data: bytes) -> None:
        s, opened_at, _ = live.pop(fd)
        rep.max_lifetime_s = max(rep.max_lifetime_s, time.monotonic() - opened_at)
        if outcome == "408":
            rep.got_408 += 1
        elif outcome == "closed":
            rep.closed_no_response += 1
        else:
            rep.other.append(data[:200])
        ep.unregister(fd)
        set_rst_on_close(s)  # the server is draining; no TIME_WAIT pile-up here
        s.close()

    try:
        open_some(n)
        end = time.monotonic() + duration_s
        next_trickle = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_trickle:
                next_trickle = now + trickle_interval
                for s, _, _ in list(live.values()):
                    with contextlib.suppress(OSError):  # reset: reported by epoll below
                        rep.trickled_bytes += s.send(b"a")
            events = ep.poll(0, maxevents=len(live) + 1)  # all of them: a 408 seen late looks late
            for fd, _ in events:
                s, _, buf = live[fd]
                try:
                    chunk = s.recv(4096)
                except OSError:
                    chunk = b""
                buf += chunk
                statuses, _ = parse_responses(bytes(buf))
                if statuses == [408]:
                    finish(fd, "408", bytes(buf))
                elif statuses or len(buf) > 4096:
                    finish(fd, "other", bytes(buf))
                elif not chunk:
                    finish(fd, "closed" if not buf else "other", bytes(buf))
            if len(live) < n and time.monotonic() < end - 0.2:
                open_some(n - len(live))
            rep.latencies.append(timed_get(port))
            rep.peak_rss_kib = max(rep.peak_rss_kib, rss_kib(pid))
            rep.peak_fds = max(rep.peak_fds, fd_count(pid))
            time.sleep(probe_interval)
    finally:
        for s, _, _ in live.values():
            set_rst_on_close(s)
            s.close()
        live.clear()
        ep.close()
    return rep


def load_corpus() -> dict[str, tuple[bytes, list[int]]]:
    expected = json.loads((CORPUS_DIR / "expected.json").read_text())
    return {name: ((CORPUS_DIR / name).read_bytes(), e["statuses"]) for name, e in sorted(expected.items())}


@dataclass
class Outcome:
    statuses: list[int]
    rest: bytes
    eof: bool        # the server closed (FIN or RST)
    reset: bool      # ... with an RST
    elapsed_s: float


def replay(port: int, cases: dict[str, bytes], half_close: bool, timeout: float = 5.0,
           chunks: Callable[[bytes], list[bytes]] | None = None) -> dict[str, Outcome]:
    """Sends every case on its own connection, all at once; if half_close,
    shuts the write side after the case; reads until the server closes."""
    socks: dict[int, tuple[str, socket.socket, bytearray, float]] = {}
    out: dict[str, Outcome] = {}
    ep = select.epoll()
    try:
        for name, data in cases.items():
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t0 = time.monotonic()
            reset = False
            try:
                for piece in (chunks(data) if chunks else [data]):
                    s.sendall(piece)
                if half_close:
                    s.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                reset = True
            if reset:
                out[name] = Outcome([], b"", True, True, time.monotonic() - t0)
                s.close()
                continue
            s.setblocking(False)
            socks[s.fileno()] = (name, s, bytearray(), t0)
            ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        deadline = time.monotonic() + timeout
        while socks and time.monotonic() < deadline:
            for fd, _ in ep.poll(0.1):
                name, s, buf, t0 = socks[fd]
                reset = False
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk, reset = b"", True
                except BlockingIOError:
                    continue
                if chunk:
                    buf += chunk
                    continue
                statuses, rest = parse_responses(bytes(buf))
                out[name] = Outcome(statuses, rest, True, reset, time.monotonic() - t0)
                ep.unregister(fd)
                s.close()
                del socks[fd]
        for name, s, buf, t0 in socks.values():
            statuses, rest = parse_responses(bytes(buf))
            out[name] = Outcome(statuses, rest, False, False, time.monotonic() - t0)
            s.close()
    finally:
        for _, s, _, _ in socks.values():
            s.close()
        ep.close()
    return out


def check_replay(expected: dict[str, list[int]], got: dict[str, Outcome], half_close: bool) -> list[str]:
    """What went wrong, one line per case. Half-closed: exactly the expected
    statuses, then a clean FIN. Left open: the same, possibly followed by a 408
    (an unfinished request times out), then the server closes by itself."""
    bad = []
    for name, want in expected.items():
        o = got[name]
        ok = o.statuses == want or (not half_close and o.statuses == [*want, 408])
        if not ok or o.rest or not o.eof or o.reset:
            bad.append(f"{name}: want {want}{'' if half_close else ' [+408]'}, got {o.statuses} "
                       f"eof={o.eof} reset={o.reset} rest={o.rest[:80]!r}")
    return bad


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def nofile():
    """Enough descriptors for 10,000 client sockets in this process."""
    prev = raise_nofile(N_IDLE + 2048)
    if prev is None:
        pytest.skip(f"RLIMIT_NOFILE cannot be raised to {N_IDLE + 2048} here")
    yield N_IDLE + 2048
    resource.setrlimit(resource.RLIMIT_NOFILE, prev)


@pytest.fixture
def release_server(binaries, nofile):
    """Factory for release-build servers with a raised fd limit; each must exit
    0 with a stats line at teardown."""
    started: list[support.ServerProcess] = []

    def start(arch: str, *extra: object) -> support.ServerProcess:
        s = support.ServerProcess(binaries["release"], arch, threads=2, extra=extra,
                                  preexec_fn=nofile_preexec(nofile))
        started.append(s)
        return s

    yield start
    for s in started:
        stats = s.stop()
        assert s.returncode == 0, f"rc={s.returncode} stderr={s.stderr}"
        assert stats is not None


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("arch", ARCHS)
def test_ten_thousand_idle_connections(release_server, arch):
    s = release_server(arch)
    rep = idle_crowd(s, N_IDLE, hold_s=1.0)
    assert rep.connected + rep.failed == N_IDLE
    # All accepted (the server has the fds for them), none dropped by it.
    assert rep.connected == N_IDLE and rep.accepted >= N_IDLE, rep
    assert rep.refused == 0, rep
    assert max(rep.latencies) < NORMAL_LATENCY_S, rep.latencies
    ceiling = RSS_BASE_KIB + RSS_PER_CONN_KIB * N_IDLE
    assert rep.peak_rss_kib < ceiling, (rep.peak_rss_kib, ceiling)
    # Closed again: back to the baseline, and still serving.
    assert rep.fds_after <= rep.baseline_fds + 2, rep
    assert timed_get(s.port) < NORMAL_LATENCY_S
    stats = s.stop()
    assert sum(t["connections"] for t in stats["threads"]) >= N_IDLE


@pytest.mark.parametrize("arch", ARCHS)
def test_slowloris_crowd_is_timed_out(release_server, arch):
    s = release_server(arch, "--header-timeout-ms", HEADER_TIMEOUT_MS)
    base_fds = settled_fd_count(s.pid)
    rep = slowloris(s, N_SLOW, duration_s=2.5)
    # The first wave has all been timed out, with a 408 (or a close if a 408
    # could not be written) and no other answer.
    assert rep.got_408 + rep.closed_no_response >= N_SLOW, rep.got_408
    assert rep.got_408 >= N_SLOW * 0.95, (rep.got_408, rep.closed_no_response)
    assert not rep.other, rep.other[:5]
    # Bytes that trickle in do not extend the deadline (+ sweep interval + slack).
    assert rep.max_lifetime_s < HEADER_TIMEOUT_MS / 1000 + 0.75, rep.max_lifetime_s
    assert max(rep.latencies) < NORMAL_LATENCY_S, sorted(rep.latencies)[-5:]
    assert rep.peak_rss_kib < RSS_BASE_KIB + RSS_PER_CONN_KIB * N_SLOW, rep.peak_rss_kib
    # Every crowd connection is gone (the last ones after the 1 s lingering close).
    assert wait_for(lambda: fd_count(s.pid) <= base_fds + 2, timeout=5), fd_count(s.pid)
    assert timed_get(s.port) < NORMAL_LATENCY_S


def test_corpus_is_large_enough():
    cases = load_corpus()
    assert len(cases) >= 40
    assert {p.name for p in CORPUS_DIR.glob("*.txt")} == set(cases)


def test_malformed_corpus_replay(start_server):
    """Every corpus file, sent whole then half-closed, and sent and left open:
    the documented statuses or a clean close, never a crash; the server still
    answers afterwards and (both builds) exits cleanly with no sanitizer report."""
    s = start_server("--header-timeout-ms", 300, "--idle-timeout-ms", 600)
    cases = load_corpus()
    data = {name: c[0] for name, c in cases.items()}
    expected = {name: c[1] for name, c in cases.items()}
    for half_close in (True, False):
        got = replay(s.port, data, half_close=half_close)
        bad = check_replay(expected, got, half_close)
        assert not bad, "\n".join(bad)
        assert s.proc.poll() is None
    assert timed_get(s.port) < 1.0
    stats = s.stop()
    assert s.returncode == 0 and stats is not None, s.stderr
    assert not s.sanitizer_reports(), s.stderr
    assert "runtime error" not in s.stderr and "AddressSanitizer" not in s.stderr
    # Every response the clients saw was counted by the server.
    seen = sum(len(v) for v in expected.values()) * 2
    assert sum(t["requests"] for t in stats["threads"]) >= seen
