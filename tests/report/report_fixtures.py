"""Test input for the report tests: a real results folder, and fabricated analysis for it.

data/loopback-sample/summary.json is a real capture (`orchestrate run scenarios/loopback.yaml
--set load.duration=2s --set repeat=2 --set 'server.threads=[1,2]'` on a shared 2-core VM, so its
numbers are noisy and one run lacks telemetry). It predates the analysis step, so `fabricate_analysis`
adds `analysis`/`points` in the shape the analysis step writes. THE FABRICATED NUMBERS ARE TEST INPUT,
derived from the run's own figures only so that charts have plausible scale; they are not a verdict.
"""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path
from typing import Any

from orchestrator.analysis import VERDICTS

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "loopback-sample"


def fabricate_analysis(summary: dict[str, Any]) -> dict[str, Any]:
    """A COPY of summary with made-up run["analysis"], run["perf"] (run 1) and summary["points"]."""
    s = copy.deepcopy(summary)
    ceiling = (s.get("runs") or [{}])[0].get("baseline", {}).get("pps_delivered")
    for i, r in enumerate(s.get("runs", [])):
        qps = r.get("qps") or 0.0
        ppr = 1.0 + 0.05 * (i % 3)
        rate = {"rx": qps * ppr, "tx": qps * ppr * 1.01}
        cpu = r.get("server_cpu") or {}
        busy = (cpu.get("usr") or 0) + (cpu.get("sys") or 0)
        client = next(iter((r.get("client_cpu") or {}).values()), {}).get("busy")
        threads = (r.get("server_counters") or {}).get("threads") or []
        reqs = [t["requests"] for t in threads]
        conns = [t["connections"] for t in threads]
        verdict = VERDICTS[i % len(VERDICTS)]
        share = f" = {qps * ppr / ceiling:.0%} of the {ceiling:,.0f} pps ceiling" if ceiling else ""
        r["analysis"] = {
            "verdict": verdict,
            "evidence": [f"[test input] QPS {qps:,.0f} x {ppr:.2f} packets/request = "
                         f"{qps * ppr:,.0f} pps{share}",
                         f"[test input] server threads {busy:.0f}% busy"],
            "flags": (["load generator at 99% CPU: the result says little about the server"]
                      if (client or 0) >= 95 else []),
            "packets_per_request": {"rx": ppr, "tx": ppr * 1.01, "source": "test input"},
            "packet_rate": rate,
            "ceiling_pps": ceiling,
            "ceiling_use": {k: v / ceiling for k, v in rate.items()} if ceiling else None,
            "server_busy_pct": busy,
            "server_cpu_split_pct": {"usr": cpu.get("usr"), "sys": cpu.get("sys"), "soft": 10.0 + i},
            "client_busy_pct": client,
            "cpu_us_per_request": ({"usr": 1.0, "sys": 5.0, "soft": 1.5, "total": 7.5} if i % 4 != 3
                                   else {"usr": None, "sys": 4.0, "soft": None, "total": None}),
            "switches": {"voluntary_s": cpu.get("cswch_s"), "involuntary_s": cpu.get("nvcswch_s")},
            "balance": ({"threads": threads, "requests_max_over_mean": max(reqs) / statistics.mean(reqs),
                         "connections_max_over_mean": max(conns) / statistics.mean(conns)}
                        if reqs and statistics.mean(reqs) and statistics.mean(conns) else None),
        }
    if s.get("runs"):
        r0 = s["runs"][0]
        r0["perf"] = {"flamegraph": f"raw/{r0['run_id']}/localhost/flamegraph.svg"}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in s.get("runs", []):
        groups.setdefault((r["arch"], r["server_threads"], r["connections"]), []).append(r)
    s["points"] = []
    for (arch, threads, conns), rs in groups.items():
        q = [r["qps"] for r in rs]
        med = statistics.median(q)
        verdicts: dict[str, int] = {}
        for r in rs:
            verdicts[r["analysis"]["verdict"]] = verdicts.get(r["analysis"]["verdict"], 0) + 1
        s["points"].append({
            "arch": arch, "server_threads": threads, "connections": conns, "n": len(rs),
            "qps_median": med, "qps_min": min(q), "qps_max": max(q),
            "qps_mad": statistics.median(abs(x - med) for x in q),
            "p50_ms_median": statistics.median(r["latency_ms"]["p50"] for r in rs),
            "p99_ms_median": statistics.median(r["latency_ms"]["p99"] for r in rs),
            "verdicts": verdicts,
        })
    return s


def write_summary(folder: Path, summary: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return folder
