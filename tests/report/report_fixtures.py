"""Test input for the report tests: real results folders, analysed by the real analysis.

data/closed-loop and data/open-loop are real `orchestrate run`s of the scenarios in
data/scenarios/ (loopback on this 2-CPU VM shared with other work, so their numbers are noisy
and some runs lack telemetry, as real runs do). Each keeps its summary.json (re-serialised
compactly) and run 1's folded perf stacks. The fixtures analyse them again with the current rules
(`analysed`, as `orchestrate report` does), so a change in the analysis shows up in the report
tests instead of drifting past them.

data/loopback-sample/summary.json is an older, version-1 capture without any analysis: the
report must still load and render it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from orchestrator import analysis, store
from orchestrator.records import Summary

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "loopback-sample"  # version 1, no analysis
CLOSED = DATA / "closed-loop"  # wrk, 2 archs x 1,2 threads x 2 repetitions, perf on
OPEN = DATA / "open-loop"  # orchestrate-load at 5k, 20k and 60k requests/s


def analysed(summary: Summary) -> Summary:
    """The summary with every run analysed again by the real analysis, and its points."""
    topo = summary.topology
    assert topo is not None
    return analysis.analyse(summary, th=analysis.Thresholds.from_dict(summary.thresholds or {}),
                            server=topo.server, interface=topo.interface, loopback=topo.loopback)


def copy_folder(src: Path, dest: Path, *, analyse: bool = True) -> Path:
    """A copy of a recorded folder (build() writes into it), analysed again unless told not to."""
    shutil.copytree(src, dest)
    if analyse:
        store.ResultsDir(dest).save_summary(analysed(store.load_summary(dest)))
    return dest


def write_summary(folder: Path, summary: Summary | dict[str, Any]) -> Path:
    """A results folder holding just this summary (a dict is written as given, untyped)."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(summary, Summary):
        store.ResultsDir(folder).save_summary(summary)
    else:
        (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return folder
