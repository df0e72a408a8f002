"""The CLI as a user meets it: exit codes, messages, and nothing started for bad input."""

from __future__ import annotations

import textwrap

from testkit import NO_COMPARE, REPO, orchestrate

THREE_MISTAKES = textwrap.dedent("""\
    name: broken
    server:
      threads: [1, x]
      cpus: [0]
    load:
      cpus: [1]
      duraton: 5s
    repeat: -1
    """)


def test_validate_ok(repo):
    done = orchestrate("validate", str(repo / "scenarios" / "loopback.yaml"))
    assert done.returncode == 0, done.stderr
    assert "ok (loopback)" in done.stdout


def test_validate_reports_every_problem_with_file_and_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text(THREE_MISTAKES)
    done = orchestrate("validate", str(f))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, done.stderr
    assert lines[0].startswith(f"{f}:3: server.threads[1]: ")
    assert lines[1].startswith(f"{f}:7: load.duraton: unknown key 'duraton'; did you mean 'duration'?")
    assert lines[2].startswith(f"{f}:8: repeat: Input should be greater than or equal to 1")
    assert "Traceback" not in done.stderr


def test_run_on_invalid_scenario_starts_nothing(tmp_path, run_id):
    f = tmp_path / "broken.yaml"
    f.write_text(THREE_MISTAKES)
    done = orchestrate("run", str(f), "--results", str(tmp_path / "results"), "--run-id", run_id)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 3
    assert not (tmp_path / "results").exists()  # and the run_id fixture checks no process


def test_missing_file_and_bad_set(tmp_path):
    done = orchestrate("validate", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2 and "no such scenario file" in done.stderr
    done = orchestrate("plan", "--set", "load.connections=lots")
    assert done.returncode == 2
    assert "(--set load.connections=lots): load.connections: Input should be a valid integer" \
        in done.stderr


def test_plan_lists_runs_and_time(tmp_path):
    done = orchestrate("plan", *NO_COMPARE, "--set", "repeat=2", "--set", "load.connections=[8, 16]")
    assert done.returncode == 0, done.stderr
    assert "008-main-sub-t1-c16-r2" in done.stdout
    assert "8 runs of 3s load each; expected total" in done.stdout
    scaled = orchestrate("plan", str(REPO / "scenarios" / "autoscale.yaml"))
    assert scaled.returncode == 0, scaled.stderr
    assert "1 server + 1..4 (auto-scale) client host(s)" in scaled.stdout.splitlines()[0]
    assert "auto-scale: up to 3 more run(s), one per client host added" in scaled.stdout
    assert "auto-scale" not in done.stdout
    # orchestrate-load's drain after each window: its bound is shown beside the estimate
    assert "orchestrate-load drains" in scaled.stdout and "up to load.timeout (2s)" in scaled.stdout
    assert "drains" not in done.stdout  # wrk


def test_lab_up_status_down(tmp_path):
    import os
    import subprocess

    name = f"cli{os.getpid() % 10000}"
    try:
        up = orchestrate("lab", "up", "--name", name, "--hosts", "2", "--pps", "10000")
        assert up.returncode == 0, up.stderr
        assert "198.18." in up.stdout and "10000" in up.stdout.replace(",", "")
        status = orchestrate("lab", "status")
        assert status.returncode == 0 and name in status.stdout
    finally:
        down = orchestrate("lab", "down", "--name", name)
    assert down.returncode == 0 and down.stdout.strip()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"orch-{name}-" not in namespaces
    assert name not in orchestrate("lab", "status").stdout


def test_report_refuses_what_is_not_a_results_folder(tmp_path, repo):
    """The parent of a results folder is not one. (A rebuild from a results folder, a version-1
    sample upgraded and analysed again, is report/test_render.py's
    test_orchestrate_report_on_an_old_folder, also a real process.)"""
    import shutil

    folder = tmp_path / "loopback" / "sample"
    shutil.copytree(repo / "tests" / "report" / "data" / "loopback-sample", folder)
    done = orchestrate("report", str(tmp_path))
    assert done.returncode == 2 and "summary.json" in done.stderr, done.stderr
