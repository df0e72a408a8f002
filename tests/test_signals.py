"""Teardown is shielded: a second Ctrl-C or SIGTERM during it is ignored, then restored."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from orchestrator import signals
from orchestrator.errors import Interrupted


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """These tests need Python's own Ctrl-C handler, which a suite started in the background
    (cron, `cmd &` in a script) does not inherit: the shell starts it with SIGINT ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


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


def test_sighup_is_an_interrupt_and_output_moves_to_the_log(tmp_path):
    import subprocess
    import sys
    import textwrap

    log = tmp_path / "orchestrate.log"
    code = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from orchestrator import signals
        try:
            with signals.as_interrupts(Path({str(log)!r})):
                os.kill(os.getpid(), signal.SIGHUP)
                signal.sigtimedwait([], 0)
        except signals.Hangup as exc:
            print("teardown after", exc, flush=True)
            print("on stderr too", file=sys.stderr, flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""  # nothing reached the (dead) terminal
    text = log.read_text()
    assert "teardown after hang-up (SIGHUP)" in text and "on stderr too" in text


def test_shielded_ignores_sighup():
    with signals.shielded():
        os.kill(os.getpid(), signal.SIGHUP)  # default action would end the test process
        signal.sigtimedwait([], 0)


def test_deferred_holds_a_signal_until_the_create_returns():
    done = []
    with pytest.raises(KeyboardInterrupt), signals.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0)
        done.append("create returned")  # not cut short: its answer is recorded
    assert done == ["create returned"]
