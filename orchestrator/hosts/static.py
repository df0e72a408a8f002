"""The `static` provider: existing machines listed in a standard Ansible inventory (INI or YAML).

Groups `server` and `client` give the roles (a host may be in both). With client
auto-scale (`hosts.roles.client: {min, max}`) the run starts with the first `min` hosts of
the `client` group (by name) and takes more of it, in order, while it needs them. Ansible's
own parser reads the file, so group vars, `[group:vars]`, children and
group_vars/ directories mean what they mean to ansible-playbook. Per-host vars:

  ansible_host, ansible_user, ansible_port, ansible_ssh_private_key_file
  ansible_connection=local     this machine: no SSH
  ansible_ssh_common_args      `-o UserKnownHostsFile=F` is honoured for host-key checks
  server_cpus / client_cpus    override the scenario's CPU sets on that host
  bench_interface              the NIC whose packets are counted
  bench_address                address for benchmark traffic, if not ansible_host
  bench_workdir                scratch root (default /tmp/orchestrate): <root>/<scenario>-<run>/<host>
  orchestrate_root             where the deploy playbook installs the server
  orchestrate_shared_root      true when the hosts share that root's filesystem (NFS, say): their
                               package installs take turns (builds order themselves by a lock there)
"""

from __future__ import annotations

import contextlib
import io
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from orchestrator import bounded
from orchestrator.errors import UserError
from orchestrator.hosts import Host, Lab, NoMoreHosts
from orchestrator.remote import SshTarget
from orchestrator.scenario import Scenario, Ssh

ROLES = ("server", "client")
WORK_ROOT = "/tmp/orchestrate"
MAX_INVENTORY_BYTES = 16 * bounded.MiB
# Inventory vars handed to the pipeline as Host.vars (plain values, not Ansible's tagged ones).
PASSTHROUGH = ("server_cpus", "client_cpus", "orchestrate_root", "orchestrate_shared_root", "server_binary",
               "bench_interface", "bench_address", "ansible_python_interpreter")


def _plain(value: Any) -> Any:
    """Ansible 2.19 tags every parsed value; the pipeline wants plain Python data."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def read_inventory(path: str | Path) -> dict[str, dict[str, Any]]:
    """{host: {"groups": [...], "vars": {...}}} as Ansible sees the inventory; UserError if unreadable."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such inventory file")
    from ansible import constants as C  # heavy: only when a static inventory is used
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    text = bounded.read_text(path, limit=MAX_INVENTORY_BYTES, what="inventory")
    with contextlib.suppress(yaml.YAMLError):  # INI, most likely: Ansible's parser takes it
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # a YAML inventory: bound its aliases
        if node is not None:
            bounded.expanded_nodes(node, str(path))
    loader = DataLoader()
    said = io.StringIO()
    saved = C.INVENTORY_ANY_UNPARSED_IS_FAILED
    C.INVENTORY_ANY_UNPARSED_IS_FAILED = True  # a file Ansible cannot read is an error, not a warning
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            inv = InventoryManager(loader=loader, sources=[str(path)])
    except AnsibleError:
        # Ansible explains why as warnings; keep the first line of its reason.
        lines = [ln.strip() for ln in said.getvalue().splitlines() if ln.strip()]
        reason = next((ln.split("plugin: ", 1)[-1] for ln in lines if "Failed to parse" in ln), "unreadable")
        raise UserError(f"{path}: not an Ansible inventory (INI or YAML): {reason}") from None
    finally:
        C.INVENTORY_ANY_UNPARSED_IS_FAILED = saved
    variables = VariableManager(loader=loader, inventory=inv)
    out: dict[str, dict[str, Any]] = {}
    for h in inv.get_hosts():
        hv = variables.get_vars(host=h)
        out[h.name] = {"groups": sorted(g.name for g in h.get_groups()),
                       "vars": {k: _plain(v) for k, v in hv.items()
                                if k.startswith(("ansible_", "bench_")) or k in PASSTHROUGH}}
    groups = {name: [h.name for h in g.get_hosts()] for name, g in inv.groups.items()}
    for role in ROLES:
        if role not in groups:
            have = ", ".join(sorted(g for g in groups if g not in ("all", "ungrouped"))) or "none"
            raise UserError(f"{path}: inventory has no group '{role}' (groups found: {have}); "
                            f"put the {role} host(s) under [{role}]")
        if not groups[role]:
            raise UserError(f"{path}: group '{role}' has no hosts")
    return out


