"""A short, bounded libFuzzer run of the HTTP parser (needs clang with
libFuzzer: apt packages clang-14 and libclang-rt-14-dev on Debian 12)."""
import shutil
import subprocess

import pytest
from support import SERVER_DIR

FUZZ_DIR = SERVER_DIR / "build" / "fuzz"
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


def clang():
    for name in ("clang++-14", "clang++"):
        if shutil.which(name):
            return name
    return None


def test_fuzz_http_parser(tmp_path):
    cxx = clang()
    if cxx is None:
        pytest.skip("clang++ not installed (apt-get install clang-14 libclang-rt-14-dev)")
    if not (FUZZ_DIR / "CMakeCache.txt").exists():
        subprocess.run(["cmake", "-S", str(SERVER_DIR), "-B", str(FUZZ_DIR), "-DCMAKE_BUILD_TYPE=Debug",
                        "-DFUZZ=ON", f"-DCMAKE_CXX_COMPILER={cxx}"],
                       check=True, capture_output=True, text=True, timeout=300)
    build = subprocess.run(["cmake", "--build", str(FUZZ_DIR), "-j2", "--target", "fuzz_http_parser"],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed{i}").write_bytes(seed)
    run = subprocess.run([str(FUZZ_DIR / "fuzz_http_parser"), "-runs=300000", "-max_total_time=20",
                          "-max_len=2048", f"-artifact_prefix={tmp_path}/", str(corpus)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Done" in run.stderr
