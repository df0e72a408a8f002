"""server.backlog reaches the built-in server's listen(2): the kernel shows it as Send-Q."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.tools import server

pytestmark = pytest.mark.slow

BINARY = Path(__file__).parents[2] / "server" / "build" / "release" / "orchestrate-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listen_queue_limit(port: int) -> int | None:
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")
    return int(lines[0].split()[2]) if lines[0].strip() else None


@pytest.mark.parametrize("backlog", [8, None])
def test_the_backlog_is_the_listen_queue_limit(backlog):
    port = free_port()
    argv = server.builtin_command(str(BINARY), arch="main-sub", threads=1, cpus=[0], port=port,
                                  bind="127.0.0.1", body="x", backlog=backlog)
    assert ("--backlog" in argv) == (backlog is not None)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            limit = listen_queue_limit(port)
            if limit is not None:
                break
            time.sleep(0.05)
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
        assert limit == (8 if backlog else min(4096, somaxconn))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
