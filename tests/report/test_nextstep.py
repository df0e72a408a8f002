"""The run's last lines: the verdict's rule and what to run next."""

from __future__ import annotations

from orchestrator import analysis
from orchestrator.records import Analysis, Run, Summary
from orchestrator.report import nextstep

from testkit import run_record, session


def test_every_key_is_a_rule_analysis_declares():
    # analysis.RULES is the one list of rule names; a renamed rule shows here first.
    assert set(nextstep.NEXT) <= {r.name for r in analysis.RULES}


def _run(rid: str, verdict: str, rule: str) -> Run:
    return Run.model_validate(run_record(run_id=rid, analysis=Analysis(verdict=verdict, rule=rule,
                                                                       evidence=(f"{rid} said so",))))


def test_the_most_common_rule_decides_and_the_line_says_what_to_try_and_why():
    summary = Summary(**session(), runs=[_run("a", analysis.INCONCLUSIVE, "both-saturated"),
                                         _run("b", analysis.INCONCLUSIVE, "both-saturated"),
                                         _run("c", analysis.SERVER, "server-cpu")])
    advice = nextstep.advise(summary)
    assert advice is not None
    verdict, nxt = advice.lines()
    assert verdict == "verdict: inconclusive (both-saturated) in 2 of 3 runs: a said so"
    assert nxt.startswith("next: orchestrate run scenarios/capacity.yaml") and "(server and load" in nxt


def test_a_rule_unknown_here_gets_the_generic_advice_and_no_run_none():
    advice = nextstep.advise(Summary(**session(), runs=[_run("a", "new-verdict", "a-rule-added-later")]))
    assert advice is not None and advice.next == nextstep.GENERIC[0]
    assert nextstep.advise(Summary(**session(), runs=[])) is None
