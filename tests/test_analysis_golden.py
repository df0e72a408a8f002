"""Old and new analysis agree: every run of every recorded summary (tests/report/data, bench/reports),
each analysed as recorded and as if across hosts, and every run record test_analysis.py hands to the
rules, with the analysis the code gave when the golden file was written (tests/data/analysis_golden.json.gz).

The golden file is the frozen old behaviour. A change of behaviour is made on purpose by
rewriting it (`PYTHONPATH=. python tests/test_analysis_golden.py --write`): the commit then shows
the diff of what changed (`python tests/test_analysis_golden.py --diff` lists the cases)."""

from __future__ import annotations

import gzip
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from orchestrator import analysis, store
from orchestrator.records import Run

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GOLDEN = HERE / "data" / "analysis_golden.json.gz"
RECORDED = sorted([*(HERE / "report" / "data").glob("*/summary.json"),
                   *(REPO / "bench" / "reports").glob("*/summary.json")])


def _analyse(case: dict[str, Any]) -> dict[str, Any]:
    a = analysis.analyse_run(Run.model_validate(case["run"]), server=case["server"],
                             interface=case["interface"], loopback=case["loopback"],
                             th=analysis.Thresholds(**case["th"]))
    return a.to_json()


def _across(case: dict[str, Any]) -> list[dict[str, Any]]:
    runs, points = analysis.across_runs([Run.model_validate(r) for r in case["runs"]],
                                        analysis.Thresholds(**case["th"]))
    return [*(r.analysis.to_json() if r.analysis else None for r in runs), *(p.to_json() for p in points)]


def recorded_cases() -> list[dict[str, Any]]:
    """Each recorded run, analysed by its summary's topology and thresholds, and across hosts."""
    cases = []
    for path in RECORDED:
        s = store.load_summary(path.parent)
        th = analysis.Thresholds.from_dict(dict(s.thresholds or {}))
        topo = s.topology
        for r in s.runs:
            for loopback in {topo.loopback if topo else True, False}:
                cases.append({"name": f"{path.parent.name}/{r.label} loopback={loopback}",
                              "run": r.to_json(), "server": topo.server if topo else "localhost",
                              "interface": topo.interface if topo else None, "loopback": loopback,
                              "th": asdict(th)})
    return cases


def captured_cases() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every input tests/test_analysis.py gives analyse_run and across_runs (run in-process)."""
    import pytest

    singles: dict[str, dict[str, Any]] = {}
    matrices: dict[str, dict[str, Any]] = {}
    real_run, real_across = analysis.analyse_run, analysis.across_runs

    def run_spy(run: Run, *, server: str, interface: str | None, loopback: bool, th: analysis.Thresholds):
        case = {"run": run.to_json(), "server": server, "interface": interface, "loopback": loopback,
                "th": asdict(th)}
        singles.setdefault(json.dumps(case, sort_keys=True), case)
        return real_run(run, server=server, interface=interface, loopback=loopback, th=th)

    def across_spy(runs, th=None):
        runs = list(runs)
        case = {"runs": [r.to_json() for r in runs], "th": asdict(th or analysis.Thresholds())}
        matrices.setdefault(json.dumps(case, sort_keys=True), case)
        return real_across(runs, th)

    analysis.analyse_run, analysis.across_runs = run_spy, across_spy
    try:
        assert pytest.main(["-q", "-p", "no:cacheprovider", str(HERE / "test_analysis.py")]) == 0
    finally:
        analysis.analyse_run, analysis.across_runs = real_run, real_across
    single = [{"name": f"test_analysis #{i}", **c} for i, c in enumerate(singles.values())]
    matrix = [{"name": f"test_analysis matrix #{i}", **c} for i, c in enumerate(matrices.values())]
    return single, matrix


def write() -> None:
    singles, matrices = captured_cases()
    singles = recorded_cases() + singles
    for c in singles:
        c["analysis"] = _analyse(c)
    for c in matrices:
        c["analyses"] = _across(c)
    GOLDEN.parent.mkdir(exist_ok=True)
    body = json.dumps({"singles": singles, "matrices": matrices}, sort_keys=True, indent=0).encode()
    GOLDEN.write_bytes(gzip.compress(body, mtime=0))
    print(f"{GOLDEN}: {len(singles)} runs, {len(matrices)} matrices")


def golden() -> dict[str, list[dict[str, Any]]]:
    return json.loads(gzip.decompress(GOLDEN.read_bytes()))


def differences() -> list[str]:
    g, out = golden(), []
    for c in g["singles"]:
        got = _analyse(c)
        if got != c["analysis"]:
            keys = sorted(k for k in {*got, *c["analysis"]} if got.get(k) != c["analysis"].get(k))
            out.append(f"{c['name']}: " + "; ".join(f"{k}: {c['analysis'].get(k)!r} -> {got.get(k)!r}"
                                                     for k in keys))
    for c in g["matrices"]:
        got = _across(c)
        if got != c["analyses"]:
            pairs = enumerate(zip(c["analyses"], got, strict=False))
            out.append(f"{c['name']}: " + "; ".join(f"#{i}: {a!r} -> {b!r}" for i, (a, b) in pairs if a != b))
    return out


def test_the_golden_file_covers_every_recorded_summary_and_every_rule():
    g = golden()
    names = {c["name"].split("/")[0] for c in g["singles"]}
    assert {p.parent.name for p in RECORDED} <= names
    assert len(g["singles"]) >= 500 and len(g["matrices"]) >= 4
    rules = {c["analysis"].get("rule") for c in g["singles"]}
    rules |= {a.get("rule") for c in g["matrices"] for a in c["analyses"] if a}
    per_run = {r.name for r in analysis.RULES}
    assert per_run <= rules, per_run - rules


def test_analysis_agrees_with_the_golden_file():
    bad = differences()
    assert not bad, f"{len(bad)} cases differ:\n" + "\n".join(bad[:5])


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
    else:
        print("\n".join(differences()) or "no differences")
