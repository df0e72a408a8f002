"""ethtool -S adapter: ENA allowance counters and their before/after delta.

The ENA recordings in data/ethtool/ are hand-written from the Linux ENA driver's
statistic names (no ENA NIC is available here; see data/ethtool/README.md). The veth
recording, and the live test below, are real output of this machine's ethtool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from orchestrator.tools import ToolError, ethtool

DATA = Path(__file__).parent / "data" / "ethtool"


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_adapter_face():
    assert ethtool.BINARY == "ethtool"
    assert ethtool.ENV == {"LC_ALL": "C"}
    assert ethtool.command("ens5") == ["ethtool", "-S", "ens5"]
    for bad in ("", "-S", "../x"):
        with pytest.raises(ToolError, match="^ethtool: "):
            ethtool.command(bad)


def test_parse_ena_counters():
    s = ethtool.parse(read("ena_c6i_after.txt"))
    assert s.ena
    assert s.allowances.pps_allowance_exceeded == 1283477
    assert s.allowances.bw_in_allowance_exceeded == 0
    assert s.allowances.bw_out_allowance_exceeded == 0
    assert s.allowances.conntrack_allowance_exceeded == 0
    assert s.allowances.linklocal_allowance_exceeded == 12
    assert s.conntrack_allowance_available == 2916911
    assert s.counters["queue_1_rx_cnt"] == 90212634  # every statistic is kept
    with pytest.raises(TypeError):
        s.counters["x"] = 1  # type: ignore[index]


def test_delta_names_the_cap_that_was_hit():
    d = ethtool.delta(ethtool.parse(read("ena_c6i_before.txt")), ethtool.parse(read("ena_c6i_after.txt")))
    assert not d.reset
    assert d.exceeded == {"pps_allowance_exceeded": 1283477}
    assert d.allowances.linklocal_allowance_exceeded == 0
    assert d.allowances.as_dict()["bw_in_allowance_exceeded"] == 0


def test_delta_after_a_driver_reset_is_flagged():
    after = ethtool.Allowances(5, 0, 0, 0, 0)
    before = ethtool.Allowances(100, 0, 0, 0, 0)
    d = ethtool.delta(before, after)
    assert d.reset and d.allowances.pps_allowance_exceeded == 5


def test_old_ena_driver_reports_none_not_zero():
    s = ethtool.parse(read("ena_old_driver.txt"))
    assert not s.ena
    assert s.allowances.pps_allowance_exceeded is None
    assert s.counters["queue_0_tx_cnt"] == 5012
    d = ethtool.delta(s, s)
    assert d.allowances.pps_allowance_exceeded is None and d.exceeded == {}


def test_recorded_veth_has_no_ena_counters():
    s = ethtool.parse(read("veth.txt"))
    assert not s.ena
    assert s.counters["peer_ifindex"] == 2
    assert s.conntrack_allowance_available is None


def test_no_stats_is_a_tool_error():
    with pytest.raises(ToolError, match="no stats available"):
        ethtool.parse("no stats available\n")
    with pytest.raises(ToolError):
        ethtool.parse("")


def test_negative_counter_rejected():
    with pytest.raises(ValueError):
        ethtool.Allowances(pps_allowance_exceeded=-1)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ethtool") or not shutil.which("ip"),
                    reason="needs root, ip and ethtool to create a veth in a namespace")
def test_live_veth_in_a_throwaway_namespace():
    ns = f"orch-eth-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "vA", "type", "veth", "peer", "name", "vB"],
                       check=True)
        done = subprocess.run(["ip", "netns", "exec", ns, *ethtool.command("vA")], capture_output=True,
                              text=True, env={**os.environ, **ethtool.ENV}, check=True)
        s = ethtool.parse(done.stdout)
        assert not s.ena and "peer_ifindex" in s.counters
        lo = subprocess.run(["ip", "netns", "exec", ns, *ethtool.command("lo")], capture_output=True,
                            text=True, env={**os.environ, **ethtool.ENV})
        with pytest.raises(ToolError):
            ethtool.parse(lo.stdout + lo.stderr)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
