"""`orchestrate`: one cmd_X(args) per subcommand, reached from a dispatch table (pyperf's shape).

Heavy imports happen inside the commands so `validate` and `--help` stay fast.
Exit codes: 0 ok, 1 a run failed, 2 bad input (nothing started), 3 regression, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSION,
    Interrupted,
    RunFailed,
    UserError,
)

if TYPE_CHECKING:
    from orchestrator.records import Summary

DEFAULT_SCENARIO = "loopback"
# compare.METRICS, spelled out so --help does not import the comparison stack
METRIC_CHOICES = ["qps", "capacity", "cpu_us_per_request", "process_cpu_us_per_request",
                  "packets_per_request", "p50", "p99", "p99_9"]
HISTORY_HELP = ("the history: a SQLite file, or s3://BUCKET/PREFIX to keep it (and every results "
                "folder) in S3 (default $ORCHESTRATE_HISTORY or ~/.local/share/orchestrate/history.sqlite)")


def _bit_rate(text: str) -> int:
    """--rate: bits/s, or e.g. 100mbit (the scenario's hosts.link.rate)."""
    from orchestrator.scenario import parse_rate

    try:
        rate = parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return int(rate)


def _scenario_path(arg: str | None) -> tuple[str, str | None]:
    """(name for messages, text) for a FILE argument; no argument = the embedded default."""
    if arg:
        return arg, None
    text = resources.files("orchestrator").joinpath("defaults", f"{DEFAULT_SCENARIO}.yaml").read_text()
    return f"<embedded {DEFAULT_SCENARIO}.yaml>", text


def _load(args: argparse.Namespace, *, last_passed: bool = True) -> Any:
    """The scenario, with `last-passed` (a server.ref, or a variant's) replaced by the commit the
    newest passing run of the scenario had as its candidate (refs.last_passed_sets), said on
    stderr; `last_passed=False` leaves it as written."""
    from orchestrator import scenario

    name, text = _scenario_path(args.file)
    loaded = scenario.load(name, getattr(args, "set", None) or [], text=text)
    return _last_passed(args, loaded) if last_passed else loaded


def _last_passed(args: argparse.Namespace, loaded: Any) -> Any:
    from orchestrator import refs, scenario

    if refs.LAST_PASSED not in refs.scenario_refs(loaded.scenario):
        return loaded
    from orchestrator.history import open_history

    more, why = refs.last_passed_sets(loaded.scenario, open_history(getattr(args, "history", None)))
    print(f"orchestrate: {why}", file=sys.stderr)
    name, text = _scenario_path(args.file)
    return scenario.load(name, [*(getattr(args, "set", None) or []), *more], text=text)


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = _load(args, last_passed=False)
    print(f"{loaded.source}: ok ({loaded.scenario.name})")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from orchestrator import scenario

    text = json.dumps(scenario.json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"schema: {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _client_count(sc: Any) -> str:
    scale = sc.hosts.roles.autoscale
    return f"{scale.min}..{scale.max} (auto-scale)" if scale else str(sc.hosts.roles.clients)


def cmd_plan(args: argparse.Namespace) -> int:
    from orchestrator.plan import expand, fmt_seconds

    loaded = _load(args)
    sc = loaded.scenario
    plan = expand(sc)
    print(f"scenario {sc.name} ({loaded.source}): provider {sc.hosts.provider}, "
          f"{sc.hosts.roles.server} server + {_client_count(sc)} client host(s)")
    if sc.baseline.enabled:
        b = sc.baseline.iperf3
        print(f"  baseline: iperf3 UDP {b.udp_length}-byte packets for {fmt_seconds(b.duration)}"
              + (f", TCP for {fmt_seconds(b.tcp_duration)}" if b.tcp else ""))
    if plan.searches:
        from orchestrator.capacity import slo_text

        search = sc.load.search
        assert search is not None
        print(f"  capacity search: {slo_text(search)}; {search.min_rate:,.0f}-{search.max_rate:,.0f} "
              f"req/s, doubling then bisecting to {search.precision:g}%")
        for s in plan.searches:
            print(f"  search {s.arch} threads={s.server_threads} conns={s.connections} rep {s.repetition}: "
                  f"likely {plan.search_runs} runs, at most {plan.search_runs_max}")
    else:
        for line in plan.rounds.lines() if plan.rounds else []:
            print(line)
        rep = "round" if plan.rounds else "rep"
        print(f"  {'#':>3}  {'run id':<32} {'arch':<10} {'threads':>7} {'conns':>6} {rep:>5}")
    for r in plan.runs:
        print(f"  {r.index:>3}  {r.run_id:<32} {r.arch:<10} {r.server_threads:>7} "
              f"{r.connections:>6} {r.repetition:>5}")
    cost = plan.rounds_cost()
    if cost:
        print(cost)
    from orchestrator import refs

    builds = refs.plan_builds(sc)  # server.ref: what building the refs costs, before anything runs
    for line in builds.lines() if builds else []:
        print(line)
    print(f"{plan.expected_runs} runs of {fmt_seconds(sc.load.duration)} load each; "
          f"expected total {fmt_seconds(plan.expected_seconds + (builds.seconds if builds else 0))} "
          "(an estimate: load time, builds plus "
          f"orchestration overheads {plan.overheads.provenance})")
    if plan.drain_max_s:
        print(f"  after each window orchestrate-load drains: it reads the answers still in flight, each "
              f"for up to load.timeout ({fmt_seconds(plan.drain_max_s)}); usually milliseconds, but a "
              f"server that leaves requests unanswered makes it {fmt_seconds(plan.seconds_at_most_draining)} "
              "in all")
    if plan.scale_runs_max:
        most = plan.seconds_for(plan.expected_runs + plan.scale_runs_max, with_baseline=True)
        print(f"  auto-scale: up to {plan.scale_runs_max} more run(s), one per client host added to a "
              f"point while the client is the limit; {fmt_seconds(most)} at most, plus each added "
              "host's set-up (connect, facts, deploy)")
    if sc.hosts.provider == "aws":
        from orchestrator.hosts.aws import prices

        for line in prices.describe_plan(sc):
            print(line)
        prices.check_spend(sc, getattr(args, "max_hourly", None))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator import compare, execute
    from orchestrator.doctor import preflight
    from orchestrator.history import open_history
    from orchestrator.report import table

    loaded = _load(args, last_passed=False)  # bad input first; then `last-passed` is looked up
    history = open_history(args.history)
    if args.fail_on_regression is not None:
        if not args.baseline and loaded.scenario.compare is None:
            raise UserError("--fail-on-regression needs --baseline REF (a results folder, 'latest' "
                            "or 'last:N'), or a scenario with compare: {factor, baseline}")
        problems = compare.gate_problems(loaded)
        if problems:
            raise UserError("the regression gate cannot judge this scenario", problems)
    if args.baseline:
        compare.check_ref(args.baseline)  # bad REF: fail before starting
    history.check()  # a missing bucket or denied credentials: before anything starts
    if loaded.scenario.hosts.provider == "aws":
        from orchestrator.hosts.aws import prices

        # before asking, before anything starts
        prices.check_spend(loaded.scenario, getattr(args, "max_hourly", None))
    loaded = _last_passed(args, loaded)
    _build_refs(loaded.scenario)  # server.ref: resolved and built here, before anything is provisioned
    preflight.check(loaded)  # CPUs, inventory, account (exit 2); tools to install (exit 1)
    aws = loaded.scenario.hosts.provider == "aws"
    if aws and not _confirm_cloud(loaded.scenario, args.yes):
        print("orchestrate: not started", file=sys.stderr)
        return EXIT_BAD_INPUT

    def completed(outcome: execute.Outcome) -> None:  # before execute indexes the session
        print(table.render(outcome.summary))
        if loaded.scenario.compare is not None:  # the floors the report shows beside the answer
            _keep_floors(history, outcome.summary, outcome.results)
        if args.no_report:
            print(f"report: not written (--no-report); orchestrate report {outcome.results} writes it")
        else:
            _build_report(outcome.results)  # in the folder a remote history keeps

    outcome = execute.run(loaded, results_root=Path(args.results), run_id=args.resume or args.run_id,
                          history=args.history, resume=bool(args.resume), on_complete=completed,
                          lab_options={"ssh_probe": args.ssh_probe} if aws and args.ssh_probe else None)
    print(f"results: {outcome.results}")
    _next_step(outcome.results)
    code = EXIT_OK
    if loaded.scenario.compare is not None:
        code = _factor_gate(args, history, outcome.summary, loaded.scenario, outcome.results)
    if not args.baseline:
        return code
    return max(code, _gate(args, history, outcome.summary))


def _keep_floors(history: Any, summary: Summary, folder: Path) -> None:
    import dataclasses

    from orchestrator.report.render import FLOORS_FILE

    floors = _floor(history, summary, _repetitions(summary), "*")
    (folder / FLOORS_FILE).write_text(json.dumps({m: dataclasses.asdict(f) for m, f in floors.items()},
                                                 indent=1) + "\n")


def _passed_commit(sc: Any, folder: Path) -> dict[str, str] | None:
    """{ref, sha} of the commit the gate judged against its baseline (refs.json), if one was."""
    from orchestrator import refs

    try:
        built = json.loads((folder / "refs.json").read_text())
    except (OSError, ValueError):
        return None
    return refs.candidate(sc, built) if isinstance(built, dict) else None


def _factor_gate(args: argparse.Namespace, history: Any, summary: Summary, sc: Any, folder: Path) -> int:
    """The run's own answer: every value of the compared factor against its baseline, paired by
    round. With --fail-on-regression P: exit 3 when a variant's interval on the compared
    metric lies beyond max(P, the floor) in the bad direction."""
    from orchestrator import compare, stats

    c = sc.compare
    gated = args.metric if args.metric and args.metric != "capacity" else c.metric
    floors = _floor(history, summary, _repetitions(summary), "*")
    metrics = list(dict.fromkeys([gated, "qps", "cpu_us_per_request"]))
    changes = compare.paired(summary, c.factor, c.baseline, metrics=metrics, floors=floors)
    print(f"compare {c.factor}: each value against {compare.value_text(c.baseline)}, paired by "
          f"round; {stats.PAIRED}; Holm across {len(changes)} comparison(s)")
    for ch in changes:
        floor = floors.get(ch.metric.name)
        print(f"  {ch.line()}" + (f" [{floor.text()}]" if floor else ""))
    if not changes:
        print("  no rounds to pair (each value needs 2 or more rounds with the metric measured)")
    if args.fail_on_regression is None:
        return EXIT_OK
    pct = args.fail_on_regression
    bad = compare.paired_regressions([ch for ch in changes if ch.metric.name == gated], pct, floors)
    floor = floors.get(gated)
    effect = max(pct, floor.pct if floor else 0.0)
    floor_text = floor.text() if floor else "noise floor not measured here (orchestrate noise)"
    lines = compare.paired_gate_lines(bad, c.factor, effect, floor_text,
                                      compare.explanations(summary, c.factor, c.baseline) if bad else None)
    verdict = {"threshold_pct": pct, "baseline": f"{c.factor}={c.baseline}",
               "regressed": [f"{ch.at} {c.factor}={ch.variant}" for ch in bad], "lines": lines}
    if not bad and (passed := _passed_commit(sc, folder)) is not None:
        verdict["passed"] = passed  # the commit a later `server.ref: last-passed` names
    return _gate_verdict(history, str(summary.run_id), verdict,
                         f"{len(bad)} variant(s) of {c.factor} worse than {compare.value_text(c.baseline)} "
                         f"by more than {effect:g}% on {gated}",
                         f"no variant of {c.factor} worse by more than {effect:g}% on {gated} ({floor_text})")


def _gate_verdict(history: Any, run_id: str, verdict: dict[str, Any], regressed: str, passed: str) -> int:
    """Either gate's ending: the verdict kept in history (for the dashboard), then exit 3 with
    its lines when something regressed, else the passing line."""
    try:
        history.record_gate(run_id, verdict)
    except Exception as exc:  # the verdict stands; only the dashboard misses the mark
        print(f"orchestrate: WARNING could not record the gate's verdict: {exc}", file=sys.stderr)
    if verdict["regressed"]:
        print(f"REGRESSION: {regressed}:", file=sys.stderr)
        for line in verdict["lines"]:
            print(f"  {line}", file=sys.stderr)
        return EXIT_REGRESSION
    print(f"regression gate: {passed}")
    return EXIT_OK


def _build_refs(sc: Any) -> None:
    """Every server.ref resolved (unknown: exit 2) and built locally (does not build: exit 1)."""
    from orchestrator import refs

    for ref, built in refs.prepare(sc, progress=lambda m: print(m, file=sys.stderr, flush=True)).items():
        how = "cached" if built.cached else f"built in {built.seconds:.0f}s"
        print(f"orchestrate: server.ref {ref} = {built.commit.short} {built.commit.subject!r}: {how}",
              file=sys.stderr)


def _next_step(folder: Path) -> None:
    """The run's last lines: its verdict and the next command worth running."""
    from orchestrator import store
    from orchestrator.report import nextstep

    try:
        advice = nextstep.advise(store.load_summary(folder))
    except (OSError, ValueError, UserError) as exc:
        print(f"orchestrate: WARNING no next step: {exc}", file=sys.stderr)
        return
    for line in advice.lines() if advice else ["next: orchestrate report " + str(folder)]:
        print(line)


def cmd_doctor(args: argparse.Namespace) -> int:
    from orchestrator.doctor import Check, checks, preflight, render

    loaded = _load(args)
    sc = loaded.scenario
    print(f"doctor: {loaded.source} (provider {sc.hosts.provider}), sampling {args.seconds:g} s")
    found = [Check("scenario", "fail", f"needs {lack}") for lack in preflight.lacking(sc)]
    found += checks.run_all(sc, args.seconds, ssh_probe=args.ssh_probe)
    print(render(found))
    return EXIT_FAILURE if any(c.status == "fail" for c in found) else EXIT_OK


def _gate(args: argparse.Namespace, history: Any, summary: Summary) -> int:
    """Compare the run with its baseline; with --fail-on-regression, exit 3 on a significant drop."""
    from orchestrator import compare

    scenario, run_id = str(summary.scenario), str(summary.run_id)
    found = compare.baseline(args.baseline, scenario=scenario, history=history, exclude=run_id)
    if found is None:  # a scheduled job's first night: this run becomes the baseline
        print(f"regression gate: no earlier complete run of scenario '{scenario}' in "
              f"{history.where}; nothing to compare with yet")
        return EXIT_OK
    name, before = found
    n = len(before) if isinstance(before, list) and len(before) > 1 else _repetitions(summary)
    floor = _floor(history, summary, n, args.metric)
    result = compare.compare(before, summary, names=(name, run_id), metric=args.metric, floor=floor)
    print(compare.render(result))
    for line in compare.shifts_report(history, scenario):
        print(line)
    if args.fail_on_regression is None:
        return EXIT_OK
    bad = result.regressions(args.fail_on_regression)
    verdict = {"threshold_pct": args.fail_on_regression, "baseline": name,
               "regressed": [compare.label(ch.point) for ch in bad],
               "lines": [ch.line() for ch in bad]}
    effect = result.effect_pct(args.fail_on_regression)
    return _gate_verdict(history, run_id, verdict,
                         f"{len(bad)} point(s) dropped significantly by more than {effect:g}%",
                         f"no significant drop larger than {effect:g}%")


def _repetitions(summary: Any) -> int:
    from orchestrator.records import as_summary

    return max((r.repetition for r in as_summary(summary, "summary").runs), default=1)


def _floor(history: Any, summary: Summary, n: int, metric: str | None = None) -> Any:
    """The noise floor measured on these hosts for this scenario, at n rounds, on `metric`
    (None: the gate's, QPS), or with metric "*" every floor by metric. None / {}: never
    measured (`orchestrate noise` measures it)."""
    from orchestrator import noise
    from orchestrator.history import machine_fingerprint

    try:
        found = noise.latest(history, str(summary.scenario), machine_fingerprint(summary))
    except Exception as exc:  # the comparison stands without it; say so
        print(f"orchestrate: WARNING could not read the noise floor: {exc}", file=sys.stderr)
        return {} if metric == "*" else None
    floors = noise.describe(found, n)
    return floors if metric == "*" else floors.get(metric or noise.METRIC)


def cmd_noise(args: argparse.Namespace) -> int:
    """A/A rounds of a scenario against itself on these hosts: the noise floor."""
    from orchestrator import execute, noise
    from orchestrator.history import open_history

    # A/A: every point 2N times; a compared factor's own rounds are not what is measured here
    args.set = [*(args.set or []), f"repeat={2 * args.rounds}", "compare=null", "rounds=null"]
    loaded = _load(args)
    if loaded.scenario.load.search is not None:
        raise UserError(f"{loaded.source}: load.search: the noise floor is measured on QPS rounds; "
                        "run `orchestrate noise` on the scenario without load.search")
    history = open_history(args.history)
    history.check()
    if loaded.scenario.hosts.provider == "aws" and not _confirm_cloud(loaded.scenario, args.yes):
        print("orchestrate: not started", file=sys.stderr)
        return EXIT_BAD_INPUT
    found: list[Any] = []

    def completed(outcome: execute.Outcome) -> None:  # noise.json in the folder history keeps
        try:
            found.append(noise.measure(outcome.summary))
        except ValueError as exc:
            raise RunFailed(f"noise floor: {exc} (results: {outcome.results})", phase="noise") from None
        (outcome.results / "noise.json").write_text(json.dumps(found[0].to_dict(), indent=1) + "\n")

    outcome = execute.run(loaded, results_root=Path(args.results), run_id=args.run_id, history=args.history,
                          on_complete=completed)
    measured = found[0]
    try:
        history.record_floor(measured.results_id, measured.to_dict())
    except Exception as exc:
        print(f"orchestrate: WARNING could not record the noise floor in history: {exc}", file=sys.stderr)
    for line in measured.lines():
        print(line)
    print(f"results: {outcome.results}")
    return EXIT_OK


def _confirm_cloud(sc: Any, yes: bool) -> bool:
    """Show what the run will rent and what it may cost; ask unless --yes."""
    from orchestrator.hosts.aws import cleanup, ec2, prices

    for line in prices.describe_plan(sc):
        print(line)
    cfg = ec2.config(sc)
    for line in cleanup.warn_expired(cfg.region, endpoint_url=cfg.endpoint_url):
        print(f"orchestrate: WARNING {line}", file=sys.stderr)
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UserError("an aws run rents machines: confirm with --yes when running unattended")
    return input("start these instances? [y/N] ").strip().lower() in ("y", "yes")


def _build_report(folder: Path) -> None:
    try:
        from orchestrator.report import render
    except ImportError:
        return
    try:
        paths = render.build(folder)
        print(f"report: {getattr(paths, 'html', paths)}")
    except Exception as exc:  # a broken plot must not hide the measured results
        print(f"orchestrate: WARNING report not written: {exc}", file=sys.stderr)


def cmd_bisect(args: argparse.Namespace) -> int:
    import json

    from orchestrator import bisect, refs, scenario

    name, text = _scenario_path(args.file)
    # each step compares server.ref in rounds of its own: the scenario's own comparison (the
    # embedded default's server.arch) gives way first, so --set server.arch=X is one point
    args.set = ["compare=null", "rounds=null", *(args.set or [])]
    sc = _load(args).scenario
    more, why = bisect.one_point(sc)  # like with like: one point, every step
    if more:
        print(f"orchestrate {why}", file=sys.stderr)
        args.set = [*(args.set or []), *more]
        sc = scenario.load(name, args.set, text=text).scenario
    repo = Path(args.repo).expanduser().resolve() if args.repo else refs.scenario_repo(sc)
    root = Path(args.results)
    if args.resume:
        path = bisect.folder(root, sc.name, args.resume)
        try:
            state = bisect.State.from_json(json.loads((path / "bisect.json").read_text()))
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"bisect --resume {args.resume}: cannot read {path / 'bisect.json'}: "
                            f"{exc}") from None
        for given, kept, what in ((args.good, state.good, "good"), (args.bad, state.bad, "bad")):
            if given and refs.resolve(given, repo).sha != kept.sha:
                raise UserError(f"bisect --resume {args.resume}: --{what} {given} is not the bisect's "
                                f"{what} ({kept.short})")
    else:
        if not args.good or not args.bad:
            raise UserError("bisect needs --good REF and --bad REF (or --resume ID)")
        state = bisect.start(sc.name, args.good, args.bad, repo=repo, metric=args.metric,
                             threshold_pct=args.threshold, min_rounds=args.rounds,
                             max_rounds=max(args.rounds, args.max_rounds))
        path = bisect.folder(root, sc.name, args.bisect_id or bisect.new_id())
        if (path / "bisect.json").exists():
            raise UserError(f"bisect: {path} exists already (--resume {path.name} continues it)")
        bisect.save_state(path, state)
    print(f"orchestrate bisect: {len(state.commits)} commits after {state.good.short}, up to "
          f"{state.bad.short}; {state.metric}, {state.min_rounds}..{state.max_rounds} rounds a step; "
          f"state in {path}", file=sys.stderr)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    runner = bisect.real_runner(name, text, args.set or [], repo, root, state.metric, args.history, say)
    try:
        result = bisect.search(state, runner, save=lambda: bisect.save_state(path, state),
                               progress=lambda line: print(line, flush=True))
    except (KeyboardInterrupt, Interrupted):
        bisect.save_state(path, state)
        batches = sum(len(b) for b in state.batches.values())
        print(f"orchestrate bisect: interrupted; {batches} batch(es) measured are kept in {path}; continue "
              f"with: orchestrate bisect {args.file or ''} --resume {path.name}".replace("  ", " "),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    bisect.save_state(path, state)
    print(result.lines()[-1])
    print(f"report: {bisect.report(result, state, path)}")
    return EXIT_OK if result.status == "found" else EXIT_FAILURE


def cmd_report(args: argparse.Namespace) -> int:
    from orchestrator import analysis, store
    from orchestrator.report import render

    folder = Path(args.dir)
    summary = store.load_summary(folder)
    topo = summary.topology
    if topo:  # re-analyse with the current rules, keep everything measured
        summary = analysis.analyse(summary, th=analysis.Thresholds.from_dict(dict(summary.thresholds or {})),
                                   server=topo.server, interface=topo.interface, loopback=topo.loopback)
        store.ResultsDir(folder).save_summary(summary)
    paths = render.build(folder)
    print(f"report: {getattr(paths, 'html', paths)}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from orchestrator import compare
    from orchestrator.history import open_history

    history = open_history(args.history)
    if args.factor:
        return _compare_paired(args, history)
    if args.b is None:
        raise UserError("compare needs two results folders A B, or one with --factor AXIS --baseline VALUE")
    (na, a), (nb, b) = compare.find(args.a, history), compare.find(args.b, history)
    n = min(_repetitions(a), _repetitions(b))
    floor = _floor(history, a, n, args.metric)
    result = compare.compare(a, b, names=(na, nb), metric=args.metric, floor=floor)
    print(compare.render(result))
    return EXIT_OK


def _compare_paired(args: argparse.Namespace, history: Any) -> int:
    """One results folder, a factor against its baseline value, its repetitions as rounds."""
    from orchestrator import compare, stats
    from orchestrator.point import text

    if args.b is not None or args.baseline is None:
        raise UserError("--factor AXIS compares within one results folder: give one folder and "
                        "--baseline VALUE")
    name, summary = compare.find(args.a, history)
    metrics = args.paired_metric or ["qps", "cpu_us_per_request"]
    raw = args.baseline
    values = {text(v): v for r in summary.runs if (v := r.key.get(args.factor)) is not None}
    if raw not in values and values:
        raise UserError(f"--baseline {raw}: no run of {name} has that value")
    changes = compare.paired(summary, args.factor, values.get(raw, raw), metrics=metrics,
                             floors=_floor(history, summary, _repetitions(summary), "*"))
    print(f"compare within {name}: {args.factor}, each value against {raw}, paired by round "
          f"(repetition k of every value is round k); {stats.PAIRED}; Holm across "
          f"{len(changes)} comparison(s)")
    for c in changes:
        print(c.line())
    if not changes:
        print("no rounds to pair (each value needs 2 or more repetitions with the metric measured)")
    from orchestrator import explain

    for (at, _), why in explain.by_cell(summary.runs, args.factor, values.get(raw, raw), summary).items():
        print(f"why, at {at.label()}: " + "\n".join(why.lines()))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from orchestrator import compare
    from orchestrator.history import open_history

    history = open_history(args.history)
    history.check()
    rows = history.sessions(scenario=args.scenario, status=args.status, limit=args.limit)
    if not rows:
        print(f"no runs recorded in {history.where}")
        return EXIT_OK
    gates = history.gates()
    print(f"{'started':<21} {'scenario':<20} {'results id':<24} {'status':<12} {'runs':>4}  path")
    for r in rows:
        gate = gates.get(r["results_id"])
        mark = f"  REGRESSION: {', '.join(gate['regressed'])}" if gate and gate.get("regressed") else ""
        print(f"{r['started'] or '-':<21} {r['scenario']:<20} {r['results_id']:<24} "
              f"{(r['status'] or '-'):<12} {r['n_runs']:>4}  {r['path']}{mark}")
    if args.changes:
        for scenario in sorted({r["scenario"] for r in rows}):
            for line in compare.shifts_report(history, scenario):
                print(f"{scenario}: {line}")
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from orchestrator.history import open_history
    from orchestrator.site import publish

    history = open_history(args.history)
    history.check()
    index = publish(history, Path(args.site), scenario=args.scenario)
    print(f"site: {index}")
    return EXIT_OK


def cmd_lab(args: argparse.Namespace) -> int:
    from orchestrator.hosts import netns

    if args.action == "up":
        size = netns.size_flags(args.cpu or [], args.cpus or [])
        state = netns.up(args.name or "lab", args.hosts, pps=args.pps, size=size, rate=args.rate,
                         queue=args.queue)
        print(netns.describe(state))
    elif args.action == "down":
        removed = netns.down(args.name or "lab")
        print("\n".join(removed) if removed else f"lab {args.name or 'lab'}: nothing to remove")
    else:
        states = netns.status(args.name)
        print("\n".join(netns.describe(s) for s in states) if states else "no lab is up")
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    from orchestrator import cleanup

    if args.provider == "aws":
        from orchestrator.hosts.aws import cleanup as aws_cleanup

        # The given region, or every region the local run records name and the profile's; only
        # this caller's runs unless --all-users.
        reports = aws_cleanup.cleanup_everywhere(args.region, all=args.all, run_id=args.run_id,
                                                 dry_run=args.dry_run, endpoint_url=args.endpoint_url,
                                                 profile=args.profile, all_users=args.all_users)
        for report in reports:
            for x in report.removed:
                print(f"{'would remove' if args.dry_run else 'removed'} {x.kind} {x.id} in {report.region} "
                      f"(run {x.run_id or '?'}, expires {x.expires or '?'})")
            for line in report.failed:
                print(f"FAILED {report.region}: {line}", file=sys.stderr)
            if report.others:
                print(f"left {report.others} resource(s) of other users' runs alone in {report.region} "
                      "(--all-users to include them)")
            if not report.removed and not report.failed:
                print(f"aws {report.region}: nothing to clean up")
        return EXIT_OK if all(r.ok for r in reports) else EXIT_FAILURE
    stopped = cleanup.orphan_processes()
    for rid, pids in stopped.items():
        print(f"stopped {len(pids)} process(es) left by run {rid}: pids {', '.join(map(str, pids))}")
    restored, unrestored = cleanup.sysctls()  # before the labs go: a kept lab gets its values back
    for line in restored:
        print(line)
    for line in unrestored:
        print(f"FAILED sysctl {line}", file=sys.stderr)
    if args.provider == "netns" or args.labs:
        kept, removed = cleanup.idle_labs()
        for name, runs in kept.items():
            print(f"lab {name}: in use by run {', '.join(runs)}; left up")
        print("\n".join(removed) if removed else "no lab to remove")
    else:
        print("no lab to remove")
    if not stopped:
        print("no process left by an earlier run")
    return EXIT_FAILURE if unrestored else EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate,
    "doctor": cmd_doctor,
    "schema": cmd_schema,
    "plan": cmd_plan,
    "run": cmd_run,
    "report": cmd_report,
    "compare": cmd_compare,
    "noise": cmd_noise,
    "bisect": cmd_bisect,
    "history": cmd_history,
    "publish": cmd_publish,
    "lab": cmd_lab,
    "cleanup": cmd_cleanup,
}


def _scenario_cmd(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str,
                  file_required: bool = True) -> argparse.ArgumentParser:
    """A command that takes a scenario FILE and --set overrides, like every scenario command."""
    sp = sub.add_parser(name, help=help, description=help)
    sp.add_argument("file", nargs=None if file_required else "?", metavar="FILE",
                    help="scenario YAML" + ("" if file_required else
                                            " (default: the embedded loopback scenario)"))
    sp.add_argument("--set", action="append", metavar="KEY.PATH=VALUE",
                    help="override a scenario key (validated like the file); repeatable")
    return sp


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "22")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"HOST[:PORT], got {text!r}")
    return host, int(port)


