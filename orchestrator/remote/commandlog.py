"""What reached each host, and when: every command and transfer of a run, recorded by a
Transport wrapper, so a quiet measurement window can be shown, not assumed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.remote.transport import Completed, Transport


@dataclass(frozen=True)
class CommandRecord:
    """One command or file transfer sent to a host; times are this machine's time.time()."""

    host: str
    start: float
    end: float
    kind: str  # run | put | get
    what: str  # the command line, or the remote path

    def overlaps(self, start: float, end: float) -> bool:
        return self.start < end and self.end > start


class CommandLog:
    """Every command and transfer of one run, on every host: proof of a quiet window."""

    def __init__(self) -> None:
        self._records: list[CommandRecord] = []
        self._lock = threading.Lock()  # per-host steps run in threads

    def add(self, record: CommandRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self) -> list[CommandRecord]:
        with self._lock:
            return list(self._records)

    def inside(self, start: float, end: float) -> list[CommandRecord]:
        """What ran on any host, even partly, between `start` and `end`."""
        return [r for r in self.records() if r.overlaps(start, end)]


class Logged:
    """A Transport that records everything sent through it (see CommandLog)."""

    def __init__(self, inner: Transport, log: CommandLog):
        self.inner = inner
        self.name = inner.name
        self.log = log

    @contextlib.contextmanager
    def _record(self, kind: str, what: str) -> Iterator[None]:
        start = time.time()
        try:
            yield
        finally:  # failed commands reached the host too
            self.log.add(CommandRecord(self.name, start, time.time(), kind, what))

    def run(self, cmd: str, *, timeout: float = 60.0, check: bool = True,
            env: dict[str, str] | None = None) -> Completed:
        with self._record("run", cmd):
            return self.inner.run(cmd, timeout=timeout, check=check, env=env)

    def put_text(self, text: str, path: str, mode: int = 0o644) -> None:
        with self._record("put", path):
            self.inner.put_text(text, path, mode)

    def get(self, remote: str, local: Path) -> None:
        with self._record("get", remote):
            self.inner.get(remote, local)

    def get_many(self, files: Sequence[tuple[str, Path]]) -> list[str]:
        start = time.time()
        try:
            return self.inner.get_many(files)
        finally:  # one record per file, all with the one transfer's times
            end = time.time()
            for remote, _ in files:
                self.log.add(CommandRecord(self.name, start, end, "get", remote))

    def close(self) -> None:
        self.inner.close()
