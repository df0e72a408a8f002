"""One module per external tool: each builds its command line and parses its output.

Adapters know nothing of scenarios, hosts or transports: they take plain values
and return plain dataclasses, so each can be tested on recorded real output.
The registry maps a tool name (as written in a scenario) to its adapter module.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from orchestrator.tools.base import ToolError  # noqa: F401  (re-exported)

# name in a scenario -> module under orchestrator.tools
REGISTRY: dict[str, str] = {
    "wrk": "wrk",
    "iperf3": "iperf3",
    "pidstat": "pidstat",
    "mpstat": "mpstat",
    "sar": "sar",
    "perf": "perf",
    "server": "server",
    "facts": "facts",
    "ethtool": "ethtool",
}

TELEMETRY = ("pidstat", "mpstat", "sar", "perf")


def get(name: str) -> ModuleType:
    """The adapter module for a tool name; KeyError for an unknown tool."""
    return importlib.import_module(f"orchestrator.tools.{REGISTRY[name]}")
