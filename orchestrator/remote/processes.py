"""Background processes on a host: spawn (pinned, in a session of its own, marked with the
run's tag), check, wait for, stop (signals and waits run on the host: one round trip), find
by mark; and the table of what a run started, for teardown."""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from dataclasses import dataclass, field

from orchestrator import signals
from orchestrator.errors import RunFailed
from orchestrator.remote.transport import RemoteError, Transport, each

LEDGER = ".orchestrate-pids"  # in each host's work dir: what `cleanup` may kill
# Every process a run starts carries this variable (value: the run's tag), so a
# later `cleanup`, or a test, can find survivors even if our pid list was lost.
MARK = "ORCHESTRATE_RUN"


@dataclass(frozen=True)
class Process:
    """A process started in its own session on a host (pid == its process group)."""

    host: str
    name: str
    pid: int
    stdout: str  # paths on the host
    stderr: str


def spawn(t: Transport, name: str, cmd: str, *, workdir: str, cpus: list[int] | None = None,
          env: dict[str, str] | None = None, tag: str = "", shell: bool = False) -> Process:
    """Start `cmd` in the background on the host, pinned to `cpus`, output to files in workdir.

    `cmd` is one command line (shell words); with shell=True it may be any sh script.
    setsid gives it a process group of its own: one signal reaches all of it,
    and the terminal's Ctrl-C does not (teardown stops it deliberately).
    """
    out, err = f"{workdir}/{name}.out", f"{workdir}/{name}.err"
    # The environment is exported by the shell that execs the command (no `env` to exec), and
    # the work directory made only when missing: every exec is CPU on the host, and a lab's
    # hosts share the machine's.
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in {**(env or {}), MARK: tag or "untagged"}.items())
    # No sh -c wrapper for a plain command: the pid we keep is the program itself.
    inner = f"sh -c {shlex.quote(cmd)}" if shell else cmd
    if cpus:
        inner = f"taskset -c {','.join(map(str, cpus))} {inner}"
    # The process says its own pid once setsid has made it a group leader (then execs the
    # command, keeping that pid), so a check right after the spawn finds its group; `$(...)`
    # returns when it has redirected its output, without waiting for it.
    child = f"echo $$; export {envs}; exec {inner} >{shlex.quote(out)} 2>{shlex.quote(err)} </dev/null"
    wd = shlex.quote(workdir)
    script = (f"{{ [ -d {wd} ] || mkdir -p {wd}; }} && cd {wd} && "
              f"p=$(setsid sh -c {shlex.quote(child)} &) && echo $p && echo \"$p {name}\" >> {LEDGER}")
    done = t.run(script, timeout=30)
    try:
        pid = int(done.stdout.split()[0])
    except (IndexError, ValueError):
        raise RemoteError(f"could not start {name}: {done.stderr.strip()}", host=t.name) from None
    return Process(t.name, name, pid, out, err)


# `live G...` sets $L to those of the process groups G with a live (not zombie) member,
# with shell built-ins where it can: a group whose leader (pid G) is alive says so in its
# /proc stat line (its state, and that it still leads group G, not a reused pid); a group with
# no member at all fails `kill -s 0`. Only a group with members but no live leader (a leader
# that exited while its children run on, or a zombie) costs a `ps`. Waiting on the host in
# steps of 5-100 ms ends a wait soon after the exit and costs one round trip, not one a poll.
_LIVE_SH = r"""live() {
  L= p= q=
  for g; do
    s=; read -r s 2>/dev/null </proc/$g/stat; s=${s##*) }; r=${s#* }; r=${r#* }
    case ${s%% *} in ''|Z|X) ;; *) if [ "${r%% *}" = "$g" ]; then L="$L $g"; continue; fi ;; esac
    kill -s 0 -- -$g 2>/dev/null && p=$p,$g  # no signal: whether the group has any member
  done
  [ -z "$p" ] || q=$(ps -o pgid=,stat= -g ${p#,} 2>/dev/null |
    awk '$2 !~ /^Z/ && !s[$1]++ {printf "%s ", $1}')
  [ -z "$q" ] || L="$L $q"
}
until_gone() {  # up to N ms; short steps first (a signalled process ends within ms)
  e=0; live "$@"
  while [ -n "$L" ] && [ $e -lt $N ]; do
    if [ $e -lt 20 ]; then d=5 t=0.005; elif [ $e -lt 500 ]; then d=50 t=0.05; else d=100 t=0.1; fi
    sleep $t 2>/dev/null || sleep 1; e=$((e+d)); live $L
  done
}
"""
def _steps(wait_s: float) -> int:
    """until_gone's N for waiting up to `wait_s`."""
    return max(0, round(wait_s * 1000))


