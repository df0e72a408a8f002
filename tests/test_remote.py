"""Local transport and the process helpers built on it (the SSH transport runs the same
helpers; it is exercised against real sshd hosts in tests/hosts/)."""

from __future__ import annotations

import secrets
import shlex
import signal
import time

import pytest

from orchestrator import remote
from orchestrator.errors import RunFailed


@pytest.fixture
def t():
    return remote.LocalTransport("here")


def test_run_reports_failures_with_the_host(t):
    assert t.run("echo hi").stdout == "hi\n"
    assert t.run("exit 3", check=False).rc == 3
    with pytest.raises(RunFailed) as exc:
        t.run("echo nope >&2; exit 4")
    assert "host here" in str(exc.value) and "exited 4" in str(exc.value) and "nope" in str(exc.value)


def test_env_is_passed(t):
    assert t.run("echo $FOO", env={"FOO": "a b"}).stdout == "a b\n"


def test_timeout_kills_the_whole_command(t, tmp_path):
    marker = tmp_path / "late"
    start = time.monotonic()
    with pytest.raises(RunFailed, match="did not finish within 1s"):
        t.run(f"(sleep 3; touch {marker}) & sleep 5", timeout=1)
    assert time.monotonic() - start < 3
    time.sleep(3.5)
    assert not marker.exists(), "a child of the timed-out command survived"


def test_spawn_pinned_marked_then_stopped(t, tmp_path):
    tag = f"t-{secrets.token_hex(3)}"
    table = remote.ProcessTable({"here": t}, tag=tag)
    proc = table.spawn("here", "sleeper", "sleep 60", workdir=str(tmp_path), cpus=[1])
    assert remote.alive(t, proc)
    assert remote.group_pids(t, proc.pid) == [proc.pid]
    aff = remote.thread_affinity(t, [proc.pid])
    assert aff[proc.pid]["cpus"] == [1] and aff[proc.pid]["name"] == "sleep"
    assert remote.marked_pids(t, tag) == [proc.pid]
    assert (tmp_path / remote.LEDGER).read_text().split() == [str(proc.pid), "sleeper"]
    assert table.stop_all() == []
    assert not remote.alive(t, proc) and remote.marked_pids(t, tag) == []


def test_stop_escalates_to_kill(t, tmp_path):
    proc = remote.spawn(t, "stubborn", "trap '' TERM; sleep 60", workdir=str(tmp_path),
                        shell=True)
    time.sleep(0.2)
    assert remote.stop(t, proc, grace=0.5) is False  # needed SIGKILL
    assert not remote.alive(t, proc)


def test_wait_exit_and_read(t, tmp_path):
    proc = remote.spawn(t, "quick", "echo done", workdir=str(tmp_path))
    assert remote.wait_exit(t, proc, 5)
    assert remote.read(t, proc.stdout) == "done\n"
    assert remote.read(t, str(tmp_path / "missing")) == ""




def test_a_group_lives_while_any_member_does_and_a_wait_can_time_out(t, tmp_path):
    """The leader's own /proc entry decides while it lives; once it is gone the group is
    scanned, so a child left running keeps the group alive."""
    proc = remote.spawn(t, "parent", "sleep 30 & exit 0", workdir=str(tmp_path), shell=True)
    time.sleep(0.3)  # the leader (sh) has exited; its sleep runs on in the group
    assert remote.alive(t, proc) and remote.alive_many(t, [proc]) == {proc.pid}
    started = time.monotonic()
    assert remote.wait_exit(t, proc, 0.5) is False
    assert time.monotonic() - started < 3
    assert remote.stop_many(t, [proc], grace=2) == {proc.pid: True}
    assert not remote.alive(t, proc) and remote.alive_many(t, [proc]) == set()


def test_a_check_right_after_a_spawn_finds_the_new_group(t, tmp_path):
    """spawn answers once the process leads its own group: before that a check would find no
    group (it raced: ~1 in 70 checks said a just-started server had exited)."""
    procs = []
    try:
        for i in range(100):
            procs.append(remote.spawn(t, f"nap{i}", "sleep 30", workdir=str(tmp_path)))
            assert remote.alive(t, procs[-1]), f"spawn {i}: its group was not there yet"
    finally:
        remote.stop_many(t, procs, grace=2)


