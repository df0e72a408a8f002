"""Run, spawn pinned, signal, put and get: the same operations locally or over SSH.

A Transport only knows how to run a shell command and move files (`transport`; this machine in
`local`, a host over SSH in `ssh`). Everything else is built on `run`, so local and remote hosts
behave identically: background processes with pids, signals and the run's table (`processes`),
CPU times and affinity read back (`procstat`), and the record of what reached each host when
(`commandlog`). Importers use the names below; the modules are the package's own layout.
"""

from orchestrator.remote.commandlog import CommandLog, CommandRecord, Logged
from orchestrator.remote.local import LocalTransport
from orchestrator.remote.processes import (
    LEDGER,
    MARK,
    Process,
    ProcessTable,
    alive,
    alive_many,
    group_pids,
    kill_marked,
    marked_pids,
    marked_runs,
    read,
    spawn,
    stop,
    stop_many,
    wait_exit,
)
from orchestrator.remote.procstat import CpuTimes, cpu_times, group_affinity, thread_affinity
from orchestrator.remote.ssh import SshTarget, SshTransport, wait_for_banner
from orchestrator.remote.transport import Completed, RemoteError, Transport, each

__all__ = [
    "LEDGER", "MARK", "CommandLog", "CommandRecord", "Completed", "CpuTimes", "LocalTransport", "Logged",
    "Process", "ProcessTable", "RemoteError", "SshTarget", "SshTransport", "Transport", "alive",
    "alive_many", "cpu_times", "each", "group_affinity", "group_pids", "kill_marked", "marked_pids",
    "marked_runs", "read", "spawn", "stop", "stop_many", "thread_affinity", "wait_exit", "wait_for_banner",
]
