"""Faults on this machine: each must end with a clear message naming the host and the phase,
the right exit code, nothing left running, and every run measured before it kept.
(Faults that need several SSH hosts are in tests/test_lab_faults.py.)"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.remote import LocalTransport, marked_pids

from testkit import NO_COMPARE, REPO, orchestrate, run_extras

pytestmark = pytest.mark.slow

FAST = ["--set", "load.duration=2s", "--set", "baseline.enabled=false", *NO_COMPARE]


class Run:
    """`orchestrate run` in the background, output to files we can watch."""

    def __init__(self, tmp: Path, run_id: str, *args: str, env: dict[str, str] | None = None):
        self.run_id = run_id
        self.out, self.err = tmp / "out.txt", tmp / "err.txt"
        self.results = tmp / "results"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "run", "--results", str(self.results),
             "--run-id", run_id, *NO_COMPARE, *args, *run_extras()],
            stdout=self.out.open("w"), stderr=self.err.open("w"), cwd=REPO,
            env={**os.environ, **(env or {})})

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.err.read_text():
                return
            assert self.proc.poll() is None, f"exited early: {self.err.read_text()}"
            time.sleep(0.05)
        raise AssertionError(f"never saw {text!r}: {self.err.read_text()}")

    def wait_for_load(self, timeout: float = 60) -> dict[int, str]:
        """Wait until the run's wrk is running; returns the run's processes (pid -> name)."""
        deadline = time.monotonic() + timeout
        while True:
            procs = commands(self.run_id)
            if "wrk" in procs.values():
                return procs
            assert time.monotonic() < deadline and self.proc.poll() is None, self.err.read_text()
            time.sleep(0.1)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        rc = self.proc.wait(timeout=timeout)
        return rc, self.err.read_text()

    def summary(self) -> dict:
        (folder,) = [p for p in self.results.glob("*/*") if p.is_dir()]
        return json.loads((folder / "summary.json").read_text())


def test_ctrl_c_during_load_keeps_the_runs_already_measured(tmp_path, run_id):
    r = Run(tmp_path, run_id, *FAST, "--set", "repeat=2")
    r.wait_for("[2/4]")
    r.wait_for_load()  # the second run's wrk is loading
    r.proc.send_signal(signal.SIGINT)
    rc, err = r.finish()
    assert rc == 130, err
    assert "interrupted during run 002-main-sub-t1-c64-r1" in err
    assert "everything started was stopped" in err
    s = r.summary()
    assert s["status"] == "interrupted"
    assert [x["run_id"] for x in s["runs"]] == ["001-reuseport-t1-c64-r1"]
    assert s["runs"][0]["qps"] > 0


def test_ctrl_c_during_baseline(tmp_path, run_id):
    r = Run(tmp_path, run_id, "--set", "baseline.iperf3.duration=5s", "--set", "load.duration=2s",
            env={"ORCHESTRATE_PAUSE_AT": "baseline"})
    r.wait_for("paused at baseline")  # iperf3's server is up, its clients not yet started
    r.proc.send_signal(signal.SIGINT)
    rc, err = r.finish()
    assert rc == 130 and "interrupted during baseline" in err
    assert r.summary()["status"] == "interrupted"


def test_sigterm_is_an_interrupt_too(tmp_path, run_id):
    r = Run(tmp_path, run_id, *FAST)
    r.wait_for("[1/2]")
    r.wait_for_load()
    r.proc.send_signal(signal.SIGTERM)
    rc, err = r.finish()
    assert rc == 130 and "terminated (SIGTERM)" in err


def commands(run_id: str) -> dict[int, str]:
    """pid -> command name of the live processes of a run."""
    out = {}
    for pid in marked_pids(LocalTransport(), run_id):
        try:
            out[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
    return out


def test_server_killed_mid_run(tmp_path, run_id):
    r = Run(tmp_path, run_id, "--set", "load.duration=4s", "--set", "baseline.enabled=false")
    r.wait_for("[1/2]")
    server = [p for p, comm in r.wait_for_load().items() if comm == "orchestrate-ser"]
    assert server, "the server never ran"
    time.sleep(1)
    os.kill(server[0], signal.SIGKILL)
    rc, err = r.finish()
    assert rc == 1, err
    assert "host localhost, run 001-reuseport-t1-c64-r1: the server died during the load" in err
    s = r.summary()
    assert s["status"] == "failed" and s["runs"] == []


def test_server_port_already_taken(tmp_path, run_id):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = Run(tmp_path, run_id, *FAST, "--set", f"server.port={port}")
        rc, err = r.finish()
    assert rc == 1, err
    assert "host localhost, run 001-reuseport-t1-c64-r1: server exited during start-up" in err
    assert "in use" in err.lower()


def test_wrk_missing(tmp_path, run_id):
    # A PATH with every tool the run needs except wrk.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "env", "taskset", "setsid", "iperf3", "pidstat", "mpstat", "sar", "ps", "grep",
                 "cat", "mkdir", "kill", "ss", "date", "cmake", "awk", "python3", "sleep", "cut", "ip",
                 "hostname", "uname", "nproc", "lscpu", "g++", "make", "c++", "nginx", "sadc"):
        found = shutil.which(tool) or (f"/usr/lib/sysstat/{tool}" if tool == "sadc" else None)
        if found:
            (bin_dir / tool).symlink_to(found)
    r = Run(tmp_path, run_id, *FAST, env={"PATH": str(bin_dir)})
    rc, err = r.finish()
    assert rc == 1, err
    # refused before anything starts, naming the package that provides it (first contact, #26)
    assert "host this machine, preflight: wrk is missing: apt-get install -y wrk" in err
    assert not list(tmp_path.rglob("metrics.csv"))


def test_iperf3_server_cannot_listen(tmp_path, run_id):
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        r = Run(tmp_path, run_id, "--set", f"baseline.iperf3.port={port}", "--set", "load.duration=2s")
        rc, err = r.finish()
    assert rc == 1, err
    assert f"host localhost, baseline: iperf3-server exited before listening on port {port}" in err


def test_iperf3_server_unreachable(tmp_path, run_id):
    r = Run(tmp_path, run_id, "--set", "load.duration=2s", env={"ORCHESTRATE_PAUSE_AT": "baseline",
                                                               "ORCHESTRATE_PAUSE_S": "3"})
    r.wait_for("paused at baseline")
    (iperf3,) = [p for p, comm in commands(run_id).items() if comm == "iperf3"]
    os.kill(iperf3, signal.SIGKILL)  # the client will find nobody at the port
    rc, err = r.finish()
    assert rc == 1, err
    assert "host localhost, baseline: iperf3 udp to 127.0.0.1:5201: unable to connect to server" in err
    assert r.summary()["status"] == "failed"


@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_results_on_a_full_filesystem(tmp_path, tiny_fs, run_id):
    # Leave ~16 KiB: the plan and scenario fit, the first run's raw outputs do not.
    st = os.statvfs(tiny_fs)
    (tiny_fs / "filler").write_bytes(b"x" * (st.f_bavail * st.f_frsize - 16 * 1024))
    done = orchestrate("run", "--results", str(tiny_fs), "--run-id", run_id, *FAST, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"facts: cannot write the results folder {tiny_fs}/loopback/{run_id}: No space left on " \
           "device" in done.stderr
    assert "Traceback" not in done.stderr


def test_interrupted_sweep_resumed_equals_an_uninterrupted_one(tmp_path, run_id):
    # 1 s loads: what is compared is which runs were kept and their figures, not the figures
    args = ["--set", "load.duration=1s", "--set", "baseline.enabled=false", "--set", "repeat=2"]
    r = Run(tmp_path, run_id, *args)
    r.wait_for("[3/4]")
    r.proc.send_signal(signal.SIGINT)
    rc, err = r.finish()
    assert rc == 130, err
    before = [x["run_id"] for x in r.summary()["runs"]]
    assert before == ["001-reuseport-t1-c64-r1", "002-main-sub-t1-c64-r1"]
    # nothing of the interrupted session lives on (a server that did once shared the resumed
    # reuseport run's port with it)
    assert commands(run_id) == {}
    done = orchestrate("run", "--results", str(r.results), "--resume", run_id, *NO_COMPARE, *args,
                       timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 of 4 runs to do" in done.stderr
    s = r.summary()
    assert s["status"] == "complete" and s["resumed"] == 1
    assert [x["run_id"] for x in s["runs"]] == ["001-reuseport-t1-c64-r1", "002-main-sub-t1-c64-r1",
                                                "003-reuseport-t1-c64-r2", "004-main-sub-t1-c64-r2"]
    assert [x["qps"] for x in s["runs"][:2]] == [x["qps"] for x in r.summary()["runs"][:2]]


def test_cleanup_after_the_orchestrator_was_killed_with_sigkill(tmp_path, run_id):
    # SIGKILL cannot be caught: what the run started lives on, marked with its run id,
    # until `orchestrate cleanup` stops it (runs still alive hold a lock and are spared).
    r = Run(tmp_path, run_id, "--set", "load.duration=8s", "--set", "baseline.enabled=false")
    r.wait_for_load()
    r.proc.kill()
    r.proc.wait()
    left = commands(run_id)
    assert "orchestrate-ser" in left.values() and "wrk" in left.values()
    done = orchestrate("cleanup", "--provider", "local")
    assert done.returncode == 0, done.stderr
    assert f"left by run {run_id}" in done.stdout
    assert commands(run_id) == {}


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """One run in progress, shared by the tests of what must leave a live run alone (a second
    run, cleanup); its first load has started. Afterwards it must finish as if nobody had
    tried: exit 0, both its runs measured, nothing of it left."""
    run_id = f"test-{secrets.token_hex(4)}"
    # two 2 s loads: the run stays alive (4 s and more) well past what the tests do to it (1 s)
    r = Run(tmp_path_factory.mktemp("live"), run_id, "--set", "load.duration=2s",
            "--set", "baseline.enabled=false")
    r.wait_for_load()
    yield r
    rc, err = r.finish()
    assert rc == 0, err
    assert len(r.summary()["runs"]) == 2
    assert commands(run_id) == {}


def test_second_run_against_the_same_host_is_refused(tmp_path, live_run):
    done = orchestrate("run", "--results", str(tmp_path / "results"), "--run-id", live_run.run_id + "-b",
                       *FAST)
    assert done.returncode == 1, done.stderr
    assert f"host localhost, start: busy: run {live_run.run_id} (pid {live_run.proc.pid}) is running " \
           "against this host" in done.stderr


def test_cleanup_spares_a_run_that_is_alive(live_run):
    done = orchestrate("cleanup", "--provider", "local")
    assert done.returncode == 0, done.stderr
    assert live_run.run_id not in done.stdout
