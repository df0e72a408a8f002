"""The `local` provider: this machine plays server and client over loopback."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.hosts import Host, Lab
from orchestrator.scenario import Scenario

WORK_ROOT = Path("/tmp/orchestrate")


@contextmanager
def open_lab(scenario: Scenario, *, run_id: str, work_root: Path = WORK_ROOT) -> Iterator[Lab]:
    workdir = work_root / f"{scenario.name}-{run_id}"
    workdir.mkdir(parents=True, exist_ok=True)
    host = Host(name="localhost", address="127.0.0.1", roles=("server", "client"),
                workdir=str(workdir), interface="lo")
    try:
        yield Lab(provider="local", hosts=(host,), name="localhost")
    finally:
        # Raw outputs were fetched into the results folder; the scratch copy goes.
        shutil.rmtree(workdir, ignore_errors=True)
