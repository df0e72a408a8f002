"""The CLI as a user meets it: exit codes, messages, and nothing started for bad input."""

from __future__ import annotations

import textwrap

from testkit import orchestrate

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
    done = orchestrate("plan", "--set", "repeat=2", "--set", "load.connections=[8, 16]")
    assert done.returncode == 0, done.stderr
    assert "008-main-sub-t1-c16-r2" in done.stdout
    assert "8 runs of 5s load each; expected total" in done.stdout
