"""Helpers for the generator's tests: builds, the project's server, scripted fake servers.

Only the standard library (plus the adapter for parsing); every socket is on 127.0.0.1 and
every wait is bounded in time. Named loadkit (not support) so it cannot shadow server/tests'.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

LOADGEN_DIR = Path(__file__).resolve().parents[1]
REPO = LOADGEN_DIR.parent
SERVER_DIR = REPO / "server"
sys.path.insert(0, str(LOADGEN_DIR / "cpp-common"))
import cpptest  # noqa: E402  (builds and sanitizer settings, shared with server/tests)

BUILDS = cpptest.builds(LOADGEN_DIR)
RT_PRIORITY = 10  # SCHED_FIFO priority of the timing tests' generator and server


def build(kind: str) -> Path:
    build_dir, args = BUILDS[kind]
    cpptest.cmake_build(LOADGEN_DIR, build_dir, args)
    return build_dir / "orchestrate-load"


def build_server() -> Path:
    build_dir, args = cpptest.builds(SERVER_DIR)["release"]
    cpptest.cmake_build(SERVER_DIR, build_dir, args)
    return build_dir / "orchestrate-server"


class Run:
    """One finished orchestrate-load process: exit code, its JSON document, stderr."""

    def __init__(self, stdout: str, stderr: str, rc: int, cpu_s: float = 0.0, wall_s: float = 0.0):
        self.rc = rc
        self.cpu_s = cpu_s  # the generator's user + system CPU time
        self.wall_s = wall_s
        self.stdout = stdout
        self.stderr = stderr
        self.doc: dict = json.loads(stdout) if stdout.strip() else {}

    def sanitizer_reports(self) -> list[str]:
        return [m for m in cpptest.SANITIZER_MARKERS if m in self.stderr]

    @property
    def counts(self) -> dict:
        return self.doc["counts"]

    @property
    def errors(self) -> dict:
        return self.doc["counts"]["errors"]

    def pct(self, hist: str, p: str) -> float:
        """A percentile in ms."""
        return self.doc[hist]["percentiles"][p] / 1000.0


@functools.cache
def realtime_allowed() -> bool:
    """SCHED_FIFO needs CAP_SYS_NICE (root here); without it the timing tests run at normal
    priority and are more exposed to other work on the machine."""
    return subprocess.run(["chrt", "-f", str(RT_PRIORITY), "true"], capture_output=True).returncode == 0


def run_load(binary: Path, *args: str, timeout: float = 60, sanitized: bool = False,
             during: Callable[[subprocess.Popen], None] | None = None, realtime: bool = False) -> Run:
    """Runs the generator to completion (`during` is called once it has started).
    realtime: under SCHED_FIFO (chrt), so other tenants of its CPU cannot delay its sends."""
    env = dict(os.environ)
    if sanitized:
        env.update(cpptest.SANITIZER_ENV)
    prefix = ["chrt", "-f", str(RT_PRIORITY)] if realtime and realtime_allowed() else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen([*prefix, str(binary), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        if during:
            during(proc)
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Run(out, err, proc.returncode, cpu, time.monotonic() - t0)


class ServerProcess:
    """The project's orchestrate-server on 127.0.0.1, one thread pinned to `cpu`."""

    def __init__(self, binary: Path, cpu: int | None = 0, threads: int = 1):
        argv = [str(binary), "--arch", "reuseport", "--threads", str(threads), "--bind", "127.0.0.1",
                "--port", "0"]
        if cpu is not None:
            argv += ["--cpus", str(cpu), "--acceptor-cpu", str(cpu)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.stop()
            raise RuntimeError("server did not become ready")
        self.port = int(json.loads(line)["port"])
        self.url = f"http://127.0.0.1:{self.port}/"

    def make_realtime(self) -> None:
        """Every thread to SCHED_FIFO: other work on its CPU no longer steals the server's time."""
        if not realtime_allowed():
            return
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            subprocess.run(["chrt", "-f", "-p", str(RT_PRIORITY), task.name], check=True,
                           capture_output=True, timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.proc.terminate()
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=10)


class Staller:
    """SIGSTOPs `pid` at the wall-clock instant `first` for `stall_s` (None: until the staller
    is closed), again every `period_s` (0: once), and records every (stop, cont) pair in
    wall-clock seconds, so a truth can be built from the stalls that happened. With `priority`
    its thread runs under SCHED_FIFO (where allowed), so stalls start and end on time."""

    def __init__(self, pid: int, *, first: float, stall_s: float | None = 0.1, period_s: float = 1.0,
                 priority: int = 0):
        self.pid, self.first, self.stall_s, self.period_s = pid, first, stall_s, period_s
        self.priority = priority
        self.stalls: list[tuple[float, float]] = []
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Staller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._quit.set()
        self._thread.join(5)
        os.kill(self.pid, signal.SIGCONT)  # never leave it stopped

    def _run(self) -> None:
        if self.priority:
            with contextlib.suppress(PermissionError):  # this thread only (0: the calling thread)
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))
        k = 0
        while k == 0 or self.period_s > 0:
            at = self.first + k * self.period_s
            if self._quit.wait(max(0.0, at - time.time())):
                return
            os.kill(self.pid, signal.SIGSTOP)
            stop = time.time()
            if self.stall_s is None:
                self._quit.wait()
            else:
                time.sleep(max(0.0, at + self.stall_s - time.time()))
            os.kill(self.pid, signal.SIGCONT)
            self.stalls.append((stop, time.time()))
            k += 1


