"""What a result depends on besides the server: the machine and its environment.

`machine_fingerprint` decides which results are comparable at all (never mixed in
history); `environment` is the finer fingerprint kept in every summary's host facts
(kernel, microcode, governor, mitigations, tool versions, instance type), and
`environment_differences` is what compare and the gate warn about, the host's noise included
(doctor.noise's readings before the first window and after the last: steal, foreign load on the
pinned CPUs, time lost to pauses there), where two readings differ by more than NOISE_FACTS'
margin: a reading always moves a little, and a sliver of steal is not a different machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.point import PointKey, classic
from orchestrator.records import HostFacts, HostNoise, Summary, as_summary

SummaryLike = Summary | Mapping[str, Any]  # the typed record, or summary.json's dict (any version)


def typed(summary: SummaryLike) -> Summary:
    """The typed record of a summary given either way (a dict is loaded: upgraded, checked)."""
    return as_summary(summary, "summary")


def point_key(run: dict[str, Any]) -> PointKey:
    """The matrix point of a run, point or search as summary.json holds it (any version), for
    rows read back from history's own tables: the classic four (arch, server threads,
    connections, target rate), then its other `axes`. A typed record has its own `key`."""
    rate = run.get("rate")
    target = rate.get("target") if isinstance(rate, dict) else rate
    axes = run.get("axes")
    return classic(run.get("arch"), run.get("server_threads"), run.get("connections"),
                   float(target) if isinstance(target, int | float) else None,
                   axes if isinstance(axes, dict) else None)


# host fact -> how it is named in a warning
ENVIRONMENT_FACTS = {
    "kernel": "kernel", "cpu_model": "CPU model", "microcode": "microcode", "governor": "CPU governor",
    "mitigations": "mitigations", "tool_versions": "tool versions", "instance_type": "instance type",
    "sysctl": "sysctl",  # the kernel settings the runs had (sysctl.Tuner.facts)
}


def _facts(found: HostFacts | None) -> dict[str, Any]:
    """A host's facts as recorded (the declared ones and the rest; a host's facts are open)."""
    return found.to_json() if found is not None else {}


def _server_facts(summary: Summary) -> dict[str, Any]:
    server = summary.topology.server if summary.topology else ""
    facts = _facts(summary.hosts.get(server))
    if not facts and summary.hosts:
        facts = _facts(next(iter(summary.hosts.values())))
    return facts


def machine_fingerprint(summary: SummaryLike) -> str:
    """Which machine a result belongs to: results from different machines are never mixed."""
    s = typed(summary)
    facts = _server_facts(s)
    return f"{s.provider}|{facts.get('cpu_model', '?')}|{facts.get('cpus', '?')} CPUs"


def environment(summary: SummaryLike) -> dict[str, dict[str, Any]]:
    """host -> its environment facts (those the summary recorded; older summaries have fewer;
    a host whose facts could not be read has none)."""
    hosts = {name: _facts(f) for name, f in typed(summary).hosts.items()}
    return {name: {k: f[k] for k in ENVIRONMENT_FACTS if k in f} for name, f in hosts.items() if f}


def _role_envs(summary: SummaryLike) -> dict[str, dict[str, Any]]:
    """Environments keyed by role ("server", "client 1", ...): host names differ between runs."""
    s = typed(summary)
    env = environment(s)
    out: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for name in sorted(env):
        role = "server" if "server" in s.hosts[name].roles else "client"
        counts[role] = counts.get(role, 0) + 1
        out[role if role == "server" else f"client {counts[role]}"] = env[name]
    return out


# the host's noise: fact -> (how a line names it, the margin in percentage points below which
# two readings are the same host)
NOISE_FACTS = {"steal_pct": ("steal", 1.0),
               "busy_pct": ("foreign load on the pinned CPUs (busiest)", 5.0),
               "lost_pct": ("time lost to pauses on the pinned CPUs (worst)", 0.5)}


def noise_facts(reading: HostNoise | None) -> dict[str, float]:
    """One host-noise reading as the figures NOISE_FACTS compares; {} when there is none."""
    if reading is None:
        return {}
    out = {"steal_pct": reading.steal_pct}
    if reading.busy_pct:
        out["busy_pct"] = reading.worst
    if reading.lost_pct is not None:
        out["lost_pct"] = reading.lost_pct
    return out


def host_noise(summary: SummaryLike) -> dict[str, float]:
    """A summary's host noise: the worse of its readings before and after the windows."""
    recorded = typed(summary).host_noise or {}
    out: dict[str, float] = {}
    for when in ("before", "after"):
        for k, v in noise_facts(recorded.get(when)).items():
            out[k] = max(out.get(k, v), v)
    return out


def noise_differences(a: dict[str, float], b: dict[str, float]) -> list[str]:
    """"host noise: steal 0.2% vs 3.1%", per NOISE_FACTS figure both readings have that differs
    by more than its margin."""
    return [f"host noise: {name} {a[k]:.1f}% vs {b[k]:.1f}%" for k, (name, margin) in NOISE_FACTS.items()
            if k in a and k in b and abs(a[k] - b[k]) > margin]


def environment_differences(a: SummaryLike, b: SummaryLike) -> list[str]:
    """One line per environment fact that differs between two summaries' hosts, e.g.
    "server kernel: 6.1.0-18 vs 6.1.0-21", then the host's noise (noise_differences). A fact
    one side did not record is not a difference."""
    return _fact_differences(a, b) + noise_differences(host_noise(a), host_noise(b))


def _fact_differences(a: SummaryLike, b: SummaryLike) -> list[str]:
    ea, eb = _role_envs(a), _role_envs(b)
    lines = []
    for role in sorted(set(ea) & set(eb)):
        for key, name in ENVIRONMENT_FACTS.items():
            va, vb = ea[role].get(key), eb[role].get(key)
            if va is None or vb is None or va == vb:
                continue
            if isinstance(va, dict) and isinstance(vb, dict):
                keys = sorted(k for k in set(va) | set(vb) if va.get(k) != vb.get(k))
                detail = ", ".join(f"{k} {va.get(k) or '-'} vs {vb.get(k) or '-'}" for k in keys[:4])
                lines.append(f"{role} {name}: {detail}" + (" ..." if len(keys) > 4 else ""))
            else:
                lines.append(f"{role} {name}: {va or '-'} vs {vb or '-'}")
    return lines
