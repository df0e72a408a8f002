"""Kernel settings a scenario sets (scenario.Kernel): applied on each host before a run and
restored after the last one, on every exit path (a failure, Ctrl-C).

Before the first change on a host its original values go into a state file on that host,
outside any run's work directory (STATE_DIR/<host>--<run id>.json). A run killed with -9
leaves the file behind; `orchestrate cleanup` writes the originals back on this machine and
in its lab namespaces (restore_left_behind), and the next run on a host does so there first
(it holds the host's lock, so another run's file on that host is stale). The values in force
when a session first touches a host are its originals: where the deploy's tuning role ran,
its values are what the run restores.

In the netns lab a setting is written inside the host's own network namespace. One the
namespace does not own (outside net.*, or read-only there, i.e. global on this kernel) is
refused with the reason before anything changes.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import RunFailed
from orchestrator.hosts import Host
from orchestrator.point import PointKey
from orchestrator.remote import Transport
from orchestrator.scenario import NAMESPACED_SYSCTLS, SYSCTL_SCOPES, Scenario, at, for_point, variant_scenario

STATE_DIR = "/var/tmp/orchestrate/sysctl"
# Read on every host of every session (whether the scenario sets them or not), so compare's
# environment diff names a setting that differs between two sessions' hosts.
OBSERVED = ("net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies",
            "net.ipv4.tcp_tw_reuse", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_rmem",
            "net.ipv4.tcp_wmem", "net.ipv4.tcp_congestion_control")
STATE_VERSION = 1
_MARK = "@@sysctl "


def proc_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def norm(value: object) -> str:
    """A value as the kernel prints it, whitespace-folded (`32768\t60999` == `32768 60999`)."""
    return " ".join(str(value).split())


def _scenarios(sc: Scenario) -> list[Scenario]:
    """The scenario and each of its named variants' (a variant may set sysctls of its own)."""
    return [sc, *(variant_scenario(sc, v) for v in sc.variants)]


def names_for(sc: Scenario, roles: Iterable[str]) -> list[str]:
    """Every sysctl a host with `roles` gets in some run of the scenario (variants included)."""
    scopes = ["sysctl", *(r for r in ("server", "client") if r in roles)]
    return list(dict.fromkeys(n for one in _scenarios(sc) for s in scopes for n in getattr(one.kernel, s)))


def any_set(sc: Scenario) -> bool:
    return any(getattr(one.kernel, s) for one in _scenarios(sc) for s in SYSCTL_SCOPES)


def wanted(sc: Scenario, point: PointKey, roles: Iterable[str]) -> dict[str, str]:
    """The values a host with `roles` runs `point` with (an axis's value where swept, a named
    variant's where the point is one). A sysctl another point sets and this one does not
    goes back to its original."""
    roles = tuple(roles)
    mine = for_point(sc, point)
    out: dict[str, str] = {}
    for scope in SYSCTL_SCOPES:
        if scope != "sysctl" and scope not in roles:
            continue
        for name in getattr(mine.kernel, scope):
            out[name] = norm(at(sc, point, f"kernel.{scope}.{name}"))
    return out


def read_command(names: Iterable[str]) -> str:
    """Each name's mode in /proc/sys (644: writable here) and value, one round trip."""
    return "; ".join(f"echo '{_MARK}{n}'; stat -c %a {proc_path(n)} 2>/dev/null || echo missing; "
                     f"cat {proc_path(n)} 2>/dev/null" for n in names)


@dataclass(frozen=True)
class Seen:
    mode: str | None  # "644"; None: no such file
    value: str | None


def parse_read(text: str) -> dict[str, Seen]:
    out: dict[str, Seen] = {}
    name: str | None = None
    lines: list[str] = []

    def close() -> None:
        if name is not None:
            mode = lines[0].strip() if lines else "missing"
            value = norm(" ".join(lines[1:])) if len(lines) > 1 else None
            out[name] = Seen(None if mode == "missing" else mode, value)

    for line in text.splitlines():
        if line.startswith(_MARK):
            close()
            name, lines = line[len(_MARK):].strip(), []
        elif name is not None:
            lines.append(line)
    close()
    return out


def write_script(values: Mapping[str, str]) -> str:
    """Write each value (as root: sudo -n when the login is not root); fails on the first error."""
    body = " && ".join(f"printf '%s\\n' {shlex.quote(v)} > {proc_path(n)}" for n, v in values.items())
    return (f'if [ "$(id -u)" = 0 ]; then sh -c {shlex.quote(body)}; '
            f"else sudo -n sh -c {shlex.quote(body)}; fi")


