"""Runs a Plan: facts -> deploy -> baseline -> for each run (server, telemetry, wrk, stop, fetch)
-> record with analysis. The baseline and telemetry steps live in baseline.py and telemetry.py.

Teardown happens on every path: every process a run started is stopped on every
host, the lab is released, and the runs already measured stay in summary.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import itertools
import json
import resource
import shlex
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from orchestrator import analysis, baseline, capacity, load, records, remote, signals, store, telemetry, tools
from orchestrator import hosts as _hosts
from orchestrator import sysctl as _sysctl
from orchestrator.context import Context, Progress, pause_point, plain
from orchestrator.errors import Interrupted, RunFailed, UserError
from orchestrator.history import open_history
from orchestrator.hosts import Host
from orchestrator.plan import Plan, RunSpec, expand, fmt_seconds
from orchestrator.point import classic
from orchestrator.remote import ProcessTable, Transport, each
from orchestrator.scenario import Loaded, Scenario, at, dump
from orchestrator.scenario import for_point as scenario_for
from orchestrator.store import ResultsDir, new_run_id
from orchestrator.tools import ethtool, iperf3, loadgen, nstat, wrk
from orchestrator.tools import facts as facts_tool
from orchestrator.tools import server as server_tool


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Outcome:
    results: Path
    summary: records.Summary


def _open_results(loaded: Loaded, results_root: Path, run_id: str, plan: Plan,
                  resume: bool) -> tuple[ResultsDir, records.Summary]:
    """The results folder and the summary it starts from: a new one, or the resumed run's."""
    sc = loaded.scenario
    if resume:
        return _resume(results_root, sc, run_id, plan)
    results = ResultsDir.create(results_root, sc.name, run_id)
    results.write_text("scenario.yaml", dump(sc))
    results.write_json("plan.json", [r.as_dict() for r in plan.runs])
    return results, records.Summary(
        scenario=sc.name, run_id=run_id, source=loaded.source,
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), status="running",
        provider=sc.hosts.provider, hosts={}, baseline={}, runs=())


class _Session:
    """One session's summary, as saved last: the record it opened with and what the Context
    measured since, made anew (and checked) at every save; its end is saved, then indexed in
    the history once (`on_complete` first, for a complete session)."""

    def __init__(self, results: ResultsDir, opened: records.Summary, history: str | Path | None,
                 progress: Progress, on_complete: Callable[[Outcome], None] | None):
        self.results, self.opened, self.summary = results, opened, opened
        self.history, self.progress, self.on_complete = history, progress, on_complete
        self.ctx: Context | None = None

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.results.path, self.summary)

    def save(self, status: str, error: str | None = None, phase: str | None = None) -> None:
        """Write the summary as it stands (with what ctx measured so far) under `status`."""
        fields: dict[str, Any] = {k: getattr(self.opened, k) for k in self.opened.model_fields_set}
        fields.pop("error", None)  # the error is this save's, or none
        fields.update(_partial(self.ctx) if self.ctx is not None else {})
        fields.update(status=status, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      **({"phase": phase} if phase else {}), **({"error": error} if error else {}))
        self.summary = records.Summary(**fields)
        self.results.save_summary(self.summary)

    def finish(self, status: str, error: str | None = None, phase: str | None = None) -> None:
        self.save(status, error, phase)
        try:
            if status == "complete" and self.on_complete is not None:
                self.on_complete(self.outcome)
        finally:
            _index(self.history, self.summary, self.results.path, self.progress)


def _announce(sc: Scenario, plan: Plan, summary: records.Summary, results: ResultsDir,
              progress: Progress) -> None:
    """Say what is left to do, how long it should take and where the results go."""
    done_ids = {r.run_id for r in summary.runs}
    todo = [r for r in plan.runs if r.run_id not in done_ids]
    if plan.searches:
        todo_n = max(plan.expected_runs - len(done_ids), 0)
        what = (f"{len(plan.searches)} capacity search(es), likely {plan.expected_runs} runs "
                f"(at most {plan.search_runs_max} each)")
    else:
        todo_n, what = len(todo), f"{len(todo)} of {len(plan.runs)} runs to do"
    progress(f"orchestrate: {sc.name}: {what}, about "
             f"{fmt_seconds(plan.seconds_for(todo_n, with_baseline=not summary.baseline))} "
             f"(estimated); "
             f"results in {results.path}")


def _connect(hosts: Sequence[Host], transports: dict[str, Transport], log: remote.CommandLog) -> None:
    """Connect every host, keeping each transport as it succeeds: teardown closes what is there."""
    def connect(h: Host) -> None:  # kept as each succeeds: teardown closes it
        transports[h.name] = remote.Logged(_hosts.connect(h), log)

    each(hosts, connect)


def _context(sc: Scenario, lab: _hosts.Lab, results: ResultsDir, transports: dict[str, Transport],
             progress: Progress, log: remote.CommandLog, summary: records.Summary, run_id: str,
             began: float) -> Context:
    """The run's Context over connected hosts, carrying what a resumed summary already measured."""
    table = ProcessTable(transports, tag=run_id)
    ctx = Context(sc, lab, results, transports, table, progress, log=log,
                  baseline=dict(summary.baseline), runs=list(summary.runs),
                  autoscale=[a.to_json() for a in summary.autoscale])
    ctx.timing["lab"] = round(time.monotonic() - began, 3)  # up, locked, connected
    ctx.sysctl = _sysctl.Tuner(sc, run_id, ctx.t, progress, lab=lab.provider == "netns")
    return ctx


def _interrupted(exc: BaseException, ctx: Context | None, session: _Session) -> NoReturn:
    """Record an interrupted run (the phase it was in) and raise Interrupted."""
    phase = ctx.phase if ctx else "lab"
    msg = f"interrupted during {phase}" + (f" ({exc})" if str(exc) else "")
    session.finish("interrupted", msg, phase)
    raise Interrupted(msg) from None


def _failed(exc: Exception, ctx: Context | None, session: _Session) -> NoReturn:
    """Record a failed run and raise one RunFailed line naming its phase (a bug's traceback kept)."""
    phase = (exc.phase if isinstance(exc, RunFailed) and exc.phase else
             ctx.phase if ctx else "lab")
    known = isinstance(exc, RunFailed | tools.ToolError | OSError)
    results = session.results
    if not known:  # a bug of ours: keep the traceback for the report, not the terminal
        trace = results.path / "traceback.txt"
        with contextlib.suppress(OSError):
            trace.write_text("".join(traceback.format_exception(exc)))
    try:
        session.finish("failed", f"{phase}: {exc}", phase)
    except OSError as write_exc:  # e.g. the results disk is full: say so, keep the cause
        session.progress(f"orchestrate: WARNING could not save the summary: {write_exc}")
    if isinstance(exc, RunFailed):
        raise exc.in_phase(phase) from None
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        raise RunFailed(f"cannot write the results folder {results.path}: {exc.strerror}",
                        phase=phase) from None
    if known:
        raise RunFailed(str(exc), phase=phase) from None
    raise RunFailed(f"internal error ({type(exc).__name__}: {exc}); traceback in {trace}",
                    phase=phase) from None


