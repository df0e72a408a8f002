"""Held-out cases that must get the right verdict from real runs, with the deciding numbers.
(The network-bound case, a packet-rate-capped link, is in tests/test_cross_host.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from testkit import orchestrate

pytestmark = pytest.mark.slow


@pytest.fixture
def hog() -> Iterator[callable]:
    """hog(cpu): a busy loop pinned to `cpu` for the test (bounded: 120 s at most)."""
    procs: list[subprocess.Popen] = []

    def start(cpu: int) -> None:
        procs.append(subprocess.Popen(["timeout", "120", "taskset", "-c", str(cpu), "sh", "-c",
                                       "while :; do :; done"], start_new_session=True))

    yield start
    for p in procs:
        os.killpg(p.pid, signal.SIGKILL)  # the whole group: timeout and the loop under it
        p.wait()
    left = subprocess.run(["pgrep", "-f", "while :; do :; done"], capture_output=True, text=True).stdout
    assert not left.split(), f"busy loops left running: {left}"


def run_loopback(tmp_path, run_id) -> dict:
    done = orchestrate("run", "--results", str(tmp_path), "--run-id", run_id, "--set", "load.duration=5s",
                       "--set", "baseline.enabled=false", "--set", "server.arch=reuseport", timeout=300)
    assert done.returncode == 0, done.stderr
    (summary,) = tmp_path.glob("*/*/summary.json")
    (run,) = json.loads(summary.read_text())["runs"]
    return run["analysis"]


def test_server_given_fewer_cpus_than_the_load_is_server_bound(tmp_path, run_id, hog):
    # The server's only CPU is shared with a busy loop; the load generator has its own.
    hog(0)
    a = run_loopback(tmp_path, run_id)
    assert a["verdict"] == "server-bound", a["evidence"]
    text = " ".join(a["evidence"])
    assert "server CPUs 100% busy" in text or "server CPUs 99% busy" in text
    assert "waited for a CPU" in text or "preempted" in text
    assert a["client_busy_pct"] < 90


def test_starved_load_generator_against_a_fast_server_is_client_bound(tmp_path, run_id, hog):
    # The load generator's CPU is shared with a busy loop; the server has its own.
    hog(1)
    a = run_loopback(tmp_path, run_id)
    assert a["verdict"] == "client-bound", a["evidence"]
    assert a["evidence"][0].startswith("load generator") and "(threshold 90%)" in a["evidence"][0]
    assert "not saturated" in a["evidence"][1]
    assert any(f.startswith("load generator at") for f in a["flags"])
    assert a["server_busy_pct"] is not None
