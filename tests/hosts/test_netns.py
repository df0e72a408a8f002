"""The netns provider, for real: namespaces, a bridge, sshd per host, paramiko with host keys checked."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator import remote
from orchestrator.errors import UserError
from orchestrator.hosts import NoMoreHosts, netns
from orchestrator.remote import SshTarget, SshTransport
from orchestrator.scenario import Scenario

CAP = 20_000  # pps


def _scenario(name: str, *, lab: str | None = None, clients: int = 1, pps: int | None = None) -> Scenario:
    return Scenario.model_validate({"name": name, "hosts": {
        "provider": "netns", "lab": lab, "roles": {"server": 1, "client": clients}, "link": {"pps": pps}}})


def test_up_three_hosts_quickly_and_ssh_to_each(lab3, tmp_path):
    st, seconds = lab3
    assert seconds < 5, f"lab up of 3 hosts took {seconds:.1f}s"
    assert st.healthy and len(st.hosts) == 3 and netns.is_up(st.name)
    hosts = netns.hosts_of(st, run_id="t1")
    assert [h.roles for h in hosts] == [("server",), ("client",), ("client",)]
    cpu = max(os.sched_getaffinity(0))
    for h in hosts:
        assert h.address.startswith("198.1") and h.ssh is not None and h.ssh.host_key_checking
        t = SshTransport(h.ssh)
        try:
            # The command runs inside the host's namespace: it sees only its own address.
            addrs = t.run(f"ip -4 -o addr show dev {h.interface}").stdout
            assert f"{h.address}/24" in addrs
            proc = remote.spawn(t, "sleeper", "sleep 30", workdir=h.workdir, cpus=[cpu])
            try:
                assert remote.alive(t, proc)
                pids = remote.group_pids(t, proc.pid)
                assert proc.pid in pids
                aff = remote.thread_affinity(t, pids)
                assert aff and all(a["cpus"] == [cpu] for a in aff.values()), aff
                in_ns = subprocess.run(["ip", "netns", "pids", h.name], capture_output=True,
                                       text=True).stdout.split()
                assert str(proc.pid) in in_ns  # it really runs in that host's namespace
            finally:
                assert remote.stop(t, proc, grace=5)
            assert not remote.alive(t, proc)
        finally:
            t.close()


def test_lab_files(lab3):
    st, _ = lab3
    d = Path(st.dir)
    for key in (Path(st.key_file), *[d / "hosts" / h.name / "ssh_host_ed25519_key" for h in st.hosts]):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    known = Path(st.known_hosts).read_text().splitlines()
    assert [line.split()[0] for line in known] == [h.address for h in st.hosts]
    lab = json.loads((d / "lab.json").read_text())
    assert lab["state"] == "up" and [h["address"] for h in lab["hosts"]] == [h.address for h in st.hosts]
    conf = (d / "hosts" / st.hosts[1].name / "sshd_config").read_text()
    for line in (f"ListenAddress {st.hosts[1].address}:22", "UsePAM no", "PasswordAuthentication no",
                 "PermitRootLogin prohibit-password", f"PidFile {d}/hosts/{st.hosts[1].name}/sshd.pid"):
        assert line in conf
    inv = Path(st.inventory).read_text()
    for needle in ("ansible_python_interpreter=/usr/bin/python3",
                   f"ansible_ssh_private_key_file={st.key_file}",
                   f"-o UserKnownHostsFile={st.known_hosts}", "[server]", "[client]"):
        assert needle in inv
    # sshd listens on the host's address only (not 0.0.0.0).
    listen = subprocess.run(["ip", "netns", "exec", st.hosts[0].name, "ss", "-Htln"], capture_output=True,
                            text=True).stdout
    assert f"{st.hosts[0].address}:22" in listen and "0.0.0.0:22" not in listen


def test_unknown_and_changed_host_key_are_user_errors_naming_the_host(lab3, tmp_path):
    st, _ = lab3
    h0, h1 = st.hosts[0], st.hosts[1]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = SshTarget(host=h0.address, name=h0.name, key_file=st.key_file, known_hosts=str(empty),
                       connect_timeout=5)
    with pytest.raises(UserError, match=rf"{h0.name}.*unknown"):
        SshTransport(target)
    # Host 1's key recorded under host 0's address: what a rebuilt (or spoofed) host looks like.
    other = (Path(st.dir) / "hosts" / h1.name / "ssh_host_ed25519_key.pub").read_text().split()
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"{h0.address} {other[0]} {other[1]}\n")
    with pytest.raises(UserError, match=rf"{h0.name}.*CHANGED"):
        SshTransport(SshTarget(host=h0.address, name=h0.name, key_file=st.key_file,
                               known_hosts=str(wrong), connect_timeout=5))


def test_unreachable_host_is_a_user_error_naming_it(lab3):
    st, _ = lab3
    nowhere = str(netns._subnet(st.index).network_address + 200)  # in the lab's /24, nobody there
    started = time.monotonic()
    with pytest.raises(UserError, match=r"ghost.*unreachable"):
        SshTransport(SshTarget(host=nowhere, name="ghost", key_file=st.key_file,
                               known_hosts=st.known_hosts, connect_timeout=2))
    assert time.monotonic() - started < 10


def _iperf3_pps(st: netns.LabState, *, reverse: bool) -> float:
    """Packets/s delivered from host 1 to host 0 (or back with -R), 64-byte UDP as fast as possible."""
    srv, cli = netns.hosts_of(st, run_id="pps")[:2]
    ts, tc = SshTransport(srv.ssh), SshTransport(cli.ssh)
    try:
        proc = remote.spawn(ts, "iperf3-s", f"iperf3 -s -1 -B {srv.address} -p 5201", workdir=srv.workdir)
        try:
            out = ""
            for _ in range(50):  # until the server listens
                done = tc.run(f"iperf3 -c {srv.address} -p 5201 -u -b 0 -l 64 -t 2 --json"
                              + (" -R" if reverse else ""), timeout=20, check=False)
                out = done.stdout
                if done.rc == 0:
                    break
                time.sleep(0.1)
            end = json.loads(out)["end"]
            got = end["sum_received"] if "sum_received" in end else end["sum"]
            delivered = got["packets"] - got.get("lost_packets", 0)
            return delivered / got["seconds"]
        finally:
            remote.stop(ts, proc, grace=3)
    finally:
        ts.close()
        tc.close()


def test_pps_cap_holds_in_both_directions(make_lab):
    st = make_lab("cap", 2, pps=CAP)
    assert st.pps == CAP
    for reverse in (False, True):
        pps = _iperf3_pps(st, reverse=reverse)
        assert 0.9 * CAP <= pps <= 1.05 * CAP, f"{'reverse' if reverse else 'forward'}: {pps:.0f} pps"
    q = subprocess.run(["tc", "qdisc", "show", "dev", st.hosts[0].veth], capture_output=True,
                       text=True).stdout
    assert "tbf" in q and f"rate {CAP * 12 // 1000}Mbit" in q


def test_down_leaves_nothing(make_lab, lab_leftovers):
    st = make_lab("down", 2, pps=5000)
    h = netns.hosts_of(st, run_id="d")[1]
    t = SshTransport(h.ssh)
    proc = remote.spawn(t, "sleeper", "sleep 60", workdir=h.workdir)  # an SSH session child too
    t.close()
    stamp = Path(netns.LAB_ORCHESTRATE_ROOT) / f".deployed.{h.name}"  # as a deploy of sysctls leaves it
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text("hash\n")
    shared = Path(netns.LAB_ORCHESTRATE_ROOT) / ".deployed.lab.client"  # every lab's: not this one's
    made = not shared.exists()  # (one a deploy left is kept as it is: it vouches for the shared root)
    if made:
        shared.write_text("hash\n")
    vouched = shared.read_text()
    started = time.monotonic()
    removed = netns.down(st.name)
    seconds = time.monotonic() - started
    assert seconds < 5
    assert any("sshd" in r for r in removed) and any(f"namespace {h.name}" == r for r in removed)
    assert lab_leftovers(st) == []
    assert shared.read_text() == vouched and not any(str(shared) in r for r in removed)
    if made:
        shared.unlink()
    assert not netns._alive(proc.pid)  # the process started over SSH went with its host
    assert not netns.is_up(st.name) and netns.status(st.name) == []
    assert netns.down(st.name) == []  # twice is fine


@pytest.mark.parametrize("exc", [RuntimeError("injected"), KeyboardInterrupt()])
def test_up_failing_half_way_cleans_up(make_lab, lab_leftovers, monkeypatch, exc, lab_prefix):
    seen: list[netns.LabState] = []

    def boom(st: netns.LabState, timeout: float = 10.0) -> None:
        # Namespaces, bridge, caps and sshd exist by now: the worst moment to fail.
        seen.append(st)
        assert subprocess.run(["pgrep", "-f", f"{st.dir}/hosts/"], capture_output=True).returncode == 0
        raise exc

    monkeypatch.setattr(netns, "_wait_ssh", boom)
    with pytest.raises(type(exc)):
        make_lab("half", 3, pps=10_000)
    left = lab_leftovers(seen[0])
    assert left == [], left
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"orch-{lab_prefix}-half-" not in names


def test_open_lab_brings_up_and_down_unless_already_up(lab3, lab_leftovers, lab_prefix):
    # Not up yet: open_lab owns it, and takes it down even when the run fails.
    sc = _scenario("ownlab", lab=f"{lab_prefix}-own", clients=2, pps=8000)
    with pytest.raises(RuntimeError), netns.open_lab(sc, run_id="r1") as lab:
        assert lab.provider == "netns" and len(lab.hosts) == 3
        assert lab.server.roles == ("server",) and len(lab.clients) == 2
        st = netns.status(lab.name)[0]
        assert st.pps == 8000 and st.healthy
        raise RuntimeError("the run failed")
    assert lab_leftovers(st) == []

    # Already up: used as is and left up; only this run's work directories go.
    st3, _ = lab3
    sc = _scenario("borrow", lab=st3.name, clients=1)
    with netns.open_lab(sc, run_id="r2") as lab:
        assert [h.name for h in lab.hosts] == [h.name for h in st3.hosts[:2]]
        Path(lab.server.workdir).mkdir(parents=True)
    assert netns.is_up(st3.name)
    assert not os.path.exists(lab.server.workdir)

    with pytest.raises(UserError, match="needs 4"), netns.open_lab(
            _scenario("big", lab=st3.name, clients=3), run_id="r3"):
        pass
    with pytest.raises(UserError, match="pps"), netns.open_lab(
            _scenario("capped", lab=st3.name, pps=1000), run_id="r4"):
        pass
    assert netns.is_up(st3.name)


def test_auto_scale_grows_a_lab_of_its_own_and_lends_the_hosts_of_one_that_was_up(lab3, lab_leftovers,
                                                                                  lab_prefix):
    scale = {"min": 1, "max": 3}
    # A lab the run brings up starts with `min` clients; the pool adds sized namespace hosts.
    sc = Scenario.model_validate({"name": "grow", "hosts": {
        "provider": "netns", "lab": f"{lab_prefix}-grow", "roles": {"server": 1, "client": scale},
        "size": {"client": {"cpu": 0.5}}}})
    with pytest.raises(RuntimeError), netns.open_lab(sc, run_id="g1") as lab:
        assert len(lab.clients) == 1 and lab.client_limit == 3
        grown, new = lab.grow(2)
        assert [h.name for h in new] == [f"orch-{lab_prefix}-grow-{i}" for i in (2, 3)]
        assert [h.name for h in grown.clients] == [f"orch-{lab_prefix}-grow-{i}" for i in (1, 2, 3)]
        st = netns.status(lab.name)[0]
        assert st.healthy and len(st.hosts) == 4 and {h.cpu for h in st.hosts[1:]} == {0.5}
        for h in new:  # reachable with host keys checked, inside its own cgroup
            t = SshTransport(h.ssh)
            try:
                assert f"orchlab-{lab_prefix}-grow-" in t.run("cat /proc/self/cgroup").stdout
            finally:
                t.close()
            Path(h.workdir).mkdir(parents=True)
        inventory = Path(st.inventory).read_text()
        assert all(f"{h.name} ansible_host={h.address}" in inventory for h in new)
        with pytest.raises(NoMoreHosts):
            grown.grow(1)  # max reached
        raise RuntimeError("the run failed")
    assert lab_leftovers(st) == [] and not any(os.path.exists(h.workdir) for h in new)
    assert not list(Path("/sys/fs/cgroup").glob(f"*/orchlab-{lab_prefix}-grow-*"))

    # A lab that was up is used as it is: its other client hosts are lent, none is added.
    st3, _ = lab3
    sc = Scenario.model_validate({"name": "lend", "hosts": {
        "provider": "netns", "lab": st3.name, "roles": {"server": 1, "client": scale}}})
    with netns.open_lab(sc, run_id="g2") as lab:
        assert [h.name for h in lab.clients] == [st3.hosts[1].name] and lab.client_limit == 2
        grown, new = lab.grow(1)
        assert [h.name for h in new] == [st3.hosts[2].name] and grown.pool is not None
        assert grown.pool.spare == 0
    assert netns.status(st3.name)[0] == st3  # as it was, and still up


def test_up_is_idempotent_and_status_reports_problems(lab3):
    st, _ = lab3
    assert netns.up(st.name, 3) == st  # same shape: the running lab
    with pytest.raises(UserError, match="already up"):
        netns.up(st.name, 2)
    with pytest.raises(UserError, match="lab name"):
        netns.up("no/slash", 1)
    listed = {s.name: s for s in netns.status()}
    assert listed[st.name].healthy


def test_commands_share_one_control_shell_per_host(lab3):
    """Each command is `sh -c` under one long-lived shell: what it prints, its exit status and
    its environment come back exactly, and the login shell (with its start-up files) ran once."""
    st, _ = lab3
    t = SshTransport(netns.hosts_of(st, run_id="ctl")[1].ssh)
    try:
        done = t.run("echo out; echo err >&2; printf 'no newline'; exit 3", check=False)
        assert (done.rc, done.stdout, done.stderr) == (3, "out\nno newline", "err\n")
        assert t.run("cat <<X\n  two\nlines\nX").stdout == "  two\nlines\n"
        assert t.run("echo \"$A\"", env={"A": "it's \"quoted\" $HOME"}).stdout == "it's \"quoted\" $HOME\n"
        assert len(t.run("head -c 3000000 /dev/zero | tr '\\0' x").stdout) == 3_000_000
        parents = {t.run("echo $PPID $(cat /proc/$PPID/comm)").stdout for _ in range(3)}
        assert len(parents) == 1 and parents.pop().split()[1] == "sh"
        with pytest.raises(remote.RemoteError, match="no answer within 1s"):
            t.run("sleep 5", timeout=1)
        assert t.run("echo still here").stdout == "still here\n"  # a new shell took its place
        # more commands at once than one host keeps shells for: they wait their turn
        outs = remote.each(list(range(SshTransport.MAX_SHELLS + 3)),
                           lambda i: t.run(f"sleep 0.2; echo {i}").stdout)
        assert outs == [f"{i}\n" for i in range(SshTransport.MAX_SHELLS + 3)]
    finally:
        t.close()


def test_tc_cap_is_a_packet_rate_or_a_byte_rate_with_its_queue():
    # pps: every packet counted as at least 1500 bytes; rate: bytes as they are
    assert netns.tc_cap("v0", 50_000) == ("qdisc replace dev v0 root stab mpu 1500 tbf rate 600000000bit "
                                         "burst 150000 latency 50ms")
    assert netns.tc_cap("v0", rate=50_000_000, queue=30_000) == (
        "qdisc replace dev v0 root tbf rate 50000000bit burst 62500 limit 30000")
    assert "mpu" not in netns.tc_cap("v0", rate=10_000_000)
    assert netns.link_text(None, 50_000_000, 30_000) == "capped at 50 Mbit/s per direction, queue 30000 bytes"
