"""Which external tools a scenario needs on this machine, and the Debian package of each.

One table (TOOL_PACKAGES) is what `./setup.sh run` must install (a test reads setup.sh's
RUN_PACKAGES against it), what `orchestrate run` checks before anything starts, and what
`orchestrate doctor` reports. A missing tool is one line: "X is missing: apt-get install -y PKG".
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass

from orchestrator.scenario import Scenario

# tool (as looked up on PATH) -> the Debian 12 package that provides it
TOOL_PACKAGES: dict[str, str] = {
    "wrk": "wrk",
    "iperf3": "iperf3",
    "pidstat": "sysstat",
    "mpstat": "sysstat",
    "sar": "sysstat",
    "perf": "linux-perf",
    "taskset": "util-linux",
    "nsenter": "util-linux",
    "g++": "g++",
    "cmake": "cmake",
    "make": "make",
    "pgrep": "procps",
    "ip": "iproute2",
    "tc": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "sshd": "openssh-server",
    "nginx": "nginx-light",
}

# Where Debian puts daemons: root's PATH has them, a user's often does not.
_SBIN = ("/usr/sbin", "/sbin")

# What each provider itself runs on this machine (the server and load come on top).
PROVIDER_TOOLS: dict[str, tuple[str, ...]] = {
    "local": ("taskset",),
    # Lab hosts are namespaces of this machine: their sshd, links and shaping are ours,
    # and everything run "on" them is this machine's binaries.
    "netns": ("taskset", "sshd", "ssh", "ssh-keygen", "ip", "tc", "pgrep"),
    "static": ("ssh",),  # the hosts' own tools come from the deploy playbook
    "aws": ("ssh",),
}

# Collector name -> binary (the tool adapters' BINARY; kept here as names, no import of them).
_COLLECTORS = {"pidstat": "pidstat", "mpstat": "mpstat", "sar": "sar", "perf": "perf"}


@dataclass(frozen=True)
class Missing:
    tool: str
    package: str | None

    def __str__(self) -> str:
        if self.package is None:
            return f"{self.tool} is missing (no Debian package known for it; install it and put it on PATH)"
        return f"{self.tool} is missing: apt-get install -y {self.package}"


def which(tool: str) -> str | None:
    """The tool's path: PATH first, then the sbin directories (sshd) unless PATH was narrowed
    on purpose (ORCHESTRATE_PATH_ONLY, the tests' way to hide a tool)."""
    found = shutil.which(tool)
    if found or os.environ.get("ORCHESTRATE_PATH_ONLY"):
        return found
    for d in _SBIN:
        p = os.path.join(d, tool)
        if os.access(p, os.X_OK):
            return p
    return None


def _command_tool(command: str) -> str | None:
    """The program a user's server command starts (its first word), if we can tell."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    words = [w for w in words if "=" not in w.split("/")[0]]  # skip VAR=value prefixes
    return os.path.basename(words[0]) if words and "{" not in words[0] else None


def controller_tools(sc: Scenario) -> list[str]:
    """Every tool a run of `sc` starts on this machine, in a stable order."""
    want = list(PROVIDER_TOOLS[sc.hosts.provider])
    if sc.hosts.provider in ("local", "netns"):
        if sc.server.command is None or sc.load.tool == "orchestrate-load":
            want += ["cmake", "make", "g++"]  # the server and orchestrate-load are built here
        if sc.server.command is not None and (prog := _command_tool(sc.server.command)):
            want.append(prog)
        if sc.load.tool == "wrk":
            want.append("wrk")
        if sc.baseline.enabled:
            want.append("iperf3")
        want += [_COLLECTORS[c] for c in sc.telemetry.collectors if c in _COLLECTORS]
    return list(dict.fromkeys(want))


def missing(tools: list[str]) -> list[Missing]:
    return [Missing(t, TOOL_PACKAGES.get(t)) for t in tools if which(t) is None]
