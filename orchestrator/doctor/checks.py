"""The checks `orchestrate doctor` runs, each a function returning Check lines with their fix.

They read this machine (/proc, /sys, PATH) and, for a static inventory, each host over SSH;
for aws, what the provider's pre-flight checks before it creates anything. Nothing here
changes the machine.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from orchestrator import packages
from orchestrator.cpus import ranges
from orchestrator.doctor import Check, Status
from orchestrator.doctor import noise as noise_mod
from orchestrator.doctor import pauses as pauses_mod
from orchestrator.errors import RunFailed, UserError
from orchestrator.scenario import Scenario, local_cpus, resolve_cpus
from orchestrator.tools.facts import VERSION_PROBES

PAUSE_WARN_PCT = 1.0  # a pinned CPU that loses this share of its time to pauses
SYS_CPU = Path("/sys/devices/system/cpu")


def _version(tool: str) -> str:
    probe = VERSION_PROBES.get(tool) or VERSION_PROBES.get(packages.TOOL_PACKAGES.get(tool, ""))
    if not probe:
        return ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(probe, shell=True, capture_output=True, text=True, timeout=5)
        text = (done.stdout or done.stderr).strip().splitlines()
        return text[0].strip() if text else ""
    return ""


def tools(sc: Scenario) -> list[Check]:
    out = []
    for tool in packages.controller_tools(sc):
        path = packages.which(tool)
        if path is None:
            pkg = packages.TOOL_PACKAGES.get(tool)
            out.append(Check(f"tool {tool}", "fail", "not installed",
                             f"apt-get install -y {pkg}" if pkg else f"install {tool} and put it on PATH"))
        else:
            version = _version(tool)
            out.append(Check(f"tool {tool}", "ok", f"{path}" + (f" ({version})" if version else "")))
    return out


def _module(name: str) -> bool | None:
    """A kernel module loaded, built in, or available to load; None: the kernel ships no module
    list to tell by (a custom kernel, a VM's)."""
    if Path(f"/sys/module/{name}").exists():
        return True
    base = Path("/lib/modules") / platform.release()
    lists = [base / "modules.builtin", base / "modules.dep"]
    if not any(p.exists() for p in lists):
        return None
    for p in lists:
        with contextlib.suppress(OSError):
            if f"/{name}.ko" in p.read_text():
                return True
    return False


def kernel(sc: Scenario) -> list[Check]:
    out = []
    disabled = Path("/proc/sys/kernel/io_uring_disabled")
    state = disabled.read_text().strip() if disabled.exists() else "0"
    if state == "2":
        out.append(Check("kernel io_uring", "warn", "disabled (kernel.io_uring_disabled=2): --arch uring "
                         "cannot run", "sysctl -w kernel.io_uring_disabled=0"))
    else:
        out.append(Check("kernel io_uring", "ok", f"available (io_uring_disabled={state})"))
    lab = sc.hosts.provider == "netns"
    ns = Path("/proc/self/ns/net").exists()
    out.append(Check("kernel netns", "ok" if ns else ("fail" if lab else "warn"),
                     "network namespaces" + ("" if ns else " missing"), "a kernel with CONFIG_NET_NS"))
    for mod, why in (("veth", "lab links"), ("sch_tbf", "packet-rate caps (hosts.link)")):
        have = _module(mod)
        if have is None:
            out.append(Check(f"kernel {mod}", "warn" if lab else "ok",
                             f"{why}: cannot tell (no module list for {platform.release()})",
                             "`orchestrate lab up` shows it: it fails naming the missing feature"))
            continue
        out.append(Check(f"kernel {mod}", "ok" if have else ("fail" if lab else "warn"),
                         f"{why}: {'available' if have else 'no such module'}",
                         f"apt-get install -y linux-image-{platform.release()}"))
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    if v2.exists():
        cpu = "cpu" in v2.read_text().split()
        version = "v2"
    else:
        cpu = Path("/sys/fs/cgroup/cpu").exists()
        version = "v1"
    out.append(Check("kernel cgroup cpu", "ok" if cpu else "warn",
                     f"cgroup {version} cpu controller {'present' if cpu else 'missing'} (sized lab hosts)",
                     "boot with systemd.unified_cgroup_hierarchy=1, or enable the cpu controller"))
    if lab and os.geteuid() != 0:
        out.append(Check("root", "fail", "a netns lab needs root (namespaces, veth, sshd)",
                         "run orchestrate as root"))
    return out


def port(sc: Scenario) -> list[Check]:
    if sc.hosts.provider != "local":
        return []
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", sc.server.port))
        except OSError as exc:
            return [Check(f"port {sc.server.port}", "fail", f"in use: {exc.strerror}",
                          f"stop what listens there (ss -ltnp 'sport = :{sc.server.port}'), or "
                          "--set server.port=N")]
    return [Check(f"port {sc.server.port}", "ok", "free")]


def time_sync() -> list[Check]:
    synced = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                              capture_output=True, text=True, timeout=5)
        if done.returncode == 0 and done.stdout.strip() in ("yes", "no"):
            synced = done.stdout.strip() == "yes"
    if synced is None and Path("/run/systemd/timesync/synchronized").exists():
        synced = True
    if synced is None:
        return [Check("time sync", "warn", "cannot tell (no timedatectl); hosts start load at an "
                      "absolute time, so their clocks must agree",
                      "apt-get install -y systemd-timesyncd (or chrony)")]
    return [Check("time sync", "ok" if synced else "warn",
                  "NTP synchronized" if synced else "not synchronized",
                  "systemctl enable --now systemd-timesyncd (or chrony)")]


