"""The kernel's TCP counters: /proc/net/netstat, /proc/net/snmp (what `nstat` reads) and
/proc/softirqs, read once before and once after the window on each host.

One `sh -c` prints the three files, each after a marker line, so a reading is one round
trip and nothing runs during the load. The counters are cumulative since boot (or since the
network namespace was made), so a run's figure is the difference of two readings. A counter
the kernel does not print is None, never 0: "not reported" is not "did not happen".

Inside a network namespace the netstat/snmp counters are the namespace's own; softirq
counts are per CPU and machine-wide. On loopback the client and the server are one
kernel: one set of counters, which no rule may assign to a side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from orchestrator.tools.base import ToolError

FILES = ("/proc/net/netstat", "/proc/net/snmp", "/proc/softirqs")
_MARK = "==> "

# (section, kernel name) -> the name in our records. TcpExt lives in /proc/net/netstat,
# Tcp in /proc/net/snmp.
COUNTERS: dict[str, tuple[str, str]] = {
    "listen_overflows": ("TcpExt", "ListenOverflows"),  # accept queue full: SYN/ACK ignored
    "listen_drops": ("TcpExt", "ListenDrops"),  # every drop at a listener, overflows included
    "backlog_drops": ("TcpExt", "TCPBacklogDrop"),  # socket backlog full while the socket was owned
    "retrans_segs": ("Tcp", "RetransSegs"),
    "out_segs": ("Tcp", "OutSegs"),  # the denominator of the retransmission ratio
    "timeouts": ("TcpExt", "TCPTimeouts"),  # RTO expiries
    "abort_on_data": ("TcpExt", "TCPAbortOnData"),  # RST sent: data arrived after close
    "prune_called": ("TcpExt", "PruneCalled"),  # receive memory pressure: queue pruned
    "rcv_pruned": ("TcpExt", "RcvPruned"),  # ... and packets dropped for it
    "ofo_pruned": ("TcpExt", "OfoPruned"),
    "rcv_collapsed": ("TcpExt", "TCPRcvCollapsed"),
    "syncookies_sent": ("TcpExt", "SyncookiesSent"),  # SYN queue full, cookies answered
    "tw_overflows": ("TcpExt", "TCPTimeWaitOverflow"),  # TIME-WAIT buckets exhausted
}
SOFTIRQS = ("NET_RX", "NET_TX")


@dataclass(frozen=True)
class Reading:
    """One reading of a host's (or namespace's) counters."""

    counters: Mapping[str, int | None]  # by our name; None where the kernel has no such counter
    softirqs: Mapping[int, Mapping[str, int]]  # cpu -> {"NET_RX": n, "NET_TX": n}


@dataclass(frozen=True)
class Delta:
    """What the counters rose by across a window; `reset` when one went down (a new namespace)."""

    counters: Mapping[str, int | None]
    softirqs: Mapping[int, Mapping[str, int]]
    reset: bool = False


def command() -> str:
    """A shell command printing the three files, each after a `==> path` line (like `head`)."""
    return "; ".join(f"echo '{_MARK}{f}'; cat {f}" for f in FILES)


def _split(text: str) -> dict[str, list[str]]:
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(_MARK):
            current = parts.setdefault(line[len(_MARK):].strip(), [])
        elif current is not None:
            current.append(line)
    return parts


def _pairs(lines: list[str]) -> dict[tuple[str, str], int]:
    """'Sec: A B' then 'Sec: 1 2' (netstat and snmp both) -> {(Sec, A): 1, (Sec, B): 2}."""
    out: dict[tuple[str, str], int] = {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        sec, _, ns = names.partition(":")
        sec2, _, vs = values.partition(":")
        if sec != sec2:
            raise ToolError("nstat", f"header {sec!r} is followed by {sec2!r}")
        for n, v in zip(ns.split(), vs.split(), strict=False):
            try:
                out[(sec, n)] = int(v)
            except ValueError:
                raise ToolError("nstat", f"{sec} {n}: not a number: {v!r}") from None
    return out


def _softirqs(lines: list[str]) -> dict[int, dict[str, int]]:
    if not lines:
        return {}
    cpus = [int(c[3:]) for c in lines[0].split() if c.startswith("CPU")]
    out: dict[int, dict[str, int]] = {c: {} for c in cpus}
    for line in lines[1:]:
        name, _, vs = line.partition(":")
        if name.strip() in SOFTIRQS:
            for c, v in zip(cpus, vs.split(), strict=False):
                out[c][name.strip()] = int(v)
    return out


def parse(text: str) -> Reading:
    """Read `command()`'s output; ToolError when neither TCP file is there."""
    parts = _split(text)
    tcp = parts.get(FILES[0], []) + parts.get(FILES[1], [])
    values: dict[tuple[str, str], int] = {}
    for f in FILES[:2]:
        values |= _pairs(parts.get(f, []))
    if not values:
        raise ToolError("nstat", f"no TCP counters in {' or '.join(FILES[:2])}"
                        + (f": {tcp[-1]}" if tcp else ""))
    counters = {ours: values.get(key) for ours, key in COUNTERS.items()}
    return Reading(MappingProxyType(counters), MappingProxyType(
        {c: MappingProxyType(v) for c, v in _softirqs(parts.get(FILES[2], [])).items()}))


def delta(before: Reading, after: Reading, cpus: list[int] | None = None) -> Delta:
    """How much each counter rose; softirq counts only for `cpus` (all when None)."""
    reset = False
    out: dict[str, int | None] = {}
    for name in COUNTERS:
        x, y = before.counters.get(name), after.counters.get(name)
        if x is None or y is None:
            out[name] = None
        elif y < x:
            out[name], reset = y, True  # counters restarted: what is after is a lower bound
        else:
            out[name] = y - x
    soft: dict[int, dict[str, int]] = {}
    for c in sorted(after.softirqs):
        if (cpus is not None and c not in cpus) or c not in before.softirqs:
            continue
        soft[c] = {k: max(0, after.softirqs[c].get(k, 0) - before.softirqs[c].get(k, 0)) for k in SOFTIRQS}
    return Delta(MappingProxyType(out), MappingProxyType(soft), reset)
