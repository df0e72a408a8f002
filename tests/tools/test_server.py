"""The server adapter's readiness probe, run for real against small local HTTP servers."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading

import pytest

from orchestrator.tools import server


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        self.send_response(200 if self.path == "/ok" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def base_url():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def probe(url: str) -> server.Probe:
    out = subprocess.run(["sh", "-c", server.ready_probe(url)], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0, out.stderr
    return server.parse_probe(out.stdout)


def test_probe_reports_the_status_it_got(base_url):
    assert probe(f"{base_url}/ok") == server.Probe(200, "OK") and probe(f"{base_url}/ok").ok
    got = probe(f"{base_url}/missing")
    assert got == server.Probe(404, "Not Found") and not got.ok


def test_probe_says_why_nothing_answered():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    got = probe(f"http://127.0.0.1:{port}/")
    assert got.status is None and got.detail.startswith("URLError") and "refused" in got.detail


def test_parse_probe_on_nothing():
    assert server.parse_probe("") == server.Probe(None, "the probe printed nothing")
