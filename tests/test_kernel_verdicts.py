"""accept-bound and loss-bound: the kernel's TCP counters (records.KernelCounters) as a run's
evidence, read by orchestrator/kernel.py and ranked by analysis.RULES."""

from __future__ import annotations

from orchestrator import analysis, kernel
from orchestrator.records import Run

SECONDS = 10.0


def with_counters(rec: dict, *, loopback: bool = False, **hosts: dict[str, int]) -> dict:
    """`rec` with the kernel counters of hosts `srv` (the server) and `cli` (the client); on
    loopback one host, both roles, shared counters."""
    requests = int((rec.get("qps") or 0) * SECONDS)

    def entry(values: dict[str, int], roles: tuple[str, ...]) -> dict:
        return {"run": values, "roles": list(roles), "shared": len(roles) > 1,
                "per_second": {k: v / SECONDS for k, v in values.items()},
                "per_request": {k: v / requests if requests else None for k, v in values.items()}}

    if loopback:
        merged = {k: v for values in hosts.values() for k, v in values.items()}
        return {**rec, "requests": requests, "kernel": {"srv": entry(merged, ("server", "client"))}}
    return {**rec, "requests": requests,
            "kernel": {"srv": entry(hosts.get("srv", {}), ("server",)),
                       "cli": entry(hosts.get("cli", {}), ("client",))}}


OVERFLOWS = {"listen_overflows": 975, "listen_drops": 975, "out_segs": 100_000}
LOSSY = {"retrans_segs": 2_000, "out_segs": 100_000, "timeouts": 40}


def kernel_cases() -> list[dict]:
    """Records each rule decides (test_analysis's grid renders every template from them)."""
    from test_analysis import record

    quiet = record(server_core=40, thread_busy=30, client=40)
    return [with_counters(quiet, srv=OVERFLOWS),
            with_counters(record(server_core=95, thread_busy=90, client=95), srv=OVERFLOWS),
            with_counters(record(server_core=40, thread_busy=30, client=95), srv=OVERFLOWS),
            with_counters(quiet, cli=LOSSY, srv={"out_segs": 100_000}),
            with_counters(quiet, loopback=True, cli=LOSSY),
            with_counters(record(qps=46_000, rx=46_000, tx=46_000, server_core=40, thread_busy=30, client=40),
                          cli=LOSSY)]


def verdict(rec: dict, loopback: bool = False) -> analysis.Analysis:
    return analysis.analyse_run(Run.model_validate(rec), server="srv", interface=None, loopback=loopback,
                                th=analysis.Thresholds())


def test_listen_overflows_make_a_run_accept_bound_with_the_counts_as_evidence():
    quiet, busy, client_only, *_ = kernel_cases()
    a = verdict(quiet)
    assert (a.verdict, a.rule) == (analysis.ACCEPT, "accept-bound")
    assert a.evidence[0].startswith("ListenOverflows 975 (97.5/s, 0.0097 per request) and ListenDrops 975 "
                                    "on srv: the listen queue was full")
    # both saturated: the verdict stays both-saturated, accept-bound a flag beside it
    b = verdict(busy)
    assert b.rule == "both-saturated"
    assert any(f.startswith("accept-bound: ListenOverflows 975") for f in b.flags)
    # only the generator saturated: the queue and the generator both limit the run, so it is
    # both-saturated too (never client-bound, which would say the server had room)
    c = verdict(client_only)
    assert (c.verdict, c.rule) == (analysis.INCONCLUSIVE, "both-saturated"), c.evidence
    assert c.evidence[0].startswith("the server's listen queue overflowed (accept-bound, flagged) while the "
                                    "load generator was saturated")
    assert any(f.startswith("accept-bound: ListenOverflows 975") for f in c.flags)
    # none: no such verdict nor flag
    from test_analysis import record

    d = verdict(with_counters(record(server_core=40, thread_busy=30, client=40), srv={"out_segs": 1}))
    assert d.verdict != analysis.ACCEPT and not any("ListenOverflows" in f for f in d.flags)


def test_retransmissions_above_the_threshold_are_loss_bound_naming_path_and_side():
    _, _, _, across, loop, capped = kernel_cases()
    a = verdict(across)
    assert a.verdict == analysis.LOSS
    assert a.evidence[0].startswith("2,000 of 100,000 segments retransmitted by client (2.00% >= 1%)")
    assert a.evidence[0].endswith("on the path client cli -> server srv")
    b = verdict(loop, loopback=True)
    assert b.verdict == analysis.LOSS and "by srv" in b.evidence[0]
    assert "one kernel: client and server share the counters, no side" in b.evidence[0]
    # a link ceiling reached too: network-bound, the loss its evidence
    c = verdict(capped)
    assert c.verdict == analysis.NETWORK and any("segments retransmitted by client" in e for e in c.evidence)
    # below the threshold: not loss-bound
    quiet = {**across, "kernel": {**across["kernel"], "cli": {**across["kernel"]["cli"],
                                                              "run": {**LOSSY, "retrans_segs": 900}}}}
    assert verdict(quiet).verdict != analysis.LOSS


def test_overflows_explain_the_resent_syns_so_loss_does_not_decide():
    from test_analysis import record

    rec = with_counters(record(server_core=40, thread_busy=30, client=95), srv=OVERFLOWS, cli=LOSSY)
    a = verdict(rec)
    assert a.verdict != analysis.LOSS and any(f.startswith("accept-bound") for f in a.flags)
    assert kernel.worst_loss(Run.model_validate(rec), 1.0, 10.0) is not None
