"""A short, bounded libFuzzer run of the generator's response parser (clang with libFuzzer:
apt packages clang-14 and libclang-rt-14-dev on Debian 12), seeded with every framing."""

from __future__ import annotations

import loadkit
from loadkit import cpptest

SEEDS = [
    b"\x03HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\nHTTP/1.1 204 No Content\r\n\r\n",
    b"\x05HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nhel\r\n0\r\nT: t\r\n\r\n"
    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
    b"\x01HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"\x00HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    b"\x12HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    b"\x07HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nHTTP/1.1 503 X\r\nContent-Length: 1\r\n"
    b"Content-Length: 1\r\n\r\nx",
    b"\x02HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\nfffffffffff\r\n",
]


def test_fuzz_response_parser(tmp_path):
    cpptest.fuzz(loadkit.LOADGEN_DIR, "fuzz_response_parser", SEEDS, tmp_path)
