"""The error hierarchy is total: whatever fails inside the pipeline ends as one line naming
host and phase, exit 1, no traceback, and a summary whose status says where it stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_cross_host import lab_traces

from orchestrator import execute
from orchestrator.errors import EXIT_FAILURE, RunFailed
from orchestrator.scenario import load

from testkit import REPO, orchestrate

pytestmark = pytest.mark.slow


def summary_of(root: Path) -> dict:
    (folder,) = [p for p in root.glob("*/*") if p.is_dir()]
    return json.loads((folder / "summary.json").read_text())


def test_a_broken_lab_command_is_one_line_naming_the_phase(tmp_path, run_id):
    # `tc` that refuses, as on a kernel without the tbf qdisc: the capped lab cannot come up.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tc").write_text("#!/bin/sh\necho 'Error: Specified qdisc kind is unknown.' >&2\nexit 2\n")
    (bin_dir / "tc").chmod(0o755)
    lab = f"e{os.getpid() % 10000}"
    done = orchestrate("run", str(REPO / "scenarios" / "cross-host.yaml"), "--results", str(tmp_path / "r"),
                       "--run-id", run_id, "--set", f"hosts.lab={lab}", "--set", "hosts.link.pps=5000",
                       env={"PATH": f"{bin_dir}:{os.environ['PATH']}"}, timeout=120)
    assert done.returncode == EXIT_FAILURE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert lines[-1].startswith("orchestrate: run failed: lab: `tc -batch -` exited 2: "), lines
    assert "qdisc kind is unknown" in lines[-1]
    s = summary_of(tmp_path / "r")
    assert s["status"] == "failed" and s["phase"] == "lab" and s["error"].startswith("lab: ")
    assert lab_traces(lab) == []  # the half-built lab went away with the run


def test_a_tool_argument_rejected_inside_the_pipeline_names_host_and_phase(tmp_path, run_id):
    # A value the scenario check would refuse, slipped past it: the tool adapter itself must
    # stop it, as a failure of that host and run, not a traceback.
    loaded = load(REPO / "scenarios" / "loopback.yaml", ["server.arch=reuseport", "baseline.enabled=false",
                                                          "load.duration=1s", "compare=null", "rounds=null"])
    sc = loaded.scenario
    broken = sc.model_copy(update={"load": sc.load.model_copy(update={"pipeline": 0})})
    with pytest.raises(RunFailed) as exc:
        execute.run(type(loaded)(broken, loaded.source, loaded.raw), results_root=tmp_path,
                    run_id=run_id, progress=lambda _: None, history=tmp_path / "h.sqlite")
    msg = str(exc.value)
    assert "\n" not in msg and exc.value.exit_code == EXIT_FAILURE
    assert msg.startswith("host localhost, run 001-reuseport-t1-c64-r1: wrk: pipeline depth must be >= 1")
    s = summary_of(tmp_path)
    assert s["status"] == "failed" and s["phase"] == "run 001-reuseport-t1-c64-r1"
