"""What `orchestrate run` checks before it starts anything.

Two kinds of "cannot run here", with different exit codes:
- the scenario asks for what this machine or account is not (an inventory of real
  machines, a cloud account; CPUs it lacks are refused by scenario.load): UserError, exit 2,
  one line naming what is missing;
- a tool the run starts is not installed: RunFailed, exit 1, one line per tool naming the
  package and the command that installs it.
Both are decided from the scenario and this machine alone, in well under a second.
"""

from __future__ import annotations

import ipaddress
import shlex
from pathlib import Path

from orchestrator import packages
from orchestrator.errors import RunFailed, UserError
from orchestrator.scenario import Loaded, Scenario

# RFC 5737's documentation networks: an inventory holding only these names no real machine.
_DOC_NETS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))


def lacking(sc: Scenario) -> list[str]:
    """What this machine or account lacks for `sc`, one phrase each ([] = nothing).

    CPUs are not here: scenario.load already refuses pinned CPUs this machine lacks
    (exit 2, with the key's line), for the providers that run on it."""
    out: list[str] = []
    provider = sc.hosts.provider
    if provider == "static" and sc.hosts.inventory:
        out += _placeholder_inventory(sc.hosts.inventory)
    if provider == "aws":
        out += _aws_account(sc)
    return out


def _ini_addresses(path: str) -> list[str] | None:
    """Each host line's address (ansible_host=, else its name) of a plain INI inventory, read
    without Ansible (whose import alone takes a third of a second); None when the file is more
    than host lines, sections and variables (ranges, YAML, a script): Ansible reads it then."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    out, section = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section.endswith((":vars", ":children")):
            continue
        try:
            name, *kv = shlex.split(line, comments=True)
        except ValueError:  # unbalanced quotes: Ansible's message is the one to show
            return None
        if "[" in name or "=" in name:  # a range (web[1:3]) or a stray variable
            return None
        host = dict(x.split("=", 1) for x in kv if "=" in x).get("ansible_host", name)
        out.append(host)
    return out or None


def _placeholder_inventory(path: str) -> list[str]:
    from orchestrator.hosts.static import hosts_from_inventory

    names = _ini_addresses(path)
    if names is None:
        try:
            hosts = hosts_from_inventory(path, run="preflight")
        except UserError:
            return []  # the provider reports a broken inventory itself, with its line
        names = [h.ssh.host if h.ssh else h.address for h in hosts]
    addresses = []
    for name in names:
        try:
            addresses.append(ipaddress.ip_address(name))
        except ValueError:
            return []  # a host name: may well be real
    if addresses and all(any(a in n for n in _DOC_NETS) for a in addresses):
        return [f"an inventory of real machines: {path} holds only documentation addresses "
                "(RFC 5737); copy it, put your hosts' addresses in, and pass "
                "--set hosts.inventory=YOUR.ini"]
    return []


def _aws_account(sc: Scenario) -> list[str]:
    from orchestrator.hosts.aws import ec2

    aws = sc.hosts.aws
    try:
        ec2.make_session(aws.region if aws else None)
    except UserError as exc:
        return [f"a cloud account: {exc}"]
    return []


def check(loaded: Loaded) -> None:
    """Raise before anything starts if `loaded` cannot run on this machine."""
    sc = loaded.scenario
    lacks = lacking(sc)
    if lacks:
        raise UserError(f"{loaded.source}: cannot run on this machine; it needs " + "; and ".join(lacks))
    gone = packages.missing(packages.controller_tools(sc))
    if gone:
        raise RunFailed("; ".join(str(m) for m in gone), host="this machine", phase="preflight")
