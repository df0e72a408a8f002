"""Ctrl-C, SIGTERM and SIGHUP: all unwind a run through its teardown, and teardown itself is
shielded. A hang-up (the terminal closed, the SSH session lost) also moves the process's
output off the dead terminal, where every write would fail with EIO and break teardown."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.errors import Interrupted

SHIELDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
LOG_NAME = "orchestrate.log"  # in the results dir: where output goes after a hang-up


class Hangup(Interrupted):
    """SIGHUP: the terminal is gone; teardown runs as for SIGTERM, its output in the run's log."""


def off_terminal(log: Path) -> None:
    """Point stdout and stderr (the file descriptors, so every writer follows) at `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for target in (1, 2):
            os.dup2(fd, target)
    finally:
        os.close(fd)


@contextmanager
def as_interrupts(log: Path | None = None) -> Iterator[None]:
    """SIGTERM and SIGHUP behave like Ctrl-C: all unwind through teardown, then exit 130.

    After SIGHUP, output goes to `log` (default: nowhere, /dev/null) from then on."""

    def on_term(signum: int, frame: object) -> None:
        raise Interrupted("terminated (SIGTERM)")

    def on_hup(signum: int, frame: object) -> None:
        off_terminal(log or Path(os.devnull))
        raise Hangup(f"hang-up (SIGHUP); output continues in {log}" if log else "hang-up (SIGHUP)")

    old = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_term),
           signal.SIGHUP: signal.signal(signal.SIGHUP, on_hup)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def shielded() -> Iterator[None]:
    """Teardown must finish: a second Ctrl-C, SIGTERM or SIGHUP during it is ignored, or it could
    leak processes, namespaces or cloud instances. Only the main thread receives signals (and may
    set handlers); elsewhere there is nothing to shield."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in SHIELDED}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextmanager
def deferred() -> Iterator[None]:
    """Around a create call: a signal arriving inside is held, not dropped, and raised once the
    call has returned, so the id it answered is recorded for teardown before unwinding."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: object) -> None:
        pending.append(signum)

    old = {s: signal.signal(s, hold) for s in SHIELDED}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])