def state_path(host: str, run_id: str) -> str:
    return f"{STATE_DIR}/{host}--{run_id}.json"


def state_text(host: Host, run_id: str, originals: Mapping[str, str]) -> str:
    return json.dumps({"version": STATE_VERSION, "run_id": run_id, "host": host.name,
                       "namespace": host.vars.get("namespace"), "local": host.ssh is None,
                       "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "originals": dict(originals)}, indent=1) + "\n"


def refusal(name: str, seen: Seen | None, *, lab: bool) -> str | None:
    """Why `name` cannot be set on this host, or None."""
    if seen is None or seen.mode is None or seen.value is None:
        return f"{name}: no such sysctl here ({proc_path(name)} is missing)" + (
            " -- in a network namespace that means global on this kernel: the lab refuses it, "
            "as setting it would change this machine for everyone" if lab else "")
    if lab and (not name.startswith(NAMESPACED_SYSCTLS) or seen.mode != "644"):
        return (f"{name}: global on this kernel ({proc_path(name)} is mode {seen.mode} in the "
                "host's network namespace, where per-namespace settings are 644): the lab refuses "
                "it, as setting it would change this machine for everyone")
    return None


@dataclass
class Tuner:
    """One session's sysctls on its hosts: originals saved before the first change, the
    scenario's values applied per run, everything restored by `restore`."""

    sc: Scenario
    run_id: str
    transport: Callable[[Host], Transport]
    progress: Callable[[str], None] = print
    lab: bool = False  # netns: namespace-only settings
    originals: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> name -> value
    now: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> what is in force
    hosts: dict[str, Host] = field(default_factory=dict)
    saved: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> originals, kept
    observed: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> OBSERVED's values

    def observe(self, host: Host) -> None:
        """The OBSERVED settings' values on `host` (before anything of ours changes them)."""
        seen = parse_read(self.transport(host).run(read_command(OBSERVED), timeout=20, check=False).stdout)
        self.observed[host.name] = {n: s.value for n, s in seen.items() if s.value is not None}

    def facts(self, runs_sysctl: Iterable[Mapping[str, Mapping[str, str]] | None]
              ) -> dict[str, dict[str, str]]:
        """host -> each setting as the session's runs had it (an axis's values joined by ' | '),
        over the observed ones: what compare's environment diff compares."""
        seen: dict[str, dict[str, list[str]]] = {}
        for per_host in runs_sysctl:
            for h, values in (per_host or {}).items():
                for n, v in values.items():
                    vs = seen.setdefault(h, {}).setdefault(n, [])
                    if v not in vs:
                        vs.append(v)
        out = {h: dict(v) for h, v in self.observed.items()}
        for h, lists in seen.items():
            out.setdefault(h, {}).update({n: " | ".join(vs) for n, vs in lists.items()})
        return out

    @property
    def active(self) -> bool:
        return any_set(self.sc)

    def prepare(self, host: Host) -> None:
        """Check the host can take every setting, restore what a dead run left there, then
        save its originals (on the host) before anything changes."""
        names = names_for(self.sc, host.roles)
        if host.name in self.originals or not names:
            return
        t = self.transport(host)
        self._restore_stale(host, t)
        seen = parse_read(t.run(read_command(names), timeout=20, check=False).stdout)
        refused = [r for n in names if (r := refusal(n, seen.get(n), lab=self.lab))]
        if refused:
            raise RunFailed("kernel.sysctl: " + "; ".join(refused), host=host.name, phase="sysctl")
        originals = {n: seen[n].value or "" for n in names}
        path = state_path(host.name, self.run_id)
        t.run(f"mkdir -p {STATE_DIR} && printf %s {shlex.quote(state_text(host, self.run_id, originals))}"
              f" > {path}.tmp && mv {path}.tmp {path}", timeout=20)
        self.originals[host.name] = originals
        self.saved[host.name] = dict(originals)
        self.now[host.name] = dict(originals)
        self.hosts[host.name] = host

    def _restore_stale(self, host: Host, t: Transport) -> None:
        done = t.run(f"cat {STATE_DIR}/{shlex.quote(host.name)}--*.json 2>/dev/null; true",
                     timeout=20, check=False)
        for doc in _json_docs(done.stdout):
            if doc.get("run_id") == self.run_id or doc.get("host") != host.name:
                continue
            originals = {str(k): str(v) for k, v in (doc.get("originals") or {}).items()}
            if originals:
                t.run(write_script(originals), timeout=20)
            t.run(f"rm -f {state_path(host.name, str(doc.get('run_id')))}", timeout=20, check=False)
            self.progress(f"orchestrate: {host.name}: restored the sysctls run {doc.get('run_id')} "
                          f"left changed: {_text(originals)}")

    def apply(self, hosts: Iterable[Host], point: PointKey) -> dict[str, dict[str, str]]:
        """The point's values on every host (only what differs from what is in force);
        returns host -> the values in force, read back."""
        out: dict[str, dict[str, str]] = {}
        for h in hosts:
            want = wanted(self.sc, point, h.roles)
            self.prepare(h)
            if h.name not in self.originals:
                continue  # nothing is ever set on this host
            want = {**{n: v for n, v in self.originals[h.name].items() if n not in want}, **want}
            change = {n: v for n, v in want.items() if self.now[h.name].get(n) != v}
            if change:
                t = self.transport(h)
                self.now[h.name].update({n: "?" for n in change})  # unknown until read back
                done = t.run(write_script(change), timeout=20, check=False)
                seen = parse_read(t.run(read_command(change), timeout=20, check=False).stdout)
                self.now[h.name].update({n: seen[n].value or "?" for n in change if n in seen})
                wrong = {n: self.now[h.name].get(n) for n in change if self.now[h.name].get(n) != change[n]}
                if done.rc != 0 or wrong:
                    raise RunFailed(f"kernel.sysctl: could not set {_text(change)} "
                                    f"({done.stderr.strip()[-200:] or f'read back {_text(wrong)}'})",
                                    host=h.name, phase="sysctl")
            out[h.name] = {n: self.now[h.name][n] for n in want}
        return out

    def restore(self) -> list[str]:
        """Every host's originals written back and read back; the state file removed where
        they hold. Returns what could not be restored (the state file stays for cleanup)."""
        problems = []
        for name, originals in list(self.originals.items()):
            t = self.transport(self.hosts[name])
            try:
                t.run(write_script(originals), timeout=20, check=False)
                seen = parse_read(t.run(read_command(originals), timeout=20, check=False).stdout)
                wrong = {n: v for n, v in originals.items() if (seen.get(n) or Seen(None, None)).value != v}
                if wrong:
                    problems.append(f"{name}: {_text(wrong)} not restored (read back "
                                    f"{_text({n: (seen.get(n) or Seen(None, None)).value for n in wrong})})")
                    continue
                t.run(f"rm -f {state_path(name, self.run_id)}", timeout=20, check=False)
            except Exception as exc:  # noqa: BLE001  an unreachable host: cleanup has the file
                problems.append(f"{name}: {exc}")
                continue
            self.now[name] = dict(originals)
            del self.originals[name]
        return problems


def _json_docs(text: str) -> list[dict[str, Any]]:
    """Concatenated JSON objects (cat of several state files)."""
    dec, out, i = json.JSONDecoder(), [], 0
    text = text.strip()
    while i < len(text):
        try:
            doc, end = dec.raw_decode(text, i)
        except ValueError:
            break
        if isinstance(doc, dict):
            out.append(doc)
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def _text(values: Mapping[str, object]) -> str:
    return ", ".join(f"{n}={v}" for n, v in values.items())


def restore_left_behind(live_runs: set[str], *, state_dir: str = STATE_DIR) -> tuple[list[str], list[str]]:
    """The state files dead runs left on this machine: each one's originals written back (in
    its lab namespace, or on this machine), then the file removed. Returns (what was
    restored, what could not be)."""
    import subprocess

    def sh(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    done, failed = [], []
    for path in sorted(Path(state_dir).glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rid = str(doc.get("run_id"))
        if rid in live_runs:
            continue
        originals = {str(k): str(v) for k, v in (doc.get("originals") or {}).items()}
        ns = doc.get("namespace")
        where = f"namespace {ns}" if ns else "this machine"
        if ns and not Path(f"/run/netns/{ns}").exists():
            path.unlink(missing_ok=True)  # the namespace, and its settings, are gone
            continue
        if not ns and not doc.get("local"):
            failed.append(f"{path}: from host {doc.get('host')}, not this machine; left")
            continue
        argv = (["ip", "netns", "exec", ns] if ns else []) + ["sh", "-c", write_script(originals)]
        res = sh(argv)
        if res.returncode != 0:
            failed.append(f"{where}: {_text(originals)}: {res.stderr.strip()[-200:]}")
            continue
        path.unlink(missing_ok=True)
        done.append(f"restored {_text(originals)} in {where} (left by run {rid})")
    return done, failed