def _groups(line: str) -> set[int]:
    return {int(g) for g in line.split() if g.isdigit()}


def _wait_gone(t: Transport, pgids: list[int], wait_s: float) -> set[int]:
    """The groups among `pgids` still alive after waiting up to `wait_s` on the host for all
    of them to end (0: just look). One round trip."""
    if not pgids:
        return set()
    groups = " ".join(map(str, pgids))
    script = (f"# which of the groups {groups} are alive (after waiting up to {wait_s:g} s)\n"
              f"{_LIVE_SH}N={_steps(wait_s)}; until_gone {groups}; echo \"left:$L\"")
    done = t.run(script, timeout=wait_s + 15, check=False)
    _, found, left = done.stdout.rpartition("left:")
    if not found:
        raise RemoteError(f"cannot check processes: {done.stderr.strip() or 'no output'}", host=t.name)
    return _groups(left)


def alive(t: Transport, proc: Process) -> bool:
    """True while any process of the group is alive (zombies excluded)."""
    return bool(_wait_gone(t, [proc.pid], 0))


def alive_many(t: Transport, procs: list[Process]) -> set[int]:
    """The pids (process groups) among `procs` with any live member: one round trip."""
    return _wait_gone(t, [p.pid for p in procs], 0)


def stop_many(t: Transport, procs: list[Process], *, sig: str = "TERM",
              grace: float = 10.0) -> dict[int, bool]:
    """Signal every group at once, wait up to `grace` s, SIGKILL what is left (and wait up to
    5 s more). Returns pid -> True if it ended on the first signal.

    One round trip for one host: the signals and the waits happen there.
    """
    if not procs:
        return {}
    groups = " ".join(str(p.pid) for p in procs)
    script = (f"# stop the groups {groups} (SIG{sig}, then KILL after {grace:g} s)\n"
              f"{_LIVE_SH}for g in {groups}; do kill -s {sig} -- -$g 2>/dev/null || kill -s {sig} $g "
              f"2>/dev/null; done; sleep 0.005 2>/dev/null; N={_steps(grace)}; until_gone {groups}; "
              "echo \"first:$L\"; "
              "if [ -n \"$L\" ]; then for g in $L; do kill -s KILL -- -$g 2>/dev/null; done; "
              f"N={_steps(5)}; until_gone $L; fi; echo \"final:$L\"")
    out = t.run(script, timeout=grace + 5 + 15).stdout
    if "final:" not in out:
        raise RemoteError(f"could not stop {', '.join(p.name for p in procs)}: no answer from the "
                          "stopping script", host=t.name)
    first = _groups(out.partition("first:")[2].partition("\n")[0])
    return {p.pid: p.pid not in first for p in procs}


def stop(t: Transport, proc: Process, *, sig: str = "TERM", grace: float = 10.0) -> bool:
    """Signal, wait up to `grace` s, then SIGKILL. True if it stopped on the first signal."""
    return stop_many(t, [proc], sig=sig, grace=grace)[proc.pid]


def wait_exit(t: Transport, proc: Process, timeout: float, *, quiet_until: float = 0.0) -> bool:
    """Wait for the group to end by itself (e.g. wrk after its duration).

    Nothing reaches the host before `quiet_until` (a time.time() instant, e.g. the planned end
    of a measurement): each check is a command on the host, so checking during a load would
    run on the very CPUs being measured. After it, the host waits for the exit itself, in
    slices of at most 10 s (one round trip each).
    """
    time.sleep(max(0.0, quiet_until - time.time()))
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if not _wait_gone(t, [proc.pid], max(0.0, min(left, 10.0))):
            return True
        if left <= 10.0:
            return False


def read(t: Transport, path: str, *, missing_ok: bool = True) -> str:
    done = t.run(f"cat {shlex.quote(path)}", timeout=30, check=not missing_ok)
    return done.stdout if done.rc == 0 else ""


def group_pids(t: Transport, pgid: int) -> list[int]:
    """Every live process of a group (e.g. nginx master and workers)."""
    done = t.run(f"ps -o pid=,stat= -g {pgid} 2>/dev/null | grep -v ' Z' || true", timeout=15, check=False)
    return sorted(int(line.split()[0]) for line in done.stdout.splitlines() if line.strip())


