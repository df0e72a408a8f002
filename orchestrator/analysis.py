"""Explain the number: packets per request, ceiling use, the bottleneck verdict, cost per request.

Reads run records (summary.json), never raw files. Each verdict carries the
numbers that decided it, so a reader can check the reasoning, as the reference
write-up did by hand from iperf3, pidstat and htop.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

NETWORK, SERVER, CLIENT, INCONCLUSIVE = "network-bound", "server-bound", "client-bound", "inconclusive"


@dataclass(frozen=True)
class Thresholds:
    """Percentages; the scenario's `thresholds` section overrides these defaults."""

    ceiling_use: float = 90.0
    server_busy: float = 90.0
    client_busy: float = 90.0
    packets_per_request: float = 2.0  # used only when packets could not be counted

    @classmethod
    def from_scenario(cls, sc: Any) -> Thresholds:
        t = sc.thresholds
        return cls(t.ceiling_use, t.server_busy, t.client_busy, t.packets_per_request)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) else None


def _server_interface(run: dict[str, Any], server: str, interface: str | None) -> tuple[str, dict] | None:
    """The server host's interface that carried the load: the named one, else the busiest."""
    ifaces = ((run.get("telemetry") or {}).get("sar") or {}).get(server, {}).get("interfaces") or {}
    if interface and interface in ifaces:
        return interface, ifaces[interface]
    if not ifaces:
        return None
    name = max(ifaces, key=lambda k: (ifaces[k].get("rx_pps") or 0) + (ifaces[k].get("tx_pps") or 0))
    return name, ifaces[name]


def packets(run: dict[str, Any], server: str, interface: str | None,
            loopback: bool) -> dict[str, Any] | None:
    """Packets per request and packet rate on the server's interface during the load window.

    Across hosts, rx = requests arriving and tx = responses leaving. On loopback
    every packet is counted once as rx and once as tx on `lo`, so rx alone is
    all the packets of both directions, which is what the loopback ceiling
    (iperf3 over lo) measures.
    """
    found = _server_interface(run, server, interface)
    qps = _num(run.get("qps")) or 0.0
    if not found or qps <= 0:
        return None
    name, iface = found
    rx, tx = float(iface.get("rx_pps") or 0), float(iface.get("tx_pps") or 0)
    if rx + tx <= 0:
        return None
    out: dict[str, Any] = {"interface": name, "rx_pps": rx, "tx_pps": tx,
                           "rx_per_request": rx / qps, "tx_per_request": tx / qps,
                           "drops_s": float(iface.get("rx_drop_s") or 0) + float(iface.get("tx_drop_s") or 0)}
    out["per_request"] = out["rx_per_request"] if loopback else out["rx_per_request"] + out["tx_per_request"]
    tcp = (run.get("telemetry") or {}).get("sar", {}).get(server, {})
    if _num(tcp.get("iseg_s")) is not None:
        segs = tcp["iseg_s"] + tcp.get("oseg_s", 0)
        out["tcp_segments_per_request"] = segs / qps / (2 if loopback else 1)
        out["retrans_s"] = tcp.get("retrans_s")
    return out


def _server_cpus(run: dict[str, Any]) -> dict[str, Any]:
    """Busy %, and usr/sys/soft of the server's pinned CPUs (mpstat), with pidstat's threads."""
    cpus = ((run.get("server_host_cpu") or {}).get("cpus") or {}).values()
    rows = [c for c in cpus if isinstance(c, dict)]
    out: dict[str, Any] = {}
    if rows:
        out["busy"] = statistics.fmean(c.get("busy", 0.0) for c in rows)
        out["max_busy"] = max(c.get("busy", 0.0) for c in rows)
        out["split"] = {k: statistics.fmean(c.get(k, 0.0) for c in rows) for k in ("usr", "sys", "soft")}
        out["n_cpus"] = len(rows)
    threads = (run.get("server_cpu") or {}).get("threads") or []
    if threads:
        out["thread_busy_max"] = max(t.get("busy", 0.0) for t in threads)
        out["thread_wait_max"] = max(t.get("wait", 0.0) for t in threads)
    return out


