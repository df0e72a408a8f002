"""records.py: summary.json's versioned load (upgrade, refusal in one line) and the records'
round trip, on recorded real summaries (tests/report/data) and small hand-made ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestrator import records
from orchestrator.errors import UserError
from orchestrator.point import PointKey
from orchestrator.records import Run, Summary

from testkit import run_record, session

DATA = Path(__file__).parent / "report" / "data"
RECORDED = [DATA / "closed-loop", DATA / "open-loop"]  # version 2, analysed when recorded


def raw(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.mark.parametrize("folder", RECORDED, ids=lambda p: p.name)
def test_a_recorded_summary_round_trips_unchanged(folder: Path):
    data = raw(folder)
    assert data["version"] == 2 and records.FORMAT_VERSION == 3
    s = records.load(data)
    # nothing lost, nothing added: report can rewrite a folder safely (as version 3)
    assert s.dump() == {**data, "version": 3}
    assert records.load(s.dump()) == s
    assert len(s.runs) == len(data["runs"]) and all(r.analysis and r.analysis.verdict for r in s.runs)


def test_the_records_read_as_typed_fields():
    s = records.load(raw(DATA / "open-loop"))
    run = s.runs[0]
    assert run.rate and run.rate.target == 5000.0
    assert run.key == PointKey({"server.arch": "reuseport", "server.threads": 1, "load.connections": 32,
                                "load.rate": 5000.0})
    assert isinstance(run.latency_ms.p99_9, float) and run.send_lag_ms and run.send_lag_ms.mean is not None
    assert run.errors.total == 0 and run.failed_requests == (run.non_2xx or 0)
    assert s.topology and (s.topology.server, s.topology.loopback) == ("localhost", True)
    assert [p.key for p in s.points] == [r.key for r in s.runs]
    assert "sar" in run.telemetry  # bulky collector detail stays an opaque mapping


def test_version_1_is_upgraded():
    data = raw(DATA / "loopback-sample")
    assert data["version"] == 1 and "topology" not in data and "points" not in data
    s = records.load(data)
    # where the server ran follows from the host whose roles name it
    assert s.topology == records.Topology(server="localhost", interface=None, loopback=True)
    assert s.dump()["version"] == 3 and len(s.runs) == 8 and s.runs[0].analysis is None


def test_version_1_points_are_dropped_to_be_remade():
    data = {"version": 1, **session(), "runs": [], "points": [{"arch": "x", "qps_median": 1.0}]}
    assert records.upgrade_1_to_2(data) == {"version": 2, **session(), "runs": []}
    assert data["points"]  # the upgrade returns a new dict
    assert records.load(data).points == ()


@pytest.mark.parametrize("version", [None, 0, 4, 99, "2"])
def test_an_unknown_version_is_refused_in_one_line(version):
    with pytest.raises(UserError) as e:
        records.load({"version": version, "runs": []}, "x/summary.json")
    assert str(e.value) == (f"x/summary.json: summary format version {version!r} is not one this "
                            "orchestrate reads (it reads 1 to 3)")


@pytest.mark.parametrize(("data", "line"), [
    ([], "s.json: not a summary (a JSON object with version, runs, ...)"),
    ({"version": 2, **session(), "runs": {"a": 1}},
     "s.json: runs: Input should be a valid tuple (got {'a': 1})"),
    ({"version": 2, **session(), "runs": [run_record(latency_ms={"p99": "slow"})]},
     "s.json: runs.0.latency_ms.p99: Input should be a valid number, unable to parse string as a number "
     "(got 'slow')"),
    ({"version": 1, **session(), "hosts": {"h": {"cpus": "many"}}},
     "s.json: hosts.h.cpus: Input should be a valid integer, unable to parse string as an integer "
     "(got 'many')"),
])
def test_a_mistyped_field_is_refused_in_one_line_naming_its_key(data, line):
    with pytest.raises(UserError) as e:
        records.load(data, "s.json")
    assert str(e.value) == line and "\n" not in str(e.value)


def test_null_reads_as_not_measured():
    s = records.load({"version": 2, **session(), "hosts": {"h": None},
                      "runs": [run_record(errors=None, latency_ms=None, client_proc={"c": None},
                                          analysis={"evidence": None})]})
    (run,) = s.runs
    # issue 22: missing error counters are not 0 errors: absent, and said so with the reason
    assert run.errors is None and run.failed_requests is None
    assert run.errors_not_measured == "socket errors not measured (the record has no error counters)"
    assert run.latency_ms.p50 is None and run.client_proc == {}
    assert run.analysis and run.analysis.evidence == ()
    assert s.hosts["h"].roles == ()
    # a counter missing from the record is not measured either, nor is an absent non-2xx count
    (run,) = records.load({"version": 3, **session(),
                           "runs": [run_record(errors={"connect": 0, "read": 0}, non_2xx=0)]}).runs
    assert run.errors and run.errors.total is None and run.failed_requests is None
    assert run.errors_not_measured == "socket errors not measured (write, timeout not reported)"
    (run,) = records.load({"version": 3, **session(), "runs": [
        run_record(errors={"connect": 0, "read": 1, "write": 0, "timeout": 2})]}).runs
    assert run.failed_requests is None and run.errors_not_measured and "non-2xx" in run.errors_not_measured
    (run,) = records.load({"version": 3, **session(), "runs": [
        run_record(errors={"connect": 0, "read": 1, "write": 0, "timeout": 2}, non_2xx=3)]}).runs
    assert run.failed_requests == 6 and run.errors_not_measured is None


def test_a_key_no_record_declares_is_refused_in_one_line():
    # a misspelt key is not data: it is refused, naming where it is (issue 28)
    for data, where in (({**session(), "runs": [run_record(run_id="r", qsp=1.5)]}, "runs.0.qsp"),
                        ({**session(), "not_typed": 1, "runs": []}, "not_typed"),
                        ({**session(), "runs": [run_record(latency_ms={"p99": 1.0, "p42": 2.0})]},
                         "runs.0.latency_ms.p42")):
        with pytest.raises(UserError, match=rf"^summary.json: {where}: Extra inputs are not permitted"):
            records.load({"version": 3, **data})


def test_a_field_every_producer_sets_is_required():
    # issue 28: what the parsers and execute always write is required, so a record that lacks it
    # is refused naming it, not read as "not measured" (what can truly be unmeasured stays optional)
    udp = {"length": 64, "packets_sent": 10, "packets_delivered": 9, "packets_lost": 1, "pps_sent": 2.0,
           "pps_delivered": 1.8, "loss_pct": 10.0, "duration_s": 5.0, "cpu_sender_pct": 1.0,
           "cpu_receiver_pct": 2.0}
    tcp = {"bits_per_second": 1e9, "bits_per_second_sent": 1e9, "duration_s": 5.0, "cpu_sender_pct": 1.0,
           "cpu_receiver_pct": 2.0}  # no retransmits: iperf3 could not read them
    ends = {"client": "c", "server": "s"}
    base = {"version": 3, **session(), "baseline": {"c->s": {**ends, "udp": udp, "tcp": tcp}},
            "runs": [run_record(window={"start": 1.0, "end": 2.0})]}
    assert records.load(base).baseline["c->s"].tcp.retransmits is None
    no_duration = {k: v for k, v in tcp.items() if k != "duration_s"}
    for data, where in (({**base, "baseline": {"c->s": {**ends, "udp": {**udp, "pps_delivered": None}}}},
                         "baseline.c->s.udp.pps_delivered"),
                        ({**base, "baseline": {"c->s": {**ends, "udp": udp, "tcp": no_duration}}},
                         "baseline.c->s.tcp.duration_s"),
                        ({**base, "baseline": {"c->s": {"server": "s", "udp": udp}}}, "baseline.c->s.client"),
                        ({**base, "runs": [run_record(window={"start": 1.0})]}, "runs.0.window.end"),
                        ({k: v for k, v in base.items() if k != "run_id"}, "run_id"),
                        ({**base, "host_noise": {"before": {"when": "before"}}},
                         "host_noise.before.seconds")):
        with pytest.raises(UserError, match=rf"^summary.json: {re.escape(where)}: Field required"):
            records.load(data)


def test_host_facts_keep_what_the_provider_found():
    # the one open record: facts vary by provider and kernel, and the environment diff reads them
    data = {"version": 3, **session(),
            "hosts": {"h": {"cpus": 2, "governor": "performance", "sysctl": {"a": "1"}}}, "runs": []}
    s = records.load(data)
    assert s.dump() == data and s.hosts["h"].model_extra == {"governor": "performance", "sysctl": {"a": "1"}}


def test_a_bare_rate_is_a_target():
    assert Run.model_validate(run_record(rate=2000)).rate == records.Rate(target=2000.0)


def test_records_are_frozen():
    run = Run.model_validate(run_record(run_id="r", qps=1.0))
    with pytest.raises(ValueError):
        run.qps = 2.0  # type: ignore[misc]
    assert run.model_copy(update={"qps": 2.0}).qps == 2.0 and run.qps == 1.0


def test_as_summary_takes_either_form():
    s = Summary(**session())
    assert records.as_summary(s) is s
    assert records.as_summary(session()) == s
    assert records.as_summary({"version": 1, **session()}) == s


def test_an_old_folder_still_compares_against_a_new_one():
    from orchestrator import compare, store

    old, new = store.load_summary(DATA / "loopback-sample"), store.load_summary(DATA / "closed-loop")
    c = compare.compare(old, new, names=("v1", "v2"))
    # the same matrix (2 archs x 1, 2 threads x 64 connections, 2 repetitions each) on both sides
    assert len(c.changes) == 4 and not c.only_a and not c.only_b
    assert all(len(ch.before) == len(ch.after) == 2 for ch in c.changes)
    assert "different scenarios: loopback vs report-closed-loop" in c.warnings


def test_version_2_points_merged_across_axes_are_dropped_to_be_remade():
    run = run_record(connections=8, qps=1.0)
    plain = {"version": 2, "runs": [run], "points": [{"arch": "reuseport", "n": 1}]}
    assert records.upgrade_2_to_3(plain) == {**plain, "version": 3}  # nothing else changes
    swept = {"version": 2, **session(), "points": [{"arch": "reuseport", "n": 2}],
             "runs": [{**run, "axes": {"server.work_us": w}} for w in (0, 5)]}
    s = records.load(swept)
    assert s.points == () and [r.key["server.work_us"] for r in s.runs] == [0, 5]


def test_a_point_keeps_every_axis_in_order():
    runs = [Run(**run_record(connections=8, repetition=k, qps=q,
                             axes={"server.work_us": w, "load.keepalive": ka}))
            for k, (w, ka, q) in enumerate([(0, True, 10.0), (5, True, 8.0), (0, False, 3.0),
                                            (0, True, 12.0)])]
    from orchestrator import analysis

    points = analysis.summarise_points(runs)
    assert [p.n for p in points] == [2, 1, 1]  # not merged across work_us or keep-alive
    assert points[0].key == runs[0].key and points[0].qps_median == 11.0
    assert list(points[2].key) == ["server.arch", "server.threads", "load.connections", "load.rate",
                                   "server.work_us", "load.keepalive"]
    assert points[2].key.label() == ("server.arch=reuseport server.threads=1 load.connections=8 "
                                     "server.work_us=0 load.keepalive=false")
    s = Summary(**session(), runs=tuple(runs), points=tuple(points))
    back = records.load(json.loads(json.dumps(s.dump())))
    assert back == s and back.points[2].key == points[2].key


def test_an_old_summary_compares_against_a_new_one_point_by_point():
    from orchestrator import compare, store

    old = store.load_summary(DATA / "closed-loop")  # recorded as version 2
    new = records.load(json.loads(json.dumps(old.dump())))  # the same runs as version 3
    c = compare.compare(old, new, names=("v2", "v3"))
    assert len(c.changes) == 4 and not c.only_a and not c.only_b
    assert all(ch.ratio and abs(ch.ratio.estimate - 1) < 1e-9 for ch in c.changes)
