"""Capacity searches with real runs: the project's server, orchestrate-load open loop, on
loopback and across a packet-rate-capped lab link (real sshd hosts, deployed with Ansible).

The decision logic alone is tested in tests/test_capacity.py; here the figures are measured.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from orchestrator.capacity import DECISIVE

from testkit import REPO, orchestrate

pytestmark = pytest.mark.slow

CAP = 20_000  # packets/s each way on the capped lab's links


def _summary(root: Path) -> tuple[Path, dict]:
    (folder,) = [p for p in root.glob("*/*") if p.is_dir()]
    return folder, json.loads((folder / "summary.json").read_text())


def _check_search(entry: dict, runs: dict[str, dict], precision_pct: float) -> None:
    """What every completed search must satisfy, whatever this machine measured."""
    steps = entry["steps"]
    assert entry["bound"] == "found", entry["evidence"]
    passed = [s["rate"] for s in steps if s["passed"]]
    failed = [s["rate"] for s in steps if not s["passed"]]
    cap = entry["capacity"]
    assert cap == max(passed)
    above = min(r for r in failed if r > cap)  # the step that bounds it from above
    assert (above - cap) / cap <= precision_pct / 100 + 1e-9
    # doubling first: the first steps go 1x, 2x, 4x ... of min_rate until the first failure
    first_fail = next(i for i, s in enumerate(steps) if not s["passed"])
    assert [s["rate"] for s in steps[:first_fail + 1]] == [steps[0]["rate"] * 2 ** i
                                                           for i in range(first_fail + 1)]
    for s in steps:  # every step is real runs of the summary, at its rate, open loop
        for rid in s["run_ids"]:
            assert runs[rid]["rate"]["target"] == pytest.approx(s["rate"])
        if runs[s["run_ids"][0]]["rate"]["achieved"] < DECISIVE * s["rate"]:
            assert not s["passed"] and len(s["run_ids"]) == 1, s  # a tenth unsent: no second run
        # decided on its runs' requests pooled (their histograms, read back from the results):
        # a pooled percentile lies between the runs' own
        assert s["pooled"] is True
        own = [runs[rid]["latency_ms"]["p99"] for rid in s["run_ids"]]
        assert min(own) / 1.002 <= s["latency_ms"]["p99"] <= max(own) * 1.002, (s, own)
    assert entry["runs"] == sum(len(s["run_ids"]) for s in steps)
    assert f"{cap:,.0f} req/s met the SLO" in entry["evidence"]


SERVER_WORK = re.compile(r"^server work on CPU \S+: its threads ([\d.]+)% .* = ([\d.]+)% .*\(the CPU was "
                         r"([\d.]+)% busy")


def _check_busy_counted_once(runs: list[dict]) -> None:
    """Issue 22, capacity on loopback: in every step's evidence the server's work is at most
    its CPU's measured busy share, and the CPU µs per request (usr + sys + soft) times QPS is
    the server cores' measured busy share within 5% either way (busy counted once, none missed).

    mpstat's busy also counts every other task that ran on the core (this machine's 2 CPUs are
    shared by other suites: before it was subtracted, a run here read the median run's cost x
    QPS at 0.31 of CPU 0's busy). The run measures that time over mpstat's own intervals
    (`other`: every task's time on the CPU from cpuacct, less the server's threads and
    ksoftirqd's, read as each interval's row comes out) and the comparison takes it out. Read
    over the window's edges instead (~2 s, other suites' work comes in bursts), one run in five
    read 0.76. Where pidstat reads the threads a little above that (two tools, two samplings),
    the process's own time is the floor. Printed per run: cost x QPS, busy, other, the ratio."""
    shares = []
    for r in runs:
        a = r["analysis"]
        for e in a["evidence"]:
            if m := SERVER_WORK.match(e):
                # the softirq added never takes the work past the CPU's busy (pidstat's threads
                # alone may read a point or two above mpstat's busy: two tools, two samplings)
                assert float(m[2]) <= max(float(m[1]), float(m[3])) + 0.5, e
        cost = a.get("cpu_us_per_request") or {}
        host = r.get("server_host_cpu") or {}
        busy = sum(c["busy"] for c in (host.get("cpus") or {}).values() if c.get("busy") is not None)
        if cost.get("total") is not None and r.get("qps") and busy:
            assert host.get("other") is not None, host  # measured here (cgroup v1's cpuacct)
            process = (cost["usr"] + cost["sys"]) * r["qps"] / 1e4
            server = max(busy - host["other"], process)
            shares.append(cost["total"] * r["qps"] / 1e4 / server)
            print(f"rate {r['rate']['target']:>9,.0f}: cost x QPS {cost['total'] * r['qps'] / 1e4:5.1f}% "
                  f"busy {busy:5.1f}% other {host['other']:5.1f}% ratio {shares[-1]:.3f}")
    assert shares and all(0.95 <= x <= 1.05 for x in shares), shares
    print(f"cost x QPS / server cores' busy less other tasks': median {statistics.median(shares):.3f}, "
          f"range {min(shares):.3f}-{max(shares):.3f} over {len(shares)} runs")


