"""iperf3 adapter: command lines and the UDP/TCP parsers on real captured JSON."""

from __future__ import annotations

import json
import subprocess

import pytest
from localservers import data, iperf3_server, need

from orchestrator import records
from orchestrator.tools import ToolError, iperf3


def end(name: str) -> dict:
    return json.loads(data(name))["end"]


# ---------------------------------------------------------------- commands

def test_udp_command():
    argv = iperf3.udp_command("127.0.0.1", 5201, length=64, duration_s=5, reverse=True,
                              parallel=2)
    assert argv[:7] == ["iperf3", "-c", "127.0.0.1", "-p", "5201", "-t", "5"]
    assert "-J" in argv and "-u" in argv and "-R" in argv
    assert argv[argv.index("-l") + 1] == "64"
    assert argv[argv.index("-b") + 1] == "0"
    assert argv[argv.index("-P") + 1] == "2"


def test_tcp_and_server_commands():
    assert iperf3.tcp_command("::1", 5201, duration_s=1) == [
        "iperf3", "-c", "::1", "-p", "5201", "-t", "1", "-J"]
    assert iperf3.server_command(5201) == ["iperf3", "-s", "-p", "5201", "-J", "-1"]
    assert "-1" not in iperf3.server_command(5201, one_off=False)
    assert iperf3.server_command(5201, bind="127.0.0.1")[-3:] == ["-B", "127.0.0.1", "-1"]


@pytest.mark.parametrize("kwargs", [{"length": 8}, {"duration_s": 0}, {"duration_s": 1.5},
                                    {"parallel": 0}])
def test_udp_command_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        iperf3.udp_command("127.0.0.1", 5201, **{"duration_s": 1, **kwargs})


# ---------------------------------------------------------------- UDP

def test_udp_delivered_is_the_receivers_count():
    r = iperf3.parse_udp(data("iperf3_udp.json"))
    e = end("iperf3_udp.json")
    assert r.packets_sent == e["sum_sent"]["packets"]
    delivered = e["sum_received"]["packets"] - e["sum_received"]["lost_packets"]
    assert r.packets_delivered == delivered == e["sum_received"]["bytes"] // 64
    assert r.packets_delivered < r.packets_sent  # loopback drops some at full speed
    # end.sum's rate is the sender's: the delivered rate must be below it
    assert r.pps_delivered < e["sum"]["bytes"] / 64 / e["sum"]["seconds"]
    assert r.pps_sent == pytest.approx(r.packets_sent / e["sum_sent"]["seconds"])
    assert r.packets_lost == r.packets_sent - r.packets_delivered
    assert r.loss_pct == pytest.approx(100 * r.packets_lost / r.packets_sent)
    assert r.length == 64 and not r.reverse and r.streams == 1
    cpu = e["cpu_utilization_percent"]
    assert (r.cpu_sender_pct, r.cpu_receiver_pct) == (cpu["host_total"], cpu["remote_total"])


def test_udp_reverse_swaps_sender_cpu_and_counts_tail_as_lost():
    r = iperf3.parse_udp(data("iperf3_udp_reverse.json"))
    e = end("iperf3_udp_reverse.json")
    assert r.reverse
    cpu = e["cpu_utilization_percent"]
    assert r.cpu_sender_pct == cpu["remote_total"]
    assert r.cpu_receiver_pct == cpu["host_total"]
    # the receiver saw fewer sequence numbers than were sent: those count as lost too
    assert e["sum_received"]["packets"] < e["sum_sent"]["packets"]
    assert r.packets_lost > e["sum_received"]["lost_packets"]
    assert r.packets_delivered == e["sum_received"]["bytes"] // 64


def test_udp_parallel_streams_are_summed():
    r = iperf3.parse_udp(data("iperf3_udp_parallel2.json"))
    e = end("iperf3_udp_parallel2.json")
    assert r.streams == 2
    assert r.packets_sent == sum(s["udp"]["packets"] for s in e["streams"])


def test_udp_refused_raises_iperf3_error():
    with pytest.raises(ToolError) as exc:
        iperf3.parse_udp(data("iperf3_refused.json"))
    assert exc.value.message == "unable to connect to server: Connection refused"


def test_udp_parser_refuses_tcp_output_and_garbage():
    with pytest.raises(ToolError, match="UDP"):
        iperf3.parse_udp(data("iperf3_tcp.json"))
    with pytest.raises(ToolError, match="iperf3: parameter error"):
        iperf3.parse_udp("iperf3: parameter error - must either be a client (-c) or server\n")
    with pytest.raises(ToolError):
        iperf3.parse_udp(data("iperf3_udp.json")[:500])  # cut short


