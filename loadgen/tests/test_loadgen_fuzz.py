"""A short, bounded libFuzzer run of the generator's response parser (clang with libFuzzer:
apt packages clang-14 and libclang-rt-14-dev on Debian 12), seeded with every framing."""

from __future__ import annotations

import shutil
import subprocess

import loadkit

FUZZ_DIR = loadkit.LOADGEN_DIR / "build" / "fuzz"
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


def clang() -> str:
    for name in ("clang++-14", "clang++"):
        if shutil.which(name):
            return name
    raise AssertionError("clang++ not installed (apt-get install clang-14 libclang-rt-14-dev)")


def test_fuzz_response_parser(tmp_path):
    loadkit.cmake_build(loadkit.LOADGEN_DIR, FUZZ_DIR,
                        ["-DCMAKE_BUILD_TYPE=Debug", "-DFUZZ=ON", f"-DCMAKE_CXX_COMPILER={clang()}"],
                        target="fuzz_response_parser")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed{i}").write_bytes(seed)
    run = subprocess.run([str(FUZZ_DIR / "fuzz_response_parser"), "-runs=300000", "-max_total_time=20",
                          "-max_len=2048", f"-artifact_prefix={tmp_path}/", str(corpus)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Done" in run.stderr
