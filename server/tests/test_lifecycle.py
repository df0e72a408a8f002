"""Process-level behaviour: ready/stats lines, signals, exit codes, counters,
timeouts, descriptor exhaustion and connection limits."""
import contextlib
import resource
import signal
import socket
import subprocess
import time

import pytest
from support import Client, ServerProcess, get


def test_ready_line(server, variant):
    _, arch = variant
    assert server.ready["event"] == "ready"
    assert server.ready["arch"] == arch and server.ready["threads"] == 2
    assert server.ready["pid"] == server.pid and server.port > 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_clean_exit_with_stats(start_server, variant, sig):
    _, arch = variant
    s = start_server(threads=3)
    idle = Client(s.port)  # an open connection must not block shutdown
    with Client(s.port) as c:
        assert c.request("/").status == 200
    stats = s.stop(sig)
    idle.close()
    assert s.returncode == 0, s.stderr
    assert stats["event"] == "stats" and stats["arch"] == arch
    assert [t["thread"] for t in stats["threads"]] == [0, 1, 2]
    for t in stats["threads"]:
        assert t["cpu"] == -1 and t["tid"] > 0
        assert set(t) >= {"connections", "requests", "bytes_in", "bytes_out"}
    assert ("acceptor" in stats) == (arch == "main-sub")


def test_counters_add_up(start_server, variant):
    _, arch = variant
    s = start_server(threads=2)
    n_conns, per_conn = 12, 25
    clients = [Client(s.port) for _ in range(n_conns)]
    for c in clients:
        c.send(get(s.port) * per_conn)
    for c in clients:
        for _ in range(per_conn):
            assert c.read_response().status == 200
        c.close()
    stats = s.stop()
    assert sum(t["requests"] for t in stats["threads"]) == n_conns * per_conn
    assert sum(t["connections"] for t in stats["threads"]) == n_conns
    assert sum(t["bytes_in"] for t in stats["threads"]) == n_conns * per_conn * len(get(s.port))
    if arch == "main-sub":
        assert stats["acceptor"]["connections"] == n_conns
        # Round-robin hand-off: an even split.
        assert [t["connections"] for t in stats["threads"]] == [6, 6]


def test_pinning_reported(start_server):
    s = start_server("--cpus", "0", threads=2)
    stats = s.stop()
    assert [t["cpu"] for t in stats["threads"]] == [0, 0]


def test_port_in_use_exits_1(binaries, variant):
    build, arch = variant
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        proc = subprocess.run([str(binaries[build]), "--arch", arch, "--threads", "2", "--port", str(port)],
                              capture_output=True, text=True, timeout=20)
    finally:
        holder.close()
    assert proc.returncode == 1
    assert "cannot bind" in proc.stderr and str(port) in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("args", [
    ["--arch", "threads"], ["--threads", "0"], ["--threads", "x"], ["--port", "70000"],
    ["--cpus", "0,,1"], ["--cpus", "4096"], ["--bogus", "1"], ["--threads"],
    ["--body", "a", "--body-size", "3"], ["--bind", "not-an-ip", "--port", "0"],
])
def test_bad_options_exit_2(binaries, variant, args):
    build, _ = variant
    proc = subprocess.run([str(binaries[build]), *args], capture_output=True, text=True, timeout=20)
    if "--bind" in args:  # a syntactically fine option whose bind fails at run time
        assert proc.returncode == 1 and "invalid bind address" in proc.stderr
        return
    assert proc.returncode == 2, (args, proc.stderr)
    assert proc.stderr.strip() and proc.stdout == ""


def test_idle_timeout(start_server):
    s = start_server("--idle-timeout-ms", 300, "--header-timeout-ms", 5000)
    with Client(s.port) as c:
        assert c.request("/").status == 200
        t0 = time.monotonic()
        assert c.closed_by_peer(timeout=5)
        assert 0.2 < time.monotonic() - t0 < 2.0
        assert not c.buf  # closed silently


