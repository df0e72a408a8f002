"""Deploy: the playbooks, alone with ansible-playbook and through ansible-runner, on a real netns lab."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator import deploy
from orchestrator.errors import RunFailed
from orchestrator.hosts import Host, Lab, netns
from orchestrator.remote import SshTarget

REPO = Path(__file__).resolve().parents[1]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def _lab(suffix: str, hosts: int):
    if os.geteuid() != 0 or not os.path.exists(netns.SSHD):
        pytest.skip("netns labs need root and openssh-server")
    name = f"t{os.getpid() % 100000}-{suffix}"
    try:
        yield netns.up(name, hosts)
    finally:
        netns.down(name)


@pytest.fixture(scope="module")
def lab():
    yield from _lab("deploy", 2)


def _recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines -> {host: {ok: n, changed: n, failed: n, ...}}."""
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.M):
        out[m[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[2])}
    return out


def _playbook(inventory: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, "playbooks/site.yml", *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env=env)


def test_inventory_from_a_lab():
    checked = Host("a", "10.0.0.1", ("server",), "/w", ssh=SshTarget("10.0.0.1", "a", key_file="/k",
                                                                       known_hosts="/kh", port=2200),
                   vars={"orchestrate_root": "/srv/o", "orchestrate_shared_root": "true"})
    unchecked = Host("b", "10.0.0.2", ("client",), "/w",
                     ssh=SshTarget("10.0.0.2", "b", user="admin", host_key_checking=False))
    local = Host("localhost", "127.0.0.1", ("server", "client"), "/w")
    inv = deploy.inventory(Lab("static", (checked, unchecked, local)))
    server, client = inv["all"]["children"]["server"]["hosts"], inv["all"]["children"]["client"]["hosts"]
    assert set(server) == {"a", "localhost"} and set(client) == {"b", "localhost"}
    a = server["a"]
    assert (a["ansible_host"], a["ansible_port"]) == ("10.0.0.1", 2200)
    assert a["ansible_ssh_private_key_file"] == "/k"
    assert "UserKnownHostsFile=/kh" in a["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in a["ansible_ssh_common_args"]
    assert a["ansible_python_interpreter"] == "/usr/bin/python3" and a["orchestrate_root"] == "/srv/o"
    # only hosts that share a root take turns installing packages (the build role's throttle)
    assert a["orchestrate_shared_root"] == "true" and "orchestrate_shared_root" not in client["b"]
    assert client["b"]["ansible_host_key_checking"] is False and client["b"]["ansible_user"] == "admin"
    assert server["localhost"]["ansible_connection"] == "local"
    assert deploy.server_binary(checked) == "/srv/o/bin/orchestrate-server"
    assert deploy.server_binary(unchecked) == "/opt/orchestrate/bin/orchestrate-server"


def test_lab_hosts_stamp_by_roles_others_by_name():
    """Lab hosts share this machine's filesystem: their stamp is their roles' in the root, the
    same for every lab; unless the deploy sets something in their namespaces (tuning sysctls)."""
    lab_vars = {"namespace": "orch-a-1", "lab": "a", "orchestrate_root": "/tmp/o"}
    client = Host("orch-a-1", "10.0.0.2", ("client",), "/w", vars=lab_vars)
    both = Host("orch-a-0", "10.0.0.1", ("server", "client"), "/w",
                vars={**lab_vars, "namespace": "orch-a-0"})
    assert deploy.stamp_path(client) == "/tmp/o/.deployed.lab.client"
    assert deploy.stamp_path(both) == "/tmp/o/.deployed.lab.client+server"
    assert deploy.stamp_path(client, {"tuning_nofile": 4096}) == "/tmp/o/.deployed.lab.client"  # /etc: shared
    assert deploy.stamp_path(client, {"tuning_somaxconn": 1024}) == "/tmp/o/.deployed.orch-a-1"
    assert deploy.stamp_path(client, {"tuning_somaxconn": None}) == "/tmp/o/.deployed.lab.client"
    static = Host("db1", "10.0.0.3", ("client",), "/w", vars={"orchestrate_root": "/tmp/o"})
    assert deploy.stamp_path(static) == "/tmp/o/.deployed.db1"  # a filesystem of its own
    assert deploy.stamp_path(Host("c", "10.0.0.4", ("client",), "/w")) == "/opt/orchestrate/.deployed.c"


def test_the_inputs_hash_follows_the_vars():
    """A stamp vouches for one way of deploying: other vars, tags or playbook, another hash."""
    same = deploy.inputs_hash(extra_vars={"build_type": "Release"})
    assert deploy.inputs_hash(extra_vars={"build_type": "Release"}) == same
    assert deploy.inputs_hash(extra_vars={"build_type": "Debug"}) != same
    assert deploy.inputs_hash(tags=["server"], extra_vars={"build_type": "Release"}) != same


def test_playbook_alone_builds_the_server_then_changes_nothing(lab, tmp_path):
    """ansible-playbook -i <lab inventory> playbooks/site.yml, twice: the second run has changed=0."""
    root = tmp_path / "opt"  # a fresh root: the server really builds in this test
    first = _playbook(lab.inventory, "-e", f"orchestrate_root={root}")
    assert first.returncode == 0, first.stdout[-3000:]
    recap = _playbook(lab.inventory, "-e", f"orchestrate_root={root}")
    assert recap.returncode == 0, recap.stdout[-3000:]
    stats = _recap(recap.stdout)
    assert set(stats) == {h.name for h in lab.hosts}
    assert all(s["changed"] == 0 and s["failed"] == 0 for s in stats.values()), stats
    assert _recap(first.stdout)[lab.hosts[0].name]["changed"] > 0  # shipped, built, installed
    binary = root / "bin" / "orchestrate-server"
    assert os.access(binary, os.X_OK)
    assert "usage" in subprocess.run([binary, "--help"], capture_output=True, text=True).stdout.lower()

    # The same through ansible-runner with an inventory made from the Lab.
    hosts = netns.hosts_of(lab, run_id="deploy")
    result = deploy.deploy(Lab("netns", hosts, lab.name), extra_vars={"orchestrate_root": str(root)})
    assert result.status == "successful" and result.failed == []
    assert result.changed == {h.name: 0 for h in hosts}
    assert result.hosts[hosts[0].name].ok > 0


def test_tuning_applies_inside_the_namespace_and_is_idempotent(lab):
    hosts = netns.hosts_of(lab, run_id="tune")
    one = Lab("netns", hosts, lab.name)
    values = {"tuning_somaxconn": 1234, "tuning_local_port_range": "20000 40000"}
    first = deploy.deploy(one, tags=["tuning"], extra_vars=values)
    assert all(n == 1 for n in first.changed.values()), first.changed  # one looped task
    second = deploy.deploy(one, tags=["tuning"], extra_vars=values)
    assert all(n == 0 for n in second.changed.values()), second.changed
    got = subprocess.run(["ip", "netns", "exec", hosts[1].name, "sysctl", "-n", "net.core.somaxconn"],
                         capture_output=True, text=True).stdout.strip()
    assert got == "1234"  # per network namespace: the machine's own value is untouched
    assert Path("/proc/sys/net/core/somaxconn").read_text().strip() != "1234"
    # Limited to one host (a client an auto-scale added): the plays run there alone.
    limited = deploy.deploy(one, tags=["tuning"], extra_vars={**values, "tuning_somaxconn": 2345},
                            limit=[hosts[1].name])
    assert limited.changed == {hosts[1].name: 1}

    def somaxconn(h: Host) -> str:
        return subprocess.run(["ip", "netns", "exec", h.name, "sysctl", "-n", "net.core.somaxconn"],
                              capture_output=True, text=True).stdout.strip()

    assert (somaxconn(hosts[0]), somaxconn(hosts[1])) == ("1234", "2345")


def test_a_failing_task_is_a_run_failure_naming_host_and_task(lab, tmp_path):
    src = tmp_path / "broken"
    src.mkdir()
    (src / "CMakeLists.txt").write_text('cmake_minimum_required(VERSION 3.16)\n'
                                        'project(broken CXX)\nmessage(FATAL_ERROR "broken on purpose")\n')
    hosts = netns.hosts_of(lab, run_id="fail")
    with pytest.raises(RunFailed, match=r"build and install server.*broken on purpose") as err:
        deploy.deploy(Lab("netns", hosts, lab.name), tags=["server"],
                      extra_vars={"build_src": str(src), "orchestrate_root": str(tmp_path / "opt")})
    assert err.value.phase == "deploy" and err.value.host == hosts[0].name


def test_an_unreachable_host_is_a_run_failure_naming_it(lab):
    nowhere = str(netns._subnet(lab.index).network_address + 200)
    ghost = Host("ghost", nowhere, ("server",), "/tmp/x",
                 ssh=SshTarget(nowhere, "ghost", key_file=lab.key_file, known_hosts=lab.known_hosts,
                               connect_timeout=2))
    with pytest.raises(RunFailed, match="unreachable") as err:
        deploy.deploy(Lab("netns", (ghost,), lab.name), tags=["tools"])
    assert err.value.host == "ghost" and err.value.phase == "deploy"


def test_ctrl_c_during_deploy_stops_ansible(lab, tmp_path):
    """ansible-playbook runs on its own pty and would not hear Ctrl-C: deploy must stop it.
    Ctrl-C comes once the build task has begun (it unpacks the sources first), and the build is
    tests/data/slowbuild's: two seconds of it are still to run, however fast the compiler."""
    hosts = netns.hosts_of(lab, run_id="intr")
    root = tmp_path / "opt"
    unpacked = root / "src" / "slowbuild"
    stop = threading.Event()
    sent: list[float] = []

    def interrupt_once_building() -> None:
        deadline = time.monotonic() + 120
        while not unpacked.exists() and time.monotonic() < deadline:
            if stop.wait(0.02):
                return
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_building, daemon=True)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            deploy.deploy(Lab("netns", hosts, lab.name), tags=["server"],
                          extra_vars={"orchestrate_root": str(root), "build_project": "slowbuild",
                                      "build_target": "slowbuild",
                                      "build_src": str(REPO / "tests" / "data" / "slowbuild")})
    finally:
        stop.set()
        watcher.join()
    assert sent and unpacked.exists()  # interrupted while building, not after
    assert time.monotonic() - sent[0] < 10
    left = subprocess.run(["pgrep", "-af", "orchestrate-deploy-"], capture_output=True, text=True).stdout
    assert left.strip() == "", left


