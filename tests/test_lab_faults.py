"""Faults across real SSH hosts (a namespace lab): each ends with a clear message naming the host
and the phase, a non-zero exit, nothing left running on any host, and no lab left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from test_cross_host import lab_traces
from test_faults import Run

from orchestrator.hosts import netns

from testkit import REPO, orchestrate

pytestmark = pytest.mark.slow

SCENARIO = str(REPO / "scenarios" / "cross-host.yaml")
QUICK = ["--set", "baseline.enabled=false", "--set", "server.arch=reuseport"]


def lab_name(tag: str) -> str:
    return f"f{tag}{os.getpid() % 1000}"


def lab_processes(name: str) -> list[str]:
    """Processes still running inside lab `name`'s namespaces (there should be none)."""
    out = []
    for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
        if ns.startswith(f"orch-{name}-"):
            out += subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    return out


def comm_of(pid: int | str) -> str:
    """A process's command name, or "" once it has exited (pids race with us)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def wait_for_pid(run_id: str, comm: str, timeout: float = 60) -> int:
    from orchestrator.remote import LocalTransport, marked_pids

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in marked_pids(LocalTransport(), run_id):
            if comm_of(pid) == comm:
                return pid
        time.sleep(0.1)
    raise AssertionError(f"no {comm} of run {run_id} appeared")


def test_ctrl_c_during_deploy(tmp_path, run_id):
    lab = lab_name("d")
    # a play to interrupt: no stamp of an earlier lab vouches for the shared root (deploy.stamp_path)
    for stamp in Path(netns.LAB_ORCHESTRATE_ROOT).glob(".deployed.lab.*"):
        stamp.unlink(missing_ok=True)
    r = Run(tmp_path, run_id, SCENARIO, "--set", f"hosts.lab={lab}", *QUICK)
    r.wait_for("deploying tools and the server with Ansible", timeout=120)
    time.sleep(2)
    r.proc.send_signal(signal.SIGINT)
    rc, err = r.finish()
    assert rc == 130, err
    assert "interrupted during deploy" in err
    assert lab_traces(lab) == []
    assert r.summary()["status"] == "interrupted"


def lab_cgroups(name: str) -> list[str]:
    return sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"*/orchlab-{name}-*"))


def test_ctrl_c_during_collection(tmp_path, run_id):
    """On a sized lab: the hosts' cgroups go with it too."""
    lab = lab_name("c")
    r = Run(tmp_path, run_id, SCENARIO, "--set", f"hosts.lab={lab}", "--set", "hosts.deploy=false",
            "--set", "load.duration=2s", "--set", "hosts.size.client.cpu=0.5", *QUICK,
            env={"ORCHESTRATE_PAUSE_AT": "collect"})
    r.wait_for("paused at collect", timeout=120)
    assert lab_cgroups(lab) == [f"/sys/fs/cgroup/{c}/orchlab-{lab}-1" for c in ("cpu", "cpuacct")]
    r.proc.send_signal(signal.SIGINT)
    rc, err = r.finish()
    assert rc == 130, err
    assert "interrupted during collect 001-reuseport-t1-c64-r1" in err
    assert lab_traces(lab) == [] and lab_cgroups(lab) == []
    client = next(h for h in r.summary()["hosts"].values() if h.get("cpu_quota") is not None)
    assert client["cpu_quota"] == 0.5  # its facts said what it may use


@pytest.fixture
def kept_lab():
    """A lab that outlives the run (as a user's `lab up` would), so we can look inside it."""
    name = lab_name("k")
    st = netns.up(name, 2)
    yield st
    netns.down(name)
    assert lab_traces(name) == []


def test_client_link_cut_mid_load(tmp_path, run_id, kept_lab):
    client = kept_lab.hosts[1]
    r = Run(tmp_path, run_id, SCENARIO, "--set", f"hosts.lab={kept_lab.name}", "--set", "hosts.deploy=false",
            "--set", "load.duration=4s", "--set", "hosts.ssh.connect_timeout=3s", *QUICK)
    wait_for_pid(run_id, "wrk")
    time.sleep(1)
    subprocess.run(["ip", "link", "set", client.veth, "down"], check=True)
    try:
        rc, err = r.finish(timeout=180)
    finally:
        subprocess.run(["ip", "link", "set", client.veth, "up"], check=True)
    assert rc == 1, err
    assert f"host {client.name}, run 001-reuseport-t1-c64-r1: " in err
    assert "SSH connection lost" in err or "(host down or connection cut?)" in err
    # teardown could not reach the client while it was cut off: it says so ...
    assert f"could not stop {client.name}: wrk" in err
    # ... and nothing of the run is left on the server host, which it could reach
    server_ns = kept_lab.hosts[0].name
    pids = subprocess.run(["ip", "netns", "pids", server_ns], capture_output=True, text=True).stdout.split()
    assert {comm_of(p) for p in pids} - {""} <= {"sshd"}
    s = r.summary()
    assert s["status"] == "failed" and client.name in s["error"]


