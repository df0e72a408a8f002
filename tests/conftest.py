"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import testkit` from any test folder

from testkit import NO_COMPARE, REPO, stop_process  # noqa: E402


def _moto_images() -> str:
    """A file for MOTO_AMIS_PATH: moto's default images plus the latest Amazon Linux ones of
    eu-west-1 (awskit.REGION; the tests resolve one through its SSM parameter), without the
    ~1,300 ECS-optimized images moto otherwise makes in every region, each with a snapshot
    (0.26 s per EC2 backend, and every reset and region builds one). The provider only
    describes images by id, so the code path is the same."""
    import atexit
    import gzip
    import importlib.util
    import json
    import tempfile

    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        return ""
    res = Path(spec.submodule_search_locations[0]) / "ec2" / "resources"
    images = []
    for name in ("amis.json.gz", "latest_amis/eu-west-1.json.gz"):
        with gzip.open(res / name, "rt", encoding="utf-8") as f:
            images += json.load(f)
    fd, path = tempfile.mkstemp(prefix="orchestrate-moto-amis-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(images, f)
    atexit.register(os.unlink, path)
    return path


# Read by moto when it is first imported, here or in the moto server a fixture starts.
if "MOTO_AMIS_PATH" not in os.environ and (_images := _moto_images()):
    os.environ["MOTO_AMIS_PATH"] = _images


@pytest.fixture(autouse=True, scope="session")
def _private_history(tmp_path_factory):
    """Runs in tests record into a throw-away history database, never the user's."""
    os.environ["ORCHESTRATE_HISTORY"] = str(tmp_path_factory.mktemp("history") / "history.sqlite")


@pytest.fixture
def run_id():
    """A unique run id for `orchestrate run --run-id`; afterwards asserts that no process
    carrying it (every process a run starts is marked with its run id) is still alive."""
    from orchestrator.remote import LocalTransport, marked_pids

    rid = f"test-{secrets.token_hex(4)}"
    yield rid
    left = marked_pids(LocalTransport(), rid)
    assert not left, f"processes of run {rid} left running: {left}"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="module")
