from pathlib import Path

import pytest

from orchestrator.tools import nstat
from orchestrator.tools.base import ToolError

DATA = Path(__file__).parent / "data" / "nstat"


def read(name: str) -> nstat.Reading:
    return nstat.parse((DATA / name).read_text())


def test_a_real_listen_overflow_is_counted():
    d = nstat.delta(read("netns_overflow_before.txt"), read("netns_overflow_after.txt"))
    assert d.counters["listen_overflows"] == 18 and d.counters["listen_drops"] == 18
    assert d.counters["timeouts"] == 12 and d.counters["retrans_segs"] == 12
    assert d.counters["backlog_drops"] == 0 and not d.reset


def test_every_counter_is_read_from_a_real_host():
    r = read("host_before.txt")
    assert set(r.counters) == set(nstat.COUNTERS)
    assert all(isinstance(v, int) for v in r.counters.values())
    assert r.counters["out_segs"] > 0
    assert set(r.softirqs) == {0, 1} and set(r.softirqs[0]) == {"NET_RX", "NET_TX"}


def test_softirqs_only_for_the_pinned_cpus():
    d = nstat.delta(read("host_before.txt"), read("host_after.txt"), cpus=[1])
    assert list(d.softirqs) == [1]
    assert d.softirqs[1]["NET_RX"] >= 0


def test_a_missing_counter_is_none_not_zero():
    text = (DATA / "host_before.txt").read_text().replace("ListenOverflows", "SomethingElse")
    r = nstat.parse(text)
    assert r.counters["listen_overflows"] is None
    assert nstat.delta(r, r).counters["listen_overflows"] is None


def test_a_counter_that_went_down_marks_a_reset():
    after, before = read("netns_overflow_before.txt"), read("netns_overflow_after.txt")
    d = nstat.delta(before, after)
    assert d.reset and d.counters["listen_overflows"] == 0


def test_no_tcp_files_is_a_tool_error():
    with pytest.raises(ToolError, match="no TCP counters"):
        nstat.parse("==> /proc/net/netstat\ncat: /proc/net/netstat: No such file or directory\n")


def test_a_misaligned_header_is_a_tool_error():
    with pytest.raises(ToolError, match="followed by"):
        nstat.parse("==> /proc/net/snmp\nTcp: A B\nUdp: 1 2\n")