def _run_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """validate, doctor, plan and run: a scenario checked, planned and run."""
    _scenario_cmd(sub, "validate", "check a scenario; exit 2 with FILE:LINE messages if it is wrong")
    doc = _scenario_cmd(sub, "doctor", "check this machine (and a static inventory's hosts) for a scenario: "
                            "one ok/warn/fail line per check, with the fix; exit 1 on a fail", False)
    doc.add_argument("--seconds", type=float, default=1.0, metavar="N",
                     help="how long to sample the pinned CPUs' load and pauses (default 1)")
    doc.add_argument("--ssh-probe", type=_host_port, metavar="HOST[:PORT]",
                     help="aws: the public SSH server that shows TCP port 22 leaves this network "
                          "(default github.com:22)")
    pl = _scenario_cmd(sub, "plan", "show the runs a scenario expands to and the expected time", False)
    pl.add_argument("--max-hourly", type=float, metavar="USD",
                    help="aws: refuse a plan whose worst case costs more per hour "
                    "(default: hosts.aws.max_hourly)")
    r = _scenario_cmd(sub, "run", "run a scenario end to end", False)
    r.add_argument("--results", default="results", metavar="DIR", help="results root (default ./results)")
    r.add_argument("--run-id", help=argparse.SUPPRESS)
    r.add_argument("--baseline", metavar="REF",
                   help="compare with this results folder, 'latest' (newest complete run of the "
                   "scenario in the history) or 'last:N' (its N newest, pooled)")
    r.add_argument("--fail-on-regression", type=float, metavar="PCT",
                   help="exit 3 if any point drops significantly by more than PCT percent "
                   "(against --baseline: needs repeat >= 3) or, in a scenario with compare:, if a "
                   "variant's interval lies beyond max(PCT, the noise floor) in the bad direction")
    r.add_argument("--metric", choices=METRIC_CHOICES,
                   help="what the baseline comparison judges (default: capacity when the scenario "
                   "searches for it, else QPS; CPU per request and latencies: a rise is worse)")
    r.add_argument("--resume", metavar="RUN_ID",
                   help="continue an interrupted sweep in its results folder, skipping measured runs")
    r.add_argument("--yes", action="store_true", help="do not ask before renting cloud machines")
    r.add_argument("--no-report", action="store_true",
                   help="skip report.md and report.html (about 2 s of charts); the summary, table and "
                   "verdict are written as always, and `orchestrate report DIR` builds the report later")
    r.add_argument("--max-hourly", type=float, metavar="USD",
                   help="aws: refuse a plan whose worst case costs more per hour "
                   "(default: hosts.aws.max_hourly)")
    r.add_argument("--history", metavar="DB|s3://BUCKET/PREFIX", help=HISTORY_HELP)
    r.add_argument("--ssh-probe", type=_host_port, metavar="HOST[:PORT]",
                   help="aws: the public SSH server whose banner shows TCP port 22 leaves this network, "
                   "checked before anything is created (default github.com:22)")