def _expand(path: str | None) -> str | None:
    return str(Path(path).expanduser()) if path else None


def _known_hosts(common_args: str | None) -> str | None:
    """`-o UserKnownHostsFile=F` from ansible_ssh_common_args, so SSH and Ansible check the same file."""
    if not common_args:
        return None
    words = shlex.split(common_args)
    for i, w in enumerate(words):
        opt = w[2:] if w.startswith("-o") and len(w) > 2 else (words[i + 1] if w == "-o" and
                                                                i + 1 < len(words) else "")
        key, _, value = opt.partition("=")
        if key.strip().lower() == "userknownhostsfile" and value.strip():
            return _expand(value.strip().split()[0])
    return None


def hosts_from_inventory(path: str | Path, *, run: str, ssh: Ssh | None = None) -> tuple[Host, ...]:
    """Hosts of an inventory: server(s) first, then clients; `ssh` supplies defaults the inventory omits.

    Each host works in `<bench_workdir or /tmp/orchestrate>/<run>/<host>`: the host name
    keeps hosts apart when several share one filesystem (a netns lab's inventory).
    """
    ssh = ssh or Ssh()
    inventory = read_inventory(path)
    ordered = sorted(inventory.items(), key=lambda kv: ("server" not in kv[1]["groups"], kv[0]))
    hosts = []
    for name, item in ordered:
        v = item["vars"]
        roles = tuple(r for r in ROLES if r in item["groups"])
        if not roles:
            continue  # in the inventory for other plays, not for this benchmark
        target = None
        if v.get("ansible_connection") != "local":
            address = str(v.get("ansible_host") or name)
            target = SshTarget(
                host=address, name=name, user=str(v.get("ansible_user") or ssh.user),
                port=int(v.get("ansible_port") or ssh.port),
                key_file=_expand(v.get("ansible_ssh_private_key_file") or v.get("ansible_private_key_file")
                                 or ssh.key),
                known_hosts=_known_hosts(v.get("ansible_ssh_common_args")),
                host_key_checking=ssh.host_key_checking, connect_timeout=ssh.connect_timeout)
        address = v.get("bench_address") or v.get("ansible_host") or (
            "127.0.0.1" if target is None else name)
        hosts.append(Host(
            name=name, address=str(address), roles=roles,
            ssh=target, interface=v.get("bench_interface"),
            workdir=f"{v.get('bench_workdir') or WORK_ROOT}/{run}/{name}",
            vars={k: v[k] for k in PASSTHROUGH if v.get(k) is not None}))
    return tuple(hosts)


class ClientGroup:
    """The rest of the inventory's client group, handed out in order (auto-scale)."""

    def __init__(self, rest: list[Host]):
        self.rest = rest

    @property
    def spare(self) -> int:
        return len(self.rest)

    def add(self, count: int) -> tuple[Host, ...]:
        if count > len(self.rest):
            raise NoMoreHosts(f"the inventory's client group has {len(self.rest)} more host(s), not {count}",
                              phase="add client hosts")
        new, self.rest = tuple(self.rest[:count]), self.rest[count:]
        return new


@contextmanager
def open_lab(scenario: Scenario, *, run_id: str, inventory: str | None = None, **_: Any) -> Iterator[Lab]:
    """The inventory's hosts; nothing is acquired, so nothing is released but our handles."""
    path = inventory or scenario.hosts.inventory
    if not path:
        raise UserError("provider 'static' needs an Ansible inventory: set hosts.inventory")
    hosts = hosts_from_inventory(path, run=f"{scenario.name}-{run_id}", ssh=scenario.hosts.ssh)
    scale = scenario.hosts.roles.autoscale
    if scale is None:
        yield Lab(provider="static", hosts=hosts, name=str(path))
        return
    # Hosts that serve are always in (one that also loads counts among the clients); hosts
    # that only load are taken in order: `min` of them first, the rest as the run asks.
    serving = [h for h in hosts if "server" in h.roles]
    loading = [h for h in hosts if "server" not in h.roles]
    clients = sum("client" in h.roles for h in hosts)
    if clients < scale.min:
        raise UserError(f"{path}: group 'client' has {clients} host(s) but hosts.roles.client.min is "
                        f"{scale.min}")
    take = max(scale.min - (clients - len(loading)), 0)
    yield Lab(provider="static", hosts=tuple(serving + loading[:take]), name=str(path),
              pool=ClientGroup(loading[take:]))