def cost_per_request(run: dict[str, Any], server_cpus: dict[str, Any]) -> dict[str, float] | None:
    """Server CPU microseconds per request: usr and sys from the process's own accounting
    (pidstat, all threads), softirq from its pinned CPUs (mpstat; softirq has no owner)."""
    qps = _num(run.get("qps")) or 0.0
    sc = run.get("server_cpu") or {}
    if qps <= 0 or sc.get("usr") is None:
        return None
    per = 1e6 / 100.0 / qps  # % of one CPU -> us per request
    soft = server_cpus.get("split", {}).get("soft", 0.0) * server_cpus.get("n_cpus", 0)
    out = {"usr": sc["usr"] * per, "sys": sc["sys"] * per, "soft": soft * per}
    out["total"] = out["usr"] + out["sys"] + out["soft"]
    return {k: round(v, 3) for k, v in out.items()}


def balance(run: dict[str, Any]) -> dict[str, Any] | None:
    """Per-thread share from the server's own counters (the kernel's SO_REUSEPORT hash shows here)."""
    counters = run.get("server_counters") or {}
    threads = counters.get("threads") or []
    if not threads:
        return None

    def ratio(key: str) -> float | None:
        vals = [t.get(key, 0) for t in threads]
        mean = statistics.fmean(vals)
        return round(max(vals) / mean, 3) if mean > 0 else None

    return {"threads": [{k: t.get(k) for k in ("thread", "cpu", "connections", "requests")}
                        for t in threads],
            "requests_max_over_mean": ratio("requests"),
            "connections_max_over_mean": ratio("connections")}