def _requests_in(buf: bytearray) -> int:
    """Complete GET requests at the front of buf (removed); the generator sends no bodies here."""
    n = 0
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return n
        del buf[:end + 4]
        n += 1


class FakeServer:
    """A scripted HTTP server on 127.0.0.1 with one behaviour (a thread per connection):

    - split:       Content-Length answers, the bytes of pipelined answers cut at random points
    - chunked:     chunked answers with extensions and a trailer, cut at random points
    - close:       each answer says Connection: close, then the socket closes
    - until_close: HTTP/1.0 answer with no length, ended by closing the socket
    - status:      503 answers
    - reset:       after 3 answers the connection is reset (RST)
    - stall:       reads requests and never answers
    - late:        answers each request LATE_S after it arrived (one at a time per connection)
    - garbage:     answers with something that is not HTTP
    - interim:     a 100 Continue before each 200
    """

    BODY = b"hello\n"
    LATE_S = 0.3

    def __init__(self, mode: str):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.answered = 0
        self._lock = threading.Lock()
        self._quit = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._rng = random.Random(7)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._quit.set()
        self.sock.close()
        self._thread.join(5)
        with self._lock:
            for c in self._conns:
                c.close()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._quit.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _answer(self) -> bytes:
        m = self.mode
        if m == "chunked":
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3;ext=1\r\nhel\r\n3\r\nlo\n\r\n0\r\nX-Trailer: t\r\n\r\n")
        if m == "close":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"
        if m == "until_close":
            return b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n"
        if m == "status":
            return b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
        if m == "garbage":
            return b"HTTP/1.1 2x0 What\r\n\r\n"
        if m == "interim":
            return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nhello\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nServer: fake\r\n\r\nhello\n"

    def _write_split(self, conn: socket.socket, data: bytes) -> None:
        while data:
            cut = self._rng.randint(1, max(1, len(data)))
            conn.sendall(data[:cut])
            data = data[cut:]

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(0.2)
        buf = bytearray()
        served = 0
        try:
            while not self._quit.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buf += chunk
                n = _requests_in(buf)
                if n == 0 or self.mode == "stall":
                    continue
                if self.mode == "late":
                    for _ in range(n):
                        time.sleep(self.LATE_S)
                        conn.sendall(self._answer())
                    with self._lock:
                        self.answered += n
                    continue
                if self.mode == "reset" and served + n > 3:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    conn.close()
                    return
                if self.mode in ("close", "until_close"):
                    conn.sendall(self._answer())
                    with self._lock:
                        self.answered += 1
                    conn.close()
                    return
                self._write_split(conn, self._answer() * n)
                served += n
                with self._lock:
                    self.answered += n
        except OSError:
            return
