"""mpstat adapter on a real capture stopped with SIGINT during loopback load."""

from __future__ import annotations

import os
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
