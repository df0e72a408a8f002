"""iperf3: the packets-per-second (UDP, small datagrams) and TCP throughput baseline.

Which counters mean what, in iperf3's JSON (checked on iperf 3.12, client side, with and
without -R):
- `end.sum_sent` is the sender's own view: `packets` it wrote, over `seconds`.
- `end.sum_received` is the receiver's view, sent back to the client at the end of the test:
  `packets` is the highest sequence number it saw and `lost_packets` the gaps, so what
  actually arrived is `packets - lost_packets` (equal to `bytes / length`).
- `end.sum` mixes the two (the sender's bytes and rate with the receiver's loss), so it is
  NOT a delivered rate; it is only used when sum_sent/sum_received are missing (old iperf3).
So: pps_sent = sum_sent.packets / sum_sent.seconds and pps_delivered = (sum_received.packets
- sum_received.lost_packets) / sum_received.seconds. packets_lost = sent - delivered, which
also counts datagrams still in flight at the end (iperf3's lost_packets does not).
With -R the server sends: the client's `remote_total` CPU is then the sender's.

iperf3's `cpu_utilization_percent` is the process's user+system time over the test's wall
time, so 100 means one CPU (iperf3 before 3.16 runs all its streams on one thread). A
measurement is CPU-bound (`cpu_bound`) when the receiver used a full CPU, or when the sender
did and nearly everything it sent arrived: then the sender, not the path, set the rate.
A sender at 100% that a capped path drops packets from is not the limit (the cap is).
"""

from __future__ import annotations

import json
import math
from typing import Any

from orchestrator.records import TcpThroughput, UdpCeiling
from orchestrator.tools.base import ToolError

BINARY = "iperf3"
ENV: dict[str, str] = {"LC_ALL": "C"}

# iperf3's UDP length is the UDP payload; below 16 bytes it can't carry its sequence header
MIN_UDP_LENGTH = 16


def _common(host: str, port: int, duration_s: float, reverse: bool) -> list[str]:
    if duration_s <= 0 or duration_s != int(duration_s):
        raise ValueError(f"iperf3 duration must be a whole number of seconds > 0: {duration_s}")
    argv = [BINARY, "-c", host, "-p", str(port), "-t", str(int(duration_s)), "-J"]
    return [*argv, "-R"] if reverse else argv


def server_command(port: int, *, one_off: bool = True, bind: str | None = None) -> list[str]:
    """iperf3 server; one_off (-1) exits after one test, so nothing is left running."""
    argv = [BINARY, "-s", "-p", str(port), "-J"]
    if bind:
        argv += ["-B", bind]
    return [*argv, "-1"] if one_off else argv


def udp_command(
    host: str,
    port: int,
    *,
    length: int = 64,
    duration_s: float,
    bitrate: str = "0",
    reverse: bool = False,
    parallel: int = 1,
) -> list[str]:
    """UDP client: `length`-byte datagrams as fast as possible (bitrate '0' = unlimited)."""
    if length < MIN_UDP_LENGTH:
        raise ValueError(f"iperf3 UDP length must be >= {MIN_UDP_LENGTH} bytes, got {length}")
    if parallel < 1:
        raise ValueError("iperf3 parallel streams must be >= 1")
    argv = _common(host, port, duration_s, reverse)
    argv += ["-u", "-l", str(length), "-b", str(bitrate)]
    return [*argv, "-P", str(parallel)] if parallel > 1 else argv


def tcp_command(host: str, port: int, *, duration_s: float, reverse: bool = False) -> list[str]:
    return _common(host, port, duration_s, reverse)


def _load(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        # without valid JSON, iperf3's own words are the best message there is
        line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "no output")
        raise ToolError("iperf3", line) from None
    if not isinstance(doc, dict):
        raise ToolError("iperf3", "unexpected JSON output")
    if doc.get("error"):
        raise ToolError("iperf3", str(doc["error"]))
    if not doc.get("end"):
        raise ToolError("iperf3", "no end-of-test results in output")
    return doc


def _cpu(doc: dict[str, Any], reverse: bool) -> tuple[float, float]:
    cpu = doc["end"].get("cpu_utilization_percent", {})
    local, remote = float(cpu.get("host_total", 0.0)), float(cpu.get("remote_total", 0.0))
    # the client ran this parser's output: it sends unless reversed
    return (remote, local) if reverse else (local, remote)


def _reverse(doc: dict[str, Any]) -> bool:
    return bool(doc.get("start", {}).get("test_start", {}).get("reverse", 0))


