"""Telemetry steps as a user meets them: a collector that fails is reported, not silent."""

from __future__ import annotations

import json

import pytest

from testkit import orchestrate

pytestmark = pytest.mark.slow


def test_a_failed_flame_graph_is_reported_and_the_measurement_kept(tmp_path, run_id):
    # perf that cannot open its events (as with kernel.perf_event_paranoid=3 for a non-root user)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "perf").write_text(
        "#!/bin/sh\necho 'Error: No permission to enable cpu-clock event.' >&2\nexit 255\n")
    (bin_dir / "perf").chmod(0o755)
    done = orchestrate("run", "--results", str(tmp_path / "r"), "--run-id", run_id,
                       "--set", "server.arch=reuseport", "--set", "load.duration=1s",
                       "--set", "baseline.enabled=false", "--set", "telemetry=[pidstat, perf]",
                       env={"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("WARNING no flame graph for 001-reuseport-t1-c64-r1: perf: record wrote no data: "
            "Error: No permission to enable cpu-clock event.") in done.stderr
    (folder,) = (tmp_path / "r").glob("*/*")
    run = json.loads((folder / "summary.json").read_text())["runs"][0]
    assert run["qps"] > 0 and run["perf"]["error"].startswith("perf: ")
    assert f"no flame graph: {run['perf']['error']}" in (folder / "report.md").read_text()
