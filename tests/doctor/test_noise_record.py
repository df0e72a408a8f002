"""A run records the host's noise before its first window and after its last, and its report
names a hog that was running on a pinned CPU before it started; the run ends with what to
do next."""

from __future__ import annotations

import json
import subprocess
import sys

from orchestrator.tools import server as server_tool

from testkit import NO_COMPARE, orchestrate, stop_process


def test_a_hog_started_before_the_run_is_in_the_summary_and_named_in_the_report(tmp_path, run_id):
    # The run builds the server where none is built (a fresh clone: CI, where this is the
    # suite's first run; the test took 44-131 s there): built before the hog starts, the build
    # has both CPUs. The run still checks the build (a no-op now) and uses it.
    src = server_tool.REPO_SERVER_DIR
    subprocess.run(server_tool.build_command(src, src / "build" / "release"), shell=True, check=True,
                   timeout=900)
    # The embedded loopback scenario pins the server to the even CPUs: CPU 0 is one of them.
    hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
    try:
        done = orchestrate("run", "--results", str(tmp_path), "--run-id", run_id,
                           "--set", "load.duration=2s", "--set", "baseline.enabled=false",
                           "--set", "server.arch=reuseport", "--set", "telemetry=[]", *NO_COMPARE,
                           "--history", str(tmp_path / "h.sqlite"), timeout=300, report=True,
                           host_noise=True)
    finally:
        stop_process(hog)
    assert done.returncode == 0, done.stderr
    assert "WARNING host noise before the windows" in done.stderr
    (folder,) = [p.parent for p in tmp_path.glob("*/*/summary.json")]
    noise = json.loads((folder / "summary.json").read_text())["host_noise"]
    assert set(noise) == {"before", "after"}
    before = noise["before"]
    assert before["busy_pct"]["0"] >= 50, before
    assert hog.pid in [i["pid"] for i in before["intruders"]], before
    assert noise["after"]["when"] == "after"
    report = (folder / "report.md").read_text()
    assert f"(pid {hog.pid})" in report
    # The last lines point to the report, the results, the verdict and the next command.
    tail = done.stdout.strip().splitlines()[-4:]
    assert [ln.split(":", 1)[0] for ln in tail] == ["report", "results", "verdict", "next"], tail
