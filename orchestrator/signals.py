"""Ctrl-C and SIGTERM: both unwind a run through its teardown, and teardown itself is shielded."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.errors import Interrupted


@contextmanager
def as_interrupts() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: both unwind through teardown, then exit 130."""

    def on_term(signum: int, frame: object) -> None:
        raise Interrupted("terminated (SIGTERM)")

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def shielded() -> Iterator[None]:
    """Teardown must finish: a second Ctrl-C or SIGTERM during it is ignored, or it could leak
    processes, namespaces or cloud instances. Only the main thread receives signals (and may
    set handlers); elsewhere there is nothing to shield."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
