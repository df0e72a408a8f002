"""What every host offers, locally or over SSH: run a shell command, put a text file, get files.

Everything else (background processes, signals, CPU read-back) is built on `run` in the other
modules of this package, so local and remote hosts behave identically.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from orchestrator.errors import RunFailed

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Completed:
    cmd: str
    rc: int
    stdout: str
    stderr: str


class RemoteError(RunFailed):
    """A command failed on a host; carries the host name and what it printed."""


class Transport(Protocol):
    name: str  # the host's name, for messages

    def run(self, cmd: str, *, timeout: float = 60.0, check: bool = True,
            env: dict[str, str] | None = None) -> Completed: ...

    def put_text(self, text: str, path: str, mode: int = 0o644) -> None: ...

    def get(self, remote: str, local: Path) -> None: ...

    def get_many(self, files: Sequence[tuple[str, Path]]) -> list[str]: ...

    def close(self) -> None: ...


def with_env(cmd: str, env: dict[str, str] | None) -> str:
    if not env:
        return cmd
    return "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " sh -c " + shlex.quote(cmd)


def checked(name: str, done: Completed, check: bool) -> Completed:
    if check and done.rc != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise RemoteError(f"`{done.cmd}` exited {done.rc}: {' | '.join(detail) or 'no output'}",
                          host=name)
    return done


def get_each(t: Transport, files: Sequence[tuple[str, Path]]) -> list[str]:
    missing = []
    for remote, local in files:
        try:
            t.get(remote, local)
        except FileNotFoundError:
            missing.append(remote)
    return missing


def each(items: Sequence[T], fn: Callable[[T], R]) -> list[R]:
    """fn(item) for every host (or per-host item) at once, results in order.

    Per-host steps are mostly waiting for a remote shell; in parallel, a run on
    N client hosts costs about what a run on one costs.
    """
    if len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(fn, items))
