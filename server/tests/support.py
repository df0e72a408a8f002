"""Helpers for the server's protocol tests: build, start/stop, a tiny HTTP client.

Only the standard library; every socket talks to 127.0.0.1 and every wait is
bounded in time.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVER_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SERVER_DIR / "cpp-common"))
import cpptest  # noqa: E402  (builds and sanitizer settings, shared with loadgen/tests)

ARCHS = ["reuseport", "main-sub", "uring"]  # every --arch the tests run against
BUILDS = cpptest.builds(SERVER_DIR)


def build(kind: str) -> Path:
    """Configures (once) and builds one flavour; returns the binary's path."""
    build_dir, args = BUILDS[kind]
    cpptest.cmake_build(SERVER_DIR, build_dir, args)
    return build_dir / "orchestrate-server"


class ServerProcess:
    """One orchestrate-server process on 127.0.0.1 with a kernel-chosen port."""

    def __init__(self, binary: Path, arch: str, threads: int = 2, extra: tuple = (),
                 sanitized: bool = False, preexec_fn=None):
        env = dict(os.environ)
        if sanitized:
            env.update(cpptest.SANITIZER_ENV)
        self.sanitized = sanitized
        self.argv = [str(binary), "--arch", arch, "--threads", str(threads),
                     "--bind", "127.0.0.1", "--port", "0", *map(str, extra)]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, preexec_fn=preexec_fn)
        self.ready = self._read_ready(timeout=30)
        self.port = self.ready["port"]
        self.pid = self.proc.pid
        self.stats = None
        self.stderr = ""
        self.returncode = None

    def _read_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                return json.loads(line)
            if self.proc.poll() is not None:
                break
        self.proc.kill()
        out, err = self.proc.communicate(timeout=10)
        raise RuntimeError(f"server did not become ready: rc={self.proc.returncode} {out} {err}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> dict | None:
        """Signals the server, waits, returns the parsed stats line."""
        if self.returncode is not None:
            return self.stats
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
        self.returncode = self.proc.returncode
        self.stderr = err
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        stats = [e for e in events if e.get("event") == "stats"]
        self.stats = stats[0] if stats else None
        return self.stats

    def sanitizer_reports(self) -> list[str]:
        return [m for m in cpptest.SANITIZER_MARKERS if m in self.stderr]

    def cpu_ticks(self) -> int:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime


@dataclass
class Response:
    status: int
    reason: str
    headers: dict = field(default_factory=dict)
    body: bytes = b""


class Client:
    """A blocking HTTP/1.x client that keeps unread bytes between responses."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed by server")
        self.buf += chunk

    def read_response(self, head: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n")
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[:end + 4]
        version, status, reason = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.lower()] = value.strip()
        length = 0 if head else int(headers["content-length"])
        while len(self.buf) < length:
            self._fill()
        body = bytes(self.buf[:length])
        del self.buf[:length]
        return Response(int(status), reason, headers, body)

    def request(self, path: str = "/", method: str = "GET", version: str = "1.1",
                headers: str = "Host: t\r\n") -> Response:
        self.send(f"{method} {path} HTTP/{version}\r\n{headers}\r\n".encode())
        return self.read_response(head=(method == "HEAD"))

    def closed_by_peer(self, timeout: float = 3.0) -> bool:
        """True if the server closes (FIN or RST) within timeout, with no extra data."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
                if len(self.buf) > 1 << 20:
                    return False
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def get(port: int, path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