def analyse_run(run: dict[str, Any], *, server: str, interface: str | None, loopback: bool,
                th: Thresholds) -> dict[str, Any]:
    qps = _num(run.get("qps")) or 0.0
    pk = packets(run, server, interface, loopback)
    base = run.get("baseline") or {}
    ceiling = _num(base.get("pps_delivered"))
    ceiling_rev = _num(base.get("pps_delivered_reverse")) or ceiling
    evidence: list[str] = []
    flags: list[str] = []

    use: dict[str, float] | None = None
    if ceiling and pk:
        if loopback:
            use = {"rx": pk["rx_pps"] / ceiling, "tx": pk["tx_pps"] / ceiling}
        else:
            use = {"rx": pk["rx_pps"] / ceiling, "tx": pk["tx_pps"] / (ceiling_rev or ceiling)}
    elif ceiling and qps:
        # No packet counters: assume packets per request, as the reference did (2 per request).
        est = qps * th.packets_per_request / (1 if loopback else 2)
        use = {"rx": est / ceiling, "tx": est / (ceiling_rev or ceiling)}
        flags.append(f"packets per request not measured; assumed {th.packets_per_request:g}")
    use_max = max(use.values()) if use else None

    srv = _server_cpus(run)
    server_busy = srv.get("max_busy")
    client_busy_vals = [c.get("busy") for c in (run.get("client_cpu") or {}).values()
                        if isinstance(c, dict) and c.get("busy") is not None]
    client_busy = max(client_busy_vals) if client_busy_vals else None
    sw = run.get("server_cpu") or {}
    vol, invol = _num(sw.get("cswch_s")), _num(sw.get("nvcswch_s"))
    invol_share = invol / (vol + invol) if vol is not None and invol is not None and vol + invol > 0 else None

    if client_busy is not None and client_busy >= th.client_busy:
        flags.append(f"load generator at {client_busy:.0f}% CPU (>= {th.client_busy:g}%): "
                     "the result says little about the server's own limit")
    errors = sum((run.get("errors") or {}).values()) + int(run.get("non_2xx") or 0)
    if errors:
        flags.append(f"{errors:,} socket errors or non-2xx responses")
    if pk and pk.get("retrans_s"):
        flags.append(f"{pk['retrans_s']:,.0f} TCP retransmits/s on the server host")
    if pk and pk.get("drops_s"):
        flags.append(f"{pk['drops_s']:,.0f} dropped packets/s on {pk['interface']}")

    thread_busy = srv.get("thread_busy_max")
    wait = srv.get("thread_wait_max") or 0.0
    # Server saturated: a thread of it is busy all the time, or its CPUs are full and it
    # is kept from running (it was given fewer CPUs than the load needs): preempted, or
    # runnable but waiting in the run queue (CFS wake-ups often preempt nothing, so
    # %wait shows it when involuntary switches do not).
    preempted = (invol_share is not None and invol_share >= 0.25) or wait >= 20.0
    server_saturated = ((thread_busy or 0) >= th.server_busy
                        or ((server_busy or 0) >= th.server_busy and preempted))
    client_saturated = (client_busy or 0) >= th.client_busy

    server_txt = (f"server CPUs {server_busy:.0f}% busy (usr {srv['split']['usr']:.0f}%, "
                  f"sys {srv['split']['sys']:.0f}%, softirq {srv['split']['soft']:.0f}%)"
                  if server_busy is not None else "server CPU not measured")
    if thread_busy is not None:
        server_txt += f", busiest server thread {thread_busy:.0f}%"
    switch_txt = (f"{vol:,.0f} voluntary vs {invol:,.0f} involuntary switches/s"
                  if vol is not None and invol is not None else "")
    client_txt = f"load generator {client_busy:.0f}% busy" if client_busy is not None else ""

    # Over loopback there is no NIC: iperf3's "ceiling" is itself CPU-bound, so
    # saturated CPUs explain the number better than the network does.
    at_ceiling = use_max is not None and use_max * 100 >= th.ceiling_use
    nic_caps = {h: d["exceeded"] for h, d in (run.get("nic_allowances") or {}).items()
                if d.get("exceeded")}
    if nic_caps:
        verdict = NETWORK
        for h, exceeded in nic_caps.items():
            evidence.append(f"{h}: the NIC dropped or queued packets over its allowance: "
                            + ", ".join(f"{k} +{v:,}" for k, v in exceeded.items()))
        if use_max is not None:
            evidence.append(f"network ceiling use {use_max:.0%}")
        evidence += [t for t in (server_txt, client_txt) if t]
    elif at_ceiling and not (loopback and (server_saturated or client_saturated)):
        verdict = NETWORK
        assert use is not None and use_max is not None
        direction = max(use, key=lambda k: use[k])
        rate = pk[f"{direction}_pps"] if pk else qps * th.packets_per_request
        ppr = pk[f"{direction}_per_request"] if pk else th.packets_per_request
        cap = ceiling if direction == "rx" or loopback else ceiling_rev
        evidence.append(f"QPS {qps:,.0f} x {ppr:.2f} packets/request = {rate:,.0f} pps "
                        f"({'server ' + direction if not loopback else 'loopback'}) = "
                        f"{use_max:.0%} of the {cap:,.0f} pps ceiling measured by iperf3 "
                        f"(threshold {th.ceiling_use:g}%)")
        evidence += [t for t in (server_txt, client_txt) if t]
    elif server_saturated and (not client_saturated or (invol_share or 0) >= 0.5):
        verdict = SERVER
        evidence.append(f"{server_txt} (threshold {th.server_busy:g}%)")
        if wait >= 20.0:
            evidence.append(f"a server thread waited for a CPU {wait:.0f}% of the time (run-queue "
                            "delay): its CPUs are shared or too few for the load")
        if switch_txt:
            evidence.append(switch_txt + (" (preempted: fewer CPUs than the load needs)"
                                          if invol_share is not None and invol_share >= 0.25 else ""))
        if client_txt:
            evidence.append(client_txt + (" (idle time left)" if not client_saturated else ""))
    elif client_saturated and not server_saturated:
        verdict = CLIENT
        evidence.append(f"{client_txt} (threshold {th.client_busy:g}%)")
        evidence.append(f"{server_txt}: not saturated")
        if switch_txt:
            evidence.append(switch_txt + (" (server threads mostly wait in epoll_wait: starved of requests)"
                                          if not preempted else ""))
    else:
        verdict = INCONCLUSIVE
        evidence += [t for t in (server_txt, client_txt, switch_txt) if t]
        if server_saturated and client_saturated:
            evidence.append("server and load generator both saturated: give the load generator "
                            "more CPUs to find the server's limit")
        elif not server_saturated and not client_saturated and not at_ceiling:
            evidence.append("nothing saturated: more connections or threads may raise the load")
    if use_max is not None and verdict not in (NETWORK,):
        evidence.append(f"network ceiling use {use_max:.0%}")

    cost = cost_per_request(run, srv)
    return {
        "verdict": verdict,
        "evidence": evidence,
        "flags": flags,
        "packets_per_request": ({"rx": round(pk["rx_per_request"], 3), "tx": round(pk["tx_per_request"], 3),
                                 "total": round(pk["per_request"], 3),
                                 "tcp_segments": round(pk["tcp_segments_per_request"], 3)
                                 if "tcp_segments_per_request" in pk else None,
                                 "source": f"sar DEV {pk['interface']} on {server}"} if pk else None),
        "packet_rate": {"rx": pk["rx_pps"], "tx": pk["tx_pps"]} if pk else None,
        "ceiling_pps": ceiling,
        "ceiling_use": {k: round(v, 4) for k, v in use.items()} if use else None,
        "server_busy_pct": round(server_busy, 2) if server_busy is not None else None,
        "server_cpu_split_pct": {k: round(v, 2) for k, v in srv["split"].items()} if "split" in srv else None,
        "client_busy_pct": round(client_busy, 2) if client_busy is not None else None,
        "cpu_us_per_request": cost,
        "switches": {"voluntary_s": vol, "involuntary_s": invol},
        "balance": balance(run),
    }


