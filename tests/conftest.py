"""Shared fixtures: paths, and a guard that a test left no benchmark process behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Processes a run may start; none may outlive it.
WATCHED = ("wrk", "iperf3", "pidstat", "mpstat", "sar", "sadc", "nginx", "orchestrate-ser")


def watched_pids() -> set[tuple[int, str]]:
    out = subprocess.run(["ps", "-eo", "pid=,comm="], capture_output=True, text=True).stdout
    pids = set()
    for line in out.splitlines():
        pid, _, comm = line.strip().partition(" ")
        if comm.strip() in WATCHED:
            pids.add((int(pid), comm.strip()))
    return pids


@pytest.fixture
def run_id(request) -> str:
    """A unique run id for `orchestrate run --run-id`; afterwards asserts that no process
    carrying it (every process a run starts is marked with its run id) is still alive."""
    import secrets

    from orchestrator.remote import LocalTransport, marked_pids

    rid = f"test-{secrets.token_hex(4)}"
    yield rid
    left = marked_pids(LocalTransport(), rid)
    assert not left, f"processes of run {rid} left running: {left}"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def orchestrate(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI as a user runs it (a real process, real exit code)."""
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True,
                          text=True, cwd=cwd or REPO, timeout=timeout)