def test_get_many_copies_what_is_there_and_names_what_is_not(t, tmp_path):
    (tmp_path / "a").write_text("one")
    (tmp_path / "b").write_bytes(b"\x00two\xff")
    got = t.get_many([(str(tmp_path / "a"), tmp_path / "out" / "a"),
                      (str(tmp_path / "missing"), tmp_path / "out" / "m"),
                      (str(tmp_path / "b"), tmp_path / "out" / "b")])
    assert got == [str(tmp_path / "missing")]
    assert (tmp_path / "out" / "a").read_text() == "one"
    assert (tmp_path / "out" / "b").read_bytes() == b"\x00two\xff"
    assert not (tmp_path / "out" / "m").exists()


def test_logged_transport_records_every_command_and_transfer(t, tmp_path):
    log = remote.CommandLog()
    lt = remote.Logged(t, log)
    lt.run("true")
    lt.run("exit 3", check=False)  # failures reached the host too
    lt.put_text("x", str(tmp_path / "f"))
    lt.get(str(tmp_path / "f"), tmp_path / "g")
    lt.get_many([(str(tmp_path / "f"), tmp_path / "h"), (str(tmp_path / "nope"), tmp_path / "i")])
    records = log.records()
    assert [(r.kind, r.host) for r in records] == [("run", "here"), ("run", "here"),
                                                   ("put", "here"), ("get", "here"),
                                                   ("get", "here"), ("get", "here")]
    assert [r.what for r in records[-2:]] == [str(tmp_path / "f"), str(tmp_path / "nope")]
    assert all(r.start <= r.end for r in records)
    assert log.inside(records[0].start, records[-1].end) == records
    assert log.inside(records[-1].end + 1, records[-1].end + 2) == []


def test_wait_exit_is_silent_until_told(t, tmp_path):
    log = remote.CommandLog()
    lt = remote.Logged(t, log)
    proc = remote.spawn(lt, "nap", "sleep 1", workdir=str(tmp_path))
    quiet_from, quiet_until = time.time(), time.time() + 1.2
    assert remote.wait_exit(lt, proc, 5, quiet_until=quiet_until)
    assert log.inside(quiet_from, quiet_until) == []  # not one check while it ran
    assert log.records()[-1].start >= quiet_until  # then it looked, and saw it had ended


def test_cpu_times_of_a_busy_group(t, tmp_path):
    busy = remote.spawn(t, "busy", "while :; do :; done", workdir=str(tmp_path), shell=True, cpus=[1])
    idle = remote.spawn(t, "idle", "sleep 30", workdir=str(tmp_path))
    try:
        a = remote.cpu_times(t, [busy.pid, idle.pid])
        time.sleep(1.0)
        b = remote.cpu_times(t, [busy.pid, idle.pid])
        key = str(busy.pid)
        rate = (b.cpu_s[key] - a.cpu_s[key]) / (b.clock - a.clock)
        # one spinning process: up to one CPU second per second (less if it shares CPU 1)
        assert 0.3 < rate <= 1.05
        assert b.cpu_s[str(idle.pid)] < 0.05 and b.last_cpus[key] == [1]
        assert a.own_s >= 0 and "sshd" not in a.cpu_s
    finally:
        remote.stop_many(t, [busy, idle], grace=1)


def test_cpu_times_read_a_quota_held_cgroups_throttling(t, tmp_path):
    """Issue 22: a host held to a CPU quota, its cgroup's cpu.stat read with the CPU times; a
    spinner held to a quarter CPU is throttled (at least once in ~6 periods, even on a CPU
    shared with others' work)."""
    import cgroupkit

    from orchestrator import telemetry

    with cgroupkit.quota(0.25) as cg:
        spin = remote.spawn(t, "spin", cg.enter_command("sh -c 'while :; do :; done'"),
                            workdir=str(tmp_path), shell=True, cpus=[1])
        try:
            time.sleep(0.2)
            a = remote.cpu_times(t, [], cgroup=str(cg.path))
            time.sleep(0.6)
            b = remote.cpu_times(t, [], cgroup=str(cg.path))
            direct = cg.stat()
        finally:
            remote.stop(t, spin, grace=1)
    assert a.cpu_stat and b.cpu_stat and b.cpu_stat["nr_periods"] <= direct["nr_periods"]
    got = telemetry.throttling(a, b)
    assert got["periods"] >= 1 and got["periods"] == b.cpu_stat["nr_periods"] - a.cpu_stat["nr_periods"]
    assert 0 < got["throttled_periods"] <= 100 and 0 < got["throttled"] <= 100, got
    assert remote.cpu_times(t, []).cpu_stat is None  # not asked: not read


