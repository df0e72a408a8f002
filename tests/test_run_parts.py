"""A run's CPU parts are built from the collectors' own records, on recorded real output: pidstat
returns `records.ThreadCpu` and mpstat `records.CpuLoad` (one declaration per shape), and execute
sums and picks them into `ServerCpu`, `BusiestThread` and `RoleCpu` without a dict between."""

from __future__ import annotations

from pathlib import Path

from orchestrator import execute, records
from orchestrator.context import plain
from orchestrator.tools import mpstat, pidstat

DATA = Path(__file__).resolve().parent / "tools" / "data"


def _threads() -> list[records.ThreadCpu]:
    return pidstat.summarize(pidstat.parse((DATA / "pidstat_churn.txt").read_text()))


def test_server_cpu_sums_the_thread_rows_not_the_process_total():
    threads = _threads()
    assert all(isinstance(t, records.ThreadCpu) for t in threads)
    cpu = execute._server_cpu(threads)
    assert [t.tid for t in cpu.threads] == [8043, 8045, 8046, 8089]  # the process row (tid None) left out
    assert cpu.usr == round(0.0 + 49.0 + 61.333333 + 48.0, 2)
    assert cpu.to_json()["threads"][2] == plain(threads[3])  # the run keeps pidstat's record as it is
    gone = execute._server_cpu({"error": "pidstat: gone"})
    assert gone.to_json() == {"threads": [], "usr": None, "sys": None}


def test_busiest_thread_is_by_busy_plus_wait_and_its_capacity_share_needs_a_quota():
    top = execute._busiest_thread(_threads(), None)
    assert top is not None and (top.busy, top.wait) == (61.33, 0.33)
    assert "capacity" not in top.to_json()
    assert execute._busiest_thread([], None) is None


def test_role_cpu_picks_the_pinned_cpus_of_mpstats_records():
    per_cpu = mpstat.summarize(mpstat.parse((DATA / "mpstat_sigint.txt").read_text()))
    assert isinstance(per_cpu[0], records.CpuLoad) and per_cpu[0].busy == 100.0 - per_cpu[0].idle
    role = execute._cpu_of(per_cpu, [1, 7])  # CPU 7 was not sampled
    assert list(role.cpus) == ["1"] and role.busy == round(per_cpu[1].busy or 0, 2)
    assert execute._cpu_of({"error": "x"}.get("no"), [0]).to_json() == {"cpus": {}, "busy": None}
