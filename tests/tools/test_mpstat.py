"""mpstat adapter on a real capture stopped with SIGINT during loopback load."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime

import pytest
from localservers import data, need, stop_when

from orchestrator.tools import mpstat

TEXT = data("mpstat_sigint.txt")


def test_command():
    assert mpstat.command() == ["mpstat", "-u", "-P", "ALL", "1"]
    assert mpstat.ENV["TZ"] == "UTC" and mpstat.ENV["S_TIME_FORMAT"] == "ISO"


def test_parse_ignores_average_block():
    samples = mpstat.parse(TEXT)
    assert len(samples) == 6  # two intervals x (all, cpu0, cpu1); no "Average:" rows
    assert [s.cpu for s in samples[:3]] == [mpstat.ALL, 0, 1]
    s = samples[1]
    assert (s.usr, s.sys, s.soft, s.steal, s.idle) == (17.53, 51.55, 24.74, 1.03, 5.15)
    assert s.busy == pytest.approx(94.85)


def test_time_is_banner_date_plus_clock_in_utc():
    samples = mpstat.parse(TEXT)
    assert samples[0].t == datetime(2026, 11, 27, 2, 5, 45, tzinfo=UTC).timestamp()
    assert samples[3].t - samples[0].t == 1.0


def test_summarize_per_cpu_and_window():
    samples = mpstat.parse(TEXT)
    stats = mpstat.summarize(samples)
    assert set(stats) == {mpstat.ALL, 0, 1}
    assert stats[0].n == 2
    assert stats[0].usr == pytest.approx((17.53 + 15.00) / 2)
    assert stats[1].busy == pytest.approx(100 - (1.01 + 1.00) / 2)
    last = mpstat.summarize(samples, t0=samples[-1].t)
    assert last[0].n == 1 and last[0].usr == 15.00
    assert mpstat.summarize(samples, t1=samples[0].t - 1) == {}


def test_truncated_line_is_skipped():
    text = TEXT[: TEXT.index("Average:")].rstrip()
    cut = text[: len(text) - 20]  # the last row, cut mid-way as a kill could leave it
    samples = mpstat.parse(cut)
    assert len(samples) == 5
    assert samples[-1].cpu == 0


def test_day_rollover_at_midnight():
    header = "Linux 6.1 (h) \t2026-11-27 \t_x86_64_\t(2 CPU)\n\n"
    cols = "     CPU    %usr   %nice    %sys %iowait    %irq   %soft  %steal  %guest  %gnice   %idle"
    row = "       0    1.00    0.00    1.00    0.00    0.00    0.00    0.00    0.00    0.00   98.00"
    text = header + f"23:59:58{cols}\n23:59:59{row}\n\n23:59:59{cols}\n00:00:00{row}\n"
    a, b = mpstat.parse(text)
    assert b.t - a.t == 1.0


def test_twelve_hour_clock_and_us_date():
    header = "Linux 6.1 (h) \t11/27/26 \t_x86_64_\t(2 CPU)\n\n"
    cols = "     CPU    %usr   %nice    %sys %iowait    %irq   %soft  %steal  %guest  %gnice   %idle"
    row = "       0    1.00    0.00    1.00    0.00    0.00    0.00    0.00    0.00    0.00   98.00"
    (s,) = mpstat.parse(header + f"02:05:44 PM{cols}\n02:05:45 PM{row}\n")
    assert s.t == datetime(2026, 11, 27, 14, 5, 45, tzinfo=UTC).timestamp()


@pytest.mark.slow
def test_live_mpstat_two_seconds(no_children):
    need("mpstat")
    start = time.time()
    proc = subprocess.Popen(mpstat.command(), stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **mpstat.ENV})
    out = stop_when(proc, lambda text: sum(s.cpu == 1 for s in mpstat.parse(text)) >= 2)
    samples = mpstat.parse(out)
    stats = mpstat.summarize(samples)
    assert set(stats) >= {mpstat.ALL, 0}
    assert stats[0].n == 2
    # samples carry real epoch time: within this test's own window (1 s resolution)
    assert all(start - 1 <= s.t <= time.time() + 1 for s in samples)


# Issue 22: other tasks' time on the server's CPUs, read at the end of each of mpstat's own
# intervals (a capture of with_other on this machine, a spinner as "the server", CPUs 0 and 1)
OTHER_TEXT = """#other-cpus 0 1
Linux 6.18.44-fc-v1272 (vm) \t2026-12-07 \t_x86_64_\t(2 CPU)

07:10:53     CPU    %usr   %nice    %sys %iowait    %irq   %soft  %steal  %guest  %gnice   %idle
07:10:54     all   41.54    0.00   15.38    0.00    0.00   12.31    0.51    0.00    0.00   30.26
#other 35831.23 |14492889134390 22248868776764 | 1418050924 | 58080306621 62114947303
07:10:54       0   27.55    0.00   15.31    0.00    0.00   14.29    0.00    0.00    0.00   42.86