def run(loaded: Loaded, *, results_root: Path, run_id: str | None = None,
        progress: Progress = _stderr, lab_options: dict[str, Any] | None = None,
        history: str | Path | None = None, resume: bool = False,
        on_complete: Callable[[Outcome], None] | None = None) -> Outcome:
    """Run the whole scenario; raises RunFailed/Interrupted after teardown, results kept.
    `resume`: `run_id` names an unfinished results folder whose measured runs are kept.
    The final summary (complete, failed or interrupted) goes into the history (a SQLite file or
    s3://bucket/prefix; None: the default) here only, as the last step: `on_complete` (complete
    only) runs first, so what it adds (report, noise.json) is in the folder a remote history copies."""
    sc = loaded.scenario
    plan = expand(sc)
    run_id = run_id or new_run_id()
    results, start = _open_results(loaded, results_root, run_id, plan, resume)
    session = _Session(results, start, history, progress, on_complete)
    ctx: Context | None = None
    _announce(sc, plan, start, results, progress)
    began = time.monotonic()
    with signals.as_interrupts(results.path / signals.LOG_NAME):  # SIGHUP: output goes there
        try:
            with _hosts.open_lab(sc, run_id=run_id, **(lab_options or {})) as opened, \
                    _hosts.lock(opened, run_id) as lab:  # hosts an auto-scale adds are locked too
                transports: dict[str, Transport] = {}
                log = remote.CommandLog()  # every command sent, so a quiet window can be shown
                completed = False
                try:
                    _connect(lab.hosts, transports, log)
                    ctx = _context(sc, lab, results, transports, progress, log, start, run_id, began)
                    session.ctx, of = ctx, len(plan.runs) or "search"
                    _execute(ctx, plan, _paced(lambda i: session.save(f"running ({i}/{of})")))
                    _host_noise(ctx, "after")
                    completed = True
                finally:
                    with signals.shielded():
                        down = time.monotonic()
                        _teardown(ctx, transports, sweep=not completed)
                        if ctx is not None:
                            ctx.timing["teardown"] = round(time.monotonic() - down, 3)
        except (KeyboardInterrupt, Interrupted) as exc:
            _interrupted(exc, ctx, session)
        except UserError:
            # Bad input found only now (an inventory, a host key): nothing was measured,
            # so leave nothing behind, as for a bad scenario.
            if not resume and not (ctx and (ctx.runs or ctx.baseline)):
                shutil.rmtree(results.path, ignore_errors=True)
            raise
        except Exception as exc:  # noqa: BLE001  every failure: one line, phase named, summary kept
            _failed(exc, ctx, session)
    session.finish("complete")
    return session.outcome


def _index(history: str | Path | None, summary: records.Summary, folder: Path, progress: Progress) -> None:
    """The one place a session goes into the history (an index: a failure to write it is a
    warning, the results folder is what matters)."""
    try:
        open_history(history).record(summary, folder)
    except Exception as exc:  # noqa: BLE001
        progress(f"orchestrate: WARNING could not record history: {exc}")


def _paced(save: Callable[[int], None], share: float = 0.05) -> Callable[[int], None]:
    """`save`, skipped while its last call cost more than `share` of the time since it ended.

    Rewriting summary.json after each run costs time in proportion to the runs so far, so a
    long sweep would spend more of its time saving than measuring (over a second per save at
    1,000 runs). Each run is in runs/<id>.json as soon as it is measured, and an interrupt or
    a failure saves the summary in full; a skipped save only delays the running summary.
    """
    last = {"end": -float("inf"), "cost": 0.0}

    def checkpoint(done: int) -> None:
        now = time.monotonic()
        if now - last["end"] < last["cost"] / share:
            return
        save(done)
        last["end"] = time.monotonic()
        last["cost"] = last["end"] - now

    return checkpoint


def _resume(results_root: Path, sc: Scenario, run_id: str,
            plan: Plan) -> tuple[ResultsDir, records.Summary]:
    """The earlier results folder and its summary, checked to belong to this same plan."""
    folder = results_root / sc.name / run_id
    summary = store.load_summary(folder)
    if (folder / "scenario.yaml").read_text() != dump(sc):
        raise UserError(f"--resume {run_id}: the scenario differs from the one that run used "
                        f"({folder / 'scenario.yaml'}); resume needs the same scenario and --set values")
    known = {r.run_id for r in plan.runs}
    scale = sc.hosts.roles.autoscale
    if scale is not None:  # an auto-scaled point's runs: the planned one at each client count
        known |= {dataclasses.replace(r, clients=n).run_id for r in plan.runs
                  for n in range(scale.min, scale.max + 1)}
    # a search's runs are not planned: it replays over all of them
    runs = summary.runs if plan.searches else tuple(r for r in summary.runs if r.run_id in known)
    return ResultsDir(folder), summary.model_copy(update={"runs": runs,
                                                          "resumed": (summary.resumed or 0) + 1})


def _teardown(ctx: Context | None, transports: dict[str, Transport], *, sweep: bool = False) -> None:
    """Stop what the run started. After a failure or an interrupt (`sweep`), also every process
    carrying the run's mark: one whose spawn was cut short never reached the table."""
    if ctx is not None:
        left = ctx.table.stop_all()
        for line in left:
            ctx.progress(f"orchestrate: WARNING could not stop {line}")
        if ctx.sysctl is not None:  # after the processes: nothing of ours runs on them any more
            for line in ctx.sysctl.restore():
                ctx.progress(f"orchestrate: WARNING sysctl not restored: {line}; "
                             "`orchestrate cleanup` retries from the state saved on the host")
        if sweep:
            # a host stop_all could not reach (its processes are still listed) is not tried
            # again: that would be one more connect timeout on a dead link, to no effect
            unreached = {p.host for p in ctx.table.procs}
            hosts = [h for h in transports if h not in unreached]
            found = each(hosts, lambda h: _swept(transports[h], ctx.table.tag))
            seen: set[int] = set()  # lab hosts on one machine share its processes
            for host, pids in zip(hosts, found, strict=True):
                pids = [p for p in pids if p not in seen]
                seen.update(pids)
                if pids:
                    ctx.progress(f"orchestrate: stopped {len(pids)} process(es) of this run on {host} "
                                 f"that no step had recorded (a start cut short): pids {pids}")
    for t in transports.values():
        with contextlib.suppress(Exception):
            t.close()


def _swept(t: Transport, tag: str) -> list[int]:
    try:
        return remote.kill_marked(t, tag)
    except (RunFailed, OSError):  # an unreachable host: teardown reports what it could not stop
        return []


def _execute(ctx: Context, plan: Plan, checkpoint: Callable[[int], None]) -> None:
    hosts = list(ctx.lab.hosts)
    with ctx.step("facts"):
        ctx.facts.update(zip([h.name for h in hosts], each(hosts, lambda h: _host_facts(ctx, h)),
                             strict=True))
        ctx.results.write_json("hosts.json", ctx.facts)
    with ctx.step("deploy"):
        binary = _prepare_server(ctx)  # remote hosts: the playbook installs the tools too
        if ctx.sc.load.tool == loadgen.BINARY:
            ctx.load_binary.update(_prepare_load(ctx))
    with ctx.step("facts", "tools"):
        _check_tools(ctx)
    if ctx.sysctl is not None:
        with ctx.step("sysctl"):  # refused settings stop the run here, before any change
            each(hosts, ctx.sysctl.observe)
            if ctx.sysctl.active:
                each(hosts, ctx.sysctl.prepare)
    _host_noise(ctx, "before")
    if ctx.sc.baseline.enabled and not ctx.baseline:  # a resumed sweep keeps its baseline
        with ctx.step("baseline"):
            ctx.baseline = baseline.measure(ctx)
            ctx.results.write_json("baseline.json", plain(ctx.baseline))
    if plan.searches:
        _search(ctx, plan, binary, checkpoint)
        return
    if ctx.sc.hosts.roles.autoscale:
        _autoscale(ctx, plan, binary, checkpoint)
        return
    done = {r.run_id for r in ctx.runs}
    todo = [spec for spec in plan.runs if spec.run_id not in done]
    if plan.rounds is not None:
        ctx.rounds = {**plan.rounds.as_dict(), "run": 0, "stopped": "planned rounds not yet run"}
    for i, spec in enumerate(todo):
        if plan.rounds is not None and _rounds_done(ctx, plan, spec.repetition - 1):
            break
        left = plan.per_run_s * (len(todo) - i) + plan.report_s
        ctx.progress(f"[{spec.index}/{len(plan.runs)}] {spec.point.compact()} rep {spec.repetition}: "
                     f"{fmt_seconds(ctx.sc.load.duration)} load, ~{fmt_seconds(max(left, 0))} left")
        _measure(ctx, spec, binary, checkpoint)
    else:
        if plan.rounds is not None:
            _rounds_done(ctx, plan, plan.rounds.max)


