"""1,000 slowloris connections must not keep a normal client waiting."""
import socket
import time

from support import Client

N_SLOW = 1000


def test_slowloris_does_not_block_normal_clients(start_server):
    s = start_server()  # default 10 s header timeout: the attackers stay
    slow = []
    try:
        for _i in range(N_SLOW):
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Pad: ")
            slow.append(sock)
        for sock in slow:  # keep them "active"
            sock.sendall(b"a")
        latencies = []
        for _ in range(30):
            t0 = time.perf_counter()
            with Client(s.port) as c:
                assert c.request("/").status == 200
            latencies.append(time.perf_counter() - t0)
        assert max(latencies) < 0.100, latencies
    finally:
        for sock in slow:
            sock.close()


def test_random_garbage_clients(start_server):
    """200 clients sending random bytes mixed with request fragments for 2 s:
    the server keeps answering, and (via the fixture) exits cleanly with no
    sanitizer report."""
    import random
    import selectors

    s = start_server("--header-timeout-ms", 500, "--idle-timeout-ms", 1000)
    rng = random.Random(1234)
    pieces = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
              b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab",
              b"\r\n", b"HTTP/1.0", b"Transfer-Encoding: chunked\r\n", b"Content-Length: 99999999999\r\n",
              b"\x00\xff\x7f", b"GET /" + b"a" * 9000, b" HTTP/1.1\r\n\r\n", b"Connection: close\r\n"]
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        sock.setblocking(False)
        socks.append(sock)
        sel.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + 2.0
    sent = 0
    while time.monotonic() < deadline and sent < 20000:
        sock = rng.choice(socks)
        data = rng.choice(pieces) if rng.random() < 0.7 else rng.randbytes(rng.randint(1, 300))
        try:
            sock.send(data)
            sent += 1
        except (BlockingIOError, OSError):
            pass
        for key, _ in sel.select(timeout=0):
            try:
                if not key.fileobj.recv(65536):
                    sel.unregister(key.fileobj)
            except OSError:
                sel.unregister(key.fileobj)
    with Client(s.port) as c:
        t0 = time.perf_counter()
        assert c.request("/").status == 200
        assert time.perf_counter() - t0 < 0.5
    for sock in socks:
        sock.close()
