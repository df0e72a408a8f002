"""pidstat adapter: per-thread samples from a real capture of threads that come and go."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
from localservers import data, need

from orchestrator.tools import ToolError, pidstat

CHURN = data("pidstat_churn.txt")


def by_name(stats):
    return {s.command: s for s in stats if s.tid is not None}


def test_command():
    assert pidstat.command([12, 34]) == [
        "pidstat", "-H", "-h", "-u", "-w", "-t", "-p", "12,34", "1"]
    with pytest.raises(ToolError, match="^pidstat: "):
        pidstat.command([])
    with pytest.raises(ToolError, match="^pidstat: "):
        pidstat.command([1], interval_s=0)


def test_parse_rows_and_process_aggregate():
    samples = pidstat.parse(CHURN)
    assert len(samples) == 11  # 4 + 3 + 4 rows; the trailing header adds none
    procs = [s for s in samples if s.tid is None]
    assert len(procs) == 3 and all(s.command == "python" for s in procs)
    tgid = procs[0].tgid
    assert all(s.tgid == tgid for s in samples)  # thread rows inherit the TGID above them
    first = samples[2]
    assert (first.command, first.usr, first.cpu_pct, first.cpu) == ("short", 49.0, 49.0, 1)
    assert (first.cswch_s, first.nvcswch_s) == (274.0, 20.0)
    assert first.t == 1795745140.0


def test_thread_that_exited_and_thread_that_started():
    stats = by_name(pidstat.summarize(pidstat.parse(CHURN)))
    assert stats["short"].n == 1  # exited after the first interval
    assert stats["long"].n == 3
    assert stats["late"].n == 1  # started late: seen only in the last interval
    assert stats["long"].usr == pytest.approx((49 + 84 + 51) / 3)
    assert stats["long"].cpus == (0, 1)


def test_summarize_keeps_only_the_window():
    samples = pidstat.parse(CHURN)
    t_first = samples[0].t
    stats = by_name(pidstat.summarize(samples, t0=t_first + 0.5))
    assert "short" not in stats
    assert stats["long"].n == 2
    assert stats["long"].usr == pytest.approx((84 + 51) / 2)
    assert pidstat.summarize(samples, t0=t_first + 100) == []
    only_first = pidstat.summarize(samples, t1=t_first)
    assert {s.command for s in only_first} == {"python", "short", "long"}


def test_vanished_pid_gives_no_samples():
    assert pidstat.parse(data("pidstat_nopid.txt")) == []


def test_truncated_last_line_is_skipped():
    text = CHURN[: CHURN.rindex("|__late") - 30]  # cut inside the last thread's row
    samples = pidstat.parse(text)
    assert len(samples) == 10
    assert "late" not in {s.command for s in samples}


@pytest.mark.slow
def test_live_pidstat_sees_a_busy_thread(no_children):
    need("pidstat")
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        proc = subprocess.Popen(pidstat.command([os.getpid()]), stdout=subprocess.PIPE,
                                text=True, env={**os.environ, **pidstat.ENV})
        time.sleep(2.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=5)
    finally:
        stop.set()
        worker.join()
    stats = pidstat.summarize(pidstat.parse(out))
    threads = [s for s in stats if s.tid == worker.native_id]
    assert threads and threads[0].n >= 1
    assert threads[0].busy > 20
    assert any(s.tid is None and s.tgid == os.getpid() for s in stats)


def test_run_queue_wait_of_a_server_sharing_its_cpu():
    # Recorded: the project's server pinned to CPU 0 while a busy loop also ran there.
    samples = pidstat.parse(data("pidstat_contended.txt"))
    io_thread = [s for s in pidstat.summarize(samples) if s.tid is not None and s.busy > 5]
    assert len(io_thread) == 1
    assert io_thread[0].wait > 20  # runnable but not running a large share of the time
    assert io_thread[0].nvcswch_s < io_thread[0].cswch_s  # yet few involuntary switches
