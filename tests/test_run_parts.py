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
    # no sample of the server inside the window: not measured, never 0% CPU (a paired round
    # reading 0 would be dropped in silence, or an A/B read a server as idle)
    empty = execute._server_cpu(pidstat.summarize(pidstat.parse((DATA / "pidstat_churn.txt").read_text()),
                                                  0.0, 1.0))
    assert empty.to_json() == {"threads": [], "usr": None, "sys": None}


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


def test_iperf3_parses_into_the_baselines_record_and_the_ceiling_is_built_from_records():
    from orchestrator import baseline
    from orchestrator.tools import iperf3

    udp = iperf3.parse_udp((DATA / "iperf3_udp.json").read_text())
    assert isinstance(udp, records.UdpCeiling) and udp.to_json()["processes"] == 1  # as asdict wrote it
    tcp = iperf3.parse_tcp((DATA / "iperf3_tcp.json").read_text())
    slow = udp.model_copy(update={"pps_delivered": (udp.pps_delivered or 0) / 2,
                                  "cpu_bound": "receiver at 97% of a CPU", "lower_bound": True})
    paths = {"a->s": records.BaselinePath(client="a", server="s", udp=udp, tcp=tcp),
             "b->s": records.BaselinePath(client="b", server="s", udp=slow)}
    ceiling = baseline.compared(paths)
    assert isinstance(ceiling, records.RunCeilings)
    assert (ceiling.path, ceiling.pps_delivered, ceiling.cpu_bound_rx) == ("b->s", slow.pps_delivered,
                                                                           "receiver at 97% of a CPU")
    assert ceiling.paths["a->s"].tcp_bits_per_second == tcp.bits_per_second
    assert baseline.compared({}).to_json() == {}


def test_recorded_runs_ceilings_are_what_the_recorded_baseline_gives():
    from orchestrator import baseline, store

    root = Path(__file__).resolve().parent
    folders = [f for f in sorted((root / "report" / "data").iterdir())
               if (f / "summary.json").exists()]
    checked = 0
    for folder in folders:
        s = store.load_summary(folder)
        ceiling = baseline.compared(s.baseline).to_json()
        for run in s.runs:
            if run.baseline is None:
                continue
            recorded = run.baseline.to_json()  # older runs lack the per-direction fields
            assert {k: ceiling[k] for k in recorded if k != "paths"} == {
                k: v for k, v in recorded.items() if k != "paths"}, folder
            checked += 1
    assert checked >= 16


def test_the_servers_exit_counters_parse_into_the_runs_record():
    from orchestrator.tools import server

    out = ('listening\n{"event":"stats","arch":"reuseport","threads":[{"thread":0,"cpu":1,"tid":5,'
           '"connections":3,"requests":10,"bytes_in":700}],"acceptor":{"connections":3}}\n')
    stats = server.parse_stats(out)
    assert isinstance(stats, records.ServerCounters) and stats.requests == 10
    assert stats.to_json() == {"arch": "reuseport", "acceptor_connections": 3, "threads": [
        {"thread": 0, "cpu": 1, "tid": 5, "connections": 3, "requests": 10, "bytes_in": 700, "bytes_out": 0}]}
    assert server.parse_stats("no stats event\n") is None
