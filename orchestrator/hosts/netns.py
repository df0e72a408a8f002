"""The `netns` provider: a lab of SSH hosts on this machine, one network namespace each.

Each host is a namespace `orch-<lab>-<i>` with a veth into a bridge in the root
namespace, an address in the benchmarking range 198.18.0.0/15 and its own sshd
(own config, host key and pid file, key-only root login). The orchestrator
reaches the hosts over the bridge with host-key checking on, exactly as it
reaches real machines. An optional tbf qdisc on both ends of every veth caps the
packet rate per direction, like a cloud NIC's PPS limit; with a queue of its own, TCP sends one
segment per packet on the lab's links (`wire_sized`). A sized host (`hosts.size`,
`lab up --cpu`) gets cgroups named like its namespace: a CPU quota (cpu.cfs_quota_us) and
optionally a cpuset; its sshd starts inside them, so everything started over SSH runs
there. Each sshd also mounts this machine's cgroup hierarchies in its own mount namespace
(which `ip netns exec` gives it), so a host sees its cgroup as a real machine would.
`add_hosts` grows a running lab by client hosts (client auto-scale, in a lab the run
brought up): the same steps as `up`, on the new hosts only, named in lab.json first.

State lives in the lab directory (default /tmp/orchestrate/labs/<name>/):
lab.json (written before anything is created, so `down` always knows what to
remove), the client key, known_hosts, inventory.ini (usable by ansible-playbook
alone), and per-host sshd files. Hosts share this machine's filesystem, so each
gets its own work directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator import packages
from orchestrator.cpus import ranges
from orchestrator.errors import RunFailed, UserError
from orchestrator.hosts import Host, Lab, cgroups
from orchestrator.remote import SshTarget, wait_for_banner
from orchestrator.scenario import Scenario, Size, resolve_cpus
from orchestrator.signals import shielded

LABS_ROOT = Path(os.environ.get("ORCHESTRATE_LABS", "/tmp/orchestrate/labs"))
# Where the deploy playbook installs the server for lab hosts: shared by every lab
# (they all see this filesystem), so a new lab does not rebuild it.
LAB_ORCHESTRATE_ROOT = "/tmp/orchestrate/opt"
NETWORK = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544 benchmarking range
MAX_LABS = NETWORK.num_addresses // 256  # one /24 per lab
MAX_HOSTS = 253  # .1 .. .253; the bridge is .254
NS_IFACE = "eth0"  # the host's side of its veth, named like a real machine's NIC
PYTHON = "/usr/bin/python3"  # interpreter discovery finds a pyenv shim here and fails
SSHD = "/usr/sbin/sshd"  # Debian's; packages.which finds it elsewhere too
NOFILE = 1 << 20  # sshd (and so every process started over SSH) may open this many files
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
SCHEMA = 1
# A sized host's cgroups: orchlab-<lab>-<i> in each hierarchy (a prefix of their own, so a
# cgroup someone else names orch-... is never taken for a lab's).
CGROUP_PREFIX = "orchlab-"


@dataclass(frozen=True)
class LabHost:
    name: str  # == its namespace, so `ip netns exec <name>` works for debugging
    index: int
    address: str
    interface: str  # namespace side of the veth
    veth: str  # root-namespace side (on the bridge)
    cpu: float | None = None  # CPUs' worth of time per period (its cgroup's CFS quota)
    cpus: tuple[int, ...] | None = None  # the CPUs it may run on (its cpuset)

    @property
    def sized(self) -> bool:
        return self.cpu is not None or self.cpus is not None

    def size_text(self) -> str:
        parts = ([f"{self.cpu:g} CPU"] if self.cpu is not None else []) + \
                ([f"on CPUs {ranges(self.cpus)}"] if self.cpus is not None else [])
        return ", ".join(parts) or "unsized"


@dataclass(frozen=True)
class LabState:
    name: str
    index: int  # which /24 of 198.18.0.0/15
    dir: str
    bridge: str
    gateway: str  # the bridge's address: where the orchestrator's SSH comes from
    pps: int | None
    hosts: tuple[LabHost, ...]
    key_file: str
    known_hosts: str
    inventory: str
    state: str = "starting"  # "up" once everything answered
    created: float = 0.0
    rate: int | None = None  # bits/s cap per direction (no packet-size floor), beside or instead of pps
    queue: int | None = None  # the caps' queue in bytes; None: 50 ms at the cap
    problems: tuple[str, ...] = field(default=(), compare=False)  # filled by status()

    @property
    def healthy(self) -> bool:
        return self.state == "up" and not self.problems

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("problems")
        return json.dumps({"schema": SCHEMA, **data}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LabState:
        data = json.loads(text)
        if data.pop("schema", None) != SCHEMA:
            raise ValueError("unknown lab.json schema")
        data["hosts"] = tuple(LabHost(**{**h, "cpus": tuple(h["cpus"]) if h.get("cpus") is not None
                                         else None}) for h in data["hosts"])
        return cls(**data)


# --- small helpers -----------------------------------------------------------


def _sh(argv: list[str], *, input: str | None = None, check: bool = True,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RunFailed(f"`{' '.join(argv)}` exited {done.returncode}: "
                        f"{done.stderr.strip() or done.stdout.strip() or 'no output'}", phase="lab")
    return done


def _lab_dir(name: str, root: Path | None = None) -> Path:
    return (root or LABS_ROOT) / name


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UserError(f"lab name {name!r}: use up to 40 letters, digits, '_', '.', '-' "
                        "(starting with a letter or digit)")


def _subnet(index: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((int(NETWORK.network_address) + 256 * index, 24))


def _namespaces() -> list[str]:
    out = _sh(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _lab_namespaces(name: str) -> list[str]:
    pat = re.compile(rf"^orch-{re.escape(name)}-\d+$")
    return [ns for ns in _namespaces() if pat.match(ns)]


def _lab_cgroups(name: str) -> list[Path]:
    return cgroups.named(re.compile(rf"^{CGROUP_PREFIX}{re.escape(name)}-\d+$"))


def _links() -> set[str]:
    out = _sh(["ip", "-o", "link", "show"], check=False).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


@contextmanager
def _lock(root: Path) -> Iterator[None]:
    """Serialises index allocation between concurrent `up`s."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _read_state(d: Path) -> LabState | None:
    try:
        return LabState.from_json((d / "lab.json").read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _write_state(st: LabState) -> None:
    path = Path(st.dir) / "lab.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(st.to_json())
    tmp.replace(path)  # atomic: status() never reads half a file


def _plan(name: str, index: int, hosts: int, pps: int | None, root: Path,
          sizes: dict[str, Size], rate: int | None = None, queue: int | None = None) -> LabState:
    net = _subnet(index)
    d = _lab_dir(name, root)
    lab_hosts = tuple(
        LabHost(name=f"orch-{name}-{i}", index=i, address=str(net.network_address + i + 1),
                interface=NS_IFACE, veth=f"orch{index}h{i}", **_size_of(sizes, i))
        for i in range(hosts))
    return LabState(name=name, index=index, dir=str(d), bridge=f"orch{index}br",
                    gateway=str(net.network_address + 254), pps=pps, hosts=lab_hosts,
                    key_file=str(d / "id_ed25519"), known_hosts=str(d / "known_hosts"),
                    inventory=str(d / "inventory.ini"), created=time.time(), rate=rate, queue=queue)


def _free_index(root: Path, name: str) -> int:
    used: set[int] = set()
    if root.is_dir():
        for d in root.iterdir():
            st = _read_state(d) if d.name != name else None
            if st is not None:
                used.add(st.index)
    links = _links()
    for i in range(MAX_LABS):
        if i not in used and f"orch{i}br" not in links:
            return i
    raise UserError(f"all {MAX_LABS} lab networks in {NETWORK} are in use; `orchestrate lab down` some")


# --- sizes: cgroups ------------------------------------------------------------


def _size_of(sizes: dict[str, Size], index: int) -> dict[str, Any]:
    """The LabHost fields for host `index` (0 serves, the rest load); keywords resolved here."""
    size = sizes.get("server" if index == 0 else "client")
    if size is None:
        return {}
    cpus = tuple(resolve_cpus(size.cpus, os.sched_getaffinity(0))) if size.cpus is not None else None
    return {"cpu": size.cpu, "cpus": cpus}


def cgroup_name(h: LabHost) -> str:
    return CGROUP_PREFIX + h.name.removeprefix("orch-")


def _host_controllers(h: LabHost, dirs: dict[str, Path]) -> dict[str, Path]:
    """The hierarchies a sized host has a group in: cpu (its quota), cpuacct (its usage), cpuset."""
    if not h.sized:
        return {}
    wanted = ["cpu", "cpuacct"] + (["cpuset"] if h.cpus is not None else [])
    return {c: dirs[c] for c in wanted if c in dirs}


def _host_cgroups(h: LabHost, dirs: dict[str, Path]) -> list[Path]:
    """The cgroups a sized host lives in, one per hierarchy."""
    return list(dict.fromkeys(d / cgroup_name(h) for d in _host_controllers(h, dirs).values()))


def _make_cgroups(st: LabState) -> None:
    sized = [h for h in st.hosts if h.sized]
    if not sized:
        return
    dirs = cgroups.controller_dirs()
    need = {"cpu"} | ({"cpuset"} if any(h.cpus is not None for h in sized) else set())
    if need - set(dirs):
        raise UserError(f"lab {st.name}: sized hosts need the cgroup v1 controller(s) "
                        f"{', '.join(sorted(need - set(dirs)))}, not mounted under {cgroups.FS} here "
                        "(a cgroup v2-only machine is not supported yet)")
    for h in sized:
        try:
            cgroups.limit(_host_controllers(h, dirs), cgroup_name(h), cpu=h.cpu,
                          cpus=ranges(h.cpus) if h.cpus is not None else None)
        except OSError as exc:
            raise RunFailed(f"cannot size the host ({h.size_text()}): {exc}", host=h.name,
                            phase="lab") from None


# --- bringing a lab up ---------------------------------------------------------


def _keygen(paths: list[Path], comment: str) -> None:
    procs = [subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(p)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for p in paths]
    for p, proc in zip(paths, procs, strict=True):
        _, err = proc.communicate(timeout=30)
        if proc.returncode != 0:
            raise RunFailed(f"ssh-keygen {p}: {err.decode().strip()}", phase="lab")
        p.chmod(0o600)


def tc_cap(dev: str, pps: int | None = None, *, rate: int | None = None, queue: int | None = None) -> str:
    """The tbf qdisc that caps `dev`'s egress: at `pps` packets/s (of up to 1500 bytes), or at
    `rate` bits/s of bytes as they are (no packet-size floor); `queue`: tbf's limit in bytes
    (default: what 50 ms at the cap holds). One of pps and rate."""
    limit = f"limit {queue}" if queue else "latency 50ms"
    if pps:
        # stab mpu 1500 counts every packet as at least 1500 bytes, so a byte rate is a packet rate.
        bits = pps * 1500 * 8
        burst = max(pps * 3, 15_000)  # ~2 ms of packets (150 kB at 50k pps was measured to work)
        return f"qdisc replace dev {dev} root stab mpu 1500 tbf rate {bits}bit burst {burst} {limit}"
    if not rate:
        raise ValueError("tc_cap: pps or rate")
    burst = max(rate // 8 // 100, 15_000)  # 10 ms at the rate: above what one timer tick (4 ms) passes
    return f"qdisc replace dev {dev} root tbf rate {rate}bit burst {burst} {limit}"


def wire_sized(dev: str) -> str:
    """The `ip` command that makes TCP hand `dev` one segment per packet, as a wire carries them.
    A veth takes TCP's GSO super-packets (up to 64 kB, cut into segments only after the
    qdisc), and a tbf queue shorter than one drops it whole, every time it is resent: over a
    3,000-byte queue a 4 kB answer took 0.25 s and a 16 kB one 2.2 s (0.002 s and 0.02 s one
    segment per packet). `ethtool -K gso off` does not stop it (TCP keeps GSO regardless);
    gso_max_segs 1 does. Set on the bridge (the orchestrator's side) and both veth ends of a
    lab whose caps have a queue, so the queue holds wire packets and only a burst overflows it."""
    return f"link set dev {dev} gso_max_segs 1"


def link_text(pps: int | None, rate: int | None, queue: int | None) -> str:
    """The lab's cap in words (`lab up|status`, errors)."""
    if not (pps or rate):
        return "no link cap"
    cap = f"{pps} pps" if pps else f"{(rate or 0) / 1e6:g} Mbit/s"
    return f"capped at {cap} per direction" + (f", queue {queue} bytes" if queue else "")


def _network(st: LabState, *, bridge: bool = True) -> None:
    """Namespaces, bridge, veths, addresses and caps: one `ip -batch` per namespace.
    `bridge` False: the bridge is up already (hosts added to a running lab)."""
    root = [f"netns add {h.name}" for h in st.hosts]
    if bridge:
        root += [f"link add {st.bridge} type bridge", f"addr add {st.gateway}/24 dev {st.bridge}",
                 f"link set {st.bridge} up"]
    for h in st.hosts:
        root += [f"link add {h.veth} type veth peer name {h.interface} netns {h.name}",
                 f"link set {h.veth} master {st.bridge} up"]
    _sh(["ip", "-batch", "-"], input="\n".join(root) + "\n")
    for h in st.hosts:
        _sh(["ip", "-n", h.name, "-batch", "-"],
            input=f"link set lo up\naddr add {h.address}/24 dev {h.interface}\nlink set {h.interface} up\n")
    if st.queue:
        _sh(["ip", "-batch", "-"], input="".join(
            wire_sized(d) + "\n" for d in ([st.bridge] if bridge else []) + [h.veth for h in st.hosts]))
        for h in st.hosts:
            _sh(["ip", "-n", h.name, "-batch", "-"], input=wire_sized(h.interface) + "\n")
    if st.pps or st.rate:
        # Root end shapes traffic toward the host, the namespace end traffic from it.
        cap = {"rate": st.rate, "queue": st.queue}
        _sh(["tc", "-batch", "-"], input="".join(tc_cap(h.veth, st.pps, **cap) + "\n" for h in st.hosts))
        for h in st.hosts:
            _sh(["tc", "-n", h.name, "-batch", "-"], input=tc_cap(h.interface, st.pps, **cap) + "\n")


def _sshd_config(st: LabState, h: LabHost) -> str:
    d = Path(st.dir) / "hosts" / h.name
    return f"""# sshd for lab host {h.name}; written by orchestrate, removed by `lab down`
ListenAddress {h.address}:22
HostKey {d}/ssh_host_ed25519_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {st.dir}/authorized_keys
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# The lab dir sits under /tmp (world-writable), which StrictModes would refuse.
StrictModes no
UseDNS no
PrintMotd no
X11Forwarding no
# Ansible forks and parallel spawns open many sessions at once.
MaxStartups 200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel ERROR
"""


def _start_sshd(st: LabState) -> None:
    binary = packages.which("sshd")
    if binary is None:
        raise RunFailed(str(packages.Missing("sshd", packages.TOOL_PACKAGES["sshd"])), phase="lab")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation dir sshd insists on
    dirs = cgroups.controller_dirs()
    mounts = cgroups.mount_script()
    procs = []
    for h in st.hosts:
        d = Path(st.dir) / "hosts" / h.name
        sshd = shlex.join([binary, "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")])
        # Join the host's cgroups first (children inherit them), then its namespace.
        join = cgroups.join_command(_host_cgroups(h, dirs))
        inner = f"{mounts}exec {sshd}"
        procs.append((h, subprocess.Popen(
            ["sh", "-c", f"{join}exec ip netns exec {h.name} sh -c {shlex.quote(inner)}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    for h, proc in procs:
        _, err = proc.communicate(timeout=30)
        if proc.returncode != 0:
            raise RunFailed(f"sshd did not start: {err.decode().strip()}", host=h.name, phase="lab")


def _wait_ssh(st: LabState, timeout: float = 10.0) -> None:
    """Until every sshd answers with its banner (it daemonises before it listens)."""
    def log_tail(name: str) -> str:
        log = Path(st.dir) / "hosts" / name / "sshd.log"
        return " | ".join(log.read_text().strip().splitlines()[-2:]) if log.exists() else ""

    wait_for_banner([(h.name, h.address) for h in st.hosts], timeout, phase="lab", explain=log_tail)


def _raise_nofile(st: LabState) -> None:
    """sshd's file limit is what every benchmark process started over SSH inherits."""
    try:
        limit = min(NOFILE, int(Path("/proc/sys/fs/nr_open").read_text()))
    except (OSError, ValueError):
        limit = NOFILE
    for pid in _sshd_pids(st):
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        except (OSError, ValueError):  # no CAP_SYS_RESOURCE (a container): soft up to the hard limit
            with contextlib.suppress(OSError, ValueError):
                hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))


def _sshd_pids(st: LabState) -> list[int]:
    pids = []
    for h in st.hosts:
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((Path(st.dir) / "hosts" / h.name / "sshd.pid").read_text().split()[0]))
    return pids


def _inventory(st: LabState) -> str:
    server, clients = st.hosts[0], st.hosts[1:]
    lines = [f"# Ansible inventory of netns lab '{st.name}', written by `orchestrate lab up`;",
             "# removed by `orchestrate lab down`. Use it alone:",
             f"#   ansible-playbook -i {st.inventory} playbooks/site.yml",
             "[server]", f"{server.name} ansible_host={server.address}", "", "[client]"]
    lines += [f"{h.name} ansible_host={h.address}" for h in clients]
    ssh_args = f"-o UserKnownHostsFile={st.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    lines += ["", "[all:vars]", "ansible_user=root", f"ansible_python_interpreter={PYTHON}",
              "ansible_pipelining=true", f"ansible_ssh_private_key_file={st.key_file}",
              f"ansible_ssh_common_args='{ssh_args}'",
              f"bench_interface={NS_IFACE}", f"orchestrate_root={LAB_ORCHESTRATE_ROOT}",
              "orchestrate_shared_root=true", ""]
    return "\n".join(lines)


def size_flags(cpu: list[str], cpus: list[str]) -> dict[str, Size]:
    """`lab up --cpu [ROLE=]N --cpus [ROLE=]LIST` -> sizes per role, checked like hosts.size."""
    from pydantic import ValidationError

    fields: dict[str, dict[str, str]] = {}
    for flag, values in (("cpu", cpu), ("cpus", cpus)):
        for value in values:
            role, _, v = value.rpartition("=")
            if role not in ("", "server", "client"):
                raise UserError(f"--{flag} {value}: the role is server or client, got {role!r}")
            for r in ([role] if role else ["server", "client"]):
                fields.setdefault(r, {})[flag] = v
    try:
        return {r: Size.model_validate(f) for r, f in fields.items()}
    except ValidationError as exc:
        err = exc.errors()[0]
        got = "" if err["type"] == "value_error" else f", got {err['input']!r}"  # it says so itself
        raise UserError(f"--{err['loc'][0]}: {err['msg'].removeprefix('Value error, ')}{got}") from None


def _sizes_match(st: LabState, size: dict[str, Size], hosts: int | None = None) -> bool:
    """Whether the lab's hosts (the first `hosts`) are sized as `size` asks."""
    return all((h.cpu, h.cpus) == tuple(_size_of(size, h.index).get(k) for k in ("cpu", "cpus"))
               for h in st.hosts[:hosts])


def _sizes_text(st: LabState) -> str:
    return "; ".join(dict.fromkeys(f"{'server' if h.index == 0 else 'client'}: {h.size_text()}"
                                   for h in st.hosts))


def _check_shape(name: str, hosts: int, pps: int | None, rate: int | None, queue: int | None) -> None:
    """Refuse a lab's name, host count or link caps before anything is created for it."""
    _check_name(name)
    if not 1 <= hosts <= MAX_HOSTS:
        raise UserError(f"lab {name}: hosts must be 1..{MAX_HOSTS}, got {hosts}")
    for what, v in (("pps", pps), ("rate", rate), ("queue", queue)):
        if v is not None and v <= 0:
            raise UserError(f"lab {name}: {what} must be a positive number, got {v}")
    if pps and rate:
        raise UserError(f"lab {name}: one cap per link: pps or rate, not both")
    if queue and not (pps or rate):
        raise UserError(f"lab {name}: a queue belongs to a cap: give pps or rate as well")


def up(name: str, hosts: int, pps: int | None = None, *, size: dict[str, Size] | None = None,
       root: Path | None = None, rate: int | None = None, queue: int | None = None) -> LabState:
    """Bring up lab `name` with `hosts` hosts; on any failure (or Ctrl-C) nothing is left behind.

    `size` sizes hosts per role ("server": host 0, "client": the others). A lab already up
    with the same shape is returned as is.
    """
    _check_shape(name, hosts, pps, rate, queue)
    root = root or LABS_ROOT
    size = size or {}
    current = status(name, root=root)
    if current and current[0].healthy:
        st = current[0]
        if len(st.hosts) == hosts and (st.pps, st.rate, st.queue) == (pps, rate, queue) \
                and _sizes_match(st, size, hosts):
            return st
        raise UserError(f"lab {name} is already up with {len(st.hosts)} hosts, "
                        f"{link_text(st.pps, st.rate, st.queue)} and "
                        f"sizes {_sizes_text(st)}; run `orchestrate lab down --name {name}` first")
    if current or _lab_namespaces(name) or _lab_dir(name, root).exists() or _lab_cgroups(name):
        down(name, root=root)  # leftovers of an interrupted lab
    with _lock(root):
        st = _plan(name, _free_index(root, name), hosts, pps, root, size, rate, queue)
        d = Path(st.dir)
        d.mkdir(mode=0o700, parents=True)
        _write_state(st)  # first, so `down` can always find the bridge and namespaces
    try:
        for h in st.hosts:
            (d / "hosts" / h.name).mkdir(parents=True)
        _keygen([Path(st.key_file)] + [d / "hosts" / h.name / "ssh_host_ed25519_key" for h in st.hosts],
                comment=f"orchestrate-lab-{name}")
        shutil.copyfile(st.key_file + ".pub", d / "authorized_keys")
        for h in st.hosts:
            (d / "hosts" / h.name / "sshd_config").write_text(_sshd_config(st, h))
        _network(st)
        _make_cgroups(st)
        _start_sshd(st)
        _wait_ssh(st)
        _raise_nofile(st)
        known = []
        for h in st.hosts:
            kind, key = (d / "hosts" / h.name / "ssh_host_ed25519_key.pub").read_text().split()[:2]
            known.append(f"{h.address} {kind} {key}\n")
        Path(st.known_hosts).write_text("".join(known))
        Path(st.inventory).write_text(_inventory(st))
        st = replace(st, state="up")
        _write_state(st)
        return st
    except BaseException:
        with shielded():
            down(name, root=root)
        raise


def add_hosts(name: str, count: int, *, size: dict[str, Size] | None = None,
              root: Path | None = None) -> LabState:
    """`count` more client hosts in the running lab `name`, sized as `size` says for clients.

    lab.json names them before anything is made, so `down` removes them with the lab
    whatever happens here (a failure or Ctrl-C half-way leaves them to it).
    """
    root = root or LABS_ROOT
    found = status(name, root=root)
    if not found or not found[0].healthy:
        raise RunFailed(f"lab {name} is not up (healthy) to add hosts to", phase="lab")
    st = replace(found[0], problems=())
    if len(st.hosts) + count > MAX_HOSTS:
        raise UserError(f"lab {name}: {len(st.hosts)} hosts and {count} more is over {MAX_HOSTS}")
    net = _subnet(st.index)
    new = tuple(LabHost(name=f"orch-{name}-{i}", index=i, address=str(net.network_address + i + 1),
                        interface=NS_IFACE, veth=f"orch{st.index}h{i}", **_size_of(size or {}, i))
                for i in range(len(st.hosts), len(st.hosts) + count))
    grown = replace(st, hosts=st.hosts + new)
    _write_state(grown)  # first, so `down` finds the new namespaces, veths and cgroups
    part = replace(grown, hosts=new)  # the steps of `up`, on the new hosts only
    d = Path(st.dir)
    for h in new:
        (d / "hosts" / h.name).mkdir(parents=True, exist_ok=True)
    _keygen([d / "hosts" / h.name / "ssh_host_ed25519_key" for h in new], comment=f"orchestrate-lab-{name}")
    for h in new:
        (d / "hosts" / h.name / "sshd_config").write_text(_sshd_config(part, h))
    _network(part, bridge=False)
    _make_cgroups(part)
    _start_sshd(part)
    _wait_ssh(part)
    _raise_nofile(part)
    with open(st.known_hosts, "a") as f:
        for h in new:
            kind, key = (d / "hosts" / h.name / "ssh_host_ed25519_key.pub").read_text().split()[:2]
            f.write(f"{h.address} {kind} {key}\n")
    Path(st.inventory).write_text(_inventory(grown))
    return grown


# --- taking it down ------------------------------------------------------------


def _kill_namespace_processes(namespaces: list[str]) -> list[str]:
    """TERM, then KILL, every process in the namespaces (sshd, its sessions, whatever they started)."""
    victims: dict[int, str] = {}
    for ns in namespaces:
        for word in _sh(["ip", "netns", "pids", ns], check=False).stdout.split():
            try:
                comm = Path(f"/proc/{word}/comm").read_text().strip()
            except OSError:
                continue
            victims[int(word)] = f"process {word} ({comm}) in {ns}"
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(_alive(p) for p in victims):
        time.sleep(0.02)
    for pid in victims:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return list(victims.values())


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def down(name: str, *, root: Path | None = None) -> list[str]:
    """Remove lab `name` entirely; returns what was removed. Safe on half-built or absent labs."""
    _check_name(name)
    root = root or LABS_ROOT
    d = _lab_dir(name, root)
    st = _read_state(d)
    removed: list[str] = []
    namespaces = _lab_namespaces(name)
    removed += _kill_namespace_processes(namespaces)
    # An sshd outside its namespace should not exist, but its config path names it for sure.
    stray = _sh(["pgrep", "-f", f"{d}/hosts/"], check=False).stdout.split()
    for pid in stray:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
            removed.append(f"process {pid} (stray, {d})")
    removed += cgroups.remove(_lab_cgroups(name))
    if namespaces:
        # Deleting a namespace deletes both ends of its veth.
        _sh(["ip", "-batch", "-"], input="".join(f"netns del {ns}\n" for ns in namespaces), check=False)
        removed += [f"namespace {ns}" for ns in namespaces]
    if st is not None:
        links = _links()
        gone = [v for v in (h.veth for h in st.hosts) if v in links] + \
               ([st.bridge] if st.bridge in links else [])
        for link in gone:
            _sh(["ip", "link", "del", link], check=False)
        removed += [f"link {link}" for link in gone]
    removed += _remove_deploy_stamps(name)
    if d.exists():
        shutil.rmtree(d, ignore_errors=True)
        removed.append(f"directory {d}")
    return removed


def _remove_deploy_stamps(name: str) -> list[str]:
    """The lab's hosts' deploy stamps go with them: the binaries stay in the shared root, but what
    a deploy set inside a namespace (its sysctls) does not, so a lab brought up again under the
    same name must be deployed again, not skipped as "already at this hash"."""
    host = re.compile(rf"^\.deployed\.orch-{re.escape(name)}-\d+$")
    removed = []
    for stamp in Path(LAB_ORCHESTRATE_ROOT).glob(f".deployed.orch-{name}-*"):
        if host.match(stamp.name):
            stamp.unlink(missing_ok=True)
            removed.append(f"deploy stamp {stamp}")
    return removed


# --- looking at labs -----------------------------------------------------------


def _problems(st: LabState, namespaces: set[str], links: set[str]) -> tuple[str, ...]:
    out = []
    if st.state != "up":
        out.append(f"bring-up did not finish (`orchestrate lab down --name {st.name}` clears it)")
    if st.bridge not in links:
        out.append(f"bridge {st.bridge} is missing")
    alive = {p for p in _sshd_pids(st) if _alive(p)}
    for h in st.hosts:
        if h.name not in namespaces:
            out.append(f"namespace {h.name} is missing")
    if st.state == "up" and len(alive) < len(st.hosts):
        out.append(f"{len(st.hosts) - len(alive)} of {len(st.hosts)} sshd are not running")
    dirs = cgroups.controller_dirs()
    for h in st.hosts:
        missing = [str(c) for c in _host_cgroups(h, dirs) if not c.is_dir()]
        if missing:
            out.append(f"host {h.name} is sized ({h.size_text()}) but its cgroup {missing[0]} is missing")
    return tuple(out)


def status(name: str | None = None, *, root: Path | None = None) -> list[LabState]:
    """Labs on this machine (or just `name`), each with the problems found; orphans included.

    An orphan is a namespace `orch-<lab>-<i>` whose lab directory is gone: it is
    reported with a problem so `down(<lab>)` can be suggested.
    """
    root = root or LABS_ROOT
    namespaces = set(_namespaces())
    links = _links()
    names = [name] if name else sorted(p.name for p in root.glob("*") if (p / "lab.json").exists())
    out = []
    for n in names:
        st = _read_state(_lab_dir(n, root))
        if st is not None:
            out.append(replace(st, problems=_problems(st, namespaces, links)))
    known = {s.name for s in out}
    orphans: dict[str, list[str]] = {}
    pattern = re.compile(r"^orch-(.+)-(\d+)$")
    in_cgroup = re.compile(rf"^{CGROUP_PREFIX}(.+)-(\d+)$")
    for what in [*namespaces, *(f"cgroup {d}" for d in cgroups.named(in_cgroup))]:
        m = (in_cgroup if what.startswith("cgroup ") else pattern).match(what.rsplit("/", 1)[-1])
        if m and m[1] not in known and (name is None or m[1] == name):
            orphans.setdefault(m[1], []).append(what)
    for n, nss in sorted(orphans.items()):
        out.append(LabState(name=n, index=-1, dir=str(_lab_dir(n, root)), bridge="", gateway="", pps=None,
                            hosts=(), key_file="", known_hosts="", inventory="", state="orphaned",
                            problems=(f"namespaces {', '.join(sorted(nss))} have no lab directory"
                                      if not any(x.startswith("cgroup ") for x in nss) else
                                      f"{', '.join(sorted(nss))}: no lab directory",)))
    return out


def describe(st: LabState) -> str:
    """A few lines for `orchestrate lab up|status`: hosts, how to reach them, what is wrong."""
    if st.state == "orphaned":
        return (f"lab {st.name}: orphaned; " + "; ".join(st.problems)
                + f" (`orchestrate lab down --name {st.name}` removes them)")
    cap = link_text(st.pps, st.rate, st.queue)
    health = "up" if st.healthy else "NOT HEALTHY"
    lines = [f"lab {st.name}: {health}, {len(st.hosts)} hosts, {cap}, bridge {st.bridge} {st.gateway}/24"]
    for h in st.hosts:
        role = "server" if h.index == 0 else "client"
        size = f"{h.size_text()}  " if h.sized else ""
        lines.append(f"  {h.name:<24} {h.address:<15} {role:<7} {size}"
                     f"ssh -i {st.key_file} -o UserKnownHostsFile={st.known_hosts} root@{h.address}")
    lines.append(f"  inventory: {st.inventory}  (ansible-playbook -i {st.inventory} playbooks/site.yml)")
    lines += [f"  problem: {p}" for p in st.problems]
    return "\n".join(lines)


def is_up(name: str, *, root: Path | None = None) -> bool:
    found = status(name, root=root)
    return bool(found) and found[0].healthy


# --- the provider --------------------------------------------------------------


def hosts_of(st: LabState, *, run_id: str, clients: int | None = None,
             connect_timeout: float = 10.0) -> tuple[Host, ...]:
    """Host 0 serves, the others load; each with its own work directory for this run."""
    picked = st.hosts[:1 + (len(st.hosts) - 1 if clients is None else clients)]
    out = []
    for h in picked:
        out.append(Host(
            name=h.name, address=h.address, roles=("server",) if h.index == 0 else ("client",),
            workdir=f"{st.dir}/work/{h.name}/{run_id}",
            ssh=SshTarget(host=h.address, name=h.name, user="root", port=22, key_file=st.key_file,
                          known_hosts=st.known_hosts, host_key_checking=True,
                          connect_timeout=connect_timeout),
            interface=h.interface,
            vars={"namespace": h.name, "lab": st.name, "orchestrate_root": LAB_ORCHESTRATE_ROOT,
                  "orchestrate_shared_root": "true"}))
    return tuple(out)


@dataclass
class _Pool:
    """More client hosts for auto-scale: the lab's own beyond those in use, and, in a lab
    this run brought up (`grows`), new namespace hosts (sshd, size, cgroup) added to it."""

    name: str
    run_id: str
    root: Path | None
    size: dict[str, Size]
    connect_timeout: float
    used: int  # client hosts handed to the run so far
    limit: int  # the most it hands out
    grows: bool
    handed: list[Host] = field(default_factory=list)  # their work directories go at the end

    @property
    def spare(self) -> int:
        return self.limit - self.used

    def add(self, count: int) -> tuple[Host, ...]:
        st = status(self.name, root=self.root)[0]
        missing = self.used + count - (len(st.hosts) - 1)
        if missing > 0 and self.grows:
            st = add_hosts(self.name, missing, size=self.size, root=self.root)
        new = hosts_of(st, run_id=self.run_id, clients=self.used + count,
                       connect_timeout=self.connect_timeout)[1 + self.used:]
        self.used += len(new)
        self.handed += new
        return new


@contextmanager
def open_lab(scenario: Scenario, *, run_id: str, root: Path | None = None, **_: Any) -> Iterator[Lab]:
    """Use the lab named by the scenario if it is up (and leave it up); else bring one up and down.

    Other keyword options (meant for other providers) are ignored.
    """
    name = scenario.hosts.lab or scenario.name
    roles = scenario.hosts.roles
    # auto-scale starts with `min` clients; the pool adds more (a lab of our own grows)
    first = roles.autoscale.min if roles.autoscale else roles.clients
    need = roles.server + first
    link = scenario.hosts.link
    pps = link.pps
    size = {str(role): s for role, s in scenario.hosts.size.items()}
    owned = not is_up(name, root=root)
    if owned:
        st = up(name, need, pps, size=size, root=root, rate=link.rate, queue=link.queue)
    else:
        st = status(name, root=root)[0]
        if len(st.hosts) < need:
            raise UserError(f"lab {name} has {len(st.hosts)} hosts but the scenario needs {need}; "
                            f"`orchestrate lab down --name {name}` or raise its size")
        if (pps is not None and st.pps != pps) or (link.rate is not None and st.rate != link.rate) \
                or (link.queue is not None and st.queue != link.queue):
            raise UserError(f"lab {name} is up {link_text(st.pps, st.rate, st.queue)} but the scenario asks "
                            f"for {link_text(pps, link.rate, link.queue)}; "
                            f"`orchestrate lab down --name {name}` first, or set hosts.lab to another name")
        if size and not _sizes_match(st, size, need):
            raise UserError(f"lab {name} is up with sizes {_sizes_text(st)}, not the scenario's "
                            f"hosts.size; `orchestrate lab down --name {name}` first, or set hosts.lab "
                            "to another name")
    timeout = scenario.hosts.ssh.connect_timeout
    hosts = hosts_of(st, run_id=run_id, clients=first, connect_timeout=timeout)
    pool = None
    if roles.autoscale:  # a lab that was up lends its other hosts, as many as max takes
        limit = roles.autoscale.max if owned else min(roles.autoscale.max, len(st.hosts) - 1)
        pool = _Pool(name, run_id, root, size, timeout, used=first, limit=limit, grows=owned)
    try:
        yield Lab(provider="netns", hosts=hosts, name=name, pool=pool)
    finally:
        with shielded():
            for h in hosts + tuple(pool.handed if pool else ()):  # raw outputs were fetched by now
                shutil.rmtree(h.workdir, ignore_errors=True)
            if owned:
                down(name, root=root)
