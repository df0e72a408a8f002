"""The kernel's side on real lab hosts (network namespaces with their own sshd): sysctls set in
each host's namespace and read back as they were after Ctrl-C, and, after kill -9, after
`orchestrate cleanup`; the accept-queue case (ListenOverflows at 8, none at 4096). Sysctls
change only inside this test's lab namespaces, never on this machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from test_faults import Run

from orchestrator import sysctl
from orchestrator.hosts import netns

from testkit import REPO, orchestrate

pytestmark = pytest.mark.slow

SCENARIO = str(REPO / "scenarios" / "accept-bound.yaml")
ORIGINAL = "1234"  # what the lab hosts hold before a run (as a deploy's tuning role would leave)
COMMON = ["--set", "hosts.deploy=false", "--set", "baseline.enabled=false"]


def somaxconn(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/sys/net/core/somaxconn"],
                          capture_output=True, text=True, check=True).stdout.strip()


def set_somaxconn(ns: str, value: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > /proc/sys/net/core/somaxconn"],
                   check=True)


@pytest.fixture(scope="module")
def lab():
    """One lab kept up for the module (a run borrows a lab that is up and leaves it up)."""
    name = f"k{os.getpid() % 10000}"
    st = netns.up(name, 2)
    spaces = [h.name for h in st.hosts]
    yield name, spaces
    netns.down(name)


@pytest.fixture
def tuned(lab):
    """The lab's namespaces at ORIGINAL before the test; the root namespace is never touched."""
    name, spaces = lab
    root = Path("/proc/sys/net/core/somaxconn").read_text()
    for ns in spaces:
        set_somaxconn(ns, ORIGINAL)
    yield name, spaces
    assert Path("/proc/sys/net/core/somaxconn").read_text() == root


def states(run_id: str) -> list[Path]:
    return sorted(Path(sysctl.STATE_DIR).glob(f"*--{run_id}.json"))


def test_accept_queue_at_8_overflows_and_at_4096_does_not(tmp_path, tuned, run_id):
    name, spaces = tuned
    # variants queue-8 and queue-4096 move server.backlog and net.core.somaxconn together
    done = orchestrate("run", SCENARIO, "--results", str(tmp_path), "--run-id", run_id, *COMMON,
                       "--set", f"hosts.lab={name}", "--set", "load.duration=2s", timeout=300)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "accept-bound" / run_id
    runs = {r["run_id"]: r for r in json.loads((folder / "summary.json").read_text())["runs"]}
    server = spaces[0]
    by = {(r["arch"], r["axes"]["variant"]): r for r in runs.values()}
    assert len(by) == 4, sorted(runs)
    small, large = by[("main-sub", "queue-8")], by[("main-sub", "queue-4096")]
    assert small["sysctl"][server] == {"net.core.somaxconn": "8"}
    assert large["sysctl"][server] == {"net.core.somaxconn": "4096"}
    overflows = small["kernel"][server]["run"]["listen_overflows"]
    assert overflows > 0
    assert large["kernel"][server]["run"]["listen_overflows"] == 0
    a = small["analysis"]
    said = [*a["evidence"], *a["flags"]]
    # accept-bound, or (the load generator saturated too on this 2-CPU machine) a flag beside
    # both-saturated or client-bound
    assert a["verdict"] == "accept-bound" or (a["rule"] in ("both-saturated", "client") and any(
        f.startswith("accept-bound: ") for f in a["flags"])), a
    assert any(f"ListenOverflows {overflows:,} (" in e for e in said), said
    assert "ListenOverflows" not in " ".join([*large["analysis"]["evidence"], *large["analysis"]["flags"]])
    # reuseport beside it: recorded, an observation, not a pass/fail
    assert by[("reuseport", "queue-8")]["kernel"][server]["run"]["listen_overflows"] is not None
    assert [somaxconn(ns) for ns in spaces] == [ORIGINAL] * len(spaces)
    assert states(run_id) == []
    hosts = json.loads((folder / "summary.json").read_text())["hosts"]
    assert hosts[server]["sysctl"]["net.core.somaxconn"] == "8 | 4096"
    assert hosts[server]["sysctl_original"] == {"net.core.somaxconn": ORIGINAL}

    # a sysctl that differs between two compared sessions is named in compare's environment diff
    other = orchestrate("run", SCENARIO, "--results", str(tmp_path), "--run-id", run_id + "-b", *COMMON,
                        "--set", f"hosts.lab={name}", "--set", "load.duration=1s",
                        "--set", "server.arch=main-sub", "--set", "variants={}",
                        "--set", "kernel.sysctl={net.core.somaxconn: 8}", timeout=300)
    assert other.returncode == 0, other.stderr
    diff = orchestrate("compare", str(folder), str(tmp_path / "accept-bound" / (run_id + "-b")))
    assert "environment differs: server sysctl: net.core.somaxconn 8 | 4096 vs 8" in diff.stdout + diff.stderr


def test_ctrl_c_mid_load_leaves_every_namespace_as_it_was(tmp_path, tuned, run_id):
    name, spaces = tuned
    r = Run(tmp_path, run_id, SCENARIO, *COMMON, "--set", f"hosts.lab={name}",
            "--set", "server.arch=main-sub", "--set", "load.duration=5s")
    r.wait_for("no command reaches a host until then", timeout=120)
    assert [somaxconn(ns) for ns in spaces] == ["8"] * len(spaces)  # applied: the test can fail
    r.proc.send_signal(signal.SIGINT)
    rc, err = r.finish()
    assert rc == 130, err
    assert [somaxconn(ns) for ns in spaces] == [ORIGINAL] * len(spaces)
    assert states(run_id) == []


def test_kill_9_mid_load_then_cleanup_restores(tmp_path, tuned, run_id):
    name, spaces = tuned
    r = Run(tmp_path, run_id, SCENARIO, *COMMON, "--set", f"hosts.lab={name}",
            "--set", "server.arch=main-sub", "--set", "load.duration=5s")
    r.wait_for("no command reaches a host until then", timeout=120)
    r.proc.kill()
    r.proc.wait()
    assert [somaxconn(ns) for ns in spaces] == ["8"] * len(spaces)  # left changed by kill -9
    saved = [json.loads(p.read_text()) for p in states(run_id)]
    assert sorted(s["namespace"] for s in saved) == sorted(spaces)
    assert all(s["originals"] == {"net.core.somaxconn": ORIGINAL} for s in saved)
    done = orchestrate("cleanup", "--provider", "local")  # the netns default takes idle labs down
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"restored net.core.somaxconn={ORIGINAL} in namespace {spaces[0]} (left by run {run_id})" \
        in done.stdout
    assert [somaxconn(ns) for ns in spaces] == [ORIGINAL] * len(spaces)
    assert states(run_id) == []


def test_a_global_sysctl_is_refused_in_the_lab_with_the_reason(tmp_path, tuned, run_id):
    """net.core.rmem_max is the machine's (read-only in a namespace): refused before any change."""
    name, spaces = tuned
    done = orchestrate("run", SCENARIO, "--results", str(tmp_path), "--run-id", run_id, *COMMON,
                       "--set", f"hosts.lab={name}", "--set", "server.arch=main-sub",
                       "--set", "kernel.sysctl={net.core.rmem_max: 1000000}")
    assert done.returncode != 0
    assert "net.core.rmem_max: global on this kernel" in done.stderr, done.stderr
    assert "the lab refuses it" in done.stderr
    assert [somaxconn(ns) for ns in spaces] == [ORIGINAL] * len(spaces)
    assert states(run_id) == []