def _rounds_done(ctx: Context, plan: Plan, completed: int) -> bool:
    """Whether the rounds may stop before the next one, `completed` rounds having run: only
    once every cell has min measured rounds, and only on the intervals' width (every variant's half-width on
    compare.metric at or below `until`), never on what they say. Records why in ctx.rounds."""
    from orchestrator import metrics, stats

    r = plan.rounds
    assert r is not None
    ctx.rounds.update(run=completed, stopped=f"all {r.max} planned rounds run")
    if completed >= r.max:
        return True
    if r.until is None or completed < r.min:
        return False
    m = metrics.PAIRED_METRICS[r.metric]
    widths = []
    for got in metrics.rounds(ctx.runs, r.factor, r.baseline, m).values():
        got = [g for g in got if g[0] <= completed]
        if len(got) < max(2, r.min):  # a round one side of which went unmeasured does not count
            return False
        ratio = stats.paired_ratio([x for _, x, _ in got], [y for *_, y in got])
        widths.append(ratio.half_width_pct)
    if not widths or max(widths) > r.until:
        return False
    ctx.rounds["stopped"] = (f"after round {completed}: every interval on {r.metric} within "
                             f"\u00b1{max(widths):.1f}% (until \u00b1{r.until:g}%)")
    ctx.progress(f"  rounds: {ctx.rounds['stopped']}")
    return True


def _measure(ctx: Context, spec: RunSpec, binary: str, checkpoint: Callable[[int], None],
             extra: dict[str, Any] | None = None) -> records.Run:
    """One run, recorded, shown and persisted; a resumed session reuses what it measured."""
    earlier = next((r for r in ctx.runs if r.run_id == spec.run_id), None)
    if earlier is not None:
        return earlier
    started = time.monotonic()
    base = ctx.sc
    ctx.sc = scenario_for(base, spec.point)  # a named variant's run: its block merged in
    try:
        with ctx.step(f"run {spec.run_id}", "runs"):
            run = _one_run(ctx, spec, binary)
    finally:
        ctx.sc = base
    run = run.model_copy(update={"wall_s": round(time.monotonic() - started, 3), **(extra or {})})
    ctx.runs.append(run)
    lat, verdict, rate = run.latency_ms, run.analysis, run.rate
    offered = (f" of {rate.target:,.0f} offered" + ("" if rate.sustained else _failed_checks(rate))
               if rate and rate.target else "")
    ctx.progress(f"      {run.qps or 0:,.0f} req/s{offered}  p50 {lat.p50 or 0:.2f} ms  "
                 f"p99 {lat.p99 or 0:.2f} ms  errors {_errors_text(run)}  "
                 f"-> {verdict.verdict if verdict else '-'}: "
                 f"{'; '.join(verdict.evidence[:1]) if verdict else ''}")
    # Persist after every run: an interruption later keeps this one.
    checkpoint(len(ctx.runs))
    return run


def _failed_checks(rate: records.Rate) -> str:
    """Which self-check failed, by its side: " (send fidelity failed, completion 20%)"."""
    parts = []
    if rate.send_fidelity is False:
        parts.append("send fidelity failed")
    if rate.completion is not None and rate.completion < 0.99:
        parts.append(f"completion {rate.completion:.0%}")
    return f" ({', '.join(parts) or 'NOT sustained'})"


def _client_limited(run: records.Run) -> str | None:
    """Why the client, not the server or the network, set this run's figure (None: it did not)."""
    # Only the client's own evidence counts: answers short of the offered rate are the server's.
    # The analysis decides where there is one: it reads the generator's send fidelity, and not
    # as the generator's when the lag was the wait for a free connection (all busy: the server
    # held them) while its CPU was clear.
    if run.analysis and run.analysis.verdict:
        if run.analysis.verdict == analysis.CLIENT:
            return f"client-bound: {'; '.join(run.analysis.evidence[:1])}"
        return None
    if run.rate and run.rate.send_fidelity is False:
        return "the generator did not send on schedule (send fidelity)"
    return None


def _autoscale(ctx: Context, plan: Plan, binary: str, checkpoint: Callable[[int], None]) -> None:
    """Each point starts with `min` client hosts; while the client is the limit, one more host
    and the point again, up to `max`. Later repetitions of the point use the count found. The
    runs a larger count superseded stay in runs/ and in the path, not among the point's runs."""
    scale = ctx.sc.hosts.roles.autoscale
    assert scale is not None
    # the provider adds hosts as they are needed; a static inventory's client group (or a lab
    # that was up before the run) may hold fewer than max: then that is the limit
    top = min(scale.max, ctx.lab.client_limit)
    short = "" if top == scale.max else f", all the {ctx.lab.provider} lab has (max is {scale.max})"
    ctx.autoscale[:] = [a for a in ctx.autoscale if a.get("settled")]  # resumed: keep what settled
    found = {classic(a["arch"], a["server_threads"], a["connections"], a["rate"], a.get("axes")): a["clients"]
             for a in ctx.autoscale}
    for spec in plan.runs:
        settled = spec.point in found
        n = found.get(spec.point, scale.min)
        path: list[dict[str, Any]] = []
        entry = {"arch": spec.arch, "server_threads": spec.server_threads, "connections": spec.connections,
                 "rate": spec.rate, "axes": spec.axes.as_json(), "clients": n, "limited": False,
                 "settled": False,
                 "stopped": "interrupted while scaling", "path": path}
        if not settled:
            ctx.autoscale.append(entry)  # the path so far is kept if the session stops here
        while True:
            s = dataclasses.replace(spec, clients=n)
            ctx.progress(f"[{spec.index}/{len(plan.runs)}] {spec.point.compact()} rep {spec.repetition}, "
                         f"{n} client host(s)")
            if n > len(ctx.lab.clients) and not _measured(ctx, s):  # a resumed session's count
                _add_clients(ctx, n - len(ctx.lab.clients))
            record = _measure(ctx, s, binary, checkpoint)
            limited = _client_limited(record)
            path.append({"clients": n, "run_id": s.run_id, "qps": record.qps,
                         "verdict": record.analysis.verdict if record.analysis else None,
                         "client_limited": limited})
            entry["clients"] = n
            if settled or limited is None or n >= top:
                break
            ctx.progress(f"      {limited}: one more client host")
            if n + 1 > len(ctx.lab.clients) and not _measured(ctx, dataclasses.replace(spec, clients=n + 1)):
                try:
                    _add_clients(ctx, n + 1 - len(ctx.lab.clients))
                except _hosts.NoMoreHosts as exc:  # a cloud out of capacity: the run goes on
                    top, short = n, f", all the provider could add ({exc.detail})"
                    break
            ctx.runs.remove(record)  # superseded by a run with more clients
            n += 1
        if settled:
            continue
        found[spec.point] = n
        at = f"{top} client host(s){short}" if short else f"max={top} client hosts"
        why = record.analysis.evidence[0] if record.analysis and record.analysis.evidence else ""
        stopped = (f"not client-bound with {n} client host(s): {path[-1]['verdict']}"
                   + (f" ({why})" if why else "") if limited is None
                   else f"still client-limited at {at} ({limited}): the figure is "
                   "the clients', not the server's; raise max (or add client hosts) or use larger ones")
        entry.update(limited=limited is not None, settled=True, stopped=stopped)
        ctx.progress(f"      auto-scale: {stopped}")
        checkpoint(len(ctx.runs))