def _study_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """noise and bisect: a scenario run again and again to measure the floor or find a commit."""
    nz = _scenario_cmd(sub, "noise", "measure the noise floor: A/A rounds of the scenario against itself "
                           "on these hosts; kept in the history with the hosts' fingerprint", False)
    nz.add_argument("--rounds", type=int, default=5, choices=range(2, 51), metavar="N",
                    help="A/A rounds (each runs every point twice; default 5, 2..50)")
    nz.add_argument("--results", default="results", metavar="DIR", help="results root (default ./results)")
    nz.add_argument("--run-id", help=argparse.SUPPRESS)
    nz.add_argument("--yes", action="store_true", help="do not ask before renting cloud machines")
    nz.add_argument("--history", metavar="DB|s3://BUCKET/PREFIX", help=HISTORY_HELP)

    bi = _scenario_cmd(sub, "bisect", "find the first commit between --good and --bad that moved the metric: "
                           "each step builds a commit and runs it against good in paired rounds", False)
    bi.add_argument("--good", metavar="REF", help="a commit where the metric was as expected")
    bi.add_argument("--bad", metavar="REF", help="a later commit where it had moved")
    bi.add_argument("--metric", default="qps", choices=["qps", "p99", "cpu_us_per_request"],
                    help="what is compared, other/good per round (default qps)")
    bi.add_argument("--threshold", type=float, metavar="PCT",
                    help="a commit is bad beyond this change (default: half the good-bad difference "
                    "measured in the first step)")
    bi.add_argument("--rounds", type=int, default=3, choices=range(2, 51), metavar="N",
                    help="paired rounds per batch (default 3)")
    bi.add_argument("--max-rounds", type=int, default=9, metavar="N",
                    help="an undecided step gets more batches up to this many rounds, then is skipped "
                    "(default 9)")
    bi.add_argument("--repo", metavar="DIR",
                    help="the git repository (default: server.repo, else this checkout)")
    bi.add_argument("--resume", metavar="ID", help="continue an interrupted bisect (its folder's name)")
    bi.add_argument("--results", default="results", metavar="DIR", help="results root (default ./results)")
    bi.add_argument("--bisect-id", help=argparse.SUPPRESS)
    bi.add_argument("--history", metavar="DB|s3://BUCKET/PREFIX", help=HISTORY_HELP)


