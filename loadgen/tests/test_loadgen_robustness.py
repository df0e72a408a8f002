"""The generator against servers that split, chunk, close, reset, stall, lie or vanish: every
response parsed, every failure counted by kind, a clean exit with what was measured. Each test
runs on the release and the ASan+UBSan build."""

from __future__ import annotations

import signal
import time

import loadkit
import pytest
from loadkit import FakeServer, run_load


def check_clean(run: loadkit.Run) -> None:
    assert run.rc == 0, run.stderr
    assert not run.sanitizer_reports(), run.stderr
    assert run.doc["tool"] == "orchestrate-load" and run.doc["version"] == 2
    c = run.counts
    # never dropped silently: every request of the window is answered, failed or unanswered,
    # and every one of them has a latency (issue 22)
    assert c["responses"] + c["failed"] + c["unanswered"] == c["requests"], c
    for hist in ("latency", "service_time", "send_lag"):
        assert run.doc[hist]["count"] == c["requests"], (hist, c)
    # the client's own send lag: open loop, one per request sent (closed loop: none)
    open_loop = run.doc["parameters"]["mode"] == "open"
    assert run.doc["client_send_lag"]["count"] == (c["sent"] if open_loop else 0), c
    assert run.doc["client_send_lag"]["max"] <= run.doc["send_lag"]["max"]
    assert sum(c["failed_by"].values()) == c["failed"], c
    assert run.doc["window"]["drain_s"] >= 0


@pytest.mark.parametrize("mode,args", [
    ("split", ["-c", "4", "-p", "8"]),          # pipelined answers cut at random points
    ("chunked", ["-c", "4", "-p", "4"]),
    ("interim", ["-c", "2"]),
    ("close", ["-c", "4", "--close"]),
    ("until_close", ["-c", "4", "--http1.0", "--close"]),
])
def test_parses_every_framing(generator, mode, args):
    binary, sanitized = generator
    with FakeServer(mode) as srv:
        run = run_load(binary, *args, "-d", "1", srv.url, sanitized=sanitized)
    check_clean(run)
    assert run.counts["responses"] > 50
    assert run.counts["status"]["2xx"] == run.counts["responses"]
    assert sum(run.errors.values()) == 0, run.errors


def test_non_2xx_counted_by_class(generator):
    binary, sanitized = generator
    with FakeServer("status") as srv:
        run = run_load(binary, "-c", "2", "-R", "500", "-d", "1", srv.url, sanitized=sanitized)
    check_clean(run)
    assert run.counts["status"]["5xx"] == run.counts["responses"] > 400
    assert run.counts["non_2xx"] == run.counts["responses"]


def test_resets_are_counted_and_reconnected(generator):
    binary, sanitized = generator
    with FakeServer("reset") as srv:
        run = run_load(binary, "-c", "4", "-R", "1000", "-d", "1", srv.url, sanitized=sanitized)
    check_clean(run)
    assert run.errors["reset"] + run.errors["closed"] > 50
    assert run.counts["connects"] > 50  # it reconnected after each reset
    assert run.counts["responses"] > 300
    # the requests lost with their connections keep their kind, and have latencies
    lost = run.counts["failed_by"]
    assert lost["reset"] + lost["closed"] == run.counts["failed"] > 50, lost


def test_garbage_is_a_protocol_error(generator):
    binary, sanitized = generator
    with FakeServer("garbage") as srv:
        run = run_load(binary, "-c", "2", "-R", "200", "-d", "1", srv.url, sanitized=sanitized)
    check_clean(run)
    assert run.errors["protocol"] > 20 and run.counts["responses"] == 0


def test_stalled_server_times_out_and_unanswered_count_from_intended(generator):
    """Timed-out requests count at least the timeout; those in flight at the end are drained
    until they time out; those never sent count from their intended time to the drain's end."""
    binary, sanitized = generator
    with FakeServer("stall") as srv:
        run = run_load(binary, "-c", "4", "-R", "200", "-d", "2", "--timeout", "0.5", srv.url,
                       sanitized=sanitized)
    check_clean(run)
    c = run.counts
    assert c["responses"] == 0
    assert run.errors["timeout"] >= 8  # 4 connections, each timed out at least twice
    assert c["failed_by"]["timeout"] == c["failed"] >= 8
    assert c["unanswered"] == c["unsent"] > 0
    drain = run.doc["window"]["drain_s"]
    assert 0 < drain <= 0.5 + 0.02  # the last ones in flight timed out in the drain
    # every timed-out request >= 500 ms; every unsent one waited at least the drain
    assert run.doc["latency"]["min"] >= min(500_000, drain * 1e6) - 1000, run.doc["latency"]
    assert run.doc["rate"]["sustained"] is False


