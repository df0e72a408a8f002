"""HTTP/1.x protocol tests over real sockets, for both architectures and both
builds (release, ASan+UBSan)."""
import socket
import time

import pytest
from support import Client, get


def test_basic_get(server):
    with Client(server.port) as c:
        r = c.request("/")
    assert (r.status, r.reason) == (200, "OK")
    assert r.body == b"hello\n"
    assert r.headers["content-length"] == "6"
    assert r.headers["content-type"] == "text/plain"
    assert r.headers["server"] == "orchestrate"
    assert r.headers["date"].endswith(" GMT")
    assert "connection" not in r.headers  # HTTP/1.1 persistent by default


def test_head_has_no_body(server):
    with Client(server.port) as c:
        r = c.request("/", method="HEAD")
        assert r.status == 200 and r.headers["content-length"] == "6"
        assert c.request("/").body == b"hello\n"  # nothing stray was left


def test_keep_alive_many_requests(server):
    with Client(server.port) as c:
        for i in range(200):
            assert c.request(f"/k{i}").status == 200


def test_pipelining_in_order(server):
    # GET and HEAD interleaved: a HEAD answered out of order would leave or
    # swallow body bytes and break the framing below.
    methods = ["GET", "HEAD", "GET", "GET", "HEAD"] * 20
    data = b"".join(f"{m} /{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for i, m in enumerate(methods))
    with Client(server.port) as c:
        c.send(data)
        for m in methods:
            r = c.read_response(head=(m == "HEAD"))
            assert r.status == 200
            assert r.body == (b"" if m == "HEAD" else b"hello\n")
        assert c.request("/after").status == 200


def test_pipelining_large_burst(server):
    n = 2000  # ~70 KB of requests: more than one read buffer
    with Client(server.port, timeout=10) as c:
        c.send(get(server.port) * n)
        for _ in range(n):
            assert c.read_response().body == b"hello\n"


def test_request_split_at_every_byte(server):
    req = b"GET /split HTTP/1.1\r\nHost: t\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n"
    with Client(server.port) as c:
        for k in range(1, len(req)):
            c.send(req[:k])
            time.sleep(0.002)  # NODELAY + a pause: the halves arrive apart
            c.send(req[k:])
            assert c.read_response().status == 200, k
        # And one byte per segment.
        for b in req:
            c.send(bytes([b]))
            time.sleep(0.0005)
        assert c.read_response().body == b"hello\n"


def test_connection_close(server):
    with Client(server.port) as c:
        r = c.request("/", headers="Host: t\r\nConnection: close\r\n")
        assert r.status == 200 and r.headers["connection"] == "close"
        assert c.closed_by_peer()


def test_connection_close_then_more_requests_is_not_reset(server):
    # Requests after "close" are ignored, and the response still arrives
    # intact (lingering close instead of an RST).
    data = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + get(server.port) * 5
    with Client(server.port) as c:
        c.send(data)
        assert c.read_response().headers["connection"] == "close"
        assert c.closed_by_peer()
        assert not c.buf


def test_http10_closes_by_default(server):
    with Client(server.port) as c:
        r = c.request("/", version="1.0", headers="")
        assert r.status == 200 and r.headers["connection"] == "close"
        assert c.closed_by_peer()


def test_http10_keep_alive(server):
    with Client(server.port) as c:
        for _ in range(3):
            r = c.request("/", version="1.0", headers="Connection: keep-alive\r\n")
            assert r.status == 200 and r.headers["connection"] == "keep-alive"


def test_leading_blank_line_ignored(server):
    with Client(server.port) as c:
        c.send(b"\r\n" + get(server.port))
        assert c.read_response().status == 200


def test_body_is_read_and_discarded(server):
    body = b"x" * 100_000
    with Client(server.port) as c:
        c.send(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 7919):
            c.send(body[i:i + 7919])
        c.send(get(server.port))
        assert c.read_response().status == 200
        assert c.read_response().status == 200


ERROR_CASES = {
    "garbage-request-line": (b"GARBAGE\r\n\r\n", 400),
    "no-version": (b"GET /\r\n\r\n", 400),
    "double-space": (b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "bad-target": (b"GET x HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "control-char-in-target": (b"GET /\x01 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "lowercase-version": (b"GET / http/1.1\r\nHost: t\r\n\r\n", 400),
    "bare-lf": (b"GET / HTTP/1.1\nHost: t\n\n", 400),
    "missing-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two-hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", 400),
    "cl-and-te": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n", 400),
    "conflicting-cl": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                       b"Content-Length: 4\r\n\r\nabcd", 400),
    "cl-not-a-number": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3x\r\n\r\n", 400),
    "cl-negative": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
    "te-in-http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    "http-2.0": (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    "http-1.2": (b"GET / HTTP/1.2\r\nHost: t\r\n\r\n", 505),
    "http-0.9-version": (b"GET / HTTP/0.9\r\nHost: t\r\n\r\n", 505),
    "body-too-large": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n", 413),
    "cl-overflow": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
    "uri-too-long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    "uri-too-long-unterminated": (b"GET /" + b"a" * 9000, 414),
    "header-too-large": (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "head-too-large-unterminated": (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 9000, 431),
    "too-many-headers": (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X: y\r\n" * 120 + b"\r\n", 431),
    "chunked": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_error_status(server, case):
    data, status = ERROR_CASES[case]
    with Client(server.port) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == status, (case, r)
        assert r.headers["connection"] == "close"
        assert c.closed_by_peer()
    # The server is still fine afterwards.
    with Client(server.port) as c:
        assert c.request("/").status == 200


def test_error_after_good_pipelined_requests(server):
    with Client(server.port) as c:
        c.send(get(server.port) * 3 + b"BAD\r\n\r\n" + get(server.port))
        for _ in range(3):
            assert c.read_response().status == 200
        assert c.read_response().status == 400
        assert c.closed_by_peer()


def test_large_response_with_slow_reader(start_server):
    # 3 MB bodies, pipelined, read late: exercises partial writes, EPOLLOUT
    # and back-pressure; every byte must arrive in order.
    s = start_server("--body-size", 3_000_000)
    with Client(s.port, timeout=20) as c:
        c.send(get(s.port) * 4)
        time.sleep(0.3)
        for _ in range(4):
            r = c.read_response()
            assert len(r.body) == 3_000_000 and r.body.endswith(b"x\n")


def test_custom_body(start_server):
    s = start_server("--body", "custom body")
    with Client(s.port) as c:
        r = c.request("/")
    assert r.body == b"custom body" and r.headers["content-length"] == "11"


def test_date_refreshes(server):
    with Client(server.port) as c:
        first = c.request("/").headers["date"]
        time.sleep(1.3)
        second = c.request("/").headers["date"]
    assert first != second


def test_ipv6_loopback(start_server, binaries, variant):
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    s = start_server("--bind", "::1")
    with socket.create_connection(("::1", s.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
