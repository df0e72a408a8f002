"""What makes --arch uring what it claims: its IO threads make no epoll, recv
or send system calls, and far fewer io_uring_enter calls than requests.

Counted with `strace -f -c` (setup.sh TEST_PACKAGES) attached to a release
server while h2load sends keep-alive requests to 127.0.0.1.
"""
from __future__ import annotations

import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import support

REQUESTS = 20_000


def attach_strace(pid: int, out: Path, threads: int) -> subprocess.Popen:
    """strace -f -c on pid; returns once every thread is attached ("Process N
    attached with T threads")."""
    strace = shutil.which("strace")
    assert strace is not None, "strace is not installed: run ./setup.sh test"
    proc = subprocess.Popen([strace, "-f", "-c", "-o", str(out), "-p", str(pid)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            m = re.search(r"attached with (\d+) threads", proc.stderr.readline())
            if m:
                assert int(m.group(1)) == threads + 1  # the IO threads and the main thread
                return proc
    proc.kill()
    raise AssertionError("strace did not attach")


def syscall_counts(summary: str) -> dict[str, int]:
    counts = {}
    for line in summary.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
        if m and m.group(2) != "total":
            counts[m.group(2)] = int(m.group(1))
    return counts


def test_uring_serves_without_epoll_recv_or_send(binaries, tmp_path):
    server = support.ServerProcess(binaries["release"], "uring", threads=2)
    out = tmp_path / "strace.txt"
    try:
        tracer = attach_strace(server.pid, out, threads=2)
        h2load = shutil.which("h2load")
        assert h2load is not None, "h2load is not installed: run ./setup.sh test"
        load = subprocess.run([h2load, "--h1", "-n", str(REQUESTS), "-c", "20", f"http://127.0.0.1:{server.port}/"],
                              capture_output=True, text=True, timeout=120)
        assert f"{REQUESTS} succeeded" in load.stdout, load.stdout
        tracer.send_signal(signal.SIGINT)  # detach and write the summary
        tracer.wait(timeout=30)
    finally:
        stats = server.stop()
    assert server.returncode == 0 and stats is not None
    counts = syscall_counts(out.read_text())
    assert counts.get("io_uring_enter", 0) > 0, counts
    forbidden = {name: n for name, n in counts.items()
                 if name.startswith("epoll") or name in ("recvfrom", "recvmsg", "sendto", "sendmsg", "read",
                                                         "write", "accept", "accept4", "poll", "ppoll")}
    assert not forbidden, counts
    # Batching: one io_uring_enter serves several requests (the epoll
    # servers make at least 2 system calls per request).
    assert counts["io_uring_enter"] < REQUESTS / 2, counts
