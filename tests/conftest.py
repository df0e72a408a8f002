"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import testkit` from any test folder

from testkit import REPO, stop_process  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _private_history(tmp_path_factory):
    """Runs in tests record into a throw-away history database, never the user's."""
    os.environ["ORCHESTRATE_HISTORY"] = str(tmp_path_factory.mktemp("history") / "history.sqlite")


@pytest.fixture
def run_id():
    """A unique run id for `orchestrate run --run-id`; afterwards asserts that no process
    carrying it (every process a run starts is marked with its run id) is still alive."""
    from orchestrator.remote import LocalTransport, marked_pids

    rid = f"test-{secrets.token_hex(4)}"
    yield rid
    left = marked_pids(LocalTransport(), rid)
    assert not left, f"processes of run {rid} left running: {left}"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="module")
def moto_server():
    """A standalone moto server on 127.0.0.1: an EC2 endpoint as a user would point at one."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        stop_process(proc, 10)