def _errors_text(run: records.Run) -> str:
    """The run's socket errors for the progress line ('not measured' when the record has none)."""
    total = run.errors.total if run.errors is not None else None
    return "not measured" if total is None else str(total)


def _measured(ctx: Context, spec: RunSpec) -> bool:
    return any(r.run_id == spec.run_id for r in ctx.runs)


def _add_clients(ctx: Context, count: int) -> None:
    """`count` more client hosts from the provider, made ready as the first ones were before
    they load: connected, facts read, tools deployed (Ansible limited to them) and checked, and
    their paths baselined when the scenario measures a baseline (each path's ceiling is
    compared against runs; the all-clients-at-once aggregate stays the first clients')."""
    with ctx.step("add client hosts", "grow"):
        ctx.progress(f"orchestrate: adding {count} client host(s) to the {ctx.lab.provider} lab")
        ctx.lab, new = ctx.lab.grow(count)
        hosts = list(new)

        def connect(h: Host) -> None:  # the transports dict is the one teardown closes
            ctx.transports[h.name] = remote.Logged(_hosts.connect(h), ctx.log)

        each(hosts, connect)
        ctx.facts.update(zip([h.name for h in hosts], each(hosts, lambda h: _host_facts(ctx, h)),
                             strict=True))
        ctx.results.write_json("hosts.json", ctx.facts)
        if ctx.sc.hosts.deploy and any(h.ssh is not None for h in hosts):
            from orchestrator import deploy

            deploy.deploy(ctx.lab, limit=[h.name for h in hosts],
                          log=ctx.results.path / "raw" / f"deploy-{hosts[0].name}.log",
                          max_forks=ctx.sc.hosts.deploy_forks, transport=ctx.t)
        if ctx.sc.load.tool == loadgen.BINARY:
            ctx.load_binary.update(_prepare_load(ctx, hosts))
        _check_tools(ctx, hosts)
    if ctx.sc.baseline.enabled:
        with ctx.step("baseline"):
            part = dataclasses.replace(ctx, lab=dataclasses.replace(ctx.lab, hosts=(ctx.lab.server, *hosts)))
            ctx.baseline.update(baseline.measure(part))
            ctx.results.write_json("baseline.json", plain(ctx.baseline))


def _search(ctx: Context, plan: Plan, binary: str, checkpoint: Callable[[int], None]) -> None:
    """A capacity search per matrix point (capacity.py decides; this measures). Run numbers
    follow the search's own order, so a resumed session replays it over the runs it has."""
    search = ctx.sc.load.search
    assert search is not None
    ctx.capacity.clear()  # rebuilt from the runs, which a resumed session already has
    number = itertools.count(1)
    for n, s in enumerate(plan.searches, 1):
        ctx.progress(f"[search {n}/{len(plan.searches)}] {s.point.compact()}: "
                     f"capacity under {capacity.slo_text(search)}, "
                     f"{search.min_rate:,.0f}-{search.max_rate:,.0f} req/s, about {plan.search_runs} "
                     f"runs of {fmt_seconds(ctx.sc.load.warmup + ctx.sc.load.duration)}")
        step_no = itertools.count(1)

        def measure(rate: float, attempt: int, s: Any = s, n: int = n,
                    step_no: Any = step_no) -> capacity.Observation:
            spec = RunSpec(next(number), s.arch, s.server_threads, s.connections, attempt, rate)
            step = next(step_no) if attempt == 1 else None
            ctx.progress(f"  {spec.run_id}: {rate:,.0f} req/s" + (f", attempt {attempt}" if step is None
                                                                   else f", step {step}"))
            record = _measure(ctx, spec, binary, checkpoint,
                              extra={"search": {"number": n, "repetition": s.repetition}})
            path = ctx.results.path / record.histograms if record.histograms else None
            return capacity.observation_of(record, load.latency_histogram(path) if path else None)

        found = capacity.search(search, measure)
        at = found.step_at(found.capacity)
        above = next((st for st in found.steps if found.capacity is not None and st.rate > found.capacity
                      and not st.passed), None) if found.bound == "found" else found.steps[0]
        ctx.capacity.append(found.model_copy(update={
            "arch": s.arch, "server_threads": s.server_threads, "connections": s.connections,
            "axes": s.axes.as_json(), "repetition": s.repetition,
            "verdict_at_capacity": at.verdicts[-1] if at else None,
            "verdict_above": above.verdicts[-1] if above and found.bound != "at max_rate" else None}))
        ctx.progress(f"      capacity {found.capacity or 0:,.0f} req/s ({found.bound}, {found.runs} runs): "
                     f"{found.evidence}")
        checkpoint(len(ctx.runs))


def _partial(ctx: Context) -> dict[str, Any]:
    """The summary's fields from what ctx measured so far, as records (Summary checks them)."""
    server = ctx.lab.server
    hosts = ctx.facts
    if ctx.sysctl is not None:  # the kernel settings the runs had, for the environment diff
        kernel = ctx.sysctl.facts(r.sysctl for r in ctx.runs)
        hosts = {h: {**f, **({"sysctl": kernel[h]} if kernel.get(h) else {}),
                     **({"sysctl_original": ctx.sysctl.saved[h]} if h in ctx.sysctl.saved else {})}
                 for h, f in ctx.facts.items()}
    return {"scenario": ctx.sc.name, "provider": ctx.sc.hosts.provider,
            "hosts": {h: records.HostFacts.model_validate(f or {}) for h, f in hosts.items()},
            "topology": records.Topology(server=server.name, interface=server.interface,
                                         loopback=ctx.lab.single_machine,
                                         clients=tuple(c.name for c in ctx.lab.clients)),
            "thresholds": ctx.sc.thresholds.model_dump(),
            "baseline": dict(ctx.baseline), "timing": dict(ctx.timing),
            **({"capacity": tuple(ctx.capacity)} if ctx.sc.load.search else {}),
            **({"autoscale": tuple(map(records.Autoscale.model_validate, ctx.autoscale))}
               if ctx.sc.hosts.roles.autoscale else {}),
            **({"host_noise": dict(ctx.host_noise)} if ctx.host_noise else {}),
            **({"rounds": dict(ctx.rounds)} if ctx.rounds else {}),
            **({"cost": cost} if ctx.lab.cost is not None and (cost := ctx.lab.cost()) else {}),
            **_across_runs(ctx)}


def _across_runs(ctx: Context) -> dict[str, Any]:
    """The runs with the matrix-wide rule applied, and the points over their repetitions."""
    runs, points = analysis.across_runs(ctx.runs, analysis.Thresholds.from_scenario(ctx.sc))
    return {"runs": tuple(runs), "points": tuple(points)}


