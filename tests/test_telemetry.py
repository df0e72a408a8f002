"""Telemetry steps as a user meets them: a collector that fails is reported, not silent."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_a_failed_flame_graph_is_reported_and_the_measurement_kept(native_run):
    # perf that cannot open its events (as with kernel.perf_event_paranoid=3 for a non-root
    # user): the session's shared run of the built-in server (conftest.py) has one on its PATH
    folder, done = native_run
    assert done.returncode == 0, done.stderr
    assert ("WARNING no flame graph for 001-reuseport-t1-c64-r1: perf: record wrote no data: "
            "Error: No permission to enable cpu-clock event.") in done.stderr
    run = json.loads((folder / "summary.json").read_text())["runs"][0]
    assert run["qps"] > 0 and run["perf"]["error"].startswith("perf: ")
    assert f"no flame graph: {run['perf']['error']}" in (folder / "report.md").read_text()


def test_collector_intervals_are_kept_only_when_wholly_inside_the_load():
    from orchestrator.telemetry import stamp_windows

    def kept(started, start, end, off=0.0):
        lo, hi = stamp_windows(started, start, end, off)[0]
        # a collector started at `started` prints whole-second stamps of each interval's end
        return [s for s in range(int(start) - 3, int(end + off) + 4) if lo + off <= s <= hi + off]

    # started at .300: intervals end at .305 (the collector's start-up). A 2 s load from
    # 105.305 holds two whole intervals, stamped 106 and 107 (their ends truncated)
    assert kept(100.3, 105.305, 107.305) == [106, 107]
    # the same load 0.5 s later holds one whole interval: (106.305, 107.305], stamped 107;
    # the old rule ("mostly inside") also took 108's, half of it after the load
    assert kept(100.3, 105.805, 107.805) == [107]
    # a host clock 2.25 s ahead of ours: stamps on its clock, the same intervals
    assert kept(100.3, 105.305, 107.305, off=2.25) == [108, 109]
    # no phase known: the rule that holds whatever the true end is comes first
    assert stamp_windows(None, 105.3, 107.3, 0.0)[0] == (106.3, 106.3)


def test_a_collector_is_spawned_clear_of_a_whole_second():
    from orchestrator.telemetry import COLLECTOR_STARTUP_S, PHASE_EDGE_S, edge_wait

    def phase_after(now, off=0.0):
        return round((now + edge_wait(now, off) + off + COLLECTOR_STARTUP_S) % 1.0, 6)

    # mid-second: spawned at once
    assert edge_wait(100.3, 0.0) == 0.0 and edge_wait(100.3, 2.25) == 0.0
    # its intervals would end 9 ms after a whole second, or 10 ms before one (the case where a
    # window was taken a second late): it waits until they end PHASE_EDGE_S after one
    for now in (100.004, 99.985, 100.97):
        assert 0.0 < edge_wait(now, 0.0) <= 2 * PHASE_EDGE_S
        assert phase_after(now) == PHASE_EDGE_S
    # on the host's clock: 0.7 s ahead, 100.3 here ends its intervals at .005 there
    assert edge_wait(100.3, 0.7) > 0 and phase_after(100.3, 0.7) == PHASE_EDGE_S
    assert all(min(p, 1 - p) >= PHASE_EDGE_S - 1e-9
               for p in (phase_after(100 + i / 1000) for i in range(1000)))

