"""Third-party HTTP/1.1 clients against every architecture and build: ab,
h2load (HTTP/1.1 mode), httperf and curl (100-continue, chunked upload).

The tools come from Debian packages (setup.sh TEST_PACKAGES: apache2-utils,
nghttp2-client, httperf, curl); a missing tool fails the test. Every run is
bounded in requests and time and targets 127.0.0.1 only.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

REQUESTS = 2000


def run_tool(argv: list[str], timeout: float = 60, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    tool = shutil.which(argv[0])
    assert tool is not None, f"{argv[0]} is not installed: run ./setup.sh (TEST_PACKAGES)"
    return subprocess.run([tool, *argv[1:]], input=stdin, capture_output=True, timeout=timeout)


def field(pattern: str, text: str) -> int:
    m = re.search(pattern, text, re.MULTILINE)
    assert m, f"{pattern!r} not in output:\n{text}"
    return int(m.group(1))


def test_ab_keep_alive(server):
    p = run_tool(["ab", "-k", "-q", "-n", str(REQUESTS), "-c", "20", f"http://127.0.0.1:{server.port}/"])
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    assert field(r"^Complete requests:\s+(\d+)", out) == REQUESTS
    assert field(r"^Failed requests:\s+(\d+)", out) == 0
    assert "Non-2xx" not in out
    assert field(r"^Keep-Alive requests:\s+(\d+)", out) == REQUESTS  # one connection each, reused


@pytest.mark.parametrize("streams", [1, 10], ids=["m1", "m10"])
def test_h2load_http1(server, streams):
    # -m 10 pipelines up to 10 requests per connection in HTTP/1.1 mode.
    p = run_tool(["h2load", "--h1", "-n", str(REQUESTS), "-c", "10", "-m", str(streams),
                  f"http://127.0.0.1:{server.port}/"])
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    assert field(r"^requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out) == REQUESTS
    for name in ("failed", "errored", "timeout"):
        assert field(rf"^requests: .*?(\d+) {name}", out) == 0, out
    assert field(r"^status codes: (\d+) 2xx", out) == REQUESTS


def test_httperf(server):
    p = run_tool(["httperf", "--server", "127.0.0.1", "--port", str(server.port), "--num-conns", "40",
                  "--num-calls", "50", "--timeout", "5", "--hog"])
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    assert field(r"^Total: connections \d+ requests \d+ replies (\d+)", out) == 2000
    assert field(r"^Reply status: 1xx=\d+ 2xx=(\d+)", out) == 2000
    assert field(r"^Errors: total (\d+)", out) == 0


def curl(*args: str, stdin: bytes | None = None) -> tuple[int, float, str]:
    """Runs curl -v; returns (status, seconds, verbose trace)."""
    p = run_tool(["curl", "-sS", "-v", "-o", "/dev/null", "--max-time", "10",
                  "-w", "%{http_code} %{time_total}", *args], stdin=stdin, timeout=30)
    assert p.returncode == 0, p.stderr.decode()
    status, seconds = p.stdout.decode().split()
    return int(status), float(seconds), p.stderr.decode()


def test_curl_expect_100_continue_post(server, tmp_path):
    # Without a 100 curl waits a full second (--expect100-timeout) before
    # sending the body; with it the whole POST takes a few milliseconds.
    body = tmp_path / "body"
    body.write_bytes(b"p" * 200_000)
    status, seconds, trace = curl("-H", "Expect: 100-continue", "--data-binary", f"@{body}",
                                  f"http://127.0.0.1:{server.port}/upload")
    assert status == 200
    assert "< HTTP/1.1 100 Continue" in trace
    assert seconds < 0.1, seconds


def test_curl_chunked_upload_from_stdin(server):
    # -T - reads stdin of unknown length: a chunked PUT.
    status, seconds, trace = curl("-T", "-", f"http://127.0.0.1:{server.port}/put",
                                  stdin=b"line of data\n" * 20_000)
    assert status == 200
    assert re.search(r"^> Transfer-Encoding: chunked", trace, re.MULTILINE | re.IGNORECASE), trace
    assert seconds < 1.0, seconds


def test_curl_expect_over_limit_gets_413_at_once(server, tmp_path):
    # A final status instead of 100: Content-Length is over the limit, so the
    # body is never read and curl does not wait to send it.
    body = tmp_path / "big"
    body.write_bytes(b"z" * (2 << 20))
    status, seconds, trace = curl("-H", "Expect: 100-continue", "--data-binary", f"@{body}",
                                  f"http://127.0.0.1:{server.port}/big")
    assert status == 413
    assert "100 Continue" not in trace
    assert seconds < 0.5, seconds
