"""Scenarios this machine cannot run refuse at once (exit 2), naming what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from orchestrator import scenario
from orchestrator.doctor import preflight

from testkit import REPO


def load(name: str) -> scenario.Scenario:
    return scenario.load(str(REPO / "scenarios" / name), host_cpus=set(range(64))).scenario


def test_an_inventory_of_documentation_addresses_is_no_real_machine():
    (lack,) = preflight.lacking(load("reference-cross-host.yaml"))
    assert lack.startswith("an inventory of real machines: inventories/example.ini holds only")


def test_scenarios_that_cannot_run_here_exit_2_at_once(tmp_path):
    """Exit 2 in under a second, interpreter start included: the least of up to 3 tries, since
    this machine's other work only ever adds to a try's time."""
    # Run on one CPU (taskset): the 16-core and 8x8 references cannot fit, whatever the machine.
    cpu = min(os.sched_getaffinity(0))
    for name, says in (("reference-loopback-16core.yaml", "not available on this host"),
                       ("reference-loopback-8x8.yaml", "not available on this host"),
                       ("reference-cross-host.yaml", "needs an inventory of real machines")):
        took = []
        while len(took) < 3 and min(took, default=1.0) >= 1.0:
            start = time.monotonic()
            done = subprocess.run(["taskset", "-c", str(cpu), sys.executable, "-m", "orchestrator", "run",
                                   f"scenarios/{name}", "--results", str(tmp_path / "results"),
                                   "--history", str(tmp_path / "h.sqlite")],
                                  cwd=REPO, capture_output=True, text=True, timeout=60)
            took.append(time.monotonic() - start)
            assert done.returncode == 2, done.stderr
            assert not (tmp_path / "results").exists()
            assert says in done.stderr, done.stderr
            assert len(done.stderr.strip().splitlines()) <= 2, done.stderr  # one line per pinned key
        assert min(took) < 1.0, f"{name}: exit 2 took {', '.join(f'{t:.2f}' for t in took)} s"
        print(f"{name}: exit 2 in {min(took):.2f} s")