def test_cpu_times_of_a_group_with_a_space_and_a_paren_in_its_name(t, tmp_path):
    """One awk pass over /proc/*/stat reads a command name holding ") " right."""
    odd = tmp_path / "odd) x"
    odd.symlink_to("/bin/sleep")
    proc = remote.spawn(t, "odd", f"{shlex.quote(str(odd))} 30", workdir=str(tmp_path), shell=True)
    try:
        times = remote.cpu_times(t, [proc.pid])
        assert str(proc.pid) in times.cpu_s and times.cpu_s[str(proc.pid)] < 0.05
        assert times.last_cpus[str(proc.pid)]
    finally:
        remote.stop(t, proc, grace=1)


def test_process_table_stops_and_checks_hosts_in_parallel(tmp_path):
    table = remote.ProcessTable({h: remote.LocalTransport(h) for h in ("a", "b", "c")}, tag="par")
    procs = [table.spawn(h, "nap", "sleep 30", workdir=str(tmp_path / h)) for h in ("a", "b", "c")]
    assert table.survivors(procs) == procs
    started = time.monotonic()
    assert table.stop_all() == [] and table.procs == []
    assert table.survivors(procs) == []
    assert time.monotonic() - started < 5


class _InterruptedAfterTheCall(remote.LocalTransport):
    """Ctrl-C lands while the spawn's command is still returning: the process already runs."""

    interrupted = False

    def run(self, cmd: str, **kw):  # type: ignore[no-untyped-def]
        done = super().run(cmd, **kw)
        if not self.interrupted:  # once: teardown's own commands run undisturbed
            self.interrupted = True
            signal.raise_signal(signal.SIGINT)
        return done


def test_ctrl_c_inside_a_spawn_still_lists_the_process_for_teardown(tmp_path):
    table = remote.ProcessTable({"h": _InterruptedAfterTheCall("h")}, tag="int")
    with pytest.raises(KeyboardInterrupt):
        table.spawn("h", "nap", "sleep 30", workdir=str(tmp_path))
    # the interrupt was raised after the pid was listed: teardown finds and stops it
    (proc,) = table.procs
    assert table.survivors([proc]) == [proc]
    assert table.stop_all() == [] and table.survivors([proc]) == []


def test_wait_for_banner_needs_an_ssh_banner_not_just_a_port():
    import socket
    import threading

    def serve(sock: socket.socket, banner: bytes) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(banner)

    servers = []
    for banner in (b"SSH-2.0-OpenSSH_9.2\r\n", b"HTTP/1.1 400 Bad Request\r\n"):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        threading.Thread(target=serve, args=(s, banner), daemon=True).start()
        servers.append(s)
    try:
        ssh_port, http_port = (s.getsockname()[1] for s in servers)
        remote.wait_for_banner([("a", "127.0.0.1")], 2, port=ssh_port, phase="lab")
        with pytest.raises(RunFailed) as exc:
            remote.wait_for_banner([("b", "127.0.0.1")], 0.3, port=http_port, phase="lab",
                                   explain=lambda name: f"see {name}.log")
        assert str(exc.value) == (f"host b, lab: SSH on 127.0.0.1:{http_port} did not answer "
                                  "within 0.3s: see b.log")
    finally:
        for s in servers:
            s.close()


# --- over SSH: a one-host namespace lab (a real sshd) --------------------------------------


@pytest.fixture(scope="module")
def ssh_lab():
    """A one-host namespace lab (its own sshd), shared by the module's SSH tests."""
    import os

    from orchestrator.hosts import netns

    name = f"rm{os.getpid() % 100000}"  # unique: other labs may be up on this machine
    try:
        yield netns.up(name, 1)
    finally:
        netns.down(name)


@pytest.fixture(scope="module")
def ssh(ssh_lab):
    from orchestrator.hosts import netns

    (host,) = netns.hosts_of(ssh_lab, run_id="remote")
    t = remote.SshTransport(host.ssh)
    try:
        yield t, f"{host.workdir}/files"
    finally:
        t.close()