def marked_pids(t: Transport, tag: str) -> list[int]:
    """Processes on the host started by the run `tag` (found by their environment)."""
    needle = f"{MARK}={tag}"
    script = (f"grep -lsaF -- {shlex.quote(needle)} /proc/[0-9]*/environ 2>/dev/null "
              "| cut -d/ -f3 || true")
    done = t.run(script, timeout=30, check=False)
    # grep itself may match its own environ: keep only pids whose environ still has it exactly.
    own = {str(os.getpid())}
    return sorted(int(p) for p in done.stdout.split() if p.isdigit() and p not in own)


def kill_marked(t: Transport, tag: str) -> list[int]:
    """SIGKILL every process on the host that carries the run's mark; the pids it found. For
    the end of an interrupted run: a process whose spawn was cut short is in no table."""
    pids = marked_pids(t, tag)
    if pids:
        t.run(f"kill -s KILL {' '.join(map(str, pids))} 2>/dev/null; true", timeout=30, check=False)
    return pids


def marked_runs(t: Transport) -> dict[str, list[int]]:
    """Run id -> pids of the processes on the host that carry a run's mark (see MARK)."""
    script = (f"for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f 2>/dev/null | "
              f"sed -n 's/^{MARK}=//p' | sed \"s|^|${{f#/proc/}} |\"; done | sed 's|/environ||' || true")
    done = t.run(script, timeout=60, check=False)
    runs: dict[str, list[int]] = {}
    for line in done.stdout.splitlines():
        pid, _, rid = line.partition(" ")
        if pid.isdigit() and rid and int(pid) != os.getpid():
            runs.setdefault(rid, []).append(int(pid))
    return runs


@dataclass
class ProcessTable:
    """Every process one run started, on every host, so teardown can stop them all."""

    transports: dict[str, Transport]
    tag: str = ""  # marks every process (see MARK)
    procs: list[Process] = field(default_factory=list)

    def spawn(self, host: str, name: str, cmd: str, *, workdir: str, cpus: list[int] | None = None,
              env: dict[str, str] | None = None, shell: bool = False) -> Process:
        # A Ctrl-C inside the spawn call would unwind after the process started but before its
        # pid is listed, and teardown would miss it (a server left listening on the port, seen
        # in CI): the signal is held until the process is in the table.
        with signals.deferred():
            proc = spawn(self.transports[host], name, cmd, workdir=workdir, cpus=cpus, env=env,
                         tag=self.tag, shell=shell)
            self.procs.append(proc)
        return proc

    def forget(self, proc: Process) -> None:
        with contextlib.suppress(ValueError):  # hosts stop in parallel threads
            self.procs.remove(proc)

    def stop(self, proc: Process, *, sig: str = "TERM", grace: float = 10.0) -> bool:
        clean = stop(self.transports[proc.host], proc, sig=sig, grace=grace)
        self.forget(proc)
        return clean

    def stop_many(self, procs: list[Process], *, sig: str = "TERM", grace: float = 10.0) -> dict[int, bool]:
        """Stop several processes, batched per host and hosts in parallel; pid -> stopped on the
        first signal. If a host cannot be reached, its processes stay listed (for teardown)."""
        hosts = list(dict.fromkeys(p.host for p in procs))

        def one(host: str) -> dict[int, bool]:
            mine = [p for p in procs if p.host == host]
            done = stop_many(self.transports[host], mine, sig=sig, grace=grace)
            for p in mine:
                self.forget(p)
            return done

        return {pid: ok for done in each(hosts, one) for pid, ok in done.items()}

    def stop_all(self) -> list[str]:
        """Stop everything still listed, every host (hosts in parallel); returns what it could
        not stop."""
        def one(host: str) -> list[str]:
            mine = [p for p in reversed(self.procs) if p.host == host]
            try:
                stop_many(self.transports[host], mine, grace=5.0)
            except (RunFailed, OSError) as exc:
                why = exc.detail if isinstance(exc, RunFailed) else str(exc)
                return [f"{host}: {p.name} (pid {p.pid}): {why}" for p in mine]
            for p in mine:
                self.forget(p)
            return []

        hosts = list(dict.fromkeys(p.host for p in reversed(self.procs)))
        return [line for left in each(hosts, one) for line in left]

    def survivors(self, procs: list[Process]) -> list[Process]:
        """Those of `procs` still alive, one round trip per host, hosts in parallel."""
        hosts = list(dict.fromkeys(p.host for p in procs))
        found = each(hosts, lambda h: alive_many(self.transports[h], [p for p in procs if p.host == h]))
        live = {(h, pid) for h, pids in zip(hosts, found, strict=True) for pid in pids}
        return [p for p in procs if (p.host, p.pid) in live]
