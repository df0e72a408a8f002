"""1,000 slowloris connections must not keep a normal client waiting."""
import socket
import time

from support import Client

N_SLOW = 1000


def test_slowloris_does_not_block_normal_clients(start_server):
    s = start_server()  # default 10 s header timeout: the attackers stay
    slow = []
    try:
        for i in range(N_SLOW):
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