def moto_server():
    """A standalone moto server on 127.0.0.1: an EC2 endpoint as a user would point at one."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        stop_process(proc, 10)


def _shared_run(tmp_path_factory, name: str, *args: str, env: dict[str, str] | None = None):
    """A real `orchestrate run` made once for the session: (its results folder, the finished
    process). No process of it may outlive it (every process a run starts carries its id)."""
    from orchestrator.remote import LocalTransport, marked_pids

    from testkit import orchestrate

    root = tmp_path_factory.mktemp(name)
    rid = f"test-{name}-{secrets.token_hex(4)}"
    done = orchestrate("run", "--results", str(root / "results"), "--run-id", rid, *args, env=env,
                       timeout=600, report=True, host_noise=True)  # shared: read whole, as a user's
    left = marked_pids(LocalTransport(), rid)
    assert not left, f"processes of run {rid} left running: {left}"
    folders = [p for p in (root / "results").glob("*/*") if p.is_dir()]
    return (folders[0] if len(folders) == 1 else None), done


@pytest.fixture(scope="session")
def loopback_run(tmp_path_factory):
    """The embedded default as `./setup.sh run` runs it (reuseport against main-sub in paired
    rounds, a 1 s baseline), short: 2 rounds of 2 s windows, at 1 and 2 server threads (8 runs).
    Shared by the tests that check different properties of the same run (test_execute: the
    folder, its figures, pinning, kernel counters and the paired answer; report/test_real_run:
    the report built from it), which each made their own run before."""
    return _shared_run(tmp_path_factory, "loopback", "--set", "server.threads=[1,2]", "--set", "rounds=2",
                       "--set", "load.duration=2s")


@pytest.fixture(scope="session")
def native_run(tmp_path_factory):
    """One closed-loop run of the project's own generator against the built-in server (reuseport,
    2 s, no baseline) with pidstat and a perf that cannot open its events (as with
    kernel.perf_event_paranoid=3 for a non-root user). Shared by test_load (the generator's
    face) and test_telemetry (a failed flame graph is reported, the measurement kept)."""
    bin_dir = tmp_path_factory.mktemp("perf-denied")
    (bin_dir / "perf").write_text(
        "#!/bin/sh\necho 'Error: No permission to enable cpu-clock event.' >&2\nexit 255\n")
    (bin_dir / "perf").chmod(0o755)
    return _shared_run(tmp_path_factory, "native", *NO_COMPARE, "--set", "load.tool=orchestrate-load",
                       "--set", "server.arch=reuseport", "--set", "baseline.enabled=false",
                       "--set", "load.duration=2s", "--set", "telemetry=[pidstat, perf]",
                       env={"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"})


@pytest.fixture(scope="session")
def work_factor_run(tmp_path_factory):
    """scenarios/factor-work.yaml for real: server.work_us 0 against 3 in 4 or 5 paired rounds of
    2 s (the width stop at 50% ends them after round 4; a 5th runs when the interval is still
    wider, as on a noisy CI run, or replaces a round one side of which went unmeasured), gated at 5%
    (so it exits 3), its history in a file of its own. Shared by test_factor_runs
    (the gate, the rounds, the interval, the report) and test_explain (which part of the CPU
    per request moved), which each ran the same 0-against-3 comparison (8 runs of 2 s) before.
    Returns (results folder, finished process)."""
    history = tmp_path_factory.mktemp("work-factor-history") / "h.sqlite"
    return _shared_run(tmp_path_factory, "work-factor", "scenarios/factor-work.yaml",
                       "--set", "load.duration=2s", "--set", "rounds.max=5",
                       "--set", "rounds.until=50%", "--history", str(history),
                       "--fail-on-regression", "5")


class _WarmLab:
    """The session's warm lab: its name and the last run that deployed it (see `warm_lab`)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.name = f"w{os.getpid() % 10000}"
        self._tmp = tmp_path_factory
        self.folder: Path | None = None
        self.done = None
        self.up_after = False  # was the lab still up right after that run (a borrowed lab stays up)

    def ensure(self) -> tuple[str, Path, object]:
        from orchestrator.hosts import netns

        if self.done is None or not netns.is_up(self.name):
            netns.down(self.name)  # half a lab, if `orchestrate cleanup` was interrupted
            netns.up(self.name, 2, pps=20_000)
            self.folder, self.done = _shared_run(
                self._tmp, "warm-lab", str(REPO / "scenarios" / "cross-host.yaml"),
                "--set", f"hosts.lab={self.name}", "--set", "server.arch=reuseport",
                "--set", "load.duration=3s", "--set", "baseline.enabled=false",
                "--set", "telemetry={collectors: [pidstat, mpstat, sar], cpus: [0]}")
            self.up_after = netns.is_up(self.name)
        assert self.folder is not None
        return self.name, self.folder, self.done


@pytest.fixture(scope="session")
def _warm_lab_session(tmp_path_factory):
    from orchestrator.hosts import netns

    warm = _WarmLab(tmp_path_factory)
    try:
        yield warm
    finally:
        netns.down(warm.name)


@pytest.fixture
def warm_lab(_warm_lab_session):
    """A 2-host netns lab capped at 20,000 pps (capped: iperf3 is not CPU-bound there), up for
    the session, deployed by one short run of scenarios/cross-host.yaml that borrowed it
    (reuseport, 3 s, no baseline, collectors pinned to CPU 0): (lab name, that run's results
    folder, the finished process). Shared by test_observer (the run's silence and what measuring
    cost) and test_plan (a warm lab to time the plan against), which each ran a run on a lab of
    their own before; the lab is taken down at the session's end. `orchestrate cleanup` takes
    every idle lab down, as it should, and tests of it run between this lab's users: a lab found
    down is brought up and deployed again by the same run."""
    return _warm_lab_session.ensure()


@pytest.fixture(scope="module")
def deployed_lab_root(_warm_lab_session):
    """The labs' shared orchestrate_root (netns.LAB_ORCHESTRATE_ROOT: every lab's hosts see one
    filesystem) holding this tree's tools and server, deployed with Ansible by the warm lab's run
    (see `warm_lab`): a lab of a test's own then runs with hosts.deploy=false instead of deploying
    the same build again (test_gate_nightly: two deploys of ~7.7 s each; test_kernel_lab).
    Returns that run."""
    from orchestrator.hosts import netns

    _, _, done = _warm_lab_session.ensure()
    assert done.returncode == 0, done.stderr
    assert all((Path(netns.LAB_ORCHESTRATE_ROOT) / "bin" / b).is_file()
               for b in ("orchestrate-server", "orchestrate-load"))
    return done
