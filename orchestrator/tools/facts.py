"""Host facts: one POSIX sh snippet (run with `sh -c`, locally or over SSH) and its parser.

The snippet prints sections headed `@@orchestrate:NAME@@`; every probe is guarded so a
missing tool or file yields an empty section or the word `missing`, never a failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator import cpus

BINARY = "sh"
ENV: dict[str, str] = {"LC_ALL": "C"}
MARK = "@@orchestrate:{}@@"

# tool -> the command whose first line of output names its version
VERSION_PROBES: dict[str, str] = {
    "wrk": "wrk -v",  # prints the version, then usage, and exits 1
    "iperf3": "iperf3 --version",
    "sysstat": "pidstat -V",
    "g++": "g++ --version",
    "cmake": "cmake --version",
    "nginx": "nginx -v",  # writes to stderr
}


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    kernel: str
    cpu_model: str
    cpus: int  # online CPUs
    cpus_allowed: tuple[int, ...]  # CPUs a process started like this one may run on
    threads_per_core: int
    smt_siblings: tuple[tuple[int, ...], ...]  # each core's hardware threads, deduplicated
    tool_versions: dict[str, str | None] = field(default_factory=dict)  # None: not installed
    # The running kernel's identity: hosts with the same one (namespaces of one machine,
    # containers) share their CPUs, whatever their names say.
    boot_id: str = ""
    # The environment a result depends on beyond the CPU model (compare warns when it differs).
    microcode: str = ""
    governor: str = ""  # cpufreq scaling governor of cpu0; "" when the kernel exposes none (VMs)
    mitigations: dict[str, str] = field(default_factory=dict)  # vulnerability -> kernel's status
    machine: str = ""  # DMI product name: the instance type on EC2 (e.g. "c7i.large")
    # CPUs' worth of time the host's processes may use: the tightest CFS quota on the cgroup
    # path of the shell that read the facts (a sized lab host, a container, a systemd
    # CPUQuota); None: no quota. See capacity().
    cpu_quota: float | None = None
    cgroup: str = ""  # that shell's cpu cgroup ("" when unknown)

    def __post_init__(self) -> None:
        if self.cpus < 1 or self.threads_per_core < 1:
            raise ValueError(f"host facts: cpus and threads_per_core must be >= 1: {self}")


# The snippet reads files with the shell's `read` (a built-in), not cat/sed/awk: every
# process it forks is CPU on the host (~1.5 ms each), and a lab of 17 hosts on one machine
# pays them all at once. What is left to fork: lscpu and the version probes.
# `rd FILE` prints a file's lines; `first PREFIX FILE` what follows the first colon of its
# first line that starts with PREFIX.
_HELPERS = (
    # dash reads a byte at a time, and some sysfs files (bin attributes) answer a 1-byte read
    # with nothing: then `cat` it
    'rd() { g=; while IFS= read -r l || [ -n "$l" ]; do g=1; printf "%s\\n" "$l"; done <"$1"; '
    '[ -n "$g" ] || cat "$1"; } 2>/dev/null; '
    'first() { while IFS= read -r l; do case $l in "$1"*) printf "%s\\n" "${l#*:}"; '
    "return;; esac; done <\"$2\"; } 2>/dev/null"
)

# One line per cgroup from this shell's own up to the root: "v1|v2 DIR QUOTA PERIOD"
# (v1: cpu.cfs_quota_us, -1 = none; v2: cpu.max, "max" = none). `ip netns exec`, containers
# and cgroup namespaces all show the path relative to what is mounted, so it resolves there.
# /proc/self/cgroup lines are "ID:CONTROLLERS:PATH" (v2: "0::PATH").
_QUOTA_PROBE = (
    "c1= c2=; while IFS=: read -r id ctl path; do case ,$ctl, in *,cpu,*) [ -n \"$c1\" ] || c1=$path;; esac; "
    '[ "$id" = 0 ] && [ -z "$ctl" ] && c2=$path; done </proc/self/cgroup 2>/dev/null; '
    "for m in /sys/fs/cgroup/cpu /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup/cpuacct,cpu; do "
    '[ -n "$c1" ] && [ -r "$m/cpu.cfs_quota_us" ] || continue; d="$m$c1"; '
    'while [ "${d#"$m"}" != "$d" ]; do if [ -r "$d/cpu.cfs_quota_us" ]; then '
    'read -r q <"$d/cpu.cfs_quota_us"; read -r p <"$d/cpu.cfs_period_us"; echo "v1 $d $q $p"; fi; '
    '[ "$d" = "$m" ] && break; d=${d%/*}; done; break; done; m=/sys/fs/cgroup; '
    'if [ -n "$c2" ] && [ -r "$m/cgroup.controllers" ]; then d="$m$c2"; '
    'while [ "${d#"$m"}" != "$d" ]; do if [ -r "$d/cpu.max" ]; then read -r q p <"$d/cpu.max"; '
    'echo "v2 $d $q $p"; fi; [ "$d" = "$m" ] && break; d=${d%/*}; done; fi'
)


def command() -> str:
    """The sh snippet; run it as `sh -c <snippet>`."""
    parts = [
        _HELPERS,
        f"echo '{MARK.format('hostname')}'; rd /proc/sys/kernel/hostname || hostname",
        f"echo '{MARK.format('kernel')}'; rd /proc/sys/kernel/osrelease || uname -r",
        f"echo '{MARK.format('lscpu')}'; lscpu -J 2>/dev/null",
        f"echo '{MARK.format('online')}'; rd /sys/devices/system/cpu/online || "
        "getconf _NPROCESSORS_ONLN 2>/dev/null",
        f"echo '{MARK.format('allowed')}'; first 'Cpus_allowed_list:' /proc/self/status",
        f"echo '{MARK.format('boot_id')}'; rd /proc/sys/kernel/random/boot_id",
        f"echo '{MARK.format('microcode')}'; first 'microcode' /proc/cpuinfo",
        f"echo '{MARK.format('governor')}'; rd /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
        f"echo '{MARK.format('mitigations')}'; "
        "for f in /sys/devices/system/cpu/vulnerabilities/*; do "
        '[ -r "$f" ] && read -r l <"$f" && printf "%s:%s\\n" "$f" "$l"; done 2>/dev/null',
        f"echo '{MARK.format('machine')}'; rd /sys/class/dmi/id/product_name",
        f"echo '{MARK.format('cpu_quota')}'; {_QUOTA_PROBE}",
        f"echo '{MARK.format('smt')}'; "
        "cat /sys/devices/system/cpu/cpu[0-9]*/topology/thread_siblings_list 2>/dev/null",
    ]
    # Each probe's first line is its version (the parser takes it; no `head` to fork).
    for tool, probe in VERSION_PROBES.items():
        binary = probe.split()[0]
        parts.append(
            f"echo '{MARK.format('version:' + tool)}'; "
            f"if command -v {binary} >/dev/null 2>&1; then {probe} 2>&1; "
            "else echo missing; fi"
        )
    return "; ".join(parts) + "; true"


def _cpu_set(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted(set(cpus.parse_list(text))))
    except ValueError:  # a probe that printed something else: unknown, not fatal
        return ()


def _sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = re.fullmatch(r"@@orchestrate:(.+)@@", line.strip())
        if m:
            current = out.setdefault(m[1], [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def _lscpu_fields(text: str) -> dict[str, str]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return {}
    fields: dict[str, str] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            fields.setdefault(str(item.get("field", "")).rstrip(":"), str(item.get("data", "")))
            walk(item.get("children", []))

    walk(doc.get("lscpu", []))
    return fields


def _version(line: str) -> str | None:
    if not line or line == "missing":
        return None
    m = re.search(r"\d+\.\d+(?:\.\d+)?", line)
    return m[0] if m else line


def parse(text: str) -> HostFacts:
    sec = _sections(text)
    lscpu = _lscpu_fields(sec.get("lscpu", ""))
    siblings = tuple(sorted({_cpu_set(s) for s in sec.get("smt", "").split() if s}))
    online = sec.get("online", "")  # /sys's list of online CPUs ("0-3"), or getconf's count
    online_n = int(online) if online.isdigit() else len(_cpu_set(online))
    allowed = _cpu_set(sec.get("allowed", ""))
    listed = lscpu.get("CPU(s)", "")
    cpus = (online_n if online_n else int(listed) if listed.isdigit()
            else len({c for s in siblings for c in s}) or len(allowed))
    tpc = lscpu.get("Thread(s) per core", "")
    threads_per_core = int(tpc) if tpc.isdigit() else max((len(s) for s in siblings), default=1)
    if not allowed:
        allowed = tuple(range(cpus))  # no /proc: assume every CPU
    versions = {tool: _version(sec.get(f"version:{tool}", "").splitlines()[0]
                               if sec.get(f"version:{tool}") else "")
                for tool in VERSION_PROBES}
    quota, cgroup = _quota(sec.get("cpu_quota", ""))
    return HostFacts(
        hostname=sec.get("hostname", ""), kernel=sec.get("kernel", ""),
        cpu_model=lscpu.get("Model name", "unknown"), cpus=cpus, cpus_allowed=allowed,
        threads_per_core=threads_per_core, smt_siblings=siblings, tool_versions=versions,
        boot_id=sec.get("boot_id", ""), microcode=sec.get("microcode", ""),
        governor=sec.get("governor", ""), mitigations=_mitigations(sec.get("mitigations", "")),
        machine=sec.get("machine", ""), cpu_quota=quota, cgroup=cgroup,
    )


def _mitigations(text: str) -> dict[str, str]:
    """`grep -H .` lines, /sys/.../vulnerabilities/NAME:STATUS -> {NAME: STATUS}."""
    out = {}
    for line in text.splitlines():
        path, sep, status = line.partition(":")
        if sep:
            out[path.rsplit("/", 1)[-1]] = status.strip()
    return out


def _quota(text: str) -> tuple[float | None, str]:
    """The tightest quota (in CPUs) over the probe's lines, and the shell's own cgroup."""
    quotas: list[float] = []
    own = ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[0] not in ("v1", "v2"):
            continue
        own = own or parts[1]
        try:
            q, period = int(parts[2]), int(parts[3])
        except ValueError:  # "max": no quota at this level
            continue
        if q > 0 and period > 0:
            quotas.append(q / period)
    return (round(min(quotas), 4) if quotas else None), own


def capacity(facts: HostFacts | Mapping[str, Any]) -> float | None:
    """CPUs' worth of time a host can give its processes: the CPUs they may run on, capped
    by the cgroup quota. Busy % of a host (or of everything a role runs there) is CPU
    seconds per second over this, not over one core or the machine's CPU count. None: the
    host's CPU count was not read (unknown is not 1)."""
    data = facts if isinstance(facts, Mapping) else facts.__dict__
    n = len(data.get("cpus_allowed") or ()) or data.get("cpus")
    if not n:
        return None
    quota = data.get("cpu_quota")
    return min(float(n), float(quota)) if quota else float(n)


def busy_pct(cpu_s_per_s: float, facts: HostFacts | Mapping[str, Any]) -> float | None:
    """CPU seconds per second used on a host (e.g. pidstat %CPU summed over a role's
    processes, / 100) as a % of the host's capacity(): 100 means it has nothing left.
    None when its capacity is unknown."""
    cap = capacity(facts)
    return 100.0 * cpu_s_per_s / cap if cap else None
