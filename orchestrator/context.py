"""What one `orchestrate run` holds while it runs, shared by the pipeline steps.

execute.py owns it; baseline.py and telemetry.py take it so each step reads the
scenario, hosts and results folder the same way. No global state: one per run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import UserError
from orchestrator.hosts import Host, Lab
from orchestrator.records import BaselinePath, CapacitySearch, HostNoise, Record, Run
from orchestrator.remote import CommandLog, ProcessTable, Transport
from orchestrator.scenario import Scenario, parse_cpus, resolve_cpus
from orchestrator.store import ResultsDir

Progress = Callable[[str], None]


@dataclass
class Context:
    """What one `orchestrate run` holds while it runs (owned by run(), passed down)."""

    sc: Scenario
    lab: Lab
    results: ResultsDir
    transports: dict[str, Transport]
    table: ProcessTable
    progress: Progress
    facts: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, BaselinePath] = field(default_factory=dict)  # by path (baseline.measure)
    runs: list[Run] = field(default_factory=list)
    capacity: list[CapacitySearch] = field(default_factory=list)  # one per capacity search done
    autoscale: list[dict[str, Any]] = field(default_factory=list)  # one per point auto-scaled
    phase: str = "start"
    log: CommandLog = field(default_factory=CommandLog)  # what reached each host, and when
    timing: dict[str, float] = field(default_factory=dict)  # wall seconds per step (for the plan)
    # doctor.noise's readings, "before" the first window and "after" the last
    host_noise: dict[str, HostNoise] = field(default_factory=dict)
    load_binary: dict[str, str] = field(default_factory=dict)  # client host -> orchestrate-load's path
    server_binaries: dict[str, str] = field(default_factory=dict)  # server.ref -> its build's path
    sysctl: Any = None  # sysctl.Tuner: the scenario's kernel settings, restored at teardown
    # compare: the rounds as planned (plan.Rounds) and as run: how many, and why they stopped
    rounds: dict[str, Any] = field(default_factory=dict)
    # the slowest pre-load steps so far (from the start instant's choice to the CPU reading),
    # which sets how far ahead later windows start (execute._lead); None before any window
    pre_load_s: float | None = None

    @contextlib.contextmanager
    def step(self, phase: str, key: str | None = None) -> Iterator[None]:
        """Enter `phase` (named in failures) and add its wall time to timing[key or phase]."""
        self.phase = phase
        start = time.monotonic()
        try:
            yield
        finally:
            key = key or phase
            self.timing[key] = round(self.timing.get(key, 0.0) + time.monotonic() - start, 3)

    def t(self, host: Host) -> Transport:
        return self.transports[host.name]

    def cpus(self, host: Host, role: str) -> list[int]:
        """The scenario's CPUs for a role on a host; inventory vars override; keywords resolved."""
        spec: list[int] | str = self.sc.server.cpus if role == "server" else self.sc.load.cpus
        if host.vars.get(f"{role}_cpus"):  # the inventory's, checked like the scenario's
            try:
                spec = parse_cpus(host.vars[f"{role}_cpus"])
            except ValueError as exc:
                raise UserError(f"host {host.name}: {role}_cpus: {exc}") from None
        allowed = self.facts.get(host.name, {}).get("cpus_allowed") or [0]
        cpus = resolve_cpus(spec, allowed)
        missing = sorted(set(cpus) - set(allowed))
        if missing:
            raise UserError(f"host {host.name}: {role} CPUs {missing} do not exist there "
                            f"(it has {len(allowed)} CPUs: {allowed})")
        return cpus

    def measured_cpus(self, host: Host) -> set[int]:
        """The CPUs the run pins a server or load generator to, on `host` or on any host that
        shares its kernel (the namespaces of one lab machine share its CPUs)."""
        boot = self.facts.get(host.name, {}).get("boot_id")
        used: set[int] = set()
        for h in self.lab.hosts:
            if h.name == host.name or (boot and self.facts.get(h.name, {}).get("boot_id") == boot):
                for role in ("server", "client"):
                    if role in h.roles:
                        used |= set(self.cpus(h, role))
        return used

    def collector_cpus(self, host: Host) -> list[int] | None:
        """Where telemetry collectors run on `host`: telemetry.cpus, else the CPUs no part of
        the run uses; None when there are none to spare (they share the measured CPUs)."""
        allowed = self.facts.get(host.name, {}).get("cpus_allowed") or [0]
        if self.sc.telemetry.cpus is not None:
            return resolve_cpus(self.sc.telemetry.cpus, allowed)
        return sorted(set(allowed) - self.measured_cpus(host)) or None

    def host(self, name: str) -> Host:
        return next(h for h in self.lab.hosts if h.name == name)


def pause_point(ctx: Context, name: str) -> None:
    """Fault injection for the test suite: ORCHESTRATE_PAUSE_AT=<name> holds the run here
    (ORCHESTRATE_PAUSE_S seconds) so a test can interrupt it at a known point."""
    if os.environ.get("ORCHESTRATE_PAUSE_AT") == name:
        ctx.progress(f"orchestrate: paused at {name}")
        time.sleep(float(os.environ.get("ORCHESTRATE_PAUSE_S", "30")))


def plain(obj: Any) -> Any:
    """Dataclasses and records (and containers of them) -> JSON-able data."""
    if isinstance(obj, Record):
        return obj.to_json()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj
