"""sar adapter on a real capture (loopback load, stopped with SIGINT)."""

from __future__ import annotations

import os
import subprocess

import pytest
from localservers import data, need, stop_when

from orchestrator.tools import sar

TEXT = data("sar_sigint.txt")


def test_command():
    assert sar.command() == ["sar", "-n", "DEV,EDEV,TCP,ETCP", "1"]


def test_parse_sections():
    s = sar.parse(TEXT)
    assert len(s.dev) == 8 and len(s.edev) == 8  # 2 intervals x 4 interfaces
    assert len(s.tcp) == 2 and len(s.etcp) == 2  # "Average:" blocks ignored
    lo = next(d for d in s.dev if d.iface == "lo")
    assert (lo.rxpck_s, lo.txpck_s, lo.rxkb_s) == (315507.0, 315507.0, 45775.73)
    assert s.tcp[0].iseg_s == 315507.0 and s.tcp[0].active_s == 162.0
    assert s.etcp[0].retrans_s == 0.0
    assert s.tcp[1].t - s.tcp[0].t == 1.0


def test_summarize():
    summary = sar.summarize(sar.parse(TEXT))
    assert set(summary.interfaces) == {"lo", "eth0", "ifb0", "ifb1"}
    lo = summary.interfaces["lo"]
    assert lo.rx_pps == pytest.approx((315507 + 317708) / 2)
    assert lo.n == 2 and lo.rx_drop_s == 0.0
    assert summary.iseg_s == pytest.approx((315507 + 317708) / 2)
    assert summary.n_tcp == 2 and summary.retrans_s == 0.0


def test_summarize_window():
    samples = sar.parse(TEXT)
    t_last = samples.tcp[-1].t
    summary = sar.summarize(samples, t0=t_last)
    assert summary.interfaces["lo"].rx_pps == 317708.0
    assert summary.n_tcp == 1
    empty = sar.summarize(samples, t0=t_last + 10)
    assert empty.interfaces == {} and empty.n_tcp == 0 and empty.iseg_s == 0.0


def test_block_cut_short_keeps_complete_rows():
    cut = TEXT[: TEXT.index("317708.00 317708.00") + 12]  # inside the second lo row
    s = sar.parse(cut)
    assert len(s.dev) == 4 and len(s.tcp) == 1


@pytest.mark.slow
def test_live_sar_two_seconds(no_children):
    need("sar")
    proc = subprocess.Popen(sar.command(), stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **sar.ENV})
    out = stop_when(proc, lambda text: len(sar.parse(text).tcp) >= 2)  # two whole intervals
    summary = sar.summarize(sar.parse(out))
    assert "lo" in summary.interfaces
    assert summary.interfaces["lo"].n == 2
    assert summary.n_tcp == 2