def pinned(sc: Scenario) -> list[int]:
    """The CPUs a local or lab run pins (server, then load), on this machine."""
    if sc.hosts.provider not in ("local", "netns"):
        return []
    have = local_cpus()
    cpus = resolve_cpus(sc.server.cpus, have) + resolve_cpus(sc.load.cpus, have)
    return sorted(set(cpus) & have)


def cpus(sc: Scenario, seconds: float) -> list[Check]:
    cpu_list = pinned(sc)
    if not cpu_list:
        return []
    out = []
    sample = noise_mod.measure(cpu_list, seconds, "now")
    out += noise_checks(sample)
    irq = subprocess.run(["pgrep", "-x", "irqbalance"], capture_output=True).returncode == 0
    out.append(Check("irqbalance", "warn" if irq else "ok",
                     "running: it moves interrupts onto pinned CPUs mid-run" if irq else "not running",
                     "systemctl stop irqbalance"))
    govs = {}
    for c in cpu_list:
        with contextlib.suppress(OSError):
            govs[c] = (SYS_CPU / f"cpu{c}" / "cpufreq" / "scaling_governor").read_text().strip()
    if not govs:
        out.append(Check("governor", "ok", "no cpufreq on this machine (a VM's host decides)"))
    else:
        slow = sorted(c for c, g in govs.items() if g != "performance")
        out.append(Check("governor", "warn" if slow else "ok",
                         f"CPUs {ranges(slow)}: {govs[slow[0]]}" if slow
                         else "performance on every pinned CPU",
                         "cpupower frequency-set -g performance"))
    out += _smt(sc, cpu_list)
    return out


def _smt(sc: Scenario, cpu_list: list[int]) -> list[Check]:
    have = local_cpus()
    server = set(resolve_cpus(sc.server.cpus, have))
    load = set(resolve_cpus(sc.load.cpus, have))
    shared = []
    for c in sorted(server):
        with contextlib.suppress(OSError, ValueError):
            from orchestrator.cpus import parse_list

            text = (SYS_CPU / f"cpu{c}" / "topology" / "thread_siblings_list").read_text()
            siblings = set(parse_list(text))
            if siblings & load:
                shared.append((c, sorted(siblings & load)))
    if not shared:
        return [Check("SMT siblings", "ok", "server and load share no physical core")]
    text = ", ".join(f"server cpu{c} with load cpu{','.join(map(str, s))}" for c, s in shared)
    return [Check("SMT siblings", "warn", f"one core's hardware threads: {text}",
                  "pin server and load to different cores (see lscpu -e), or accept it and say so")]


def noise_checks(sample: noise_mod.HostNoise) -> list[Check]:
    out = []
    for c, pct in sorted(sample.busy_pct.items()):
        status: Status = ("fail" if pct >= noise_mod.FOREIGN_FAIL_PCT
                  else "warn" if pct >= noise_mod.FOREIGN_WARN_PCT else "ok")
        names = ", ".join(f"{i.command} (pid {i.pid}, {i.cpu_pct:.0f}%)" for i in sample.intruders[:3])
        seen = f"{pct:.0f}% busy with nothing of ours running"
        out.append(Check(f"cpu{c} foreign load", status,
                         seen + (f": {names}" if names and status != "ok" else ""),
                         "stop those processes, or pin the run elsewhere "
                         "(--set server.cpus=... --set load.cpus=...)"))
    out.append(Check("steal", "warn" if sample.steal_pct >= noise_mod.STEAL_WARN_PCT else "ok",
                     f"{sample.steal_pct:.1f}% of CPU time taken by the hypervisor",
                     "a dedicated or larger instance; or compare only paired rounds"))
    return out