def test_requests_in_flight_at_the_end_are_drained(generator):
    """A server answering each request 0.3 s late: those in flight when the window closes are
    answered in the drain and counted as answered, at their real latency (not cut at the end)."""
    binary, sanitized = generator
    with FakeServer("late") as srv:
        run = run_load(binary, "-c", "16", "-R", "20", "-d", "1", "--timeout", "2", srv.url,
                       sanitized=sanitized)
    check_clean(run)
    c = run.counts
    assert c["requests"] == 20 and c["responses"] == 20 and c["failed"] == c["unanswered"] == 0, c
    assert 0.2 < run.doc["window"]["drain_s"] < 2  # the last one answered 0.3 s after its send
    assert run.doc["latency"]["min"] >= 300_000  # the last ones too: their real 0.3 s


def test_a_second_signal_cuts_the_drain(generator):
    """SIGTERM ends the window; a second one ends the drain at once (a stalled server would
    keep it going for the 5 s timeout): what was still in flight counts as unanswered."""
    binary, sanitized = generator

    def twice(proc):
        time.sleep(0.7)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.4)
        proc.send_signal(signal.SIGTERM)
    with FakeServer("stall") as srv:
        t0 = time.monotonic()
        run = run_load(binary, "-c", "4", "-R", "100", "-d", "10", "--timeout", "5", srv.url,
                       sanitized=sanitized, during=twice)
        wall = time.monotonic() - t0
    check_clean(run)
    assert wall < 4.5  # not the 5 s the drain would take uncut
    assert run.doc["interrupted"] is True and run.doc["window"]["drain_cut"] is True
    assert 0.2 < run.doc["window"]["drain_s"] < 2
    assert run.counts["unanswered"] > run.counts["unsent"] > 0  # the 4 in flight, and the queue


def test_server_vanishing_mid_run(generator, server_binary):
    """SIGKILL the server 0.5 s into a 1.5 s run: resets/closes and refused reconnects counted,
    answers before the kill kept."""
    binary, sanitized = generator
    srv = loadkit.ServerProcess(server_binary, cpu=None)
    try:
        def kill_soon(_proc):
            time.sleep(0.6)
            srv.proc.send_signal(signal.SIGKILL)
        run = run_load(binary, "-c", "8", "-R", "2000", "-d", "1.5", srv.url, sanitized=sanitized,
                       during=kill_soon)
    finally:
        srv.stop()
    check_clean(run)
    assert 300 < run.counts["responses"] < 2000
    assert run.errors["connect"] > 0
    assert run.doc["rate"]["sustained"] is False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_prints_what_was_measured(generator, project_server, sig):
    binary, sanitized = generator

    def interrupt(proc):
        time.sleep(1.2)
        proc.send_signal(sig)
    t0 = time.monotonic()
    run = run_load(binary, "-c", "4", "-R", "1000", "-d", "30", project_server.url,
                   sanitized=sanitized, during=interrupt)
    assert time.monotonic() - t0 < 10
    check_clean(run)
    assert run.doc["interrupted"] is True
    assert 0.8 < run.doc["window"]["measured_s"] < 2
    assert run.counts["responses"] > 700


def test_start_at_an_absolute_time(generator, project_server):
    """--start-at: the load begins at that wall-clock time, not at launch (hosts start together)."""
    binary, sanitized = generator
    start = time.time() + 1.0
    args = ["-c", "2", "-R", "500", "-d", "0.5", "--start-at", f"{start:.6f}", project_server.url]
    t0 = time.monotonic()
    run = run_load(binary, *args, sanitized=sanitized)
    check_clean(run)
    assert time.monotonic() - t0 >= 1.4  # waited for the start, then ran 0.5 s
    assert abs(run.doc["window"]["start_epoch"] - start) < 1e-5
    assert run.counts["requests"] == 250 and run.counts["responses"] == 250


def test_several_targets_share_the_connections(generator):
    binary, sanitized = generator
    with FakeServer("split") as a, FakeServer("chunked") as b:
        run = run_load(binary, "-c", "4", "-R", "400", "-d", "1", a.url, b.url, sanitized=sanitized)
        answered = (a.answered, b.answered)
    check_clean(run)
    assert run.counts["responses"] >= 395
    assert min(answered) > 150  # both targets got about half


def test_bad_options_exit_2():
    binary = loadkit.build("release")
    for args in (["--rate", "0", "http://127.0.0.1:1/"], ["-c", "1", "-t", "2", "http://127.0.0.1:1/"],
                 ["--close", "-p", "2", "http://127.0.0.1:1/"], ["ftp://x/"], []):
        run = run_load(binary, *args)
        assert run.rc in (1, 2) and not run.stdout and "orchestrate-load:" in run.stderr, args
