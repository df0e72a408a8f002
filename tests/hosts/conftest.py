"""Fixtures for provider tests: real netns labs, always taken down (finalizers run on failure too)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.hosts import netns


def _need_root() -> None:
    if os.geteuid() != 0 or not os.path.exists(netns.SSHD):
        pytest.skip("netns labs need root and openssh-server (/usr/sbin/sshd)")


@pytest.fixture(scope="session")
def lab_prefix() -> str:
    """Lab names unique to this test session, so a user's own labs are never touched."""
    return f"t{os.getpid() % 100000}"


@pytest.fixture(scope="session")
def lab3(lab_prefix: str) -> Iterator[tuple[netns.LabState, float]]:
    """A lab of 3 hosts (1 server, 2 clients), no cap; yields (state, seconds `up` took)."""
    _need_root()
    name = f"{lab_prefix}-three"
    started = time.monotonic()
    try:
        st = netns.up(name, 3)
        yield st, time.monotonic() - started
    finally:
        netns.down(name)


@pytest.fixture
def make_lab(lab_prefix: str) -> Iterator[Callable[..., netns.LabState]]:
    """Factory: make_lab(suffix, hosts, pps=None); every lab made is downed after the test."""
    _need_root()
    made: list[str] = []

    def make(suffix: str, hosts: int, pps: int | None = None) -> netns.LabState:
        name = f"{lab_prefix}-{suffix}"
        made.append(name)
        return netns.up(name, hosts, pps)

    yield make
    for name in made:
        netns.down(name)


def leftovers(st: netns.LabState) -> list[str]:
    """Everything of lab `st` still on the machine: namespaces, links, sshd, directory, its hosts'
    own deploy stamps (not the roles' `.deployed.lab.*`, which every lab shares)."""
    left = []
    pat = re.compile(rf"^orch-{re.escape(st.name)}-\d+\b")
    nss = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()
    left += [f"namespace {ns}" for ns in nss if pat.match(ns)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
    left += [f"link {n}" for n in names if n == st.bridge or n in {h.veth for h in st.hosts}]
    sshd = subprocess.run(["pgrep", "-f", f"{st.dir}/hosts/"], capture_output=True, text=True).stdout.split()
    left += [f"sshd pid {p}" for p in sshd]
    if os.path.exists(st.dir):
        left.append(f"directory {st.dir}")
    left += [f"deploy stamp {p}" for p in (Path(netns.LAB_ORCHESTRATE_ROOT) / f".deployed.{h.name}"
                                           for h in st.hosts) if p.exists()]
    return left


@pytest.fixture
def lab_leftovers() -> Callable[[netns.LabState], list[str]]:
    return leftovers
