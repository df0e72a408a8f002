"""The table `orchestrate run` ends with: one line per run, the numbers a user compares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.records import Summary, as_summary


def _fmt(v: Any, spec: str, missing: str = "-") -> str:
    return missing if v is None else format(v, spec)


def _baseline_pps(summary: Summary) -> str:
    parts = []
    for path, entry in summary.baseline.items():
        udp, tcp = entry.udp, entry.tcp
        if udp:
            parts.append(f"{path}: {udp.pps_delivered or 0:,.0f} pps delivered "
                         f"({udp.pps_sent or 0:,.0f} sent, {udp.loss_pct or 0:.1f}% loss)")
            if tcp:
                parts[-1] += f", TCP {(tcp.bits_per_second or 0) / 1e9:.2f} Gbit/s"
    return "; ".join(parts) or "not measured"


def render(summary: Summary | Mapping[str, Any]) -> str:
    summary = as_summary(summary)
    lines = [f"baseline (iperf3): {_baseline_pps(summary)}"]
    head = (f"{'run':<30} {'qps':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
            f"{'err':>5} {'non2xx':>6} {'client%':>7}  server threads usr/sys% (vcs/s, nvcs/s)")
    lines += [head, "-" * len(head)]
    for r in summary.runs:
        lat = r.latency_ms
        client = [c.busy for c in r.client_cpu.values() if c.busy is not None]
        threads = r.server_cpu.threads
        per_thread = " ".join(
            f"{t.usr or 0:.0f}/{t.sys or 0:.0f}({t.cswch_s or 0:.0f},{t.nvcswch_s or 0:.0f})"
            for t in threads) or "-"
        lines.append(
            f"{r.label:<30} {r.qps or 0:>10,.0f} {_fmt(lat.p50, '.2f'):>8} "
            f"{_fmt(lat.p90, '.2f'):>8} {_fmt(lat.p99, '.2f'):>8} "
            f"{_fmt(lat.max, '.2f'):>8} {_fmt(r.errors.total if r.errors else None, 'd'):>5} "
            f"{_fmt(r.non_2xx, 'd'):>6} "
            f"{_fmt(max(client) if client else None, '.0f'):>7}  {per_thread}")
    if summary.status and summary.status != "complete":
        lines.append(f"status: {summary.status}" + (f" ({summary.error})" if summary.error else ""))
    return "\n".join(lines)
