"""The kernel's TCP counters of one run (records.KernelCounters, from tools/nstat.py) read as
evidence: listen-queue overflows and drops (the accept-bound rule) and retransmissions and
receive-side drops (the loss-bound rule). Numbers only; analysis.py words and ranks them.

On loopback the client and the server are one kernel with one set of counters (`shared`):
the figures are given as the machine's, and no side is named. Across hosts a host's
retransmissions are segments *it* sent that went unanswered: the path from it to the other
side. A listen queue is the server's by construction (only it listens), so listen
overflows name the server host in both cases.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.records import KernelCounters, Run

DROPS = ("backlog_drops", "rcv_pruned", "ofo_pruned")  # receive-side drops of a socket


@dataclass(frozen=True)
class Accept:
    """Listen-queue overflows at the server over the window."""

    host: str
    overflows: int  # ListenOverflows: accept queue full, the handshake's last ACK dropped
    drops: int  # ListenDrops: every drop at a listener (overflows included)
    per_second: float | None
    per_request: float | None
    shared: bool  # loopback: one kernel's counters


@dataclass(frozen=True)
class Loss:
    """One host's retransmissions and receive-side drops over the window."""

    host: str
    roles: tuple[str, ...]
    retrans: int
    out_segs: int
    timeouts: int
    drops: int
    drops_per_second: float | None
    shared: bool

    @property
    def retrans_pct(self) -> float:
        return 100.0 * self.retrans / self.out_segs if self.out_segs else 0.0

    @property
    def side(self) -> str | None:
        """server or client, off loopback; None where one kernel is both."""
        return None if self.shared or len(self.roles) != 1 else self.roles[0]


def _int(v: int | None) -> int:
    return v or 0


def _server(run: Run) -> tuple[str, KernelCounters] | None:
    return next(((h, k) for h, k in (run.kernel or {}).items() if "server" in k.roles), None)


def accept(run: Run) -> Accept | None:
    """The server host's listen overflows and drops, when there were any."""
    found = _server(run)
    if found is None:
        return None
    host, k = found
    overflows, drops = k.run.get("listen_overflows"), k.run.get("listen_drops")
    if not overflows and not drops:
        return None
    key = "listen_overflows" if overflows else "listen_drops"
    return Accept(host, _int(overflows), _int(drops), k.per_second.get(key), k.per_request.get(key),
                  k.shared)


def losses(run: Run) -> list[Loss]:
    """Each host's retransmissions and drops (hosts whose counters were read)."""
    out = []
    for host, k in (run.kernel or {}).items():
        if k.run.get("retrans_segs") is None and all(k.run.get(d) is None for d in DROPS):
            continue
        drops = sum(_int(k.run.get(d)) for d in DROPS)
        per_s = [v for d in DROPS if (v := k.per_second.get(d)) is not None]
        out.append(Loss(host, tuple(k.roles), _int(k.run.get("retrans_segs")), _int(k.run.get("out_segs")),
                        _int(k.run.get("timeouts")), drops, sum(per_s) if per_s else None, k.shared))
    return out


def worst_loss(run: Run, retrans_pct: float, drops_per_s: float) -> Loss | None:
    """The host whose retransmissions (% of the segments it sent) or drops (/s) reach a
    threshold, the highest retransmission share first; None when none does."""
    over = [x for x in losses(run) if x.retrans_pct >= retrans_pct
            or (x.drops_per_second is not None and x.drops_per_second >= drops_per_s)]
    return max(over, key=lambda x: (x.retrans_pct, x.drops), default=None)


def path_of(loss: Loss, run: Run) -> str:
    """Which way the lost segments went: `client orch-1 -> server orch-0`, or loopback."""
    if loss.side is None:
        return f"loopback on {loss.host} (one kernel: client and server share the counters, no side)"
    others = [h for h, k in (run.kernel or {}).items() if h != loss.host and loss.side not in k.roles]
    other = "client" if loss.side == "server" else "server"
    return f"{loss.side} {loss.host} -> {other} {', '.join(others) or '?'}"