# --- phases ------------------------------------------------------------------


def _host_facts(ctx: Context, h: Host) -> dict[str, Any]:
    t = ctx.t(h)
    # One round trip. The clock is read last: an SSH command runs late in its round
    # trip (session and shell start-up come first) and its answer comes back fast,
    # so the host's clock is compared with the time the answer arrived.
    done = t.run(f"{facts_tool.command()}\necho @@clock@@; date +%s.%N", timeout=30, check=False)
    after = time.time()
    text, _, stamp = done.stdout.rpartition("@@clock@@")
    raw = ctx.results.raw("facts", h.name, "facts")
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(text + done.stderr)
    out = dataclasses.asdict(facts_tool.parse(text))
    out["address"] = h.address
    out["roles"] = list(h.roles)
    # The provider knows the instance type; DMI (facts' `machine`) says it too on EC2 Nitro.
    out["instance_type"] = str(h.vars.get("instance_type") or out.get("machine") or "")
    out.update(clock_offset(stamp, after))
    if out["clock_offset_s"] is None:
        ctx.progress(f"orchestrate: WARNING {h.name}: clock offset not measured "
                     f"({out['clock_offset_error']}): its start time and telemetry windows assume our clock")
    return out


def clock_offset(stamp: str, after: float) -> dict[str, Any]:
    """The host's clock ahead of ours, from its `date +%s.%N` read when the answer arrived at
    `after`. Not measured is not 0: None, with the reason (its times are then taken as ours)."""
    try:
        return {"clock_offset_s": round(float(stamp.strip()) - after, 3)}
    except ValueError:
        printed = stamp.strip()[:40]
        return {"clock_offset_s": None,
                "clock_offset_error": f"the host's clock could not be read (date printed {printed!r})"}


def _check_tools(ctx: Context, hosts: list[Host] | None = None) -> None:
    """Every tool the plan needs must be on every host that runs it, before anything starts."""
    hosts = list(ctx.lab.hosts) if hosts is None else hosts
    needs: dict[str, list[str]] = {}
    for h in hosts:
        want = []
        if "client" in h.roles:
            want.append(ctx.load_binary.get(h.name, wrk.BINARY))
        if ctx.sc.baseline.enabled:
            want.append(iperf3.BINARY)
        for name in ctx.sc.telemetry.collectors:
            if name != "perf" or "server" in h.roles:  # pidstat watches servers and generators
                want.append(tools.get(name).BINARY)
        want.append("taskset")
        needs[h.name] = sorted(set(want))

    def missing(h: Host) -> list[str]:
        script = "; ".join(f"command -v {shlex.quote(n)} >/dev/null || echo {shlex.quote(n)}"
                           for n in needs[h.name])
        return ctx.t(h).run(script, timeout=20, check=False).stdout.split()

    for h, gone in zip(hosts, each(hosts, missing), strict=True):
        if gone:
            raise RunFailed(f"missing tools: {', '.join(gone)} (install them, or let the deploy "
                            "playbook do it: hosts.deploy: true)", host=h.name, phase="facts")


PAUSE_PROBE_S = 0.3  # per reading, before the first window and after the last


def _host_noise(ctx: Context, when: str) -> None:
    """The host's own noise on the pinned CPUs, read while nothing of ours runs there: before
    the first window (baseline included) and after the last, never inside one. Only where
    the run's hosts are this machine (local, netns); none with host_noise: false."""
    if not ctx.sc.host_noise:
        return
    from orchestrator.doctor import checks, noise

    cpus = checks.pinned(ctx.sc)
    if not cpus:
        return
    from orchestrator.doctor import pauses

    sample = noise.measure(cpus, noise.RUN_SECONDS, when)
    # then the pauses the pinned CPUs take (a busy probe each, so not during the reading above):
    # the report warns when a latency SLO lies near them
    ctx.host_noise[when] = sample.model_copy(update={"pauses": pauses.measure(cpus, PAUSE_PROBE_S)})
    if sample.worst >= noise.FOREIGN_WARN_PCT or sample.steal_pct >= noise.STEAL_WARN_PCT:
        ctx.progress(f"orchestrate: WARNING host noise {sample.line()}")


def _prepare_server(ctx: Context) -> str:
    """Deploy (remote hosts) and build the server; returns the binary path on the server host."""
    from orchestrator import deploy

    sc, server = ctx.sc, ctx.lab.server
    remote_hosts = any(h.ssh is not None for h in ctx.lab.hosts)
    if remote_hosts and sc.hosts.deploy:
        ctx.progress("orchestrate: deploying tools and the server with Ansible")
        done = deploy.deploy(ctx.lab, log=ctx.results.path / "raw" / "deploy.log",
                             max_forks=sc.hosts.deploy_forks, transport=ctx.t)
        if done.status == "skipped":
            ctx.progress("orchestrate: deploy skipped: every host holds this build-input hash already")
    from orchestrator import refs

    if sc.server.command is None and refs.scenario_refs(sc):  # server.ref, or a variant's
        _prepare_refs(ctx)
        return ""
    if sc.server.command is not None:
        return ""
    if server.ssh is None:
        src = server_tool.REPO_SERVER_DIR
        build = src / "build" / "release"
        ctx.progress(f"orchestrate: building the server in {build}")
        ctx.t(server).run(server_tool.build_command(src, build), timeout=900)
        return str(build / server_tool.BINARY)
    return deploy.server_binary(server)  # where the playbook (now or earlier) installed it


def _prepare_refs(ctx: Context) -> None:
    """server.ref: every ref built here (the cache makes this a look-up: the CLI built them
    before provisioning), then on remote server hosts through the build role, each in its own
    root. ctx.server_binaries: ref -> the binary's path on the server host."""
    from orchestrator import deploy, refs

    sc, server = ctx.sc, ctx.lab.server
    builds = refs.prepare(sc, progress=ctx.progress)
    ctx.results.write_json("refs.json", {r: b.as_json() for r, b in builds.items()})
    if server.ssh is None:
        ctx.server_binaries.update({r: str(b.binary) for r, b in builds.items()})
        return
    refs.deploy_refs(ctx.lab, builds, repo=refs.scenario_repo(sc), log_dir=ctx.results.path / "raw",
                     progress=ctx.progress)
    ctx.server_binaries.update({r: refs.remote_binary(deploy.root(server), b.key) for r, b in builds.items()})


def _prepare_load(ctx: Context, clients: list[Host] | None = None) -> dict[str, str]:
    """orchestrate-load on every client host: built here for this machine, installed by the
    playbook (the build role, tag loadgen) on remote hosts. Returns host -> the binary's path there."""
    from orchestrator import deploy

    out: dict[str, str] = {}
    for c in ctx.lab.clients if clients is None else clients:
        if c.ssh is None:
            build = loadgen.REPO_LOADGEN_DIR / "build" / "release"
            if not out:
                ctx.progress(f"orchestrate: building orchestrate-load in {build}")
                ctx.t(c).run(loadgen.build_command(loadgen.REPO_LOADGEN_DIR, build), timeout=900)
            out[c.name] = str(build / loadgen.BINARY)
        else:
            out[c.name] = deploy.load_binary(c)
    return out


