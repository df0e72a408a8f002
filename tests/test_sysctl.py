"""kernel.sysctl in a scenario: axes, checks, and the pieces the Tuner is made of (the real
apply/restore runs on lab namespaces in test_kernel_lab.py)."""

from __future__ import annotations

import shlex

import pytest

from orchestrator import plan, scenario, sysctl
from orchestrator.errors import UserError
from orchestrator.history import environment_differences
from orchestrator.point import PointKey

from testkit import session

BASE = """
name: k
hosts: {provider: netns, roles: {server: 1, client: 1}}
server: {arch: main-sub, threads: 2, cpus: [0], backlog: [8, 4096]}
load: {connections: 256, threads: 2, cpus: [1], keepalive: false}
"""


def load(kernel: str, base: str = BASE) -> scenario.Scenario:
    return scenario.load("k.yaml", text=base + kernel).scenario


def test_sysctls_and_the_backlog_are_axes_with_short_run_ids():
    sc = load("kernel: {sysctl: {net.core.somaxconn: [8, 4096], net.ipv4.tcp_tw_reuse: 1},"
              " server: {net.ipv4.tcp_max_syn_backlog: [128, 1024]}}")
    ids = [r.run_id for r in plan.expand(sc).runs]
    assert len(ids) == 8
    assert ids[0] == "001-main-sub-t2-c256-b8-somaxconn8-tcp_max_syn_backlog128-r1"
    point = plan.expand(sc).runs[-1].point
    assert point["kernel.sysctl.net.core.somaxconn"] == 4096
    assert sysctl.wanted(sc, point, ("server",)) == {
        "net.core.somaxconn": "4096", "net.ipv4.tcp_tw_reuse": "1", "net.ipv4.tcp_max_syn_backlog": "1024"}
    assert sysctl.wanted(sc, point, ("client",)) == {"net.core.somaxconn": "4096",
                                                     "net.ipv4.tcp_tw_reuse": "1"}


def test_the_lab_refuses_a_machine_wide_sysctl_and_a_key_set_twice():
    with pytest.raises(UserError) as err:
        load("kernel: {sysctl: {vm.swappiness: 10, net.core.somaxconn: [8, 8]},"
             " client: {net.core.somaxconn: 4}}")
    text = "\n".join(map(str, err.value.problems))
    assert "kernel.sysctl.vm.swappiness: the lab's hosts are network namespaces" in text
    assert "kernel.sysctl.net.core.somaxconn: an axis lists each value once" in text
    assert "kernel.client.net.core.somaxconn: also set in kernel.sysctl" in text
    for kernel, said in (("{sysctl: {somaxconn: 8}}", "not a sysctl name"),
                         ("{sysctl: {net.core.somaxconn: true}}", "a sysctl value is a number or a string")):
        with pytest.raises(UserError) as err:
            load(f"kernel: {kernel}")
        assert said in str(err.value.problems[0])
    # on real hosts a machine-wide setting is the user's to make
    local = BASE.replace("provider: netns, roles: {server: 1, client: 1}", "provider: local")
    assert load("kernel: {sysctl: {vm.swappiness: 10}}", local).kernel.sysctl == {"vm.swappiness": 10}


def test_reading_and_refusing():
    text = ("@@sysctl net.core.somaxconn\n644\n4096\n@@sysctl net.ipv4.ip_local_port_range\n644\n"
            "32768\t60999\n@@sysctl net.core.rmem_max\n444\n212992\n@@sysctl net.core.nope\nmissing\n")
    seen = sysctl.parse_read(text)
    assert seen["net.ipv4.ip_local_port_range"].value == "32768 60999"
    assert sysctl.refusal("net.core.somaxconn", seen["net.core.somaxconn"], lab=True) is None
    assert "global on this kernel" in sysctl.refusal("net.core.rmem_max", seen["net.core.rmem_max"], lab=True)
    assert sysctl.refusal("net.core.rmem_max", seen["net.core.rmem_max"], lab=False) is None
    assert "no such sysctl" in sysctl.refusal("net.core.nope", seen["net.core.nope"], lab=False)
    script = sysctl.write_script({"net.ipv4.ip_local_port_range": "1024 65535"})
    words = shlex.split(script)
    body = words[words.index("-c") + 1].removesuffix(";")  # as root: sh -c BODY;
    assert shlex.split(body) == ["printf", "%s\\n", "1024 65535", ">",
                                 "/proc/sys/net/ipv4/ip_local_port_range"]
    assert "sudo -n sh -c" in script


def test_a_differing_sysctl_is_named_in_the_environment_diff():
    def summary(v: str) -> dict:
        return session(topology={"server": "s"}, hosts={"s": {"roles": ["server"], "kernel": "6.1",
                                                               "sysctl": {"net.core.somaxconn": v,
                                                                          "net.ipv4.tcp_tw_reuse": "2"}}})

    assert environment_differences(summary("128"), summary("4096")) == [
        "server sysctl: net.core.somaxconn 128 vs 4096"]
    assert environment_differences(summary("128"), summary("128")) == []


def test_facts_join_an_axis_values_over_the_observed_ones():
    t = sysctl.Tuner(load(""), "r", transport=lambda h: None)  # type: ignore[arg-type,return-value]  # facts() connects to nothing
    t.observed = {"a": {"net.core.somaxconn": "4096", "net.ipv4.tcp_tw_reuse": "2"}}
    runs = [{"a": {"net.core.somaxconn": "8"}}, None, {"a": {"net.core.somaxconn": "4096"}}]
    assert t.facts(runs) == {"a": {"net.core.somaxconn": "8 | 4096", "net.ipv4.tcp_tw_reuse": "2"}}
    assert PointKey({"kernel.sysctl.net.core.somaxconn": 8}).short(scenario.axes_of(
        ["kernel.sysctl.net.core.somaxconn"])) == "somaxconn8"


def test_a_named_variant_moves_somaxconn_with_the_backlog():
    base = BASE.replace("backlog: [8, 4096]", "backlog: 4096")
    sc = load("variants:\n  q8: {server: {backlog: 8}, kernel: {sysctl: {net.core.somaxconn: 8}}}\n"
              "  wide: {}\n", base)
    runs = plan.expand(sc).runs
    assert [r.run_id for r in runs] == ["001-main-sub-t2-c256-q8-r1", "002-main-sub-t2-c256-wide-r1"]
    assert [scenario.at(sc, r.point, "server.backlog") for r in runs] == [8, 4096]
    assert sysctl.wanted(sc, runs[0].point, ("server",)) == {"net.core.somaxconn": "8"}
    assert sysctl.wanted(sc, runs[1].point, ("server",)) == {}  # back to the original (Tuner.apply)
    assert sysctl.names_for(sc, ("client",)) == ["net.core.somaxconn"] and sysctl.any_set(sc)
    for block, said in (("{kernel: {sysctl: {net.core.somaxconn: [8, 16]}}}", "a variant sets one value"),
                        ("{load: {keepalive: [true, false]}}", "load.keepalive is an axis of the matrix")):
        with pytest.raises(UserError) as err:
            load(f"variants: {{v: {block}}}\n", base)
        assert said in "\n".join(map(str, err.value.problems))
