"""Fixtures for the generator's tests: its builds (release, ASan+UBSan) and the project's server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import loadkit
import pytest


@pytest.fixture(scope="session")
def generators() -> dict[str, Path]:
    return {kind: loadkit.build(kind) for kind in loadkit.BUILDS}


@pytest.fixture(params=list(loadkit.BUILDS))
def generator(request, generators) -> tuple[Path, bool]:
    """(binary, sanitized) for each build: every robustness test runs under ASan+UBSan too."""
    return generators[request.param], request.param == "asan"


@pytest.fixture(scope="session")
def server_binary() -> Path:
    return loadkit.build_server()


@pytest.fixture
def project_server(server_binary) -> Iterator[loadkit.ServerProcess]:
    s = loadkit.ServerProcess(server_binary, cpu=0)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def realtime_server(server_binary) -> Iterator[loadkit.ServerProcess]:
    """The project's server on CPU 0 under SCHED_FIFO (timing tests: the machine's other work
    must not add hiccups of its own), one per test module."""
    s = loadkit.ServerProcess(server_binary, cpu=0)
    s.make_realtime()
    yield s
    s.stop()