def _server_command(ctx: Context, spec: RunSpec, binary: str, workdir: str) -> tuple[str, list[int]]:
    sc, server = ctx.sc, ctx.lab.server
    cpus = ctx.cpus(server, "server")
    bind = sc.server.bind or ("127.0.0.1" if ctx.lab.single_machine else "0.0.0.0")
    if sc.server.command is None:
        ref = at(sc, spec.point, "server.ref")
        binary = ctx.server_binaries[str(ref)] if ref is not None else binary  # the ref's own build
        argv = server_tool.builtin_command(binary, arch=spec.arch, threads=spec.server_threads,
                                           cpus=cpus, port=sc.server.port, bind=bind, body=sc.server.body,
                                           work_us=at(sc, spec.point, "server.work_us"),
                                           backlog=at(sc, spec.point, "server.backlog"))
        # The server pins each thread itself; the outer set covers exactly those CPUs.
        return tools.base.join(argv), sorted(set(server_tool.thread_cpus(cpus, spec.server_threads)))
    config_path = None
    if sc.server.config is not None:
        config_path = f"{workdir}/server.conf"
        thread_cpus = server_tool.thread_cpus(cpus, spec.server_threads)
        text = server_tool.render_config(sc.server.config, threads=spec.server_threads,
                                         port=sc.server.port, cpus=thread_cpus,
                                         cpu_list=",".join(map(str, thread_cpus)),
                                         cpu_masks=" ".join(format(1 << c, "b") for c in thread_cpus),
                                         arch=spec.arch,
                                         workdir=workdir, body=sc.server.body, bind=bind)
        ctx.t(server).put_text(text, config_path)
    cmd = server_tool.custom_command(sc.server.command, arch=spec.arch, threads=spec.server_threads,
                                     cpus=cpus, port=sc.server.port, workdir=workdir,
                                     config_path=config_path)
    return cmd, sorted(set(server_tool.thread_cpus(cpus, spec.server_threads)))


def _ready_url(ctx: Context, load_url: str) -> str:
    template = ctx.sc.server.ready_url
    if template is None:
        return load_url
    try:
        return template.format(host=ctx.lab.server.address, port=ctx.sc.server.port)
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(f"server.ready_url: cannot fill in {template!r} ({exc!r}); "
                        "it knows {host} and {port}") from None


def _wait_ready(ctx: Context, proc: remote.Process, url: str) -> None:
    """Ready = the server said so (built-in) and a client host gets a 2xx answer from `url`."""
    server = ctx.lab.server
    ts, tc = ctx.t(server), ctx.t(ctx.lab.clients[0])
    deadline = time.monotonic() + ctx.sc.server.ready_timeout
    builtin = ctx.sc.server.command is None
    last = "the server never said it was ready" if builtin else "nothing was probed"
    while time.monotonic() < deadline:
        if not remote.alive(ts, proc):
            err = remote.read(ts, proc.stderr).strip() or remote.read(ts, proc.stdout).strip()
            raise RunFailed(f"server exited during start-up: {err[-400:] or 'no output'}",
                            host=server.name, phase=ctx.phase)
        if not builtin or server_tool.parse_ready(remote.read(ts, proc.stdout)) is not None:
            probe = server_tool.parse_probe(tc.run(server_tool.ready_probe(url), timeout=10,
                                                   check=False).stdout)
            if probe.ok:
                return
            if probe.status is not None:  # it answered, and waiting will not change the answer
                raise RunFailed(f"server answered {url} with {probe.status} {probe.detail}, not 2xx; "
                                "server.ready_url must name a path it serves", host=server.name,
                                phase=ctx.phase)
            last = f"nothing answered: {probe.detail}"
        time.sleep(0.1)
    raise RunFailed(f"server not ready at {url} within {ctx.sc.server.ready_timeout:g}s ({last})",
                    host=server.name, phase=ctx.phase)


def _keep_server_files(ctx: Context, spec: RunSpec, sdir: str, srv: remote.Process | None = None) -> None:
    """The logs the server's command names (and, given `srv`, its stdout/stderr) under raw/:
    on a failed run they are what tells the user why. Best effort: a missing log is no error."""
    server = ctx.lab.server
    wanted = [(log.format(workdir=sdir), "log-" + Path(log).name) for log in ctx.sc.server.logs]
    if srv is not None:
        wanted += [(srv.stdout, "server"), (srv.stderr, "server.stderr")]
    for path, name in wanted:
        try:
            ctx.t(server).get(path, ctx.results.raw(spec.run_id, server.name, name))
        except OSError:
            continue  # not written (yet): the others may be
        except RunFailed:
            return  # the host is out of reach: do not wait on it once per file


