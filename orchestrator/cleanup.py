"""What a run killed with kill -9 (or a power loss) leaves on this machine, found and removed.

A live run holds a lock per host (hosts.lock), so what it uses is never touched here.
"""

from __future__ import annotations

from orchestrator import hosts, remote, sysctl
from orchestrator.hosts import netns


def orphan_processes() -> dict[str, list[int]]:
    """Stop the processes of dead runs (found by the run mark every process carries);
    returns run id -> the pids stopped."""
    t = remote.LocalTransport()
    live = set(hosts.live_runs().values())
    orphans = {rid: pids for rid, pids in remote.marked_runs(t).items() if rid not in live}
    for pids in orphans.values():
        remote.stop_many(t, [remote.Process("localhost", "orphan", p, "", "") for p in pids], grace=5.0)
    return orphans


def idle_labs() -> tuple[dict[str, list[str]], list[str]]:
    """Take down every lab no live run is using: (lab -> the runs keeping it up, what was removed)."""
    live = hosts.live_runs()
    kept: dict[str, list[str]] = {}
    removed: list[str] = []
    for st in netns.status():
        busy = sorted({live[h.address] for h in st.hosts if h.address in live})
        if busy:
            kept[st.name] = busy
        else:
            removed += netns.down(st.name)
    return kept, removed


def sysctls() -> tuple[list[str], list[str]]:
    """The kernel settings dead runs left changed on this machine and in its lab namespaces,
    restored from the originals each saved before its first change: (done, could not)."""
    return sysctl.restore_left_behind(set(hosts.live_runs().values()))
