"""End to end on this machine: real server, real wrk, real iperf3, real collectors.

Short durations keep the suite quick; the assertions are about sanity and
plumbing (numbers present and consistent, pinning honoured, nothing leaked),
not about performance.
"""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest

from orchestrator import execute, records

from testkit import orchestrate

pytestmark = pytest.mark.slow

SHORT = ["--set", "load.duration=3s", "--set", "baseline.iperf3.duration=1s",
         "--set", "baseline.iperf3.tcp_duration=1s"]


def _only_results(root):
    folders = [p for p in root.glob("*/*") if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def check_results(folder, *, expect_runs: int, server_cpus: list[int], wrk_cpus: list[int]):
    for name in ("summary.json", "metrics.csv", "scenario.yaml", "hosts.json", "baseline.json"):
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["version"] == records.FORMAT_VERSION and summary["status"] == "complete"
    facts = summary["hosts"]["localhost"]
    assert facts["cpus"] >= 2 and facts["kernel"] and facts["cpu_model"]
    base = summary["baseline"]["localhost->localhost"]
    assert base["udp"]["pps_delivered"] > 0 and base["udp"]["pps_sent"] >= base["udp"]["pps_delivered"]
    assert base["tcp"]["bits_per_second"] > 0
    runs = summary["runs"]
    assert len(runs) == expect_runs
    for r in runs:
        assert r["qps"] > 0 and r["requests"] > 0
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p75"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["baseline"]["pps_delivered"] == base["udp"]["pps_delivered"]
        assert r["affinity"]["server_actual"] == server_cpus
        assert r["affinity"]["wrk_actual"] == {"localhost": wrk_cpus}
        threads = r["server_cpu"]["threads"]
        assert threads and any(t["usr"] + t["sys"] > 0 for t in threads)
        assert r["client_cpu"]["localhost"]["busy"] > 0
        for tool in ("wrk", "server", "pidstat", "mpstat", "sar"):
            assert (folder / "raw" / r["run_id"] / "localhost" / f"{tool}.txt").is_file(), tool
    df = pd.read_csv(folder / "metrics.csv")
    assert len(df) == expect_runs and (df["qps"] > 0).all()
    return summary


# the embedded default's answer: reuseport against main-sub, a ratio with its 95% interval and a
# word that never says "no change" (2 rounds: the interval is wide, so usually "not resolved here")
PAIRED_LINE = (r"  threads=(\d) connections=64: reuseport / main-sub "
               r"(process CPU µs/request|req/s|CPU µs/request): "
               r"\d+\.\d{3}x \[\d+\.\d{3}, \d+\.\d{3}\] \(2 rounds\): "
               r"(better|worse|not resolved here \(interval ±[\d.]+%\)|not detectable here \(.+\))$")


def test_builtin_server_loopback_end_to_end(loopback_run):
    folder, done = loopback_run  # the embedded default: 2 rounds at 1 and 2 server threads (conftest.py)
    assert done.returncode == 0, done.stderr
    assert "req/s" in done.stderr and "pps delivered" in done.stdout
    summary = check_results(folder, expect_runs=8, server_cpus=[0], wrk_cpus=[1])
    assert {(r["arch"], r["server_threads"]) for r in summary["runs"]} == {
        (a, t) for a in ("reuseport", "main-sub") for t in (1, 2)}
    # paired rounds, the order alternating: reuseport first in round 1, main-sub in round 2
    r = summary["rounds"]
    assert (r["factor"], r["baseline"], r["metric"]) == ("server.arch", "main-sub",
                                                          "process_cpu_us_per_request")
    assert r["orders"] == [["reuseport", "main-sub"], ["main-sub", "reuseport"]] and r["run"] == 2
    assert [(x["repetition"], x["server_threads"], x["arch"]) for x in summary["runs"]] == [
        (k, t, a) for k, order in enumerate(r["orders"], 1) for t in (1, 2) for a in order]
    assert "compare server.arch: each value against main-sub, paired by round" in done.stdout
    answers = [m for m in (re.match(PAIRED_LINE, ln) for ln in done.stdout.splitlines()) if m]
    assert sorted((m[1], m[2]) for m in answers) == sorted(
        (t, u) for t in "12" for u in ("process CPU µs/request", "req/s", "CPU µs/request")), done.stdout
    for r in summary["runs"]:
        counters = r["server_counters"]
        # the server's own count covers every request wrk completed (plus in-flight ones)
        assert counters["arch"] == r["arch"]
        assert sum(t["requests"] for t in counters["threads"]) >= r["requests"]
        # the kernel's counters: one shared set on loopback, per run/request/second, raw kept
        k = r["kernel"]["localhost"]
        assert k["shared"] and k["roles"] == ["server", "client"]
        assert k["run"]["out_segs"] >= r["requests"]  # every response is at least one segment
        assert k["per_request"]["out_segs"] >= 1 and k["per_second"]["out_segs"] > 0
        assert set(k["softirqs"]) == {"0", "1"}  # the server's CPU 0 and wrk's CPU 1
        raw = folder / "raw" / r["run_id"] / "localhost"
        assert (raw / "nstat-before.txt").is_file() and (raw / "nstat-after.txt").is_file()


def test_nginx_as_a_user_command_with_a_flame_graph(tmp_path, repo, run_id):
    done = orchestrate("run", str(repo / "scenarios" / "nginx.yaml"), "--results", str(tmp_path),
                       "--run-id", run_id, *SHORT, "--set", "telemetry=[pidstat, mpstat, sar, perf]",
                       timeout=600, report=True)
    assert done.returncode == 0, done.stderr
    folder = _only_results(tmp_path)
    summary = check_results(folder, expect_runs=1, server_cpus=[0], wrk_cpus=[1])
    run = summary["runs"][0]
    assert run["server_counters"] is None
    svg = folder / run["perf"]["flamegraph"]
    assert svg.read_text().startswith("<svg") and run["perf"]["samples"] > 100
    assert any(name.endswith("_[k]") for name, _ in run["perf"]["top_frames"])  # kernel frames
    assert run["perf"]["flamegraph"] in (folder / "report.html").read_text()


def test_server_that_cannot_start_fails_cleanly(tmp_path, repo, run_id):
    done = orchestrate("run", str(repo / "scenarios" / "nginx.yaml"), "--results", str(tmp_path),
                       "--set", "server.command=nginx -c /nonexistent.conf -g 'daemon off;'",
                       "--set", "baseline.enabled=false", "--run-id", run_id, timeout=120)
    assert done.returncode == 1
    assert "host localhost" in done.stderr and "server exited during start-up" in done.stderr
    summary = json.loads((_only_results(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["runs"] == []


NO_INDEX = """worker_processes 1;
pid {{ workdir }}/nginx.pid;
events { worker_connections 64; }
http { access_log off; server { listen {{ port }}; location / { root {{ workdir }}; } } }
"""


def test_a_server_that_answers_non_2xx_fails_at_once_and_keeps_its_logs(tmp_path, repo, run_id):
    # A document root without an index page, as a new user's first try often has: 403.
    start = time.monotonic()
    done = orchestrate("run", str(repo / "scenarios" / "nginx.yaml"), "--results", str(tmp_path),
                       "--set", f"server.config={json.dumps(NO_INDEX)}", "--set", "baseline.enabled=false",
                       "--run-id", run_id, timeout=120)
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - start < 15  # at once, not after server.ready_timeout (20 s)
    assert ("host localhost, run 001-nginx-t1-c64-r1: server answered http://127.0.0.1:8080/ "
            "with 403 Forbidden, not 2xx; server.ready_url must name a path it serves") in done.stderr
    folder = _only_results(tmp_path)
    raw = folder / "raw" / "001-nginx-t1-c64-r1" / "localhost"
    assert "forbidden" in (raw / "log-error.log.txt").read_text()  # nginx's own words, kept
    assert (raw / "server.stderr.txt").exists() and (raw / "server.txt").exists()
    assert json.loads((folder / "summary.json").read_text())["status"] == "failed"


def test_a_server_that_never_listens_says_nothing_answered(tmp_path, repo, run_id):
    done = orchestrate("run", str(repo / "scenarios" / "nginx.yaml"), "--results", str(tmp_path),
                       "--set", "server.command=sleep 60", "--set", "server.ready_timeout=2s",
                       "--set", "server.ready_url=http://{host}:{port}/health",
                       "--set", "baseline.enabled=false", "--run-id", run_id, timeout=120)
    assert done.returncode == 1, done.stderr
    assert ("server not ready at http://127.0.0.1:8080/health within 2s (nothing answered: "
            "URLError") in done.stderr and "Connection refused" in done.stderr


def _save_costing(seconds: float, saved: list[int]):
    def save(done: int) -> None:
        time.sleep(seconds)
        saved.append(done)
    return save


def test_checkpoints_are_paced_by_what_they_cost():
    # A summary rewrite that costs 20 ms may take at most 5% of the time: back-to-back runs
    # are saved once, and again once 0.4 s have gone by; runs far apart are each saved.
    saved: list[int] = []
    checkpoint = execute._paced(_save_costing(0.02, saved))
    for i in range(1, 11):
        checkpoint(i)
    assert saved == [1]
    time.sleep(0.6)
    checkpoint(11)
    assert saved == [1, 11]
    cheap: list[int] = []
    checkpoint = execute._paced(_save_costing(0.001, cheap))
    for i in range(1, 6):
        checkpoint(i)
        time.sleep(0.1)  # a run: 100x what its save costs
    assert cheap == [1, 2, 3, 4, 5]


def test_a_clock_that_could_not_be_read_is_not_measured_not_offset_0():
    # issue 22, item 7: a failed clock probe is None with the reason, never a measured 0
    assert execute.clock_offset("1000.25\n", 1000.0) == {"clock_offset_s": 0.25}
    got = execute.clock_offset("date: command not found\n", 1000.0)
    assert got == {"clock_offset_s": None, "clock_offset_error":
                   "the host's clock could not be read (date printed 'date: command not found')"}
    assert execute.clock_offset("", 1000.0)["clock_offset_s"] is None