def _one_run(ctx: Context, spec: RunSpec, binary: str) -> records.Run:
    # long: one run's timeline in order (server, telemetry, a load started at one instant on every
    # client, the silent window, stop, collect); its locals (started, collectors, generators, the
    # window, the readings) feed both the single try/finally that stops every process it started
    # and the record. Split, they would travel as a state object; that is a change, not a refactor.
    sc, server, clients = ctx.sc, ctx.lab.server, ctx.lab.clients[:spec.clients]
    ts = ctx.t(server)
    clean = False
    run_began = time.time()
    sdir = f"{server.workdir}/{spec.run_id}"
    kernel_set = (ctx.sysctl.apply(ctx.lab.hosts, spec.point)
                  if ctx.sysctl is not None and ctx.sysctl.active else {})
    cmd, server_cpus = _server_command(ctx, spec, binary, sdir)
    srv = ctx.table.spawn(server.name, "server", cmd, workdir=sdir, cpus=server_cpus)
    url = f"http://{server.address}:{sc.server.port}{sc.load.path}"
    started: list[remote.Process] = [srv]
    try:
        _wait_ready(ctx, srv, _ready_url(ctx, url))
        set_up = time.monotonic()  # the steps from here to the plan are timed: see _lead
        affinity: dict[str, Any] = {"server": remote.group_affinity(ts, srv.pid)}
        server_pids = sorted({int(v["pid"]) for v in affinity["server"].values()})

        nic_before = telemetry.nic_counters(ctx, spec, "before")
        tcp_before = telemetry.kernel_counters(ctx, spec, "before")
        collectors = telemetry.start(ctx, spec, server_pids)
        started += [c.proc for c in collectors]
        gen = load.for_scenario(ctx)
        step = time.monotonic()
        each(clients, lambda c: gen.prepare(ctx, spec, c))
        round_trip = time.monotonic() - step

        # Every client starts at the same instant (each on its own clock), so their
        # windows coincide and their rates add up; starting them one SSH call after
        # another would let the first ones measure a link the others do not use yet.
        # Before it, four steps per host (start, affinity, load watch, CPU reading): slow
        # hosts get the time they need, so none of it runs into the load.
        planned = time.time()
        t0 = planned + _lead(ctx.pre_load_s, round_trip, time.monotonic() - set_up)
        end = t0 + gen.busy_s(ctx)  # the planned end: [t0, end] is the measurement window

        def start_load(c: Host) -> remote.Process:
            at = t0 + (ctx.facts.get(c.name, {}).get("clock_offset_s") or 0.0)
            try:
                cmd, shell = gen.command(ctx, spec, c, url, at)
            except tools.ToolError as exc:
                raise RunFailed(str(exc), host=c.name, phase=ctx.phase) from None
            return ctx.table.spawn(c.name, gen.name, cmd, workdir=f"{c.workdir}/{spec.run_id}",
                                   cpus=ctx.cpus(c, "client"), env=wrk.ENV, shell=shell)

        generators = list(zip(clients, each(clients, start_load), strict=True))
        started += [p for _, p in generators]
        pid_of = {c.name: p.pid for c, p in generators}
        # Read back before the load: a generator waiting for its start instant is already
        # itself; the threads it starts then inherit the affinity. During the load nothing of
        # ours touches a host.
        affinity["wrk"] = dict(zip(pid_of, each(
            clients, lambda c: remote.group_affinity(ctx.t(c), pid_of[c.name])), strict=True))
        watchers = telemetry.watch_load(ctx, spec, pid_of)
        collectors += watchers
        started += [c.proc for c in watchers]
        before = telemetry.cpu_reading(ctx, collectors)
        ctx.pre_load_s = max(ctx.pre_load_s or 0.0, time.time() - planned)
        own_before = _own_cpu_s()
        ctx.progress(f"      load until {time.strftime('%H:%M:%S', time.localtime(end))}; "
                     "no command reaches a host until then")
        # Silence: sleep through the window, then a moment for the generators to report.
        time.sleep(max(0.0, end + 0.3 - time.time()))
        own_after = _own_cpu_s()
        after = telemetry.cpu_reading(ctx, collectors)
        own_rate = round((own_after[1] - own_before[1]) / max(own_after[0] - own_before[0], 1e-9), 5)
        finished = each(generators, lambda cp: remote.wait_exit(ctx.t(cp[0]), cp[1], sc.load.timeout + 30,
                                                          quiet_until=end))
        for (c, p), ok in zip(generators, finished, strict=True):
            if not ok:
                raise RunFailed(f"{gen.name} did not finish in time", host=c.name, phase=ctx.phase)
            ctx.table.forget(p)
        if not remote.alive(ts, srv):
            # Measured against a dead server: the numbers would be the generators' errors.
            err = remote.read(ts, srv.stderr).strip()
            raise RunFailed("the server died during the load" + (f": {err[-300:]}" if err else
                            " (killed by a signal?)"), host=server.name, phase=ctx.phase)
        nic_after = telemetry.nic_counters(ctx, spec, "after")
        tcp_after = telemetry.kernel_counters(ctx, spec, "after")

        ctx.table.stop_many([c.proc for c in collectors], sig="INT", grace=5.0)
        perf_failure = telemetry.perf_script(ctx, sdir) if "perf" in sc.telemetry.collectors else None
        clean = ctx.table.stop(srv, sig="TERM", grace=10.0)
        gone = ctx.table.survivors(started)
        if gone:
            raise RunFailed("processes still alive after the run: "
                            + ", ".join(f"{p.name} (pid {p.pid})" for p in gone),
                            host=gone[0].host, phase=ctx.phase)
    except RunFailed:
        _keep_server_files(ctx, spec, sdir, srv)
        raise
    finally:
        try:
            ctx.table.stop_many([p for p in started if p in ctx.table.procs], grace=3.0)
        except RunFailed as exc:
            # Do not let cleanup hide why the run failed; teardown retries and reports it.
            ctx.progress(f"orchestrate: WARNING {exc}")

    ctx.phase = f"collect {spec.run_id}"
    pause_point(ctx, "collect")
    raw = _fetch(ctx, spec, started)
    _keep_server_files(ctx, spec, sdir)
    flame = (telemetry.flame_stacks(ctx, spec, sdir, perf_failure)
             if "perf" in sc.telemetry.collectors else None)
    if flame and flame.get("error"):
        ctx.progress(f"orchestrate: WARNING no flame graph for {spec.run_id}: {flame['error']}")
    ctx.results.write_text(f"raw/{spec.run_id}/commands.jsonl", "".join(
        json.dumps(dataclasses.asdict(r)) + "\n" for r in ctx.log.records() if r.end >= run_began))
    nics = {h: records.NicAllowance(exceeded=dict(d.exceeded), reset=d.reset)
            for h in nic_before if h in nic_after
            for d in [ethtool.delta(nic_before[h], nic_after[h])]}
    run = _record(ctx, spec, raw, gen, generators, collectors, affinity, server_cpus, t0, clean)
    run = run.model_copy(update={
        "observer": telemetry.observer(ctx, collectors, (t0, end), before, after, own_rate),
        **({"perf": records.Perf.model_validate(flame)} if flame else {}),
        "nic_allowances": nics or None,
    })
    run = _throttled(run, before, after)
    kernel = _kernel(ctx, spec, run, server_cpus, tcp_before, tcp_after)
    run = run.model_copy(update={"kernel": kernel or None, "sysctl": kernel_set or None})
    run = run.model_copy(update={"analysis": analysis.analyse_run(
        run, server=server.name, interface=server.interface, loopback=ctx.lab.single_machine,
        th=analysis.Thresholds.from_scenario(sc))})
    ctx.results.write_json(f"runs/{spec.run_id}.json", run.to_json())
    return run


def _throttled(run: records.Run, before: dict[str, remote.CpuTimes],
               after: dict[str, remote.CpuTimes]) -> records.Run:
    """The run with each quota-held client host's throttling, from the readings either side of
    the window."""
    if not run.client_proc:
        return run
    return run.model_copy(update={"client_proc": {
        h: p.model_copy(update=telemetry.throttling(before.get(h), after.get(h)))
        for h, p in run.client_proc.items()}})


# Never less, however fast the steps were. Not 0.3 either: the collectors start about a lead
# before the window, so with a 1 s window (after a 0.3 s warm-up) the 1 s interval mostly inside
# it ends ~0.4 s after the window, when they are already stopped: a 0.3 s lead left every run of
# such a search without mpstat's reading (tests/test_capacity_runs.py, loopback).
LEAD_MIN_S = 0.5
LEAD_MARGIN = 3.0  # times the slowest steps timed so far


def _lead(pre_load_s: float | None, round_trip: float, set_up_s: float) -> float:
    """Seconds from now to the load's start instant: time for the four pre-load steps on every
    client (start, affinity, load watch, CPU reading; five round trips of the one just timed),
    and three times the slowest of those steps so far. Before a run's first window they were
    not timed yet; the five like steps this window just took on the same hosts (server
    affinity, NIC and kernel counters, collectors' start, the generators' preparation) stand
    in for them, rather than a fixed 1.5 s: on this 2-CPU machine they take ~0.1 s, so the
    0.5 s floor applies and a second is saved per `orchestrate run`."""
    slowest = set_up_s if pre_load_s is None else pre_load_s
    return max(LEAD_MIN_S, 5 * round_trip, LEAD_MARGIN * slowest)


def _kernel(ctx: Context, spec: RunSpec, run: records.Run, server_cpus: list[int],
            before: dict[str, nstat.Reading],
            after: dict[str, nstat.Reading]) -> dict[str, records.KernelCounters]:
    """Each host's counter rises over the run, per request and per second of the window;
    softirq counts on the CPUs pinned there."""
    secs = run.window.end - run.window.start

    def per(d: dict[str, int | None], unit: float | None, digits: int) -> dict[str, float | None]:
        return {k: round(v / unit, digits) if v is not None and unit else None for k, v in d.items()}

    clients = {c.name for c in ctx.lab.clients[:spec.clients]}
    out: dict[str, records.KernelCounters] = {}
    for h in ctx.lab.hosts:
        if h.name not in before or h.name not in after:
            continue
        roles = (("server",) if h.name == ctx.lab.server.name else ()) + (
            ("client",) if h.name in clients else ())
        cpus = set(server_cpus if "server" in roles else [])
        cpus |= set(ctx.cpus(h, "client") if "client" in roles else [])
        d = nstat.delta(before[h.name], after[h.name], sorted(cpus))
        counters = dict(d.counters)
        out[h.name] = records.KernelCounters(
            run=counters, per_request=per(counters, run.requests, 6),
            per_second=per(counters, secs if secs and secs > 0 else None, 3),
            softirqs={c: dict(v) for c, v in d.softirqs.items()}, roles=roles,
            shared=len(roles) > 1, reset=d.reset)
    return out