def test_loopback_search_finds_a_capacity_and_draws_its_curve(tmp_path, run_id):
    done = orchestrate("run", str(REPO / "scenarios" / "capacity.yaml"), "--results", str(tmp_path),
                       "--run-id", run_id, "--set", "load.duration=1s",
                       "--set", "load.warmup=300ms", "--set", "load.search.slo.p99=20ms",
                       "--set", "load.search.precision=35%", "--set", "load.search.min_rate=20000",
                       "--set", "load.search.knee_runs=2",  # the machinery; the count is unit-tested
                       timeout=900, report=True)
    assert done.returncode == 0, done.stderr
    folder, s = _summary(tmp_path)
    runs = {r["run_id"]: r for r in s["runs"]}
    assert len(s["capacity"]) == 1  # one search (repeat: N runs N independent ones)
    for entry in s["capacity"]:
        # found: above min_rate, below max_rate. 35%: the bisection's machinery in one or two
        # steps (a 40-80k bracket ends at 60k, 33%); at 20% a further step sat at the knee,
        # where a step runs up to max_repeat (5) times (2-5 of 10-14 runs here). The capped
        # test below holds a search to 10%.
        _check_search(entry, runs, 35)
    _check_busy_counted_once(s["runs"])
    # (how closely two searches agree depends on the machine's noise: bench/capacity_search.py
    # measures it, bench/RESULTS.md records it)
    a = s["capacity"][0]["capacity"]
    assert "capacity" in done.stderr and "(found," in done.stderr
    # the search's runs draw the latency-against-rate curve in the report
    assert (folder / "plots" / "latency_vs_rate.png").stat().st_size > 10_000
    html = (folder / "report.html").read_text()
    assert "Capacity under the SLO" in html and f"{a:,.0f}" in html


def test_capped_link_capacity_is_at_most_the_cap_and_network_bound(tmp_path, run_id, warm_lab):
    # the session's lab (conftest.py), capped at CAP and deployed already: the run skips the
    # deploy (its stamps hold this build-input hash), and a lab whose cap is not CAP is refused
    lab, _, _ = warm_lab
    # A search that brackets the cap at once (the old one, from a quarter of it at 2 runs a
    # step, took 66 s in CI): a pass at 0.52x the cap, a sure failure at 1.04x (a request is a
    # packet each way at least: achieved <= 96%), then 0.78x, 0.91x and 0.975x, so the capacity
    # is 0.91x or 0.975x of the cap, both at or above the 0.9x asserted below (at 0.91x the
    # link carried 18,201 packets/s here). A p99 of 50 ms, not the scenario's 20: at 0.975x a
    # step read 0.3-43 ms here, as the link's queue, not this machine, decides. One run a step
    # (a failure is still confirmed by a second): the knee-runs machinery is the loopback
    # test's. UDP only in the baseline: the ceilings read here are packet rates.
    done = orchestrate("run", str(REPO / "scenarios" / "capacity-capped.yaml"), "--results", str(tmp_path),
                       "--run-id", run_id, "--set", f"hosts.lab={lab}", "--set", f"hosts.link.pps={CAP}",
                       "--set", "baseline.iperf3.duration=2s", "--set", "baseline.iperf3.tcp=false",
                       "--set", "load.warmup=300ms", "--set", "load.search.precision=10%",
                       "--set", "load.search.slo.p99=50ms",
                       "--set", f"load.search.min_rate={CAP * 52 // 100}",
                       "--set", "load.search.knee_runs=1", timeout=900)
    assert done.returncode == 0, done.stderr
    _, s = _summary(tmp_path)
    runs = {r["run_id"]: r for r in s["runs"]}
    (entry,) = s["capacity"]
    _check_search(entry, runs, 10)
    # every request is a packet each way at least: the capacity cannot pass the link's cap
    assert entry["capacity"] <= CAP
    at = next(st for st in entry["steps"] if st["rate"] == entry["capacity"])
    a = runs[at["run_ids"][-1]]["analysis"]
    # the link set it: at the capacity the server's packet rate is at the cap
    assert max(a["packet_rate"]["rx"], a["packet_rate"]["tx"]) >= 0.9 * CAP, a["packet_rate"]
    # every request arrives in a packet of its own at least: sar's intervals must be the load's
    # (an interval half outside it read 0.90 packets/request here)
    assert a["packets_per_request"]["rx"] >= 0.97, a["packets_per_request"]
    # A direction iperf3 measured while CPU-bound is only a lower bound; one clean direction
    # is enough to name the network (the link caps both ways alike).
    both_bounded = all(any(p.get(way, {}).get("lower_bound") for p in s["baseline"].values()
                           if isinstance(p, dict))
                       for way in ("udp", "udp_reverse"))
    if not both_bounded and a["verdict"] != "network-bound":
        # the lab's hosts share this machine's 2 CPUs: where one was full at the cap too, the
        # ceiling rule names both rather than the network alone (issue 22: the same check as
        # the allowance rule's)
        assert entry["verdict_at_capacity"] == a["verdict"] == "inconclusive", a["evidence"]
        assert "the network ceiling was reached while a CPU was saturated: both limit the run" \
            in a["evidence"], a["evidence"]
    elif not both_bounded:
        assert entry["verdict_at_capacity"] == "network-bound", a["evidence"]
        # queueing for the 32 busy connections is the link's doing, not the generator's
        assert a["verdict"] == "network-bound" and a["rule"] == "ceiling", a["evidence"]
    else:  # iperf3 itself was CPU-bound both ways here: the network unproven
        assert entry["verdict_at_capacity"] != "network-bound"
        assert any("is a lower bound" in e for e in a["evidence"]), a["evidence"]
    # above the capacity the requests that could not be served queued for the connections,
    # and with the generator's CPU clear that is not read as a saturated client
    over = next(st for st in entry["steps"] if not st["passed"] and st["rate"] > entry["capacity"])
    b = runs[over["run_ids"][-1]]["analysis"]
    assert b["verdict"] != "client-bound" or not any("waited for a free connection" in e
                                                     for e in b["evidence"]), b["evidence"]