def _results_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """schema, report, compare, history and publish: what reads results rather than making them."""
    sch = sub.add_parser("schema", help="the scenario JSON Schema (for editors: the shipped scenarios "
                         "point to scenarios/scenario.schema.json)")
    sch.add_argument("-o", "--output", metavar="FILE", help="write it here instead of standard output")
    rep = sub.add_parser("report", help="(re)build report.md and report.html for a results folder")
    rep.add_argument("dir", metavar="DIR")
    cmp_ = sub.add_parser("compare", help="compare two results folders point by point: B/A with "
                          "its 95%% interval (unpaired: carries the drift between them)")
    cmp_.add_argument("a", metavar="A", help="a results folder or a run id in the history")
    cmp_.add_argument("b", metavar="B", nargs="?", help="the other results folder (not with --factor)")
    cmp_.add_argument("--factor", metavar="AXIS",
                      help="compare the values of this axis (server.arch, variant, server.work_us, "
                      "load.keepalive, ...) within folder A, round by round "
                      "(repetition k = round k), each against --baseline")
    cmp_.add_argument("--baseline", metavar="VALUE", help="the factor's baseline value, e.g. main-sub")
    cmp_.add_argument("--paired-metric", action="append", metavar="METRIC",
                      choices=[m for m in METRIC_CHOICES if m != "capacity"],
                      help="with --factor: a metric to compare (repeatable; default qps and "
                      "cpu_us_per_request)")
    cmp_.add_argument("--history", metavar="DB|s3://BUCKET/PREFIX", help=HISTORY_HELP)
    cmp_.add_argument("--metric", choices=METRIC_CHOICES,
                      help="compare QPS, or the capacity searches found (default: capacity when "
                      "both have it)")
    h = sub.add_parser("history", help="list recorded runs")
    h.add_argument("--scenario")
    h.add_argument("--status", choices=["complete", "failed", "interrupted"])
    h.add_argument("--limit", type=int, default=50)
    h.add_argument("--history", metavar="DB|s3://BUCKET/PREFIX", help=HISTORY_HELP)
    h.add_argument("--changes", action="store_true", help="also where each point's series shifted")
    pub = sub.add_parser("publish", help="write a static dashboard of the history (opens without a server)")
    pub.add_argument("--site", required=True, metavar="DIR", help="where to write it (index.html)")
    pub.add_argument("--scenario", help="only this scenario")
    pub.add_argument("--history", metavar="DB|s3://BUCKET/PREFIX", help=HISTORY_HELP)


