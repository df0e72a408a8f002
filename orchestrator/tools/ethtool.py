"""ethtool -S: the ENA driver's allowance counters, the direct evidence of an EC2 network cap.

An EC2 instance's network is shaped per ENI by the hypervisor, not by its NIC's line
rate. When traffic exceeds the instance's allowance, packets are queued or dropped
and the ENA driver counts them (since ENA 2.2.10 / Linux 5.10), as cumulative
counters since the driver loaded:
- `pps_allowance_exceeded`: packets shaped because the packets-per-second cap was hit;
- `bw_in_allowance_exceeded` / `bw_out_allowance_exceeded`: inbound / outbound bandwidth cap;
- `conntrack_allowance_exceeded`: connection-tracking table full (security group tracking);
- `linklocal_allowance_exceeded`: traffic to link-local services (DNS, IMDS, NTP) over ~1024 pps.
`conntrack_allowance_available` (ENA 2.8.3+) is a gauge, not a counter: how many more
tracked connections the ENI can take now.

So a before/after `delta` that is non-zero names the cap a run hit. Drivers other than ENA
(veth, virtio, loopback) have none of these keys: the counters are then None, not 0,
so "no evidence" is never mistaken for "no shaping".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

from orchestrator.tools.base import ToolError

BINARY = "ethtool"
ENV: dict[str, str] = {"LC_ALL": "C"}

ALLOWANCE_COUNTERS = (
    "pps_allowance_exceeded",
    "bw_in_allowance_exceeded",
    "bw_out_allowance_exceeded",
    "conntrack_allowance_exceeded",
    "linklocal_allowance_exceeded",
)

# "     name: 123" (ethtool indents each statistic under a "NIC statistics:" header)
_STAT = re.compile(r"^\s+([^:]+?):\s+(-?\d+)\s*$")


@dataclass(frozen=True)
class Allowances:
    """The five ENA allowance counters; None where the driver does not report one."""

    pps_allowance_exceeded: int | None = None
    bw_in_allowance_exceeded: int | None = None
    bw_out_allowance_exceeded: int | None = None
    conntrack_allowance_exceeded: int | None = None
    linklocal_allowance_exceeded: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None and v < 0:
                raise ValueError(f"ethtool: {f.name} must be >= 0, got {v}")

    @property
    def reported(self) -> bool:
        """True when the driver exposes the counters (an ENA interface)."""
        return any(getattr(self, name) is not None for name in ALLOWANCE_COUNTERS)

    @property
    def exceeded(self) -> dict[str, int]:
        """The counters that are above zero, by name (empty: no cap was hit)."""
        return {n: v for n in ALLOWANCE_COUNTERS if (v := getattr(self, n))}

    def as_dict(self) -> dict[str, int | None]:
        return {n: getattr(self, n) for n in ALLOWANCE_COUNTERS}


@dataclass(frozen=True)
class NicStats:
    """One `ethtool -S IFACE` reading."""

    allowances: Allowances
    conntrack_allowance_available: int | None  # a gauge (ENA 2.8.3+), not a counter
    counters: Mapping[str, int]  # every statistic as printed, read-only

    @property
    def ena(self) -> bool:
        return self.allowances.reported


@dataclass(frozen=True)
class AllowanceDelta:
    """What the counters rose by across a run; `reset` when the driver restarted in between."""

    allowances: Allowances
    reset: bool = False

    @property
    def exceeded(self) -> dict[str, int]:
        return self.allowances.exceeded


def command(interface: str) -> list[str]:
    """`ethtool -S IFACE`: the driver's statistics (needs no root on current kernels)."""
    if not interface or interface.startswith("-") or "/" in interface:
        raise ToolError("ethtool", f"not an interface name: {interface!r}")
    return [BINARY, "-S", interface]


def parse(text: str) -> NicStats:
    """Read `ethtool -S` output; ToolError when the interface has no statistics at all."""
    counters: dict[str, int] = {}
    header = False
    for line in text.splitlines():
        if line.strip().endswith("statistics:"):
            header = True
            continue
        m = _STAT.match(line)
        if m:
            counters[m[1]] = int(m[2])
    if not counters:
        detail = text.strip().splitlines()[-1] if text.strip() else "no output"
        if header:
            return NicStats(Allowances(), None, MappingProxyType({}))
        raise ToolError(BINARY, f"no NIC statistics: {detail}")
    allowances = Allowances(**{n: counters[n] for n in ALLOWANCE_COUNTERS if n in counters})
    return NicStats(allowances, counters.get("conntrack_allowance_available"), MappingProxyType(counters))


def delta(before: NicStats | Allowances, after: NicStats | Allowances) -> AllowanceDelta:
    """How much each allowance counter rose from `before` to `after`.

    A counter that went down means the driver was reset (e.g. an ENA device reset
    during the run): its value after the reset is the best lower bound, and `reset`
    says the figure is partial.
    """
    b = before.allowances if isinstance(before, NicStats) else before
    a = after.allowances if isinstance(after, NicStats) else after
    out: dict[str, int | None] = {}
    reset = False
    for name in ALLOWANCE_COUNTERS:
        x, y = getattr(b, name), getattr(a, name)
        if x is None or y is None:
            out[name] = None
        elif y < x:
            out[name], reset = y, True
        else:
            out[name] = y - x
    return AllowanceDelta(Allowances(**out), reset)
