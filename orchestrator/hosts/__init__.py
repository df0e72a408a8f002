"""Where a run happens: providers hand out a Lab of Hosts and take it back on every exit path.

One small interface for all providers: `open_lab(scenario, ...)` is a context
manager that yields a Lab and releases everything it acquired when left,
whether by success, error or Ctrl-C. Providers know nothing of wrk or servers.

Client auto-scale (`hosts.roles.client: {min, max}`): a provider opens the lab with `min`
client hosts and gives it a `ClientPool` that adds more while the run goes on (the netns
lab adds namespace hosts, AWS launches instances, static hands out more of its inventory's
client group); whatever it adds is released with the rest of the lab.
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import RunFailed
from orchestrator.remote import LocalTransport, SshTarget, SshTransport, Transport
from orchestrator.scenario import Scenario

PROVIDERS = {
    "local": "orchestrator.hosts.local",
    "netns": "orchestrator.hosts.netns",
    "static": "orchestrator.hosts.static",
    "aws": "orchestrator.hosts.aws",
}


@dataclass(frozen=True)
class Host:
    name: str
    address: str  # where benchmark traffic reaches it
    roles: tuple[str, ...]  # "server", "client"
    workdir: str  # scratch space on the host for this lab
    ssh: SshTarget | None = None  # None: this machine, commands run directly
    interface: str | None = None  # NIC whose packets are counted (None: find by address)
    vars: dict[str, Any] = field(default_factory=dict)  # per-host settings (cpus, server_binary, ...)


class ClientPool(Protocol):
    """A provider's way to add client hosts to its lab while the run goes on (auto-scale).

    `add` returns the new hosts ready to be reached (sshd answering, host keys known) and
    leaves them for the lab's own exit to release, even when it fails half-way or is
    interrupted. It raises `NoMoreHosts` when the provider cannot give more now (a cloud
    out of capacity): the run goes on with the hosts it has."""

    @property
    def spare(self) -> int:
        """How many more client hosts this pool can still add."""
        ...

    def add(self, count: int) -> tuple[Host, ...]: ...


class NoMoreHosts(RunFailed):
    """The provider cannot add the client hosts asked for; the lab is as it was."""


@dataclass(frozen=True)
class Lab:
    provider: str
    hosts: tuple[Host, ...]
    name: str = ""
    pool: ClientPool | None = field(default=None, compare=False, repr=False)  # None: a fixed lab
    # cloud providers: the run's estimated cost so far (records.Cost's fields), None: nothing billed
    cost: Callable[[], dict[str, Any] | None] | None = field(default=None, compare=False, repr=False)

    @property
    def client_limit(self) -> int:
        """The most client hosts this lab can have: those it has and those its pool can add."""
        return len(self.clients) + (self.pool.spare if self.pool is not None else 0)

    def grow(self, count: int) -> tuple[Lab, tuple[Host, ...]]:
        """This lab with `count` more client hosts from its provider, and those hosts."""
        if self.pool is None or count > self.pool.spare:
            raise NoMoreHosts(f"{self.provider} lab {self.name}: cannot add {count} client host(s), "
                              f"{self.pool.spare if self.pool else 0} to spare", phase="add client hosts")
        new = self.pool.add(count)
        return dataclasses.replace(self, hosts=self.hosts + new), new

    @property
    def server(self) -> Host:
        return next(h for h in self.hosts if "server" in h.roles)

    @property
    def clients(self) -> list[Host]:
        return [h for h in self.hosts if "client" in h.roles]

    @property
    def single_machine(self) -> bool:
        """True when the server and the clients are the same host (loopback)."""
        return all(h.name == self.server.name for h in self.clients)


def open_lab(scenario: Scenario, *, run_id: str, **kw: Any) -> AbstractContextManager[Lab]:
    """The provider named by the scenario, opened as a context manager."""
    module = importlib.import_module(PROVIDERS[scenario.hosts.provider])
    return module.open_lab(scenario, run_id=run_id, **kw)


LOCK_DIR = Path("/tmp/orchestrate/locks")


@dataclass(frozen=True)
class _LockingPool:
    """A pool whose new hosts join the run's lock before the run uses them."""

    pool: ClientPool
    take: Callable[[Sequence[Host]], None]

    @property
    def spare(self) -> int:
        return self.pool.spare

    def add(self, count: int) -> tuple[Host, ...]:
        hosts = self.pool.add(count)
        self.take(hosts)
        return hosts


@contextmanager
def lock(lab: Lab, run_id: str, lock_dir: Path = LOCK_DIR) -> Iterator[Lab]:
    """One run at a time per host: a second run against the same hosts stops before touching them.

    flock locks on this machine, one per host address: the kernel drops them when
    the holder dies, even by SIGKILL, so a crashed run never leaves a stale lock.
    Yields the lab, whose pool (if any) locks the hosts it adds too, until the same end.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    held: list[int] = []

    def take(hosts: Sequence[Host]) -> None:
        for h in sorted(hosts, key=lambda h: h.address):
            path = lock_dir / f"{h.address}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another run"
                os.close(fd)
                raise RunFailed(f"busy: {owner} is running against this host; wait for it to finish "
                                "or stop it first", host=h.name, phase="start") from None
            held.append(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"run {run_id} (pid {os.getpid()})".encode(), 0)

    try:
        take(lab.hosts)
        yield lab if lab.pool is None else dataclasses.replace(lab, pool=_LockingPool(lab.pool, take))
    finally:
        for fd in held:
            os.close(fd)


def live_runs(lock_dir: Path = LOCK_DIR) -> dict[str, str]:
    """Host address -> run id, for runs whose orchestrator is alive (it holds the host's lock)."""
    live = {}
    for path in lock_dir.glob("*.lock"):
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 200, 0).decode(errors="replace").split()
            if len(owner) >= 2 and owner[0] == "run":
                live[path.name.removesuffix(".lock")] = owner[1]
        finally:
            os.close(fd)  # closing also drops a lock we just took
    return live


def connect(host: Host) -> Transport:
    return LocalTransport(host.name) if host.ssh is None else SshTransport(host.ssh)