def test_client_sshd_killed_mid_load(tmp_path, run_id):
    lab = lab_name("s")
    r = Run(tmp_path, run_id, SCENARIO, "--set", f"hosts.lab={lab}", "--set", "hosts.deploy=false",
            "--set", "load.duration=3s", *QUICK)
    wait_for_pid(run_id, "wrk")
    time.sleep(1)
    state = json.loads((netns.LABS_ROOT / lab / "lab.json").read_text())
    client_ns = state["hosts"][1]["name"]
    pids = subprocess.run(["ip", "netns", "pids", client_ns], capture_output=True, text=True).stdout.split()
    sshd = [p for p in pids if comm_of(p) == "sshd"]
    assert sshd
    for p in sshd:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(p), signal.SIGKILL)
    rc, err = r.finish(timeout=180)
    assert rc == 1, err
    assert f"host {client_ns}" in err and "SSH connection lost" in err
    assert lab_traces(lab) == []  # the run's own lab: taken down with everything in it


def test_unreachable_host_and_changed_host_key_are_bad_input(tmp_path, run_id, kept_lab):
    inv = Path(kept_lab.dir) / "inventory.ini"
    bad = tmp_path / "unreachable.ini"
    text = inv.read_text()
    client = kept_lab.hosts[1]
    # an address on the lab's own bridge where no host is: the traffic never leaves this machine
    nobody = client.address.rsplit(".", 1)[0] + ".200"
    bad.write_text(text.replace(f"ansible_host={client.address}", f"ansible_host={nobody}"))
    common = [SCENARIO, "--results", str(tmp_path / "r"), "--run-id", run_id,
              "--set", "hosts.provider=static", "--set", "hosts.deploy=false",
              "--set", "hosts.ssh.connect_timeout=2s", *QUICK]
    done = orchestrate("run", *common, "--set", f"hosts.inventory={bad}", timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"host {client.name} (root@{nobody}:22): unreachable" in done.stderr
    assert "Traceback" not in done.stderr

    known = tmp_path / "known_hosts"
    lines = Path(kept_lab.dir, "known_hosts").read_text().splitlines()
    other = next(line for line in lines if line.startswith(kept_lab.hosts[0].address))
    known.write_text("\n".join(
        f"{client.address} {other.split(' ', 1)[1]}" if line.startswith(client.address) else line
        for line in lines) + "\n")
    changed = tmp_path / "changed.ini"
    changed.write_text(text.replace(str(Path(kept_lab.dir, "known_hosts")), str(known)))
    done = orchestrate("run", *common, "--set", f"hosts.inventory={changed}", timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"host {client.name}" in done.stderr and "host key has CHANGED" in done.stderr


def test_wrong_client_key_is_bad_input(tmp_path, run_id, kept_lab):
    key = tmp_path / "not-authorized"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    inv = Path(kept_lab.dir) / "inventory.ini"
    text = inv.read_text()
    lab_key = next(w.split("=", 1)[1] for w in text.split() if w.startswith("ansible_ssh_private_key_file="))
    wrong = tmp_path / "wrong-key.ini"
    wrong.write_text(text.replace(lab_key, str(key)))
    done = orchestrate("run", SCENARIO, "--results", str(tmp_path / "r"), "--run-id", run_id,
                       "--set", "hosts.provider=static", "--set", f"hosts.inventory={wrong}",
                       "--set", "hosts.deploy=false", *QUICK, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"host {kept_lab.hosts[0].name}" in done.stderr
    assert f"authentication failed with {key}" in done.stderr and "Traceback" not in done.stderr


def test_missing_inventory_group_is_bad_input(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text(textwrap.dedent("""\
        [server]
        s1 ansible_host=127.0.0.1
        """))
    done = orchestrate("run", SCENARIO, "--results", str(tmp_path), "--set", "hosts.provider=static",
                       "--set", f"hosts.inventory={inv}")
    assert done.returncode == 2
    assert str(inv) in done.stderr and "client" in done.stderr
    assert not (tmp_path / "cross-host").exists() or not any((tmp_path / "cross-host").iterdir())


def test_cleanup_leaves_a_lab_in_use_alone(tmp_path, run_id, kept_lab):
    r = Run(tmp_path, run_id, SCENARIO, "--set", f"hosts.lab={kept_lab.name}", "--set", "hosts.deploy=false",
            "--set", "load.duration=3s", *QUICK)
    wait_for_pid(run_id, "wrk")
    done = orchestrate("cleanup")
    assert done.returncode == 0, done.stderr
    assert f"lab {kept_lab.name}: in use by run {run_id}; left up" in done.stdout
    rc, err = r.finish()
    assert rc == 0, err
    assert netns.is_up(kept_lab.name)
