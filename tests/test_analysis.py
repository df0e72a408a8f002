"""The verdict rules on hand-made run records (each case sets only the numbers that decide it).
Real runs that must reach each verdict are in tests/test_verdicts.py."""

from __future__ import annotations

import pytest

from orchestrator import analysis

TH = analysis.Thresholds()


def record(*, qps=10_000.0, rx=10_000.0, tx=10_000.0, ceiling=50_000.0, server_core=50.0,
           thread_busy=40.0, client=50.0, vol=1000.0, invol=10.0, counters=None):
    return {
        "qps": qps, "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}, "non_2xx": 0,
        "baseline": {"pps_delivered": ceiling, "pps_delivered_reverse": ceiling},
        "telemetry": {"sar": {"srv": {"interfaces": {"eth0": {"rx_pps": rx, "tx_pps": tx},
                                                      "lo": {"rx_pps": 5, "tx_pps": 5}},
                                      "iseg_s": rx, "oseg_s": tx, "retrans_s": 0.0}}},
        "server_host_cpu": {"cpus": {"0": {"busy": server_core, "usr": 10, "sys": 30, "soft": 10}}},
        "server_cpu": {"threads": [{"tid": 1, "busy": thread_busy, "usr": 10, "sys": thread_busy - 10}],
                       "usr": 10.0, "sys": thread_busy - 10, "cswch_s": vol, "nvcswch_s": invol},
        "client_cpu": {"cli": {"busy": client}},
        "server_counters": counters,
    }


def verdict(rec, loopback=False):
    return analysis.analyse_run(rec, server="srv", interface=None, loopback=loopback, th=TH)


def test_network_bound_names_the_ceiling():
    a = verdict(record(qps=24_500, rx=24_600, tx=49_500, ceiling=50_000))
    assert a["verdict"] == analysis.NETWORK
    assert a["evidence"][0].startswith("QPS 24,500 x 2.02 packets/request = 49,500 pps (server tx) = 99% "
                                       "of the 50,000 pps ceiling")
    assert a["packets_per_request"]["rx"] == pytest.approx(1.004, abs=1e-3)
    assert a["ceiling_use"]["tx"] == pytest.approx(0.99)


def test_server_bound_when_its_thread_is_full():
    a = verdict(record(server_core=99, thread_busy=98, client=60))
    assert a["verdict"] == analysis.SERVER
    assert "busiest server thread 98%" in a["evidence"][0]


def test_server_bound_when_preempted_on_a_shared_cpu():
    a = verdict(record(server_core=100, thread_busy=45, client=40, vol=300, invol=400))
    assert a["verdict"] == analysis.SERVER
    assert "preempted" in " ".join(a["evidence"])


def test_client_bound_when_the_load_generator_is_full_and_the_server_waits():
    a = verdict(record(server_core=35, thread_busy=30, client=100, vol=900, invol=20))
    assert a["verdict"] == analysis.CLIENT
    assert a["evidence"][0] == "load generator 100% busy (threshold 90%)"
    assert any("starved of requests" in e for e in a["evidence"])
    assert any(f.startswith("load generator at 100% CPU") for f in a["flags"])


def test_both_saturated_is_inconclusive_and_flagged():
    a = verdict(record(server_core=99, thread_busy=97, client=99, vol=900, invol=20))
    assert a["verdict"] == analysis.INCONCLUSIVE
    assert any("both saturated" in e for e in a["evidence"])


def test_loopback_ceiling_does_not_override_saturated_cpus():
    rec = record(qps=60_000, rx=120_000, tx=120_000, ceiling=110_000, server_core=99, thread_busy=98,
                 client=70)
    assert verdict(rec, loopback=True)["verdict"] == analysis.SERVER
    rec = record(qps=60_000, rx=120_000, tx=120_000, ceiling=110_000)
    assert verdict(rec, loopback=True)["verdict"] == analysis.NETWORK


def test_thresholds_come_from_the_scenario():
    rec = record(server_core=85, thread_busy=85, client=40)
    assert verdict(rec)["verdict"] == analysis.INCONCLUSIVE
    low = analysis.Thresholds(server_busy=80)
    assert analysis.analyse_run(rec, server="srv", interface=None, loopback=False,
                                th=low)["verdict"] == analysis.SERVER


def test_cost_per_request_and_balance():
    counters = {"threads": [{"thread": 0, "connections": 30, "requests": 6000},
                            {"thread": 1, "connections": 34, "requests": 4000}]}
    a = verdict(record(qps=10_000, thread_busy=50, counters=counters))
    cost = a["cpu_us_per_request"]
    # usr 10% + sys 40% of one CPU at 10,000 req/s = 50 us; softirq 10% of one CPU = 10 us
    assert cost == {"usr": 10.0, "sys": 40.0, "soft": 10.0, "total": 60.0}
    assert a["balance"]["requests_max_over_mean"] == 1.2
    assert a["balance"]["connections_max_over_mean"] == pytest.approx(34 / 32, abs=1e-3)


def test_missing_packet_counters_fall_back_to_the_default_and_say_so():
    rec = record(qps=24_000, ceiling=50_000)
    rec["telemetry"] = {}
    a = verdict(rec)
    assert a["packets_per_request"] is None
    assert "packets per request not measured; assumed 2" in a["flags"]


def test_points_median_and_spread():
    runs = [{"arch": "reuseport", "server_threads": 1, "connections": 8, "qps": q,
             "latency_ms": {"p50": 1.0, "p99": p99}, "analysis": {"verdict": "server-bound"}}
            for q, p99 in ((100.0, 5.0), (110.0, 6.0), (130.0, 9.0))]
    (p,) = analysis.summarise_points(runs)
    assert (p["n"], p["qps_median"], p["qps_min"], p["qps_max"]) == (3, 110.0, 100.0, 130.0)
    assert p["qps_mad"] == 10.0
    assert p["p99_ms_median"] == 6.0 and p["verdicts"] == {"server-bound": 3}
    assert p["unstable"] is True  # std dev 15.3 >= 10% of the mean 113.3


def test_cloud_nic_allowance_counters_are_direct_evidence():
    rec = record(qps=20_000, rx=20_000, tx=20_000, ceiling=100_000, server_core=40, client=40)
    rec["nic_allowances"] = {"server-1": {"exceeded": {"pps_allowance_exceeded": 1234}, "reset": False}}
    a = verdict(rec)
    assert a["verdict"] == analysis.NETWORK
    assert a["evidence"][0] == ("server-1: the NIC dropped or queued packets over its allowance: "
                                "pps_allowance_exceeded +1,234")


def test_server_bound_when_waiting_in_the_run_queue():
    rec = record(server_core=100, thread_busy=36, client=67, vol=2300, invol=42)
    rec["server_cpu"]["threads"][0]["wait"] = 37.0
    a = verdict(rec)
    assert a["verdict"] == analysis.SERVER
    assert "a server thread waited for a CPU 37% of the time (run-queue delay)" in " ".join(a["evidence"])
