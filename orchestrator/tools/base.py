"""What every tool adapter shares: its error type and small parsing helpers."""

from __future__ import annotations

import shlex
from collections.abc import Iterable


class ToolError(Exception):
    """A tool ran but reported a failure (e.g. iperf3 could not connect).

    `tool` names the tool; the message is the tool's own words where it has them.
    """

    def __init__(self, tool: str, message: str):
        super().__init__(f"{tool}: {message}")
        self.tool = tool
        self.message = message


def join(argv: Iterable[str]) -> str:
    """A shell-safe command line from an argv list (commands run through sh on hosts)."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def cpu_list(cpus: Iterable[int]) -> str:
    """'0,2,4' as taskset -c and the server's --cpus expect."""
    return ",".join(str(c) for c in cpus)
