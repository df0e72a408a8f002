"""The environment fingerprint: what facts read on a real host, and what compare warns about."""

from __future__ import annotations

import dataclasses
import subprocess

from orchestrator.history import environment, environment_differences
from orchestrator.tools import facts

from testkit import session


def test_this_machine_has_an_environment_fingerprint():
    out = subprocess.run(["sh", "-c", facts.command()], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", **facts.ENV}, timeout=60).stdout
    f = facts.parse(out)
    assert f.kernel and f.cpu_model
    assert f.microcode.startswith("0x")  # this VM's kernel shows it (0x1000065 when written)
    # every vulnerability the kernel lists, with its status
    assert f.mitigations and all(v for v in f.mitigations.values())
    assert "spectre_v2" in f.mitigations
    host = {**dataclasses.asdict(f), "roles": ["server"], "instance_type": "m7i.large"}
    summary = session(hosts={"h": host})
    env = environment(summary)["h"]
    assert env["instance_type"] == "m7i.large" and env["microcode"] == f.microcode


def test_parse_reads_the_new_sections():
    text = "\n".join(["@@orchestrate:kernel@@", "6.1.0-21-amd64", "@@orchestrate:microcode@@", "0x2b000590",
                      "@@orchestrate:governor@@", "performance", "@@orchestrate:mitigations@@",
                      "/sys/devices/system/cpu/vulnerabilities/meltdown:Not affected",
                      "/sys/devices/system/cpu/vulnerabilities/spectre_v1:Mitigation: usercopy/swapgs "
                      "barriers",
                      "@@orchestrate:machine@@", "c7i.large", "@@orchestrate:online@@", "2"])
    f = facts.parse(text)
    assert (f.microcode, f.governor, f.machine) == ("0x2b000590", "performance", "c7i.large")
    assert f.mitigations == {"meltdown": "Not affected", "spectre_v1": "Mitigation: usercopy/swapgs barriers"}


def test_a_fact_only_one_side_recorded_is_not_a_difference():
    old = session(hosts={"a": {"roles": ["server"], "kernel": "6.1"}})
    new = session(hosts={"b": {"roles": ["server"], "kernel": "6.1", "microcode": "0x1"}})
    assert environment_differences(old, new) == []  # host names differ; roles match them
    new["hosts"]["b"]["kernel"] = "6.2"
    assert environment_differences(old, new) == ["server kernel: 6.1 vs 6.2"]


def test_the_host_noise_is_an_environment_difference_beyond_its_margin():
    def with_noise(steal: float, busy: float, lost: float) -> dict:
        reading = {"when": "before", "seconds": 1.0, "cpus": [0, 1], "steal_pct": steal,
                   "busy_pct": {"0": 1.0, "1": busy},
                   "pauses": {"0": {"lost_pct": lost}, "1": {"lost_pct": 0.0}}}
        after = {**reading, "when": "after", "steal_pct": 0.0}
        return session(hosts={}, host_noise={"before": reading, "after": after})

    assert environment_differences(with_noise(0.2, 3.0, 0.1), with_noise(0.9, 7.0, 0.4)) == []
    assert environment_differences(with_noise(0.2, 3.0, 0.1), with_noise(3.5, 40.0, 1.2)) == [
        "host noise: steal 0.2% vs 3.5%",
        "host noise: foreign load on the pinned CPUs (busiest) 3.0% vs 40.0%",
        "host noise: time lost to pauses on the pinned CPUs (worst) 0.1% vs 1.2%"]
    assert environment_differences(session(hosts={}), with_noise(9.0, 90.0, 5.0)) == []  # one side unread