07:10:54     CPU    %usr   %nice    %sys %iowait    %irq   %soft  %steal  %guest  %gnice   %idle
07:10:55     all   62.12    0.00   10.61    0.51    0.00    1.52    0.00    0.00    0.00   25.25
#other 35832.23 |14493698134983 22249544738783 | 2368337565 | 58081363782 62115199887
07:10:55       0   62.00    0.00   18.00    1.00    0.00    1.00    0.00    0.00    0.00   18.00

07:10:55     CPU    %usr   %nice    %sys %iowait    %irq   %soft  %steal  %guest  %gnice   %idle
07:10:56     all   43.62    0.00   18.62    0.00    0.00   12.77    0.00    0.00    0.00   25.00
#other 35833.73 |14494449260946 22250309879694 | 2937912270 | 58081677651 62115594495

Average:     CPU    %usr   %nice    %sys %iowait    %irq   %soft  %steal  %guest  %gnice   %idle
Average:     all   49.23    0.00   14.80    0.17    0.00    8.78    0.17    0.00    0.00   26.85
#other 35833.71 |14494655953884 22250728874352 | 3290228700 | 58081884150 62115731103
"""


def test_other_work_is_every_task_less_the_server_and_ksoftirqd_over_mpstats_intervals():
    samples = mpstat.parse_other(OTHER_TEXT)
    # each reading stamped with the interval it followed; none after the Average block
    t0 = datetime(2026, 12, 7, 7, 10, 54, tzinfo=UTC).timestamp()
    assert [s.t for s in samples] == [t0, t0 + 1, t0 + 2]
    assert mpstat.parse(OTHER_TEXT)[0].cpu == mpstat.ALL  # mpstat's own rows parse as before
    # 07:10:55: CPUs 0 + 1 ran tasks 0.809 + 0.676 s, the server 0.950 s, ksoftirqd 0.0013 s
    assert mpstat.other_share(samples, [t0 + 1]) == 53.34
    # 07:10:56 over 1.5 s (uptime): 0.751 + 0.765 - 0.570 - 0.0007 s
    assert mpstat.other_share(samples, [t0 + 2]) == pytest.approx(
        (751126 + 765141 - 569575 - 708) / 1.5e6 * 100, abs=0.01)
    # averaged over intervals as mpstat's own figures are
    both = mpstat.other_share(samples, [t0 + 1, t0 + 2])
    assert both == pytest.approx((53.34 + mpstat.other_share(samples, [t0 + 2])) / 2, abs=0.01)
    # an interval with no reading at its start (the first), or none at all: not measured
    assert mpstat.other_share(samples, [t0]) is None
    assert mpstat.other_share(samples, [t0 + 1, t0 + 3]) is None
    assert mpstat.other_share(samples, []) is None
    # cpuacct not readable (cgroup v2): no readings
    assert mpstat.parse_other(re.sub(r"\|\d+ \d+ \|", "| |", OTHER_TEXT)) == []
    # from mpstat's output and a window: over the intervals summarize averages in that window
    cpu = mpstat.parse(OTHER_TEXT)
    assert mpstat.summarize(cpu, t0 + 1, t0 + 2)[mpstat.ALL].n == 2
    assert mpstat.other_in_window(OTHER_TEXT, cpu, t0 + 1, t0 + 2) == both
    assert mpstat.other_in_window(OTHER_TEXT, cpu, t0 + 0.5, t0 + 1.5) == 53.34
    assert mpstat.other_in_window(OTHER_TEXT, cpu, t0, t0 + 1) is None  # the first has no start


@pytest.mark.slow
def test_live_other_work_sampler_reads_a_pinned_spinner(no_children):
    need("mpstat")
    spin = subprocess.Popen(["sh", "-c", "while :; do :; done"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {1}))
    try:  # the spinner as "the server", on CPU 1; the sampler stopped as collectors are
        proc = subprocess.Popen(["sh", "-c", mpstat.with_other([spin.pid], [1])], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, **mpstat.ENV}, start_new_session=True)
        assert proc.stdout is not None
        text, deadline = "", time.monotonic() + 15
        while text.count(mpstat.OTHER + " ") < 3 and time.monotonic() < deadline:
            text += proc.stdout.readline()
        os.killpg(proc.pid, signal.SIGINT)
        text += proc.communicate(timeout=5)[0]
    finally:
        spin.kill()
        spin.wait()
    samples = mpstat.parse_other(text)
    assert len(samples) >= 3, text
    for a, b in zip(samples, samples[1:], strict=False):
        dt, spun = b.uptime - a.uptime, (b.server_ns - a.server_ns) / 1e9
        # all the pinned spinner's time is in CPU 1's tasks' time, which is at most the interval
        # (give or take what ran between a reading's reads, and uptime's 10 ms resolution)
        assert 0.3 * dt < spun <= (b.tasks_ns[0] - a.tasks_ns[0]) / 1e9 + 0.02 <= dt + 0.05
    other = mpstat.other_share(samples, [s.t for s in samples[1:]])
    assert other is not None and 0.0 <= other <= 70.0
