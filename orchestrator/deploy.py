"""Deploy: run playbooks/site.yml with ansible-runner on a Lab's hosts.

The inventory is generated from the Lab (the hosts the orchestrator already
holds), with the same SSH settings the orchestrator's own transport uses: key,
known_hosts, host-key checking on unless the scenario turned it off. The
playbooks know nothing of the orchestrator and run alone with ansible-playbook.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import RunFailed
from orchestrator.hosts import Host, Lab
from orchestrator.remote import Transport, each

PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"
SITE = PLAYBOOKS / "site.yml"
DEFAULT_ROOT = "/opt/orchestrate"  # roles/build/defaults: build_root, when no orchestrate_root
PYTHON = "/usr/bin/python3"  # interpreter discovery may pick a pyenv shim without python3-apt
REPO = PLAYBOOKS.parent
# What site.yml ships and builds: a change in any of these is a change in what a host holds.
INPUTS = ("playbooks", "server", "loadgen", "cpp-common")
_SKIP_DIRS = {".git", ".cache", "__pycache__", "tests"}
MAX_FORKS = 50  # hosts.deploy_forks' default: Ansible's forks cover the run's hosts up to this


@dataclass(frozen=True)
class HostResult:
    ok: int = 0
    changed: int = 0
    skipped: int = 0
    failed: bool = False
    unreachable: bool = False


@dataclass(frozen=True)
class DeployResult:
    hosts: dict[str, HostResult]
    seconds: float
    status: str  # ansible-runner's: successful, failed, canceled, timeout

    @property
    def changed(self) -> dict[str, int]:
        return {h: r.changed for h, r in self.hosts.items()}

    @property
    def failed(self) -> list[str]:
        return [h for h, r in self.hosts.items() if r.failed or r.unreachable]


def root(host: Host) -> str:
    """Where the build role installs on `host` (its orchestrate_root, else the role's default)."""
    return str(host.vars.get("orchestrate_root") or DEFAULT_ROOT)


def load_binary(host: Host) -> str:
    """Where the build role installed orchestrate-load on `host`."""
    return f"{root(host)}/bin/orchestrate-load"


def server_binary(host: Host) -> str:
    """Where the build role installed the server on `host`."""
    if host.vars.get("server_binary"):
        return str(host.vars["server_binary"])
    return f"{root(host)}/bin/orchestrate-server"


def _host_vars(h: Host) -> dict[str, Any]:
    v: dict[str, Any] = {"ansible_python_interpreter": h.vars.get("ansible_python_interpreter") or PYTHON}
    # the build role's root, and whether the hosts share it (then their package installs take turns)
    for key in ("orchestrate_root", "orchestrate_shared_root"):
        if h.vars.get(key):
            v[key] = h.vars[key]
    t = h.ssh
    if t is None:
        v["ansible_connection"] = "local"
        return v
    v.update(ansible_host=t.host, ansible_user=t.user, ansible_port=t.port,
             ansible_timeout=int(t.connect_timeout), ansible_pipelining=True)
    args = []
    if t.key_file:
        v["ansible_ssh_private_key_file"] = t.key_file
        args.append("-o IdentitiesOnly=yes")
    if t.host_key_checking:
        if t.known_hosts:
            args.append(f"-o UserKnownHostsFile={shlex.quote(t.known_hosts)}")
        args.append("-o StrictHostKeyChecking=yes")
    else:  # the scenario's explicit opt-out, as for the SSH transport
        v["ansible_host_key_checking"] = False
        args.append("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null")
    v["ansible_ssh_common_args"] = " ".join(args)
    return v


def inventory(lab: Lab) -> dict[str, Any]:
    """An Ansible inventory (as a dict) of the lab: groups server and client, connection vars."""
    groups: dict[str, dict[str, Any]] = {"server": {"hosts": {}}, "client": {"hosts": {}}}
    for h in lab.hosts:
        for role in h.roles:
            if role in groups:
                groups[role]["hosts"][h.name] = _host_vars(h)
    return {"all": {"children": groups}}


def _failure(events: list[dict[str, Any]]) -> tuple[str | None, str] | None:
    """(host, message) of the first failed or unreachable task, from ansible-runner's events."""
    for ev in events:
        kind = ev.get("event")
        data = ev.get("event_data") or {}
        if kind not in ("runner_on_failed", "runner_on_unreachable") or data.get("ignore_errors"):
            continue
        res = data.get("res") or {}
        parts = [str(res.get("msg") or "").strip()]
        for stream in ("stderr", "stdout"):  # a failed shell task says why here
            text = str(res.get(stream) or "").strip()
            if text and text not in parts[0]:
                parts.append(" | ".join(text.splitlines()[-3:]))
                break
        if kind == "runner_on_failed" and res.get("results"):  # a loop: the failing item's message
            item: dict[str, Any] = next((r for r in res["results"] if r.get("failed")), {})
            parts.append(str(item.get("msg") or "").strip())
        what = "unreachable" if kind == "runner_on_unreachable" else f"task '{data.get('task', '?')}' failed"
        return data.get("host"), f"{what}: " + ": ".join(p for p in parts if p)
    return None


def _kill_workers(marker: str) -> None:
    """SIGKILL what is left of a cancelled ansible-playbook.

    ansible-runner kills the playbook's process group, but Ansible's workers run in
    sessions of their own (with their ssh children); they carry the playbook's
    command line, which names our private directory.
    """
    me = os.getpgrp()
    pids = [int(d.name) for d in Path("/proc").glob("[0-9]*") if marker.encode() in _cmdline(int(d.name))]
    for pid in pids:
        with contextlib.suppress(OSError):
            pgid = os.getpgid(pid)
            if pgid == pid and pgid != me:
                os.killpg(pgid, signal.SIGKILL)  # the worker and its ssh
            else:
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(_cmdline(p) for p in pids):  # zombies have none
        time.sleep(0.05)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def inputs_hash(playbook: Path = SITE, tags: list[str] | None = None, skip_tags: list[str] | None = None,
                extra_vars: dict[str, Any] | None = None) -> str:
    """sha256 of everything a deploy depends on: the playbooks, the sources it builds (their
    tests excluded, as the hosts never build them) and how it was asked to run."""
    h = hashlib.sha256(json.dumps([str(playbook), tags, skip_tags, extra_vars], sort_keys=True,
                                  default=str).encode())
    for top in INPUTS:
        for path in sorted((REPO / top).rglob("*")):
            rel = path.relative_to(REPO)
            if any(p in _SKIP_DIRS or p.startswith("build") for p in rel.parts[1:]) or not path.is_file():
                continue
            h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


# What the tuning role sets per network namespace (runtime sysctls): it goes with a lab's
# namespaces. Everything else a deploy does (packages, builds, /etc files) lands on the filesystem.
NAMESPACED_VARS = ("tuning_somaxconn", "tuning_local_port_range")


def stamp_path(host: Host, extra_vars: dict[str, Any] | None = None) -> str:
    """Where a host records the inputs hash of its last successful deploy.

    A netns lab host is a namespace on this machine's filesystem: what a deploy leaves for its
    roles lies in the shared root, whatever the lab is called, so its stamp is its roles'
    (`.deployed.lab.client`), and a new lab at the same inputs skips Ansible. Hosts with a
    filesystem of their own, and lab hosts given settings that live in their namespace, keep a
    stamp per host name (netns.down removes a lab's)."""
    namespaced = any((extra_vars or {}).get(k) is not None for k in NAMESPACED_VARS)
    if host.vars.get("namespace") and not namespaced:
        return f"{root(host)}/.deployed.lab.{'+'.join(sorted(host.roles))}"
    return f"{root(host)}/.deployed.{host.name}"


def _builds_now(h: Host) -> str:
    """A command printing a hash of the build role's stamps in the host's root: what is built there
    now. Another checkout's deploy, or ansible-playbook alone, into that root (the labs' is every
    lab's) changes it, and a deploy stamp written before no longer vouches for the binaries."""
    return f"cat {shlex.quote(root(h))}/bin/.*.stamp 2>/dev/null | sha256sum | cut -c1-64"


def up_to_date(hosts: list[Host], digest: str, transport: Callable[[Host], Transport],
               extra_vars: dict[str, Any] | None = None) -> set[str]:
    """Names of the hosts whose stamp says they hold `digest` already, with the builds it saw
    still in place: one command each, at once."""
    def read(h: Host) -> list[str]:
        path = shlex.quote(stamp_path(h, extra_vars))
        return transport(h).run(f"cat {path} 2>/dev/null; {_builds_now(h)}", timeout=20,
                                check=False).stdout.split()

    return {h.name for h, got in zip(hosts, each(hosts, read), strict=True)
            if len(got) == 3 and got[0] == digest and got[1] == got[2]}


def _write_stamps(hosts: list[Host], digest: str, transport: Callable[[Host], Transport],
                  extra_vars: dict[str, Any] | None = None) -> None:
    def write(h: Host) -> None:
        path = shlex.quote(stamp_path(h, extra_vars))
        # Best effort: a host without a stamp (say, a login that cannot write there) is
        # only deployed again next time.
        transport(h).run(f"mkdir -p \"$(dirname {path})\" && "
                         f"{{ printf '%s\\n' {digest}; {_builds_now(h)}; }} > {path}.new "
                         f"&& mv -f {path}.new {path}",
                         timeout=20, check=False)

    # one writer per stamp: lab hosts of one role share theirs
    each(list({stamp_path(h, extra_vars): h for h in hosts}.values()), write)


def deploy(lab: Lab, *, tags: list[str] | None = None, skip_tags: list[str] | None = None,
           extra_vars: dict[str, Any] | None = None, playbook: Path = SITE, timeout: float = 1800,
           log: Path | None = None, limit: list[str] | None = None, max_forks: int = MAX_FORKS,
           transport: Callable[[Host], Transport] | None = None) -> DeployResult:
    """Run the playbook on every host of the lab; RunFailed(host=..., phase="deploy") on a failure.

    `limit` names the only hosts the plays run on (Ansible's --limit: client hosts an
    auto-scale added); the inventory still holds the whole lab, so its groups mean the same.
    `log` keeps Ansible's full output (the results folder is a good place).
    Ansible's forks cover every host of the play, up to `max_forks`.
    With `transport` (how to run a command on a host), each host's stamp of the inputs hash
    is read first: hosts deployed at this hash already are left out of the play (status
    "skipped" when that is all of them), and the stamp is written after a successful play.
    """
    targets = [h for h in lab.hosts if not limit or h.name in limit]
    digest, skipped = "", ""
    if transport is not None:
        digest = inputs_hash(playbook, tags, skip_tags, extra_vars)
        current = up_to_date(targets, digest, transport, extra_vars)
        skipped = (f"deploy: skipped {', '.join(sorted(current))}: already at build-input hash {digest}\n"
                   if current else "")
        if len(current) == len(targets):
            _keep_log(log, skipped)  # the log says why there was no play, not nothing at all
            return DeployResult(hosts={h.name: HostResult() for h in targets}, seconds=0.0, status="skipped")
        targets = [h for h in targets if h.name not in current]
        limit = [h.name for h in targets]
    result = _play(lab, tags=tags, skip_tags=skip_tags, extra_vars=extra_vars, playbook=playbook,
                   timeout=timeout, log=log, limit=limit, forks=max(1, min(len(targets), max_forks)))
    if skipped and log is not None and log.exists():
        _keep_log(log, skipped + log.read_text())
    if transport is not None:
        _write_stamps(targets, digest, transport, extra_vars)
    return result


def _keep_log(log: Path | None, text: str) -> None:
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(text)


def _runner_env(private: Path) -> dict[str, str]:
    """ansible-playbook's environment: our interpreter's ansible, host keys checked, no colour."""
    return {
        # Our own interpreter's ansible-playbook first (`binary=` would drop the playbook argument).
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "ANSIBLE_HOST_KEY_CHECKING": "True",  # ansible-runner turns it off unless told
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=15s -o ServerAliveInterval=15",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }


def _run_watched(runner: Any, cancel: threading.Event, private: Path) -> None:
    """Run the playbook in a thread we can interrupt: Ctrl-C cancels it and kills its workers."""
    done = threading.Event()
    crashed: list[BaseException] = []

    def work() -> None:
        try:
            runner.run()
        except BaseException as exc:  # reported below, in the caller's thread
            crashed.append(exc)
        finally:
            done.set()

    # Our own thread and Event: a Thread.join() cut short by Ctrl-C can return early
    # afterwards (CPython), and we must wait for ansible-playbook to be gone.
    threading.Thread(target=work, name="ansible-runner", daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except BaseException:
        # Ctrl-C/SIGTERM: ansible-playbook runs on its own pty, so it would not hear it.
        cancel.set()
        done.wait(30)
        _kill_workers(str(private))
        raise
    if crashed:
        raise RunFailed(f"ansible-runner failed: {crashed[0]}", phase="deploy")


def _host_results(lab: Lab, stats: dict[str, Any], limit: list[str] | None) -> dict[str, HostResult]:
    """Each deployed host's task counts from ansible's play recap."""
    return {h.name: HostResult(
        ok=int(stats.get("ok", {}).get(h.name, 0)), changed=int(stats.get("changed", {}).get(h.name, 0)),
        skipped=int(stats.get("skipped", {}).get(h.name, 0)),
        failed=h.name in stats.get("failures", {}), unreachable=h.name in stats.get("dark", {}))
        for h in lab.hosts if not limit or h.name in limit}


def _play(lab: Lab, *, tags: list[str] | None, skip_tags: list[str] | None, extra_vars: dict[str, Any] | None,
          playbook: Path, timeout: float, log: Path | None, limit: list[str] | None,
          forks: int) -> DeployResult:
    from ansible_runner.interface import init_runner  # heavy: only when deploying

    private = Path(tempfile.mkdtemp(prefix="orchestrate-deploy-"))
    env = _runner_env(private)
    cancel = threading.Event()
    started = time.monotonic()
    try:
        runner = init_runner(
            private_data_dir=str(private), playbook=str(playbook), inventory=inventory(lab),
            tags=",".join(tags) if tags else None, skip_tags=",".join(skip_tags) if skip_tags else None,
            limit=",".join(limit) if limit else None, forks=forks,
            extravars=extra_vars or {}, envvars=env, quiet=True, timeout=int(timeout),
            settings={"pexpect_timeout": 0.5}, cancel_callback=cancel.is_set)
        _run_watched(runner, cancel, private)
        seconds = time.monotonic() - started
        stdout = ""
        with contextlib.suppress(OSError, AttributeError, ValueError):
            stdout = runner.stdout.read()
        _keep_log(log, stdout)
        events = list(runner.events)
        stats = runner.stats or {}
        results = _host_results(lab, stats, limit)
        result = DeployResult(hosts=results, seconds=seconds, status=str(runner.status))
        if runner.status == "timeout":
            raise RunFailed(f"the deploy playbook did not finish within {timeout:.0f}s", phase="deploy")
        failure = _failure(events)
        if failure is not None:
            host, message = failure
            raise RunFailed(message, host=host, phase="deploy")
        if runner.rc != 0:
            tail = " | ".join(line for line in stdout.strip().splitlines()[-3:] if line.strip())
            raise RunFailed(f"ansible-playbook exited {runner.rc}: {tail or 'no output'}", phase="deploy")
        return result
    finally:
        shutil.rmtree(private, ignore_errors=True)

