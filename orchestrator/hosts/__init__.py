"""Where a run happens: providers hand out a Lab of Hosts and take it back on every exit path.

One small interface for all providers: `open_lab(scenario, ...)` is a context
manager that yields a Lab and releases everything it acquired when left,
whether by success, error or Ctrl-C. Providers know nothing of wrk or servers.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

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


@dataclass(frozen=True)
class Lab:
    provider: str
    hosts: tuple[Host, ...]
    name: str = ""

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


class Provider(Protocol):
    def open_lab(self, scenario: Scenario, *, run_id: str) -> AbstractContextManager[Lab]: ...


def open_lab(scenario: Scenario, *, run_id: str, **kw: Any) -> AbstractContextManager[Lab]:
    """The provider named by the scenario, opened as a context manager."""
    module = importlib.import_module(PROVIDERS[scenario.hosts.provider])
    return module.open_lab(scenario, run_id=run_id, **kw)


def connect(host: Host) -> Transport:
    return LocalTransport(host.name) if host.ssh is None else SshTransport(host.ssh)


def connect_all(lab: Lab) -> Iterator[tuple[str, Transport]]:
    for h in lab.hosts:
        yield h.name, connect(h)
