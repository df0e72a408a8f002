"""A short, bounded libFuzzer run of the HTTP parser (needs clang with
libFuzzer: apt packages clang-14 and libclang-rt-14-dev on Debian 12)."""
from support import SERVER_DIR, cpptest

SEEDS = [
    b"\x03GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\x05POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    b"helloGET / HTTP/1.0\r\n\r\n",
    b"\x01HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n",
    b"\x02GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"
    b"abcGET * HTTP/2.0\r\n\r\n",
    b"\x04POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\x07PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\x03POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n",
]


def test_fuzz_http_parser(tmp_path):
    cpptest.fuzz(SERVER_DIR, "fuzz_http_parser", SEEDS, tmp_path)
