"""orchestrate-load adapter: command line, parsing recorded real outputs, exact merging, a live run."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path

import pytest
from localservers import data

from orchestrator.tools import ToolError, loadgen, server

from testkit import REPO, stop_process

# Recorded with loadgen/build/release/orchestrate-load against orchestrate-server (reuseport,
# 1 thread) on 127.0.0.1 (U = its URL):
#   open:          -t 2 -c 20 -d 2 -w 0.5 -R 5000 U
#   closed_pipeline4: -t 1 -c 10 -d 1 -p 4 U
#   host_a/host_b: two at once, -c 5 -d 1 -R 2000 --start-at <same epoch> U
#   refused:       -c 4 -d 1 -R 1000 http://127.0.0.1:1/
#   sigint:        -c 4 -d 5 -R 1000 U, SIGINT after 1.3 s
#   head_http10:   -c 4 -d 1 -m HEAD -R 100 -H "X-A: b" --http1.0 U
#   badopt.stderr: --rate 0 U (exit 2)
# (format 1, the generator before issue 22), and in format 2:
#   slow_timeouts: -t 2 -c 32 -R 500 -d 2 --timeout 2 S, S a server answering one request in
#                  200 after 3 s (tests/test_verdict_corpus.py's SLOW_ONE_IN_200)
RECORDED = ["loadgen_open.json", "loadgen_closed_pipeline4.json", "loadgen_host_a.json",
            "loadgen_host_b.json", "loadgen_refused.json", "loadgen_sigint.json",
            "loadgen_head_http10.json", "loadgen_slow_timeouts.json"]


def doc(name: str) -> dict:
    return json.loads(data(name))


# ---------------------------------------------------------------- command

def test_command_open_loop_argv():
    argv = loadgen.command(["http://127.0.0.1:8000/", "http://127.0.0.1:8001/x"], threads=2,
                           connections=64, duration_s=10, warmup_s=2.5, rate=50000, pipeline=2,
                           start_at=1700000000.25, cpus=[1, 3], headers={"X-Run": "a b"},
                           timeout_s=2)
    assert argv[0] == "orchestrate-load"
    assert argv[argv.index("--rate") + 1] == "50000"
    assert argv[argv.index("--warmup") + 1] == "2.5"
    assert argv[argv.index("--start-at") + 1] == "1700000000.250000"
    assert argv[argv.index("--cpus") + 1] == "1,3"
    assert argv[argv.index("--header") + 1] == "X-Run: a b"
    assert argv[-2:] == ["http://127.0.0.1:8000/", "http://127.0.0.1:8001/x"]
    assert all(isinstance(a, str) for a in argv)
    closed = loadgen.command("http://127.0.0.1/", threads=1, connections=1, duration_s=1)
    assert "--rate" not in closed and "--start-at" not in closed
    assert loadgen.command("http://h/", threads=1, connections=1, duration_s=1,
                           min_sleep_us=100)[-3:-1] == ["--min-sleep-us", "100"]


@pytest.mark.parametrize("kwargs", [
    {"rate": 0.5}, {"rate": float("nan")}, {"duration_s": 0}, {"warmup_s": -1}, {"timeout_s": 0},
    {"pipeline": 0}, {"threads": 4, "connections": 2}, {"urls": "127.0.0.1:80"}, {"urls": []},
    {"close": True, "pipeline": 4}, {"method": "GE T"}, {"headers": {"X": "a\r\nB: c"}},
    {"min_sleep_us": -1},
])
def test_command_rejects_bad_arguments(kwargs):
    args = {"urls": "http://127.0.0.1/", "threads": 1, "connections": 1, "duration_s": 1, **kwargs}
    urls = args.pop("urls")
    with pytest.raises(ToolError, match="^orchestrate-load: "):
        loadgen.command(urls, **args)


def test_build_command_is_a_release_cmake_build():
    cmd = loadgen.build_command("/src/loadgen", "/b")
    assert "-DCMAKE_BUILD_TYPE=Release" in cmd and "cmake --build /b" in cmd


# ---------------------------------------------------------------- parse

@pytest.mark.parametrize("name", RECORDED)
def test_percentiles_match_the_generator_exactly(name):
    """The adapter's percentile rule is the generator's (HdrHistogram's), bucket for bucket."""
    d = doc(name)
    r = loadgen.parse(data(name))
    for key, dist, hist in (("latency", r.latency_ms, r.latency_hist),
                            ("service_time", r.service_time_ms, r.service_time_hist),
                            ("send_lag", r.send_lag_ms, r.send_lag_hist)):
        theirs = d[key]["percentiles"]
        ours = {"50": dist.p50, "75": dist.p75, "90": dist.p90, "99": dist.p99, "99.9": dist.p99_9,
                "99.99": dist.p99_99, "99.999": dist.p99_999}
        assert {k: round(v * 1000) for k, v in ours.items()} == theirs, key
        assert hist.count == d[key]["count"]
        assert dist.max == d[key]["max"] / 1000


def test_parse_open_loop_run():
    r = loadgen.parse(data("loadgen_open.json"))
    assert (r.mode, r.threads, r.connections) == ("open", 2, 20)
    assert r.rate.target == 5000 and r.rate.sustained is True
    # the two halves of the self-check, kept apart: the client's and the server's
    assert r.rate.send_fidelity is True and r.rate.completion == 1.0
    assert abs(r.rate.achieved - 5000) < 50 and r.qps == r.rate.achieved
    assert r.rate.per_second == (5000, 5000)
    assert r.counts.requests == r.counts.responses == 10000 and r.counts.socket_errors == 0
    assert dict(r.counts.status)["2xx"] == 10000 and r.counts.non_2xx == 0
    # corrected latency includes the send lag, so it is never below the service time
    assert r.latency_ms.p99 >= r.service_time_ms.p99
    assert r.latency_hist.count == r.counts.responses + r.counts.unanswered
    assert r.duration_s == 2 and not r.interrupted


def test_parse_closed_loop_has_no_target():
    r = loadgen.parse(data("loadgen_closed_pipeline4.json"))
    assert r.mode == "closed" and r.pipeline == 4
    assert r.rate.target is None and r.rate.sustained is None and r.qps > 1000
    assert r.rate.send_fidelity is None and r.rate.completion is None
    assert r.send_lag_ms.max == 0  # closed loop: intended = actual send


def test_parse_refused_counts_connect_errors_and_is_not_sustained():
    r = loadgen.parse(data("loadgen_refused.json"))
    assert r.counts.error("connect") > 0 and r.counts.responses == 0
    assert r.rate.sustained is False and r.qps == 0
    assert r.rate.completion == 0.0  # nothing answered: the completion check fails
    # nothing could be sent: every request of the window is unanswered, none dropped
    assert r.counts.unanswered == r.counts.unsent == r.counts.requests == 1000
    assert r.latency_ms.max >= 900  # the first request waited (almost) the whole second


def test_parse_interrupted_run_keeps_what_was_measured():
    r = loadgen.parse(data("loadgen_sigint.json"))
    assert r.interrupted and 1.0 < r.duration_s < 5
    assert r.counts.responses > 1000


def test_parse_format_2_every_request_has_a_latency():
    """Timed-out requests are in the histogram at no less than the timeout after their intended
    time: 5 of 1,000 requests took over 2 s, and p99.9 says so (format 1 left them out)."""
    r = loadgen.parse(data("loadgen_slow_timeouts.json"))
    assert r.complete is True and r.drain_s is not None and 0 < r.drain_s <= 2.02
    c = r.counts
    assert c.requests == 1000 == r.latency_hist.count == r.service_time_hist.count == r.send_lag_hist.count
    assert c.responses + c.failed + c.unanswered == c.requests
    assert c.failed_by is not None and dict(c.failed_by)["timeout"] == c.failed == c.error("timeout") == 5
    assert r.latency_ms.p99_9 >= 2000 and r.latency_ms.p50 < 5
    # the timed-out ones are the only ones past the timeout
    over = sum(n for v, n in r.latency_hist.buckets if v >= loadgen.lowest_equivalent(2_000_000))
    assert over == 5


def test_format_1_still_reads_and_says_it_left_failures_out():
    r = loadgen.parse(data("loadgen_refused.json"))
    assert r.complete is False and r.drain_s is None and r.counts.failed_by is None
    slow = loadgen.parse(data("loadgen_slow_timeouts.json"))
    m = loadgen.merge([loadgen.parse(data("loadgen_host_a.json")), slow])
    assert m.complete is False and m.drain_s is None and m.counts.failed_by is None
    both = loadgen.merge([slow, slow])
    assert both.complete is True and both.counts.failed_by is not None
    assert dict(both.counts.failed_by)["timeout"] == 10 and both.drain_s == slow.drain_s


def test_parse_refuses_other_versions_and_garbage():
    d = doc("loadgen_open.json")
    d["version"] = 99
    with pytest.raises(ToolError, match="version 99"):
        loadgen.parse(json.dumps(d))
    d = doc("loadgen_open.json")
    del d["counts"]["errors"]
    with pytest.raises(ToolError, match="malformed"):
        loadgen.parse(json.dumps(d))
    d = doc("loadgen_open.json")
    d["latency"]["histogram"]["buckets"][0][0] = 2049  # not a bucket start: merging would lie
    with pytest.raises(ToolError, match="malformed"):
        loadgen.parse(json.dumps(d))
    d = doc("loadgen_open.json")
    d["latency"]["histogram"]["significant_digits"] = 2
    with pytest.raises(ToolError, match="layout"):
        loadgen.parse(json.dumps(d))
    with pytest.raises(ToolError, match="not one JSON"):
        loadgen.parse('{"tool": "orchestrate-load", "vers')
    stderr = data("loadgen_badopt.stderr")
    with pytest.raises(ToolError, match="--rate: 0"):
        loadgen.parse("", stderr)


# ---------------------------------------------------------------- merge

def test_merge_two_hosts_adds_counts_exactly():
    a, b = loadgen.parse(data("loadgen_host_a.json")), loadgen.parse(data("loadgen_host_b.json"))
    m = loadgen.merge([a, b])
    assert m.hosts == 2 and m.rate.target == 4000
    assert m.latency_hist.count == a.latency_hist.count + b.latency_hist.count
    assert m.counts.responses == a.counts.responses + b.counts.responses
    assert abs(m.rate.achieved - 4000) < 40
    assert m.rate.per_second == tuple(x + y for x, y in zip(a.rate.per_second, b.rate.per_second,
                                                            strict=True))
    # every bucket of the merge is the sum of the hosts' buckets
    da, db = dict(a.latency_hist.buckets), dict(b.latency_hist.buckets)
    for value, count in m.latency_hist.buckets:
        assert count == da.get(value, 0) + db.get(value, 0)
    assert min(a.latency_ms.p99, b.latency_ms.p99) <= m.latency_ms.p99 <= max(a.latency_ms.p99,
                                                                             b.latency_ms.p99)
    assert m.latency_ms.max == max(a.latency_ms.max, b.latency_ms.max)
    assert loadgen.merge([a]) is a
    with pytest.raises(ToolError):
        loadgen.merge([])
    with pytest.raises(ToolError, match="open- and closed"):
        loadgen.merge([a, loadgen.parse(data("loadgen_closed_pipeline4.json"))])


def test_merge_keeps_the_earliest_first_send_and_old_documents_have_none():
    a, b = loadgen.parse(data("loadgen_host_a.json")), loadgen.parse(data("loadgen_host_b.json"))
    assert a.first_send_epoch is None  # recorded before the generator reported it
    a2, b2 = (dataclasses.replace(r, first_send_epoch=t) for r, t in ((a, 100.25), (b, 100.5)))
    assert loadgen.merge([a2, b2]).first_send_epoch == 100.25
    assert loadgen.merge([a, b2]).first_send_epoch == 100.5


def test_send_fidelity_is_judged_on_the_clients_own_lag_when_reported():
    """client_send_lag (added within format 2) counts from when a connection was free: a late
    send that only waited for a busy connection is the server's, so fidelity reads it; older
    output without it falls back to send_lag (which counts that wait)."""
    quick = doc("loadgen_open.json")["send_lag"]  # p99 well under 1 ms
    slow = doc("loadgen_slow_timeouts.json")["latency"]  # p99 past the 1 ms limit
    old = loadgen.parse(data("loadgen_open.json"))
    assert old.client_send_lag_hist is None and old.client_send_lag_ms is None
    assert old.fidelity_lag_hist is old.send_lag_hist and old.rate.send_fidelity is True

    waited = {**doc("loadgen_open.json"), "send_lag": slow, "client_send_lag": quick}
    r = loadgen.parse(json.dumps(waited))
    assert r.send_lag_ms.p99 > 1 and r.client_send_lag_ms is not None
    assert r.client_send_lag_ms.p99 < 1 and r.rate.send_fidelity is True
    late = loadgen.parse(json.dumps({**doc("loadgen_open.json"), "client_send_lag": slow}))
    assert late.send_lag_ms.p99 < 1 and late.rate.send_fidelity is False

    # merged: the client lags add when every host reported one, else fidelity falls back
    m = loadgen.merge([r, r])
    assert m.client_send_lag_hist is not None and m.client_send_lag_hist.count == 2 * quick["count"]
    assert m.rate.send_fidelity is True
    waited_old = loadgen.parse(json.dumps({**doc("loadgen_open.json"), "send_lag": slow}))
    mixed = loadgen.merge([r, waited_old])
    assert mixed.client_send_lag_hist is None and mixed.rate.send_fidelity is False


def test_merged_sustained_needs_every_host():
    a = loadgen.parse(data("loadgen_host_a.json"))
    refused = loadgen.parse(data("loadgen_refused.json"))
    assert loadgen.merge([a, refused]).rate.sustained is False


def test_histogram_layout_matches_hdrhistogram():
    # below 2048 every microsecond has its own bucket; above, buckets double per power of two
    assert [loadgen.lowest_equivalent(v) for v in (0, 1, 2047, 2048, 2049, 4097)] == \
        [0, 1, 2047, 2048, 2048, 4096]
    assert loadgen.highest_equivalent(2048) == 2049
    assert loadgen.highest_equivalent(60_000_000) - loadgen.lowest_equivalent(60_000_000) + 1 == 32768
    # 3 significant digits: every value is kept within 0.1%
    for v in (2500, 99_999, 1_234_567, 59_999_999):
        assert (loadgen.highest_equivalent(v) - v) / v < 0.001


# ---------------------------------------------------------------- live

LOADGEN_BUILD = REPO / "loadgen" / "build" / "release"
SERVER_BUILD = REPO / "server" / "build" / "release"


@pytest.fixture(scope="module")
def binaries() -> tuple[Path, Path]:
    for cmd in (loadgen.build_command(loadgen.REPO_LOADGEN_DIR, LOADGEN_BUILD),
                server.build_command(server.REPO_SERVER_DIR, SERVER_BUILD)):
        subprocess.run(cmd, shell=True, check=True, timeout=600)
    return LOADGEN_BUILD / loadgen.BINARY, SERVER_BUILD / server.BINARY


@pytest.mark.slow
def test_live_open_loop_against_the_project_server(binaries, no_children):
    gen, srv = binaries
    proc = subprocess.Popen([str(srv), "--arch", "reuseport", "--threads", "1", "--bind", "127.0.0.1",
                             "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = server.parse_ready(proc.stdout.readline())
        assert ready is not None
        url = f"http://127.0.0.1:{ready.port}/"
        argv = loadgen.command(url, threads=2, connections=8, duration_s=1, warmup_s=0.2, rate=2000,
                               start_at=time.time() + 0.3)
        argv[0] = str(gen)
        run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        r = loadgen.parse(run.stdout, run.stderr)
    finally:
        stop_process(proc)
    assert r.mode == "open" and r.rate.target == 2000
    assert abs(r.counts.requests - 2000) <= 2
    # format 2: every request of the window answered (the last ones in the drain) and in the histogram
    assert r.complete and r.counts.responses == r.counts.requests == r.latency_hist.count
    assert r.drain_s is not None and r.drain_s < 1
    assert r.counts.socket_errors == 0 and dict(r.counts.status)["2xx"] == r.counts.responses
    assert abs(r.rate.achieved - 2000) <= 40
    assert abs(r.start_epoch - time.time()) < 30
    # the client's own send lag: one per request sent, never more than the lag from the intended time
    assert r.client_send_lag_hist is not None and r.client_send_lag_hist.count == r.counts.sent
    assert r.client_send_lag_hist.max_us <= r.send_lag_hist.max_us
    # the first request leaves at the start instant, not before, and not much after
    assert r.first_send_epoch is not None and 0 <= r.first_send_epoch - r.start_epoch < 0.5


def test_live_bad_option_is_a_tool_error(binaries):
    gen, _ = binaries
    run = subprocess.run([str(gen), "--rate", "0", "http://127.0.0.1:1/"], capture_output=True,
                         text=True, timeout=10)
    assert run.returncode == 2
    with pytest.raises(ToolError, match="--rate"):
        loadgen.parse(run.stdout, run.stderr)
