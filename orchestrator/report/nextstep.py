"""What to run next, from the rule that decided a run's verdict: the end of `orchestrate run`.

One small table, keyed by the rule names analysis.RULES declares (a test checks every key is
one); when analysis renames or adds a rule, this table is the one place to update. A rule
missing here gets the generic advice, never an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from orchestrator.records import Summary

# rule name -> (what to try next, why)
NEXT: dict[str, tuple[str, str]] = {
    "unmeasured": ("add `telemetry: [pidstat, mpstat]` to the scenario and run it again",
                   "the server's CPU was not measured, so no limit can be named"),
    "nic-allowance": ("a larger instance type (hosts.aws), or fewer packets per request "
                      "(keep-alive on)", "the cloud NIC's packet allowance is the limit, not the server"),
    "ceiling": ("orchestrate compare two architectures on this same link, or raise the cap "
                "(hosts.link.pps)", "the network ceiling set the figure: the server has headroom"),
    "both-saturated": ("orchestrate run scenarios/capacity.yaml (open loop: the rate the server "
                       "holds under a p99 SLO), or give load.cpus more CPUs on a larger machine",
                       "server and load generator both ran out of CPU here, so neither is the "
                       "limit alone; a capacity search decides by latency instead"),
    "server-cpu": ("orchestrate run scenarios/reference-three-architectures.yaml",
                   "the server's CPU is the limit: CPU per request tells the architectures apart"),
    "server-thread": ("raise load.connections or server.threads (--set ...)",
                      "one server thread is the limit: the load is unevenly spread"),
    "server-kept-from-running": ("orchestrate doctor, then pin the server to CPUs nothing else uses",
                                 "the server waited for a CPU: something else runs on its CPUs"),
    "server-serialised": ("look at the server's own logs and locks (raw/<run>/)",
                          "more connections did not raise QPS: requests queue inside the server"),
    "client": ("give the load generator more CPUs or client hosts (hosts.roles.client: {min, max})",
               "the load generator, not the server, set the figure"),
    "concurrency": ("raise load.connections (--set load.connections=[64,256,1024])",
                    "nothing was saturated: this closed loop was limited by requests in flight"),
    "nothing-fits": ("orchestrate doctor, then the report's evidence column",
                     "no rule fits; the evidence says what was and was not measured"),
}
GENERIC = ("open the report's evidence column", "it shows the deciding numbers of each run")


@dataclass(frozen=True)
class Advice:
    verdict: str
    rule: str
    count: int  # runs with this rule
    runs: int  # runs analysed
    evidence: str
    next: str
    why: str

    def lines(self) -> list[str]:
        share = f" in {self.count} of {self.runs} runs" if self.runs > 1 else ""
        first = f"verdict: {self.verdict} ({self.rule}){share}"
        return [first + (f": {self.evidence}" if self.evidence else ""),
                f"next: {self.next} ({self.why})"]


def advise(summary: Summary) -> Advice | None:
    """The most common deciding rule over the session's runs, and what to try next (None: no
    run was analysed)."""
    analysed = [r.analysis for r in summary.runs if r.analysis and r.analysis.verdict]
    if not analysed:
        return None
    rules = Counter(str(a.rule or a.verdict) for a in analysed)
    rule, count = rules.most_common(1)[0]
    first = next(a for a in analysed if (a.rule or a.verdict) == rule)
    todo, why = NEXT.get(rule, GENERIC)
    return Advice(verdict=str(first.verdict), rule=rule, count=count, runs=len(analysed),
                  evidence="; ".join(first.evidence[:1]), next=todo, why=why)