def _lab_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """lab and cleanup: the hosts themselves."""
    lab = sub.add_parser("lab", help="a lab of SSH hosts in network namespaces on this machine")
    lab.add_argument("action", choices=["up", "down", "status"])
    lab.add_argument("--name", default=None, help="lab name (default 'lab'; status: all labs)")
    lab.add_argument("--hosts", type=int, default=3, help="number of hosts (first one is the server)")
    lab.add_argument("--pps", type=int, default=None, help="packet-rate cap per link, each direction")
    lab.add_argument("--rate", type=_bit_rate, default=None,
                     help="bandwidth cap per link, each direction (bits/s, or e.g. 100mbit; no packet-size "
                          "floor); instead of --pps")
    lab.add_argument("--queue", type=int, default=None,
                     help="the cap's queue in bytes (default: what 50 ms at the cap holds)")
    lab.add_argument("--cpu", action="append", metavar="[ROLE=]N",
                     help="size hosts: N CPUs' worth of time each (a cgroup quota, e.g. 0.5); "
                          "ROLE=N (server= or client=) for one role; repeatable")
    lab.add_argument("--cpus", action="append", metavar="[ROLE=]LIST",
                     help="the CPUs hosts may run on (a cpuset, e.g. 1 or 0-1); ROLE=LIST for one role")

    c = sub.add_parser("cleanup", help="remove what a killed run left behind")
    c.add_argument("--provider", choices=["local", "netns", "aws"], default="netns",
                   help="local: processes of dead runs; netns (default): those and every lab; aws")
    c.add_argument("--labs", action="store_true", help="local: also take down every lab")
    c.add_argument("--region", default=None, help="aws: default: every region the local run records "
                   "name, and the profile's or AWS_REGION's")
    c.add_argument("--profile", default=None, help="aws: a named profile (default: AWS_PROFILE or default)")
    c.add_argument("--all", action="store_true", help="aws: also resources that have not expired")
    c.add_argument("--all-users", action="store_true",
                   help="aws: also other users' runs (default: only runs tagged with your identity)")
    c.add_argument("--run-id", help="aws: only what this run created")
    c.add_argument("--dry-run", action="store_true", help="aws: list, remove nothing")
    c.add_argument("--endpoint-url", help="aws: another EC2 endpoint (e.g. a moto server)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="orchestrate",
        description="Run a network-server benchmark end to end and explain the number.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _run_commands(sub)
    _study_commands(sub)
    _results_commands(sub)
    _lab_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"orchestrate: {exc or 'interrupted'}; everything started was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RunFailed as exc:
        print(f"orchestrate: run failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:
        # A cloud API error is a failure with a message, not a traceback.
        if type(exc).__module__.startswith(("botocore", "boto3")):
            print(f"orchestrate: aws: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        raise


if __name__ == "__main__":
    sys.exit(main())
