"""Teardown is shielded: a second Ctrl-C or SIGTERM during it is ignored, then restored."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from orchestrator import signals
from orchestrator.errors import Interrupted


def test_shielded_ignores_both_signals_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with signals.shielded():
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt unshielded
        os.kill(os.getpid(), signal.SIGTERM)  # would end the test process
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0)  # give the handler its chance before leaving the block


def test_shielded_is_a_no_op_off_the_main_thread():
    errors: list[BaseException] = []

    def body() -> None:
        try:
            with signals.shielded():
                pass
        except BaseException as exc:  # signal.signal would raise ValueError here
            errors.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert errors == []


def test_sigterm_becomes_an_interrupt():
    with pytest.raises(Interrupted, match="SIGTERM"), signals.as_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)
