"""One module per external tool: each builds its command line and parses its output.

Adapters know nothing of scenarios, hosts or transports: they take plain values
and return plain dataclasses, so each can be tested on recorded real output.
A tool's name (as written in a scenario) is its adapter's module name.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from orchestrator.tools.base import ToolError  # noqa: F401  (re-exported)

# The tool names a scenario or the pipeline may use; each is a module of this package.
ADAPTERS = frozenset({"wrk", "loadgen", "iperf3", "pidstat", "mpstat", "sar", "perf", "server", "facts",
                      "ethtool", "nstat"})


def get(name: str) -> ModuleType:
    """The adapter module for a tool name; KeyError for an unknown tool."""
    if name not in ADAPTERS:
        raise KeyError(name)
    return importlib.import_module(f"orchestrator.tools.{name}")
