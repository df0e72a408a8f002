"""Helpers for the tool tests and capture_outputs.py: recorded outputs, short-lived servers.

Servers listen on 127.0.0.1 only; each is a context manager that stops what it started, so
no process outlives a test.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from testkit import stop_process

NGINX_CONF = """daemon off; master_process off; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/cb; proxy_temp_path {d}/px; fastcgi_temp_path {d}/fc;
  uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;
  server {{
    listen 127.0.0.1:{port};
    location = / {{ return 200 "hello\\n"; }}
    location / {{ return 404; }}
  }}
}}
"""


DATA = Path(__file__).resolve().parent / "data"


def data(name: str) -> str:
    """A recorded real output from tests/tools/data/."""
    return (DATA / name).read_text()


def need(*binaries: str) -> None:
    """Skip the calling test when a tool is not installed."""
    import pytest

    missing = [b for b in binaries if shutil.which(b) is None and not Path(b).exists()]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


SLOW_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"


def stop_when(proc: subprocess.Popen, done: Callable[[str], bool], timeout: float = 15.0) -> str:
    """A collector's whole output, stopped with SIGINT as soon as what it printed so far
    satisfies `done` (sysstat flushes every interval): a wait on a condition, not a sleep."""
    assert proc.stdout is not None
    text, deadline = "", time.monotonic() + timeout
    while not done(text):
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            break
        text += line
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=5)
    return text + rest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, deadline_s: float = 5.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=0.5).close()
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {deadline_s}s")


@contextlib.contextmanager
def nginx(port: int | None = None) -> Iterator[str]:
    """nginx on 127.0.0.1 answering 200 'hello' on / and 404 elsewhere; yields the base URL."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="orch-nginx-") as d:
        conf = Path(d) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=d, port=port))
        proc = subprocess.Popen([binary, "-c", str(conf), "-p", d],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/"
            _wait_http(url)
            yield url
        finally:
            stop_process(proc)


@contextlib.contextmanager
def tcp_server(mode: str, delay_s: float = 1.5) -> Iterator[str]:
    """A TCP listener on 127.0.0.1 that accepts and then never answers ('silent'), resets the
    connection at once ('reset'), or answers each request after delay_s ('slow');
    yields an http:// URL for it."""
    assert mode in ("silent", "reset", "slow")
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(512)
    lsock.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def answer_slowly(conn: socket.socket) -> None:
        conn.settimeout(0.2)
        with conn:
            while not stop.is_set():
                try:
                    if not conn.recv(65536):
                        return
                except TimeoutError:
                    continue
                except OSError:
                    return
                if stop.wait(delay_s):
                    return
                try:
                    conn.sendall(SLOW_RESPONSE)
                except OSError:
                    return

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                continue
            if mode == "reset":
                # linger 0 makes close() send RST: the client's read fails (ECONNRESET)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                time.sleep(0.001)
                conn.close()
            elif mode == "slow":
                threading.Thread(target=answer_slowly, args=(conn,), daemon=True).start()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{lsock.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        lsock.close()


@contextlib.contextmanager
def iperf3_server(port: int | None = None) -> Iterator[int]:
    """A one-off iperf3 server on 127.0.0.1; yields its port."""
    port = port or free_port()
    proc = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port), "-J"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            # iperf3 -s -1 takes the first connection as its test: probe with /proc, not connect
            if f":{port:04X} " in Path("/proc/net/tcp").read_text():
                break
            time.sleep(0.05)
        yield port
    finally:
        stop_process(proc)