@pytest.fixture(scope="module")
def lab3():
    """Server and two clients: what several clients building at once needs."""
    yield from _lab("deploy3", 3)


def _builds(root: Path) -> list[tuple[float, float, str]]:
    """(start, end, host) of each build the role ran in this root."""
    lines = (root / "bin" / ".slowbuild.built").read_text().splitlines()
    return [(float(a), float(b), host) for a, b, host in (line.split() for line in lines)]


def test_hosts_with_their_own_build_directories_build_at_once_and_skip_the_same_hash(lab3, tmp_path):
    import dataclasses

    from orchestrator.hosts import connect

    playbook = REPO / "tests" / "data" / "build-parallel.yml"
    hosts = tuple(dataclasses.replace(h, vars={**h.vars, "orchestrate_root": str(tmp_path / h.name),
                                               "orchestrate_shared_root": "false"})
                  for h in netns.hosts_of(lab3, run_id="parallel"))
    one = Lab("netns", hosts, lab3.name)
    transports = {h.name: connect(h) for h in hosts}
    try:
        first = deploy.deploy(one, playbook=playbook, transport=lambda h: transports[h.name])
        assert first.status == "successful"
        spans = [span for h in hosts[1:] for span in _builds(tmp_path / h.name)]
        assert len(spans) == 2
        # Each build sleeps 2 s: one after the other, the second would start after the first ended.
        assert max(s for s, _, _ in spans) < min(e for _, e, _ in spans), spans
        log = tmp_path / "deploy.log"
        second = deploy.deploy(one, playbook=playbook, transport=lambda h: transports[h.name], log=log)
        assert second.status == "skipped" and second.seconds == 0.0
        # the log is still there, and says why no play ran
        assert log.read_text().startswith(f"deploy: skipped {', '.join(sorted(h.name for h in hosts))}: "
                                          "already at build-input hash ")
        assert [span for h in hosts[1:] for span in _builds(tmp_path / h.name)] == spans  # no rebuild
    finally:
        for t in transports.values():
            t.close()


