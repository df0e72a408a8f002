"""Which machine a result belongs to, so results from different machines are never mixed."""

from __future__ import annotations

from typing import Any


def machine_fingerprint(summary: dict[str, Any]) -> str:
    """Which machine a result belongs to: results from different machines are never mixed."""
    topo = summary.get("topology") or {}
    facts = (summary.get("hosts") or {}).get(topo.get("server", ""), {})
    if not facts and summary.get("hosts"):
        facts = next(iter(summary["hosts"].values()))
    return f"{summary.get('provider', '?')}|{facts.get('cpu_model', '?')}|{facts.get('cpus', '?')} CPUs"