def test_udp_without_sum_sent_falls_back_to_sum():
    doc = json.loads(data("iperf3_udp.json"))
    del doc["end"]["sum_sent"], doc["end"]["sum_received"]
    r = iperf3.parse_udp(json.dumps(doc))
    s = doc["end"]["sum"]
    assert r.packets_sent == s["packets"]
    assert r.packets_delivered == s["packets"] - s["lost_packets"]


# ---------------------------------------------------------------- TCP

def test_tcp_received_rate_and_retransmits():
    r = iperf3.parse_tcp(data("iperf3_tcp.json"))
    e = end("iperf3_tcp.json")
    assert r.bits_per_second == e["sum_received"]["bits_per_second"] > 1e8
    assert r.retransmits == e["sum_sent"]["retransmits"]
    assert not r.reverse


def test_tcp_reverse():
    r = iperf3.parse_tcp(data("iperf3_tcp_reverse.json"))
    e = end("iperf3_tcp_reverse.json")
    assert r.reverse
    assert r.bits_per_second == e["sum_received"]["bits_per_second"]
    assert r.retransmits == e["sum_sent"]["retransmits"]
    assert r.cpu_sender_pct == e["cpu_utilization_percent"]["remote_total"]


def test_tcp_refused():
    with pytest.raises(ToolError, match="Connection refused"):
        iperf3.parse_tcp(data("iperf3_refused.json"))


# ---------------------------------------------------------------- live

@pytest.mark.slow
def test_live_udp_small_packets(no_children):
    need("iperf3")
    with iperf3_server() as port:
        argv = iperf3.udp_command("127.0.0.1", port, length=64, duration_s=1)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                             env={"PATH": "/usr/bin:/bin", **iperf3.ENV})
    r = iperf3.parse_udp(out.stdout)
    assert r.pps_sent > 1000
    assert 0 < r.pps_delivered <= r.pps_sent * 1.01
    assert r.length == 64


# ---------------------------------------------------------------- CPU-bound ceilings

def udp(**kw) -> records.UdpCeiling:
    base = {"packets_sent": 1000, "packets_delivered": 990, "packets_lost": 10, "pps_sent": 200_000.0,
            "pps_delivered": 198_000.0, "loss_pct": 1.0, "length": 64, "duration_s": 5.0,
            "cpu_sender_pct": 40.0, "cpu_receiver_pct": 40.0}
    return records.UdpCeiling(**{**base, **kw})


def test_cpu_bound_from_iperf3s_own_figures_and_the_pinned_cores():
    assert iperf3.cpu_bound(udp()) is None
    assert iperf3.cpu_bound(udp(cpu_receiver_pct=97.0)) == "receiver at 97% of a CPU"
    assert iperf3.cpu_bound(udp(cpu_sender_pct=99.4)) == "sender at 99% of a CPU with 1.0% loss"
    # its own CPU plus the softirq on its pinned core: the network stack worked for it
    assert iperf3.cpu_bound(udp(), receiver_core=95.0) == "receiver at 95% of a CPU"


def test_drops_at_the_receivers_socket_buffer_mean_it_could_not_keep_up():
    lossy = udp(packets_sent=10_000, packets_delivered=6_000, packets_lost=4_000, loss_pct=40.0)
    assert iperf3.cpu_bound(lossy, receiver_buffer_drops=3_900) == (
        "receiver could not keep up: 3,900 datagrams dropped at its full socket buffer (40.0% loss)")
    # dropped elsewhere (a capped link's queue): the path set the rate
    assert iperf3.cpu_bound(lossy, receiver_buffer_drops=10) is None


def test_a_full_sender_on_a_capped_path_is_not_the_limit():
    # sends 10x what arrives: the path dropped them, the sender's CPU did not set the rate
    capped = udp(packets_sent=10_000, packets_lost=9_010, loss_pct=90.1, cpu_sender_pct=100.0)
    assert iperf3.cpu_bound(capped) is None


def test_parallel_processes_combine_into_one_measurement():
    a, b = udp(), udp(packets_sent=2000, packets_delivered=1980, packets_lost=20, loss_pct=1.0,
                      pps_delivered=100_000.0, cpu_sender_pct=99.0)
    c = iperf3.combine([a, b])
    assert (c.processes, c.packets_sent, c.packets_delivered) == (2, 3000, 2970)
    assert c.pps_delivered == 298_000.0 and c.loss_pct == pytest.approx(1.0)
    assert c.cpu_sender_pct == 99.0  # the busiest process: one at its CPU's limit marks the whole
    assert iperf3.cpu_bound(c) == "sender at 99% of a CPU with 1.0% loss"
    assert iperf3.cpu_bound(iperf3.combine([a, a])) is None
    assert iperf3.combine([a]) is a
    with pytest.raises(ValueError):
        iperf3.combine([])
