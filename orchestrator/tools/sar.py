"""sar (sysstat): network device packets and drops, TCP segments and retransmits.

`sar -n DEV,EDEV,TCP,ETCP 1` prints, each interval, one block per report, each headed by a
line of column names; the report is recognised by its columns. Times are HH:MM:SS after a
dated banner, turned into epoch seconds (END of the interval) as in mpstat. Stopped with
SIGINT, sar prints "Average:" blocks (ignored) and may leave a block cut short.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.tools import sysstat
from orchestrator.tools.base import ToolError
from orchestrator.tools.sysstat import SysstatClock, in_window

BINARY = "sar"
ENV = sysstat.ENV


def _non_negative(obj: object, values: Iterable[float]) -> None:
    if any(v < 0 for v in values):
        raise ValueError(f"sar rates must be >= 0: {obj}")


@dataclass(frozen=True)
class DevSample:
    t: float
    iface: str
    rxpck_s: float
    txpck_s: float
    rxkb_s: float
    txkb_s: float

    def __post_init__(self) -> None:
        _non_negative(self, (self.rxpck_s, self.txpck_s, self.rxkb_s, self.txkb_s))


@dataclass(frozen=True)
class EdevSample:
    t: float
    iface: str
    rxerr_s: float
    txerr_s: float
    rxdrop_s: float
    txdrop_s: float

    def __post_init__(self) -> None:
        _non_negative(self, (self.rxerr_s, self.txerr_s, self.rxdrop_s, self.txdrop_s))


@dataclass(frozen=True)
class TcpSample:
    t: float
    active_s: float  # active opens (connect) per second
    passive_s: float  # passive opens (accept) per second
    iseg_s: float
    oseg_s: float

    def __post_init__(self) -> None:
        _non_negative(self, (self.active_s, self.passive_s, self.iseg_s, self.oseg_s))


@dataclass(frozen=True)
class EtcpSample:
    t: float
    atmptf_s: float
    estres_s: float
    retrans_s: float
    isegerr_s: float
    orsts_s: float

    def __post_init__(self) -> None:
        _non_negative(self, (self.atmptf_s, self.estres_s, self.retrans_s, self.isegerr_s,
                             self.orsts_s))


@dataclass(frozen=True)
class SarSamples:
    dev: tuple[DevSample, ...] = ()
    edev: tuple[EdevSample, ...] = ()
    tcp: tuple[TcpSample, ...] = ()
    etcp: tuple[EtcpSample, ...] = ()


@dataclass(frozen=True)
class IfaceStat:
    iface: str
    rx_pps: float
    tx_pps: float
    rx_kbs: float
    tx_kbs: float
    rx_drop_s: float
    tx_drop_s: float
    rx_err_s: float
    tx_err_s: float
    n: int  # DEV samples averaged


@dataclass(frozen=True)
class SarSummary:
    interfaces: dict[str, IfaceStat]
    iseg_s: float
    oseg_s: float
    retrans_s: float
    n_tcp: int  # TCP samples averaged (0: no TCP report in the window)


# report -> (a column only its header has, {column: field})
_REPORTS: dict[str, tuple[str, dict[str, str]]] = {
    "dev": ("rxpck/s", {"IFACE": "iface", "rxpck/s": "rxpck_s", "txpck/s": "txpck_s",
                        "rxkB/s": "rxkb_s", "txkB/s": "txkb_s"}),
    "edev": ("rxerr/s", {"IFACE": "iface", "rxerr/s": "rxerr_s", "txerr/s": "txerr_s",
                         "rxdrop/s": "rxdrop_s", "txdrop/s": "txdrop_s"}),
    "tcp": ("iseg/s", {"active/s": "active_s", "passive/s": "passive_s", "iseg/s": "iseg_s",
                       "oseg/s": "oseg_s"}),
    "etcp": ("retrans/s", {"atmptf/s": "atmptf_s", "estres/s": "estres_s",
                           "retrans/s": "retrans_s", "isegerr/s": "isegerr_s",
                           "orsts/s": "orsts_s"}),
}
_TYPES = {"dev": DevSample, "edev": EdevSample, "tcp": TcpSample, "etcp": EtcpSample}


def command(interval_s: int = 1) -> list[str]:
    """DEV, EDEV, TCP and ETCP reports every interval, until stopped with SIGINT."""
    if interval_s < 1:
        raise ToolError("sar", "interval must be >= 1 s")
    return [BINARY, "-n", "DEV,EDEV,TCP,ETCP", str(int(interval_s))]


def parse(text: str) -> SarSamples:
    clock = SysstatClock()
    report: str | None = None
    columns: list[str] = []
    found: dict[str, list] = {name: [] for name in _REPORTS}
    for line in text.splitlines():
        if clock.banner(line):
            continue
        if not line.strip():
            report = None  # a blank line ends a block
            continue
        timed = clock.time(line)
        if timed is None:
            continue  # "Average:" and anything else without a time
        t, rest = timed
        fields = rest.split()
        header = next((name for name, (key, _) in _REPORTS.items() if key in fields), None)
        if header:
            report, columns = header, fields
            continue
        if report is None or len(fields) != len(columns):
            continue  # cut short by the stop signal
        row = dict(zip(columns, fields, strict=True))
        wanted = _REPORTS[report][1]
        try:
            values = {field: row[col] if field == "iface" else float(row[col])
                      for col, field in wanted.items()}
        except (KeyError, ValueError):
            continue
        found[report].append(_TYPES[report](t=t, **values))
    return SarSamples(**{name: tuple(items) for name, items in found.items()})


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize(
    samples: SarSamples, t0: float | None = None, t1: float | None = None
) -> SarSummary:
    """Per-interface and TCP means over the samples with t0 <= t <= t1."""
    dev: dict[str, list[DevSample]] = {}
    edev: dict[str, list[EdevSample]] = {}
    for d in samples.dev:
        if in_window(d.t, t0, t1):
            dev.setdefault(d.iface, []).append(d)
    for e in samples.edev:
        if in_window(e.t, t0, t1):
            edev.setdefault(e.iface, []).append(e)
    interfaces = {}
    for iface in sorted(dev.keys() | edev.keys()):
        ds, es = dev.get(iface, []), edev.get(iface, [])
        interfaces[iface] = IfaceStat(
            iface=iface,
            rx_pps=_mean([d.rxpck_s for d in ds]), tx_pps=_mean([d.txpck_s for d in ds]),
            rx_kbs=_mean([d.rxkb_s for d in ds]), tx_kbs=_mean([d.txkb_s for d in ds]),
            rx_drop_s=_mean([e.rxdrop_s for e in es]), tx_drop_s=_mean([e.txdrop_s for e in es]),
            rx_err_s=_mean([e.rxerr_s for e in es]), tx_err_s=_mean([e.txerr_s for e in es]),
            n=len(ds),
        )
    tcp = [s for s in samples.tcp if in_window(s.t, t0, t1)]
    etcp = [s for s in samples.etcp if in_window(s.t, t0, t1)]
    return SarSummary(
        interfaces=interfaces,
        iseg_s=_mean([s.iseg_s for s in tcp]), oseg_s=_mean([s.oseg_s for s in tcp]),
        retrans_s=_mean([s.retrans_s for s in etcp]), n_tcp=len(tcp),
    )
