"""The table `orchestrate run` ends with: one line per run, the numbers a user compares."""

from __future__ import annotations

from typing import Any


def _fmt(v: Any, spec: str, missing: str = "-") -> str:
    return missing if v is None else format(v, spec)


def _baseline_pps(summary: dict[str, Any]) -> str:
    parts = []
    for path, entry in (summary.get("baseline") or {}).items():
        udp = entry.get("udp") or {}
        if udp:
            parts.append(f"{path}: {udp.get('pps_delivered', 0):,.0f} pps delivered "
                         f"({udp.get('pps_sent', 0):,.0f} sent, {udp.get('loss_pct', 0):.1f}% loss)")
        tcp = entry.get("tcp") or {}
        if tcp:
            parts[-1] += f", TCP {tcp.get('bits_per_second', 0) / 1e9:.2f} Gbit/s"
    return "; ".join(parts) or "not measured"


def render(summary: dict[str, Any]) -> str:
    runs = summary.get("runs", [])
    lines = [f"baseline (iperf3): {_baseline_pps(summary)}"]
    head = (f"{'run':<30} {'qps':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
            f"{'err':>5} {'non2xx':>6} {'client%':>7}  server threads usr/sys% (vcs/s, nvcs/s)")
    lines += [head, "-" * len(head)]
    for r in runs:
        lat = r.get("latency_ms", {})
        errs = sum((r.get("errors") or {}).values())
        client = [c.get("busy") for c in (r.get("client_cpu") or {}).values() if c.get("busy") is not None]
        threads = (r.get("server_cpu") or {}).get("threads", [])
        per_thread = " ".join(
            f"{t.get('usr', 0):.0f}/{t.get('sys', 0):.0f}"
            f"({t.get('cswch_s', 0):.0f},{t.get('nvcswch_s', 0):.0f})" for t in threads) or "-"
        lines.append(
            f"{r['run_id']:<30} {r.get('qps', 0):>10,.0f} {_fmt(lat.get('p50'), '.2f'):>8} "
            f"{_fmt(lat.get('p90'), '.2f'):>8} {_fmt(lat.get('p99'), '.2f'):>8} "
            f"{_fmt(lat.get('max'), '.2f'):>8} {errs:>5} {r.get('non_2xx', 0):>6} "
            f"{_fmt(max(client) if client else None, '.0f'):>7}  {per_thread}")
    status = summary.get("status", "")
    if status and status != "complete":
        lines.append(f"status: {status}" + (f" ({summary['error']})" if summary.get("error") else ""))
    return "\n".join(lines)