def pauses(sc: Scenario, seconds: float) -> list[Check]:
    cpu_list = pinned(sc)
    if not cpu_list:
        return []
    result = pauses_mod.measure(cpu_list, seconds)
    out = []
    for cpu, r in result.items():
        long = r["5-20ms"]["count"] + r[">20ms"]["count"]
        bad = float(r["lost_pct"]) >= PAUSE_WARN_PCT
        out.append(Check(f"cpu{cpu} pauses", "warn" if bad else "ok",
                         f"{r['1-5ms']['count']} of 1-5 ms, {long} of 5 ms or more in {seconds:g} s "
                         f"({r['lost_pct']}% lost)",
                         "latency SLOs below these pauses measure the machine; find the cause "
                         "(steal, other processes, interrupts) or pick quieter CPUs"))
    return out


def static_hosts(sc: Scenario) -> list[Check]:
    from orchestrator.hosts import Host, connect
    from orchestrator.hosts.static import hosts_from_inventory
    from orchestrator.remote import each

    assert sc.hosts.inventory
    try:
        hosts = hosts_from_inventory(sc.hosts.inventory, run="doctor", ssh=sc.hosts.ssh)
    except UserError as exc:
        return [Check("inventory", "fail", str(exc), "fix the inventory (see inventories/example.ini)")]
    wanted = ["taskset", "python3"] + ([] if sc.hosts.deploy else ["wrk", "iperf3", "pidstat"])

    def probe(h: Host) -> Check:
        try:
            t = connect(h)
        except (RunFailed, UserError, OSError) as exc:
            where = h.ssh.host if h.ssh else h.address
            return Check(f"host {h.name}", "fail", f"unreachable over SSH ({where}): {exc}",
                         "check ansible_host, the SSH key and known_hosts (ssh-keyscan)")
        try:
            script = "; ".join(f"command -v {n} >/dev/null || echo {n}" for n in wanted)
            gone = t.run(script, timeout=20, check=False).stdout.split()
        except (RunFailed, OSError) as exc:
            return Check(f"host {h.name}", "fail", f"SSH works, commands do not: {exc}",
                         "check the login shell")
        finally:
            t.close()
        if gone:
            return Check(f"host {h.name}", "fail", f"missing {', '.join(gone)}",
                         "hosts.deploy: true installs them, or apt-get install -y "
                         + " ".join(sorted({packages.TOOL_PACKAGES.get(g, g) for g in gone})))
        return Check(f"host {h.name}", "ok", f"reachable, tools: {', '.join(wanted)}")

    return list(each(list(hosts), probe))


def aws(sc: Scenario, *, ssh_probe: tuple[str, int] | None = None,
        my_address: Callable[[], str] | None = None) -> list[Check]:
    """The provider's own pre-flight, then the path SSH will take to the instances, as a run
    checks it (hosts.aws.reach): out of this network, through the security group's rule and
    every subnet the launch may use."""
    from orchestrator.hosts.aws import ec2, preflight, reach, resolve_image
    from orchestrator.hosts.aws.ec2 import config, role_counts

    aws_cfg = config(sc)
    probe = [] if aws_cfg.ssh_address == "private" else [reach.outbound(ssh_probe or reach.SSH_PROBE)]
    try:
        session = ec2.make_session(aws_cfg.region)
        checked = preflight.check(session, aws_cfg, role_counts(sc), resolve_image)
    except (UserError, RunFailed) as exc:  # the quota, types, image or permissions say no
        said = " ".join(exc.lines()) if isinstance(exc, UserError) else str(exc)
        return [Check("aws pre-flight", "fail", said, "see the line above; nothing was created"), *probe]
    ok = Check("aws pre-flight", "ok",
               f"{aws_cfg.region}: types, image, quota and permissions allow the plan")
    api = ec2.client(session, "ec2", aws_cfg.endpoint_url)
    return [ok, *probe, *reach.checks(api, aws_cfg, checked, my_address or ec2.discover_address)]


def run_all(sc: Scenario, seconds: float, *, ssh_probe: tuple[str, int] | None = None) -> list[Check]:
    out = tools(sc) + kernel(sc) + port(sc) + time_sync()
    if sc.hosts.provider in ("local", "netns"):
        out += cpus(sc, seconds) + pauses(sc, seconds)
    elif sc.hosts.provider == "static" and sc.hosts.inventory:
        out += static_hosts(sc)
    elif sc.hosts.provider == "aws":
        out += aws(sc, ssh_probe=ssh_probe)
    return out