def test_header_timeout_sends_408(start_server):
    s = start_server("--idle-timeout-ms", 5000, "--header-timeout-ms", 300)
    with Client(s.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
        t0 = time.monotonic()
        r = c.read_response()
        assert r.status == 408 and 0.2 < time.monotonic() - t0 < 2.0
        assert c.closed_by_peer()


def test_slowloris_trickle_is_cut_by_header_timeout(start_server):
    # Bytes that keep arriving do not extend the header deadline.
    s = start_server("--idle-timeout-ms", 5000, "--header-timeout-ms", 400)
    with Client(s.port) as c:
        t0 = time.monotonic()
        got = None
        for b in b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 100:
            try:
                c.send(bytes([b]))
            except OSError:
                break
            time.sleep(0.05)
            if time.monotonic() - t0 > 3:
                break
            c.sock.setblocking(False)
            try:
                got = c.sock.recv(4096)
            except BlockingIOError:
                pass
            finally:
                c.sock.setblocking(True)
                c.sock.settimeout(5)
            if got is not None:
                break
        assert got is not None and got.startswith(b"HTTP/1.1 408"), got
        assert time.monotonic() - t0 < 2.0


def test_timeouts_do_not_hit_active_connections(start_server):
    s = start_server("--idle-timeout-ms", 300, "--header-timeout-ms", 300)
    with Client(s.port) as c:
        for _ in range(10):
            assert c.request("/").status == 200
            time.sleep(0.1)


def test_max_connections(start_server):
    s = start_server("--max-connections", 2)
    a, b = Client(s.port), Client(s.port)
    assert a.request("/").status == 200 and b.request("/").status == 200
    with Client(s.port) as extra:
        assert extra.closed_by_peer(timeout=3)
    a.close()
    time.sleep(0.2)
    with Client(s.port) as c:
        assert c.request("/").status == 200
    b.close()


def _limit_fds(n):
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


def test_emfile_does_not_spin_or_crash(start_server):
    # 64 descriptors: a few dozen connections exhaust them. The server must
    # shed the extra connections (reserve-fd trick / accept pause), not spin
    # on the level-triggered listener, and recover once clients leave.
    s = start_server(threads=2, preexec_fn=_limit_fds(64))
    clients = []
    for _ in range(120):
        with contextlib.suppress(OSError):
            clients.append(Client(s.port, timeout=2))
    time.sleep(0.3)
    before = s.cpu_ticks()
    time.sleep(0.5)
    used = s.cpu_ticks() - before  # clock ticks (1/100 s) in half a second: a spin burns 50
    assert used < 15, f"server burned {used} ticks in 0.5 s at EMFILE"
    for c in clients:
        c.close()
    time.sleep(0.3)
    deadline = time.monotonic() + 5
    while True:
        try:
            with Client(s.port) as c:
                assert c.request("/").status == 200
            break
        except (OSError, EOFError):
            assert time.monotonic() < deadline, "server did not recover after EMFILE"
            time.sleep(0.1)


def deny_io_uring_setup() -> None:
    """preexec_fn: a seccomp filter making io_uring_setup fail with ENOSYS,
    as on a kernel built without io_uring (x86_64 and arm64 share nr 425)."""
    import ctypes
    import struct

    def insn(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k)

    prog = b"".join([
        insn(0x20, 0, 0, 0),                   # A = seccomp_data.nr
        insn(0x15, 0, 1, 425),                 # if A == io_uring_setup
        insn(0x06, 0, 0, 0x00050000 | 38),     #   return ERRNO(ENOSYS)
        insn(0x06, 0, 0, 0x7FFF0000),          # return ALLOW
    ])
    buf = ctypes.create_string_buffer(prog)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    # PR_SET_NO_NEW_PRIVS, then PR_SET_SECCOMP with SECCOMP_MODE_FILTER.
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")


@pytest.mark.parametrize("build_kind", ["release", "asan"])
def test_uring_without_kernel_support_exits_1_with_one_line(binaries, build_kind):
    argv = [str(binaries[build_kind]), "--arch", "uring", "--threads", "2", "--bind", "127.0.0.1",
            "--port", "0"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, preexec_fn=deny_io_uring_setup)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""  # no ready line
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("orchestrate-server: --arch uring: io_uring is not available"), lines
    # The epoll architectures do not need it.
    s = ServerProcess(binaries[build_kind], "reuseport", sanitized=build_kind == "asan",
                      preexec_fn=deny_io_uring_setup)
    with Client(s.port) as c:
        assert c.request("/").status == 200
    assert s.stop() is not None and s.returncode == 0