def test_forks_cover_every_host_up_to_the_cap(tmp_path):
    """A real play on 6 local hosts, each working 1 s: with the default cap all start together;
    with hosts.deploy_forks: 2 they go 2 by 2 (Ansible's own default, 5, would do neither)."""
    hosts = tuple(Host(f"h{i}", "127.0.0.1", ("client",), "/w") for i in range(6))
    lab = Lab("static", hosts)

    def starts(cap: int) -> list[float]:
        out = tmp_path / f"cap{cap}"
        out.mkdir()
        result = deploy.deploy(lab, playbook=REPO / "tests" / "data" / "forks.yml", max_forks=cap,
                               extra_vars={"forks_out": str(out)})
        assert result.status == "successful"
        return sorted(float((out / h.name).read_text()) for h in hosts)

    every = starts(deploy.MAX_FORKS)
    assert every[-1] - every[0] < 1.0, every  # all 6 began within the first host's second (5 forks: not)
    two = starts(2)
    assert two[-1] - two[0] >= 1.8, two  # three waves of 2, a second apart


def test_a_new_lab_at_the_same_inputs_skips_the_deploy_and_a_changed_input_deploys(lab, lab3, tmp_path):
    """Two labs of other names, one after the other, in one root (as every lab's hosts share
    /tmp/orchestrate/opt). The first's two clients share that root's build directory: the lock
    in it lets one of them build, the other finds its stamp. The second lab finds the first's
    stamps and runs no play, its client using the binary the first built; a build into the root
    by other sources runs Ansible again."""
    import dataclasses

    from orchestrator.hosts import connect

    playbook = REPO / "tests" / "data" / "build-parallel.yml"
    root = tmp_path / "opt"  # fresh: the first lab really deploys

    def in_root(st: netns.LabState, run_id: str) -> Lab:
        return Lab("netns", tuple(dataclasses.replace(h, vars={**h.vars, "orchestrate_root": str(root)})
                                  for h in netns.hosts_of(st, run_id=run_id)), st.name)

    first, second = in_root(lab3, "first"), in_root(lab, "second")
    transports = {h.name: connect(h) for h in first.hosts + second.hosts}
    try:
        one = deploy.deploy(first, playbook=playbook, transport=lambda h: transports[h.name])
        assert one.status == "successful"
        built = _builds(root)
        assert len(built) == 1 and built[0][2] in {h.name for h in first.hosts if "client" in h.roles}, built
        assert os.access(root / "bin" / "slowbuild", os.X_OK)
        stamps = sorted(p.name for p in root.glob(".deployed.*"))
        assert stamps == [".deployed.lab.client", ".deployed.lab.server"]  # the roles', not the hosts'
        log = tmp_path / "deploy.log"
        two = deploy.deploy(second, playbook=playbook, transport=lambda h: transports[h.name], log=log)
        assert two.status == "skipped" and two.seconds == 0.0
        names = ", ".join(sorted(h.name for h in second.hosts))
        assert log.read_text().startswith(f"deploy: skipped {names}: already at build-input hash ")
        assert _builds(root) == built and os.access(root / "bin" / "slowbuild", os.X_OK)  # the first's binary
        # what another checkout's build (or ansible-playbook alone) into the root leaves: the stamps
        # no longer vouch, and Ansible runs (the role finds its binary from other sources and rebuilds)
        (root / "bin" / ".slowbuild.stamp").write_text("other-sources Release\n")
        again = deploy.deploy(second, playbook=playbook, transport=lambda h: transports[h.name])
        assert again.status == "successful" and len(_builds(root)) == 2
        # (a changed var is a changed inputs hash: test_the_inputs_hash_follows_the_vars)
    finally:
        for t in transports.values():
            t.close()
