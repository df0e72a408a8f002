"""Telemetry during the load: collectors on every host, their summaries over the load window,
ENA allowance counters, and perf flame graphs."""

from __future__ import annotations

from typing import Any

from orchestrator import remote, tools
from orchestrator.context import Context, each, plain
from orchestrator.errors import RunFailed
from orchestrator.hosts import Host
from orchestrator.plan import RunSpec
from orchestrator.report import flamegraph
from orchestrator.tools import ethtool, perf


def start(ctx: Context, spec: RunSpec,
                     server_pids: list[int]) -> list[tuple[remote.Process, Host, str]]:
    def start(h: Host) -> list[tuple[remote.Process, Host, str]]:
        out = []
        for name in ctx.sc.telemetry:
            mod = tools.get(name)
            if name in ("pidstat", "perf"):  # these watch the server's processes
                if "server" not in h.roles:
                    continue
                argv = (mod.command(server_pids) if name == "pidstat" else
                        perf.record_command(server_pids, f"{h.workdir}/{spec.run_id}/perf.data"))
            else:
                argv = mod.command()
            proc = ctx.table.spawn(h.name, name, tools.base.join(argv),
                                   workdir=f"{h.workdir}/{spec.run_id}", env=mod.ENV)
            out.append((proc, h, name))
        return out

    return [c for per_host in each(list(ctx.lab.hosts), start) for c in per_host]


def summarize(ctx: Context, collectors: list[tuple[remote.Process, Host, str]],
              raw: dict[tuple[str, str], str], start: float, end: float) -> dict[str, Any]:
    """Each collector's output averaged over the load window: {tool: {host: summary}}."""
    # start..end is the load itself: the common start plus wrk's own duration (not
    # when we noticed wrk had ended). Collector timestamps mark the END of each 1 s
    # interval, on the host's clock, truncated to whole seconds (the true end is up
    # to 1 s later): keep the intervals that lie wholly inside the load, or, for a
    # load too short to have any, the ones mostly inside.
    windows = ((start + 1.0, end - 1.0), (start + 0.5, end + 0.5))

    telemetry: dict[str, Any] = {}
    for _proc, h, name in collectors:
        if name == "perf":
            continue  # folded into a flame graph, not averaged
        mod = tools.get(name)
        off = ctx.facts.get(h.name, {}).get("clock_offset_s", 0.0)
        try:
            samples = mod.parse(raw.get((h.name, name), ""))
            for lo, hi in windows:
                summary = plain(mod.summarize(samples, lo + off, hi + off))
                if not empty(summary):
                    break
        except (tools.ToolError, ValueError) as exc:
            telemetry.setdefault(name, {})[h.name] = {"error": str(exc)}
            continue
        telemetry.setdefault(name, {})[h.name] = summary
    return telemetry


def empty(summary: Any) -> bool:
    """A telemetry summary with no samples in it (shapes differ per collector)."""
    if isinstance(summary, dict) and "interfaces" in summary:
        return not summary["interfaces"]
    return not summary


def nic_counters(ctx: Context, spec: RunSpec, when: str) -> dict[str, Any]:
    """ENA allowance counters (cloud NIC caps: pps, bandwidth) on hosts that have them."""
    out: dict[str, Any] = {}
    for h in ctx.lab.hosts:
        if not h.vars.get("ena"):
            continue
        t = ctx.t(h)
        iface = h.interface or t.run(f"ip -o addr show to {h.address} | awk '{{print $2}}'",
                                     timeout=10, check=False).stdout.strip()
        if not iface:
            continue
        done = t.run(tools.base.join(ethtool.command(iface)), timeout=15, check=False, env=ethtool.ENV)
        raw = ctx.results.raw(spec.run_id, h.name, f"ethtool-{when}")
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(done.stdout + done.stderr)
        try:
            out[h.name] = ethtool.parse(done.stdout)
        except tools.ToolError:
            continue  # no counters on this NIC: no evidence either way
    return out


def flamegraph_svg(ctx: Context, spec: RunSpec, sdir: str) -> dict[str, Any] | None:
    """Fold the server host's `perf script` output into a flame graph kept with the run."""
    server = ctx.lab.server
    text_path = ctx.results.raw(spec.run_id, server.name, "perf-script")
    try:
        ctx.t(server).get(f"{sdir}/perf-script.txt", text_path)
    except (RunFailed, OSError):
        return None
    folded = perf.fold(text_path.read_text(errors="replace"))
    if not folded:
        return None
    svg = text_path.with_name("flamegraph.svg")
    svg.write_text(flamegraph.render_svg(folded, title=f"{ctx.sc.name} {spec.run_id} on {server.name}"))
    return {"flamegraph": str(svg.relative_to(ctx.results.path)), "samples": sum(folded.values()),
            "top_frames": [[name, round(share, 4)] for name, share in perf.top_frames(folded, 8)]}