def test_ssh_put_text_and_get_many_carry_any_bytes(ssh, tmp_path):
    """put_text is one command on the control shell (SFTP only for what a command cannot carry);
    get_many is one tar stream for all the files, and names the ones that are not there."""
    t, wd = ssh
    text = "it's \"quoted\" $HOME `x` \\\\ end\n" * 20
    t.put_text(text, f"{wd}/odd dir/a.txt", 0o600)
    assert t.run(f"stat -c %a {shlex.quote(wd)}/'odd dir'/a.txt").stdout == "600\n"
    big = "y" * 300_000  # too long for one command: goes by SFTP
    t.put_text(big, f"{wd}/big.txt")
    t.run(f"printf 'a\\000b\\377' > {wd}/bin")
    got = t.get_many([(f"{wd}/odd dir/a.txt", tmp_path / "a"), (f"{wd}/none", tmp_path / "n"),
                      (f"{wd}/big.txt", tmp_path / "sub" / "big"), (f"{wd}//bin", tmp_path / "bin")])
    assert got == [f"{wd}/none"]
    assert (tmp_path / "a").read_text() == text and (tmp_path / "sub" / "big").read_text() == big
    assert (tmp_path / "bin").read_bytes() == b"a\x00b\xff" and not (tmp_path / "n").exists()
    assert t.get_many([(f"{wd}/none", tmp_path / "n")]) == [f"{wd}/none"]


def test_ssh_waits_and_stops_happen_on_the_host(ssh):
    t, wd = ssh
    quick = remote.spawn(t, "quick", "sleep 0.5", workdir=wd)
    assert remote.wait_exit(t, quick, 5) and not remote.alive(t, quick)
    nap = remote.spawn(t, "nap", "sleep 30", workdir=wd)
    stubborn = remote.spawn(t, "stubborn", "trap '' TERM; sleep 60", workdir=wd, shell=True)
    time.sleep(0.2)
    assert remote.alive_many(t, [nap, stubborn]) == {nap.pid, stubborn.pid}
    assert remote.stop_many(t, [nap, stubborn], grace=0.5) == {nap.pid: True, stubborn.pid: False}
    assert remote.alive_many(t, [nap, stubborn]) == set()


def test_kill_marked_stops_a_run_s_process_that_no_table_recorded():
    # a spawn cut short by Ctrl-C leaves a process that carries the run's mark but is in no
    # table: the end of an interrupted run finds it by the mark, and only the run's own
    import subprocess

    tag, other = f"test-{secrets.token_hex(4)}", f"test-{secrets.token_hex(4)}"
    env = {"PATH": "/usr/bin:/bin"}
    mine = subprocess.Popen(["sleep", "30"], env={**env, remote.MARK: tag}, start_new_session=True)
    theirs = subprocess.Popen(["sleep", "30"], env={**env, remote.MARK: other}, start_new_session=True)
    try:
        t = remote.LocalTransport()
        assert remote.kill_marked(t, tag) == [mine.pid]
        assert mine.wait(timeout=5) == -9
        assert theirs.poll() is None and remote.marked_pids(t, other) == [theirs.pid]
        assert remote.kill_marked(t, tag) == []
    finally:
        for p in (mine, theirs):
            p.kill()
            p.wait()


def test_a_command_over_a_cut_link_fails_after_the_connect_timeout_not_its_own(ssh_lab):
    """The connection gives up on data the host does not acknowledge within the connect
    timeout (TCP_USER_TIMEOUT): a command sent over a cut link fails in seconds, not after
    its own timeout, and says the connection was lost. (The link is up again afterwards.)"""
    import subprocess

    from orchestrator.hosts import netns

    (host,) = netns.hosts_of(ssh_lab, run_id="cut", connect_timeout=2.0)
    veth = ssh_lab.hosts[0].veth
    t = remote.SshTransport(host.ssh)
    try:
        assert t.run("echo up").stdout == "up\n"
        time.sleep(2.5)  # idle longer than the timeout: silence alone ends nothing
        assert t.run("echo still").stdout == "still\n"
        subprocess.run(["ip", "link", "set", veth, "down"], check=True)
        began = time.monotonic()
        with pytest.raises(remote.RemoteError, match="SSH connection lost"):
            t.run("sleep 1; echo late", timeout=60)
        assert time.monotonic() - began < 15  # 2 s unacknowledged, then the reconnect's 2 s
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
        t.close()
