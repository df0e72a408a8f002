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


CHUNKED = b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"

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
    "header-too-large": (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 17000 + b"\r\n\r\n", 431),
    "head-too-large-unterminated": (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 17000, 431),
    "head-too-large-many-lines": (b"GET / HTTP/1.1\r\nHost: t\r\n" + (b"X: " + b"a" * 4000 + b"\r\n") * 5,
                                  431),
    "too-many-headers": (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X: y\r\n" * 120 + b"\r\n", 431),
    "te-gzip-chunked": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    "te-chunked-not-last": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "te-chunked-twice": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n", 400),
    "chunk-size-not-hex": (CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-size-empty": (CHUNKED + b"\r\n", 400),
    "chunk-size-bare-lf": (CHUNKED + b"5\nhello\r\n0\r\n\r\n", 400),
    "chunk-data-no-crlf": (CHUNKED + b"5\r\nhelloXX0\r\n\r\n", 400),
    "chunk-line-too-long": (CHUNKED + b"5;" + b"e" * 1100 + b"\r\n", 400),
    "chunk-ext-control-char": (CHUNKED + b"5;a=\x01\r\nhello\r\n0\r\n\r\n", 400),
    "chunked-too-large": (CHUNKED + b"100001\r\n", 413),
    "chunked-total-too-large": (CHUNKED + (b"80000\r\n" + b"x" * 0x80000 + b"\r\n") * 2 + b"1\r\n", 413),
    "chunk-size-overflow": (CHUNKED + b"1" + b"0" * 40 + b"\r\n", 413),
    "trailer-too-large": (CHUNKED + b"0\r\n" + b"X-T: " + b"t" * 5000 + b"\r\n\r\n", 431),
    "trailer-malformed": (CHUNKED + b"0\r\nno colon\r\n\r\n", 400),
    "expect-unknown": (b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n", 417),
    "expect-too-large": (b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                         b"Content-Length: 1048577\r\n\r\n", 413),
    "method-delete": (b"DELETE / HTTP/1.1\r\nHost: t\r\n\r\n", 405),
    "method-connect": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
    "method-unknown": (b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
    "method-lowercase": (b"get / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
    "asterisk-with-get": (b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "absolute-form-no-authority": (b"GET http:///x HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "absolute-form-other-scheme": (b"GET ftp://example.com/ HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "scheme-inside-path-form": (b"GET x/http://example.com/ HTTP/1.1\r\nHost: t\r\n\r\n", 400),
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


def test_error_to_head_has_no_body(server):
    with Client(server.port) as c:
        c.send(b"HEAD / HTTP/2.0\r\nHost: t\r\n\r\n")
        r = c.read_response(head=True)
        assert r.status == 505 and int(r.headers["content-length"]) > 0
        assert c.closed_by_peer()
        assert not c.buf  # no body bytes after the head


def test_405_lists_allowed_methods(server):
    with Client(server.port) as c:
        r = c.request("/", method="PATCH")
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD, POST, PUT, OPTIONS"


@pytest.mark.parametrize("method,target", [("OPTIONS", "*"), ("OPTIONS", "/"), ("GET", "http://example.com"),
                                           ("GET", "HTTPS://example.com:8443/a?b"), ("PUT", "/p"),
                                           ("POST", "/p")])
def test_served_methods_and_forms(server, method, target):
    with Client(server.port) as c:
        assert c.request(target, method=method).status == 200


def test_chunked_body_is_read_and_discarded(server):
    # Extensions, several chunks, trailers, then a pipelined request.
    body = (b"5;name=value\r\nhello\r\n1a \t;ext\r\n" + b"y" * 26 + b"\r\n"
            b"0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n")
    with Client(server.port) as c:
        c.send(CHUNKED + body + get(server.port))
        assert c.read_response().status == 200
        assert c.read_response().status == 200
        # The same split at every byte.
        for k in range(1, len(body), 3):
            c.send(CHUNKED + body[:k])
            time.sleep(0.002)
            c.send(body[k:])
            assert c.read_response().status == 200, k


def test_chunked_large_body(server):
    chunk = b"x" * 65536
    with Client(server.port, timeout=10) as c:
        c.send(CHUNKED)
        for _ in range(15):  # 960 KiB: under the 1 MiB limit
            c.send(b"10000\r\n" + chunk + b"\r\n")
        c.send(b"0\r\n\r\n")
        assert c.read_response().status == 200


def test_expect_100_continue(server):
    with Client(server.port) as c:
        c.send(b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        interim = c.read_response(head=True)
        assert interim.status == 100 and interim.headers == {}
        c.send(b"hello")
        assert c.read_response().status == 200
        # Chunked as well, and no 100 without a body or in HTTP/1.0.
        c.send(CHUNKED[:-2] + b"Expect: 100-continue\r\n\r\n")
        assert c.read_response(head=True).status == 100
        c.send(b"0\r\n\r\n")
        assert c.read_response().status == 200
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n")
        assert c.read_response().status == 200
        c.send(b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n"
               b"Content-Length: 2\r\n\r\nhi")
        assert c.read_response().status == 200


def test_cookie_heavy_head_fits(server):
    # What a browser sends to a site with many cookies: ~12 KiB of head.
    cookies = "; ".join(f"c{i}={'v' * 90}" for i in range(120))
    headers = ("Host: t\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n"
               f"Accept: text/html,*/*;q=0.8\r\nCookie: {cookies}\r\n")
    assert 11_000 < len(headers) < 16_000
    with Client(server.port) as c:
        assert c.request("/", headers=headers).status == 200


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
    # asked until it changes: the next second's Date comes within a second and a tick
    with Client(server.port) as c:
        first = c.request("/").headers["date"]
        deadline = time.monotonic() + 2.5
        while (second := c.request("/").headers["date"]) == first and time.monotonic() < deadline:
            time.sleep(0.05)
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
