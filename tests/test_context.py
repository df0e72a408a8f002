"""Where collectors go: the CPUs no part of the run uses, across hosts that share a kernel."""

from __future__ import annotations

from orchestrator.context import Context
from orchestrator.hosts import Host, Lab
from orchestrator.scenario import load


def ctx_for(yaml_text: str, boots: tuple[str, str], cpus: int = 4) -> Context:
    sc = load("t.yaml", text=yaml_text, host_cpus=set(range(cpus))).scenario
    lab = Lab("static", (Host("srv", "10.0.0.1", ("server",), "/tmp"),
                         Host("cli", "10.0.0.2", ("client",), "/tmp")))
    facts = {name: {"cpus_allowed": list(range(cpus)), "boot_id": boot}
             for name, boot in zip(("srv", "cli"), boots, strict=True)}
    return Context(sc, lab, None, {}, None, print, facts=facts)  # type: ignore[arg-type]


SCENARIO = ("name: t\nhosts: {provider: static, inventory: /dev/null}\n"
            "server: {cpus: [0]}\nload: {cpus: [1]}\n")


def test_separate_machines_keep_their_own_spare_cpus():
    ctx = ctx_for(SCENARIO, ("a", "b"))
    srv, cli = ctx.lab.hosts
    assert ctx.collector_cpus(srv) == [1, 2, 3]
    assert ctx.collector_cpus(cli) == [0, 2, 3]


def test_hosts_sharing_a_kernel_share_their_cpus():
    # namespaces of one machine: the client's CPU 1 is the server host's CPU 1 too
    ctx = ctx_for(SCENARIO, ("same", "same"))
    assert [ctx.collector_cpus(h) for h in ctx.lab.hosts] == [[2, 3], [2, 3]]


def test_no_spare_cpu_means_not_pinned():
    ctx = ctx_for(SCENARIO, ("same", "same"), cpus=2)
    assert [ctx.collector_cpus(h) for h in ctx.lab.hosts] == [None, None]


def test_explicit_telemetry_cpus_win():
    ctx = ctx_for(SCENARIO + "telemetry: {collectors: [mpstat], cpus: [3]}\n", ("same", "same"))
    assert [ctx.collector_cpus(h) for h in ctx.lab.hosts] == [[3], [3]]