def _fetch(ctx: Context, spec: RunSpec, procs: list[remote.Process]) -> dict[tuple[str, str], str]:
    """Copy every raw output into the results folder; returns {(host, name): stdout text}."""
    raw: dict[tuple[str, str], str] = {}

    def fetch(h: Host) -> None:
        mine = [p for p in procs if p.host == h.name]
        files = [(path, ctx.results.raw(spec.run_id, p.host, p.name + suffix))
                 for p in mine for path, suffix in ((p.stdout, ""), (p.stderr, ".stderr"))]
        try:
            missing = set(ctx.t(h).get_many(files))  # one round trip for all of a host's files
        except (RunFailed, OSError):
            return
        for p, (_, dest) in zip(mine, files[::2], strict=True):
            if p.stdout not in missing:
                raw[(p.host, p.name)] = dest.read_text(errors="replace")

    each([h for h in ctx.lab.hosts if any(p.host == h.name for p in procs)], fetch)
    return raw


def _record(ctx: Context, spec: RunSpec, raw: dict[tuple[str, str], str], gen: load.Generator,
            generators: list[tuple[Host, remote.Process]],
            collectors: list[telemetry.Collector],
            affinity: dict[str, Any], server_cpus: list[int],
            load_start: float, stopped_cleanly: bool) -> records.Run:
    """The run's record from its raw outputs; `generators` are the load generators by client."""
    sc, server = ctx.sc, ctx.lab.server
    outputs = []
    for c, _p in generators:
        stderr = ctx.results.raw(spec.run_id, c.name, f"{gen.name}.stderr")
        outputs.append((c, raw.get((c.name, gen.name), ""), stderr.read_text() if stderr.exists() else ""))
    measured = gen.record(ctx, spec, outputs)
    offset, until = measured.window_s
    started = measured.started
    # The window opens once every client is loading (they start within ms of each other). A
    # client so late that half the window would go keeps the planned one: start_skew_ms says it.
    start, end = load_start + offset, load_start + until
    start = max([start, *(t for t in started.values() if t < start + (end - start) / 2)])
    telemetry_ = telemetry.summarize(ctx, collectors, raw, start, end)

    stats = server_tool.parse_stats(raw.get((server.name, "server"), ""))
    load_threads = telemetry_.get(telemetry.LOAD_PIDSTAT, {})
    return records.Run.model_validate({
        **spec.as_dict(),
        "load": {"tool": sc.load.tool, "threads": sc.load.threads, "pipeline": sc.load.pipeline,
                 "duration_s": sc.load.duration, "warmup_s": sc.load.warmup, "clients": len(generators)},
        **measured.given(),
        "server_cpu": _server_cpu(telemetry_.get("pidstat", {}).get(server.name)),
        "client_cpu": {c.name: _cpu_of(telemetry_.get("mpstat", {}).get(c.name), ctx.cpus(c, "client"))
                       for c, _ in generators},
        "client_proc": {c.name: _busiest_thread(load_threads.get(c.name), ctx.facts.get(c.name))
                        for c, _ in generators if c.name in load_threads} or None,
        "server_host_cpu": _cpu_of(telemetry_.get("mpstat", {}).get(server.name), server_cpus).model_copy(
            update={"other": telemetry_.get(telemetry.OTHER, {}).get(server.name)}),
        "affinity": _affinity_summary(affinity, server_cpus, ctx, generators),
        "server_counters": stats,
        "telemetry": plain(telemetry_),
        "window": {"start": start, "end": end},
        "baseline": baseline.compared(ctx.baseline),
        "server_stopped_cleanly": stopped_cleanly,
    })


def _own_cpu_s() -> tuple[float, float]:
    """(wall, CPU seconds) of this orchestrator and the commands it has run locally."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.monotonic(), me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _server_cpu(threads: Any) -> records.ServerCpu:
    """Per-thread usr/sys and context switches of the server's process(es), from pidstat."""
    rows = _thread_rows(threads)
    if not rows:  # no pidstat, or no sample of the server inside the window: unknown, not 0% CPU
        return records.ServerCpu(threads=(), usr=None, sys=None)
    return records.ServerCpu(
        threads=rows,
        usr=round(sum(t.usr or 0.0 for t in rows), 2),
        sys=round(sum(t.sys or 0.0 for t in rows), 2),
        cswch_s=round(sum(t.cswch_s or 0.0 for t in rows), 1),
        nvcswch_s=round(sum(t.nvcswch_s or 0.0 for t in rows), 1),
    )


def _thread_rows(threads: Any) -> tuple[records.ThreadCpu, ...]:
    """pidstat's thread rows (not the process totals) of a telemetry summary."""
    return tuple(t for t in threads if isinstance(t, records.ThreadCpu) and t.tid is not None) \
        if isinstance(threads, list) else ()


def _busiest_thread(threads: Any, facts: dict[str, Any] | None = None) -> records.BusiestThread | None:
    """The load generator's busiest thread (pidstat %CPU, and %wait: runnable, not running);
    on a host with a CPU quota also all its threads' CPU over what the quota gives the host."""
    rows = _thread_rows(threads)
    if not rows:
        return None
    top = max(rows, key=lambda t: (t.busy or 0.0) + (t.wait or 0.0))
    out: dict[str, Any] = {"busy": round(top.busy or 0.0, 2), "wait": round(top.wait or 0.0, 2),
                           "threads": rows}
    cap = facts_tool.capacity(facts) if facts and facts.get("cpu_quota") else None
    if facts and cap:  # a host whose CPU count is unknown gets no share of it (not one of 1 CPU)
        used = sum(t.busy or 0.0 for t in rows) / 100.0  # CPU seconds per second
        out.update(capacity=round(cap, 3), of_capacity=round(100.0 * used / cap, 2))
    return records.BusiestThread(**out)


def _cpu_of(per_cpu: Any, cpus: list[int]) -> records.RoleCpu:
    """mpstat means for the CPUs a role was pinned to."""
    if not isinstance(per_cpu, dict):
        return records.RoleCpu(cpus={}, busy=None)
    chosen = {str(c): v for c in cpus if isinstance(v := per_cpu.get(c), records.CpuLoad)}
    busy = [v.busy for v in chosen.values() if v.busy is not None]
    return records.RoleCpu(cpus=chosen, busy=round(sum(busy) / len(busy), 2) if busy else None)


def _affinity_summary(affinity: dict[str, Any], server_cpus: list[int], ctx: Context,
                      generators: list[tuple[Host, remote.Process]]) -> dict[str, Any]:
    """What each thread was actually allowed to run on, next to what the scenario asked."""
    srv = affinity.get("server", {})
    wrk_aff = affinity.get("wrk", {})
    return {
        "server_expected": server_cpus,
        "server_threads": {str(tid): v["cpus"] for tid, v in srv.items()},
        "server_actual": sorted({c for v in srv.values() for c in v["cpus"]}),
        "wrk_expected": {c.name: ctx.cpus(c, "client") for c, _ in generators},
        "wrk_actual": {h: sorted({c for v in threads.values() for c in v["cpus"]})
                       for h, threads in wrk_aff.items()},
    }