def parse_udp(text: str) -> UdpCeiling:
    """Parse the client's `iperf3 -u -J` output (see the module doc for the counters)."""
    doc = _load(text)
    end = doc["end"]
    test = doc.get("start", {}).get("test_start", {})
    if test.get("protocol", "UDP") != "UDP":
        raise ToolError("iperf3", f"expected a UDP test, got {test.get('protocol')}")
    try:
        sent = end.get("sum_sent") or end["sum"]
        recv = end.get("sum_received") or end["sum"]
        packets_sent = int(sent["packets"])
        delivered = max(0, int(recv["packets"]) - int(recv["lost_packets"]))
        delivered = min(delivered, packets_sent)
        send_s, recv_s = float(sent["seconds"]), float(recv["seconds"])
        length = int(test.get("blksize") or round(int(sent["bytes"]) / max(packets_sent, 1)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ToolError("iperf3", f"missing UDP counter in output: {exc}") from exc
    if packets_sent == 0 or send_s <= 0 or recv_s <= 0:
        raise ToolError("iperf3", "the UDP test sent no packets")
    reverse = _reverse(doc)
    cpu_sender, cpu_receiver = _cpu(doc, reverse)
    lost = packets_sent - delivered
    return UdpCeiling(
        packets_sent=packets_sent, packets_delivered=delivered, packets_lost=lost,
        pps_sent=packets_sent / send_s, pps_delivered=delivered / recv_s,
        loss_pct=100.0 * lost / packets_sent, length=length, duration_s=send_s,
        cpu_sender_pct=cpu_sender, cpu_receiver_pct=cpu_receiver, reverse=reverse,
        streams=int(test.get("num_streams", 1)), processes=1,
    )


CPU_BOUND_PCT = 90.0  # of one CPU
CPU_BOUND_MAX_LOSS_PCT = 5.0  # a sender at full CPU with less loss than this set the rate


def cpu_bound(r: UdpCeiling, *, sender_core: float | None = None, receiver_core: float | None = None,
              receiver_buffer_drops: int | None = None, threshold: float = CPU_BOUND_PCT) -> str | None:
    """Why this measurement was limited by iperf3's own CPU rather than the path, else None.
    `*_core`: each side's share of its pinned core, if known: iperf3's own CPU plus the core's
    softirq (the network stack working for it, which iperf3's own figure leaves out).
    `receiver_buffer_drops`: the receiving host's UDP RcvbufErrors over the test (/proc/net/snmp)."""
    receiver = max(r.cpu_receiver_pct or 0.0, receiver_core or 0.0)
    sender = max(r.cpu_sender_pct or 0.0, sender_core or 0.0)
    loss = r.loss_pct or 0.0
    # Datagrams dropped because the receiving socket's buffer was full: the receiver did not
    # keep up (its CPU, or a CPU it shares), so what arrived is what iperf3 could take.
    if receiver_buffer_drops and r.packets_lost and receiver_buffer_drops >= 0.5 * r.packets_lost \
            and loss >= 1.0:
        return (f"receiver could not keep up: {receiver_buffer_drops:,} datagrams dropped at its full "
                f"socket buffer ({loss:.1f}% loss)")
    if receiver >= threshold:
        return f"receiver at {receiver:.0f}% of a CPU"
    if sender >= threshold and loss < CPU_BOUND_MAX_LOSS_PCT:
        return f"sender at {sender:.0f}% of a CPU with {loss:.1f}% loss"
    return None


def combine(results: list[UdpCeiling]) -> UdpCeiling:
    """Parallel iperf3 processes (one per core) as one measurement: rates add up; the CPU
    figures are the busiest process's, so one CPU-bound process marks the whole as CPU-bound."""
    if not results:
        raise ValueError("nothing to combine")
    if len(results) == 1:
        return results[0]
    sent = sum(r.packets_sent or 0 for r in results)
    delivered = sum(r.packets_delivered or 0 for r in results)
    return UdpCeiling(
        packets_sent=sent, packets_delivered=delivered, packets_lost=sent - delivered,
        pps_sent=sum(r.pps_sent or 0.0 for r in results),
        pps_delivered=sum(r.pps_delivered or 0.0 for r in results),
        loss_pct=100.0 * (sent - delivered) / sent if sent else 0.0, length=results[0].length,
        duration_s=max(r.duration_s or 0.0 for r in results),
        cpu_sender_pct=max(r.cpu_sender_pct or 0.0 for r in results),
        cpu_receiver_pct=max(r.cpu_receiver_pct or 0.0 for r in results), reverse=results[0].reverse,
        streams=sum(r.streams for r in results), processes=sum(r.processes for r in results))


def parse_tcp(text: str) -> TcpThroughput:
    """Parse the client's `iperf3 -J` (TCP) output: received rate and sender retransmits."""
    doc = _load(text)
    end = doc["end"]
    try:
        sent, recv = end["sum_sent"], end["sum_received"]
        bps, bps_sent = float(recv["bits_per_second"]), float(sent["bits_per_second"])
        seconds = float(recv["seconds"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ToolError("iperf3", f"missing TCP counter in output: {exc}") from exc
    if not math.isfinite(bps) or seconds <= 0:
        raise ToolError("iperf3", "the TCP test transferred nothing")
    retrans = sent.get("retransmits")
    reverse = _reverse(doc)
    cpu_sender, cpu_receiver = _cpu(doc, reverse)
    return TcpThroughput(
        bits_per_second=bps, bits_per_second_sent=bps_sent,
        retransmits=int(retrans) if retrans is not None else None, duration_s=seconds,
        cpu_sender_pct=cpu_sender, cpu_receiver_pct=cpu_receiver, reverse=reverse,
    )