def summarise_points(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median and spread per matrix point over its repetitions (pyperf-style median +- MAD)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["arch"], r["server_threads"], r["connections"]), []).append(r)
    points = []
    for (arch, threads, conns), rs in groups.items():
        qps = [float(r["qps"]) for r in rs]
        med = statistics.median(qps)
        mad = statistics.median(abs(q - med) for q in qps)
        verdicts: dict[str, int] = {}
        for r in rs:
            v = (r.get("analysis") or {}).get("verdict")
            if v:
                verdicts[v] = verdicts.get(v, 0) + 1
        stdev = statistics.stdev(qps) if len(qps) > 1 else 0.0
        points.append({
            "arch": arch, "server_threads": threads, "connections": conns, "n": len(rs),
            "qps_median": med, "qps_min": min(qps), "qps_max": max(qps), "qps_mad": mad,
            "qps_stdev": stdev,
            # pyperf warns at a std dev of 10% of the mean or more
            "unstable": bool(len(qps) > 1 and stdev >= 0.1 * statistics.fmean(qps)),
            "p50_ms_median": statistics.median(r["latency_ms"]["p50"] for r in rs),
            "p99_ms_median": statistics.median(r["latency_ms"]["p99"] for r in rs),
            "verdicts": verdicts,
        })
    return points


def analyse(summary: dict[str, Any], *, th: Thresholds, server: str, interface: str | None,
            loopback: bool) -> dict[str, Any]:
    """Adds `analysis` to every run and `points` to the summary (in place; returns it)."""
    for run in summary.get("runs", []):
        run["analysis"] = analyse_run(run, server=server, interface=interface, loopback=loopback, th=th)
    summary["points"] = summarise_points(summary.get("runs", []))
    return summary
