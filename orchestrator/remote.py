"""Run, spawn pinned, signal, put and get: the same operations locally or over SSH.

A Transport only knows how to run a shell command and move files. Everything
else (background processes with pids, signals, CPU affinity read-back) is built
here on top of `run`, so local and remote hosts behave identically.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import secrets
import select
import shlex
import signal as _signal
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from orchestrator import cpus
from orchestrator.errors import RunFailed, UserError

if TYPE_CHECKING:
    import paramiko

T = TypeVar("T")
R = TypeVar("R")

LEDGER = ".orchestrate-pids"  # in each host's work dir: what `cleanup` may kill
# Every process a run starts carries this variable (value: the run's tag), so a
# later `cleanup`, or a test, can find survivors even if our pid list was lost.
MARK = "ORCHESTRATE_RUN"


@dataclass(frozen=True)
class Completed:
    cmd: str
    rc: int
    stdout: str
    stderr: str


class RemoteError(RunFailed):
    """A command failed on a host; carries the host name and what it printed."""


class Transport(Protocol):
    name: str  # the host's name, for messages

    def run(self, cmd: str, *, timeout: float = 60.0, check: bool = True,
            env: dict[str, str] | None = None) -> Completed: ...

    def put_text(self, text: str, path: str, mode: int = 0o644) -> None: ...

    def get(self, remote: str, local: Path) -> None: ...

    def get_many(self, files: Sequence[tuple[str, Path]]) -> list[str]: ...

    def close(self) -> None: ...


def _with_env(cmd: str, env: dict[str, str] | None) -> str:
    if not env:
        return cmd
    return "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " sh -c " + shlex.quote(cmd)


def _check(name: str, done: Completed, check: bool) -> Completed:
    if check and done.rc != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise RemoteError(f"`{done.cmd}` exited {done.rc}: {' | '.join(detail) or 'no output'}",
                          host=name)
    return done


class LocalTransport:
    """This machine, through /bin/sh: no SSH involved."""

    def __init__(self, name: str = "localhost"):
        self.name = name

    def run(self, cmd: str, *, timeout: float = 60.0, check: bool = True,
            env: dict[str, str] | None = None) -> Completed:
        # Own session so a timeout can kill the whole command, not just sh.
        proc = subprocess.Popen(["/bin/sh", "-c", _with_env(cmd, env)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, _signal.SIGKILL)
            proc.communicate()
            raise RemoteError(f"`{cmd}` did not finish within {timeout:.0f}s", host=self.name) from None
        except BaseException:
            # Ctrl-C while waiting: the command must not outlive us.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, _signal.SIGKILL)
            proc.wait()
            raise
        return _check(self.name, Completed(cmd, proc.returncode, out, err), check)

    def put_text(self, text: str, path: str, mode: int = 0o644) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)

    def get(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        if Path(remote).resolve() != local.resolve():
            local.write_bytes(Path(remote).read_bytes())

    def get_many(self, files: Sequence[tuple[str, Path]]) -> list[str]:
        """Each (remote, local) file copied; returns the remote paths that are not there."""
        return _get_each(self, files)

    def close(self) -> None:
        pass


def _get_each(t: Transport, files: Sequence[tuple[str, Path]]) -> list[str]:
    missing = []
    for remote, local in files:
        try:
            t.get(remote, local)
        except FileNotFoundError:
            missing.append(remote)
    return missing


@dataclass(frozen=True)
class SshTarget:
    host: str  # address to connect to
    name: str  # inventory name, for messages
    user: str = "root"
    port: int = 22
    key_file: str | None = None
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts
    host_key_checking: bool = True
    connect_timeout: float = 10.0


class _Timeout(Exception):
    """A command on a control shell did not finish in time (got: whether any byte came back)."""

    def __init__(self, got: bool):
        super().__init__()
        self.got = got


class _Shell:
    """One long-lived /bin/sh on a host, fed commands on its channel's stdin.

    sshd runs every exec request through the user's login shell, and bash reads ~/.bashrc
    for commands that come over SSH (here, pyenv: ~0.2 s a command). A shell that stays up
    pays that once; each command is then `sh -c CMD </dev/null` (a few ms), framed by a
    random token that carries its exit status on stdout and ends its stderr.
    """

    def __init__(self, chan: paramiko.Channel) -> None:
        self.chan = chan

    def run(self, cmd: str, timeout: float) -> tuple[int, bytes, bytes]:
        token = f"@@orchestrate-{secrets.token_hex(8)}@@".encode()
        end_out, end_err = b"\n" + token + b" ", b"\n" + token + b"\n"
        line = (f"sh -c {shlex.quote(cmd)} </dev/null; printf '\\n%s %d\\n' {token.decode()} $?; "
                f"printf '\\n%s\\n' {token.decode()} >&2\n")
        chan = self.chan
        chan.sendall(line.encode())
        out, err = bytearray(), bytearray()
        seen = 0  # out[:seen] holds no end mark: a large output (a fetch) is searched once
        deadline = time.monotonic() + timeout
        while True:
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            at = out.rfind(end_out, seen)
            seen = max(seen, len(out) - len(end_out) - 24) if at < 0 else seen
            if at >= 0 and out.endswith(b"\n") and err.endswith(end_err):
                return int(out[at + len(end_out):-1]), bytes(out[:at]), bytes(err[:-len(end_err)])
            if chan.exit_status_ready() or chan.eof_received:
                raise EOFError("the control shell ended")
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Timeout(bool(out or err))
            # The channel's pipe signals both streams, but paramiko can lose a wake-up when
            # they race (its OrPipe clears after a concurrent set): never sleep long on it.
            select.select([chan], [], [], min(left, 0.05))

    def close(self) -> None:
        self.chan.close()


class SshTransport:
    """A host over SSH with paramiko; host keys are verified unless explicitly turned off.

    One connection per host, and on it up to MAX_SHELLS control shells (see _Shell), so a
    command costs a round trip, not a login shell's start-up files.
    """

    MAX_SHELLS = 6  # concurrent commands on one host; sshd's MaxSessions defaults to 10

    def __init__(self, target: SshTarget):
        import logging

        import paramiko  # heavy import, only when SSH is used

        # paramiko logs its own tracebacks to stderr; our errors say it once, clearly.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)

        self.name = target.name
        self.target = target
        self._lost = (OSError, EOFError, paramiko.SSHException)
        self._sftp: paramiko.SFTPClient | None = None
        self._idle: list[_Shell] = []  # last in, first out: one host's steps reuse one shell
        self._open = 0
        self._pool = threading.Condition()
        self._client = self._connect()
        # Start the first control shell now: its login shell reads its start-up files on the
        # host while the other hosts connect, not when the first step needs it. (If it cannot
        # open, the first command opens one and says why.)
        with contextlib.suppress(*self._lost):
            self._give_back(self._take_shell(target.connect_timeout))

    def _connect(self) -> paramiko.SSHClient:
        import paramiko

        target = self.target
        client = paramiko.SSHClient()
        known = target.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        if target.host_key_checking:
            if os.path.exists(known):
                client.load_host_keys(known)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        where = f"{target.name} ({target.user}@{target.host}:{target.port})"
        try:
            client.connect(target.host, port=target.port, username=target.user,
                           key_filename=target.key_file, timeout=target.connect_timeout,
                           banner_timeout=target.connect_timeout, auth_timeout=target.connect_timeout,
                           allow_agent=target.key_file is None, look_for_keys=target.key_file is None)
        except paramiko.BadHostKeyException:
            raise UserError(f"host {where}: host key has CHANGED since it was recorded in {known}; "
                            "if the host was rebuilt, remove its old key (ssh-keygen -R)") from None
        except paramiko.AuthenticationException:
            key = target.key_file or "the ssh agent's keys and ~/.ssh/id_*"
            raise UserError(f"host {where}: authentication failed with {key}; is the public key in "
                            f"{target.user}'s authorized_keys there?") from None
        except paramiko.SSHException as exc:
            if "banner" in str(exc).lower():  # TCP connected (or timed out) but no SSH server answered
                raise UserError(f"host {where}: unreachable: no SSH answer ({exc})") from None
            if "not found in known_hosts" in str(exc):
                raise UserError(f"host {where}: host key is unknown (not in {known}); add it with "
                                "ssh-keyscan, or set hosts.ssh.host_key_checking: false to skip "
                                "the check") from None
            raise UserError(f"host {where}: SSH failed: {exc}") from None
        except (TimeoutError, OSError) as exc:
            raise UserError(f"host {where}: unreachable: {exc}") from None
        return client

    def _ensure_connected(self) -> None:
        """Reconnect once if the connection was cut (so teardown can still reach the host)."""
        transport = self._client.get_transport()
        if transport is not None and transport.is_active():
            return
        self._sftp = None
        with self._pool:
            self._idle.clear()  # their channels went with the connection
            self._open = 0
        try:
            self._client = self._connect()
        except UserError as exc:  # mid-run this is a failure of the run, not bad input
            raise RemoteError(f"SSH connection lost and could not be re-established: {exc}",
                              host=self.name) from None

    def _take_shell(self, timeout: float) -> _Shell:
        with self._pool:
            if not self._idle and self._open >= self.MAX_SHELLS:
                self._pool.wait_for(lambda: bool(self._idle) or self._open < self.MAX_SHELLS, timeout)
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            transport = self._client.get_transport()
            if transport is None:  # closed under us (the watchdog of another command)
                raise EOFError("the SSH connection was closed")
            chan = transport.open_session(timeout=self.target.connect_timeout)
            chan.exec_command("exec /bin/sh")  # the one start of the login shell this pays
            return _Shell(chan)
        except BaseException:
            self._drop(None)
            raise

    def _give_back(self, shell: _Shell) -> None:
        with self._pool:
            self._idle.append(shell)
            self._pool.notify()

    def _drop(self, shell: _Shell | None) -> None:
        if shell is not None:
            with contextlib.suppress(*self._lost):
                shell.close()
        with self._pool:
            self._open = max(0, self._open - 1)
            self._pool.notify()

    def run(self, cmd: str, *, timeout: float = 60.0, check: bool = True,
            env: dict[str, str] | None = None) -> Completed:
        rc, out, err = self._run_bytes(_with_env(cmd, env), timeout, cmd)
        return _check(self.name, Completed(cmd, rc, out.decode(errors="replace"),
                                           err.decode(errors="replace")), check)

    def _run_bytes(self, line: str, timeout: float, cmd: str) -> tuple[int, bytes, bytes]:
        """`line` on a control shell: (exit status, stdout, stderr) as bytes; `cmd` names it."""
        self._ensure_connected()
        # paramiko waits for the reply to a session or exec request without a limit: on a cut
        # link that is forever. Past the deadline, closing the connection ends that wait.
        client = self._client
        watchdog = threading.Timer(timeout + 5.0, client.close)
        watchdog.daemon = True
        watchdog.start()
        short = cmd if len(cmd) <= 60 else cmd[:57] + "..."
        shell = None
        try:
            shell = self._take_shell(timeout)
            rc, out, err = shell.run(line, timeout)
            self._give_back(shell)
        except _Timeout as exc:
            self._drop(shell)  # the command may still run: this shell is no longer ours
            if not exc.got:
                # Not even a byte back: treat the connection as dead, so the next
                # call reconnects (or says the host is unreachable) instead of hanging.
                client.close()
            raise RemoteError(f"no answer within {timeout:.0f}s running `{short}` "
                              "(host down or connection cut?)", host=self.name) from None
        except self._lost as exc:
            self._drop(shell)
            if not watchdog.is_alive():
                raise RemoteError(f"no answer within {timeout:.0f}s running `{short}` "
                                  "(host down or connection cut?)", host=self.name) from None
            raise RemoteError(f"SSH connection lost ({exc or type(exc).__name__}) running `{short}`",
                              host=self.name) from None
        except BaseException:  # Ctrl-C mid-command: the shell's framing is lost with it
            self._drop(shell)
            raise
        finally:
            watchdog.cancel()
        return rc, out, err

    def _sftp_client(self) -> paramiko.SFTPClient:
        self._ensure_connected()
        if self._sftp is None:
            self._sftp = sftp = self._client.open_sftp()
            channel = sftp.get_channel()
            assert channel is not None  # an open SFTP session has its channel
            channel.settimeout(60.0)  # a transfer on a cut link ends, too
        return self._sftp

    SHELL_ARG_MAX = 100_000  # a command on the control shell is one argument of `sh -c`

    def put_text(self, text: str, path: str, mode: int = 0o644) -> None:
        folder, where = shlex.quote(str(Path(path).parent)), shlex.quote(path)
        # One round trip on the control shell. SFTP is a session more, and on a stock sshd
        # (sftp-server, not internal-sftp) another start of the login shell: ~0.1-0.2 s of
        # the host's CPU with a heavy ~/.bashrc. SFTP only for what a command cannot carry.
        cmd = f"mkdir -p {folder} && printf %s {shlex.quote(text)} > {where} && chmod {mode:o} {where}"
        if "\0" not in text and len(shlex.quote(cmd)) <= self.SHELL_ARG_MAX:
            self.run(cmd)
            return
        self.run(f"mkdir -p {folder}")
        sftp = self._sftp_client()
        with sftp.open(path, "w") as f:
            f.write(text)
        sftp.chmod(path, mode)

    def get(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._sftp_client().get(remote, str(local))
        except FileNotFoundError:
            local.unlink(missing_ok=True)  # sftp made it before finding there was nothing
            raise  # as LocalTransport does: the host answered, the file is not there
        except OSError as exc:
            raise RemoteError(f"cannot fetch {remote}: {exc}", host=self.name) from None

    def get_many(self, files: Sequence[tuple[str, Path]]) -> list[str]:
        """Each (remote, local) file copied, all in one round trip: a tar stream on the control
        shell, not one SFTP request (or several) per file. Returns the remote paths that are not
        there. A host without tar, or paths that are not absolute, go file by file over SFTP."""
        if not files:
            return []
        if not all(r.startswith("/") for r, _ in files):
            return _get_each(self, files)
        wanted = {posixpath.normpath(r).lstrip("/"): (r, local) for r, local in files}
        names = " ".join(shlex.quote(n) for n in wanted)
        script = (f"cd / && for f in {names}; do if [ -f \"$f\" ] && [ -r \"$f\" ]; then "
                  "set -- \"$@\" \"$f\"; fi; done; [ $# -eq 0 ] || exec tar -cf - \"$@\"")
        rc, out, _err = self._run_bytes(script, 120.0, f"tar -cf - ({len(files)} files)")
        got: set[str] = set()
        try:
            with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as tar:
                for member in tar:
                    name = posixpath.normpath(member.name)
                    data = tar.extractfile(member) if member.isfile() and name in wanted else None
                    if data is None:
                        continue
                    local = wanted[name][1]
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(data.read())
                    got.add(name)
        except tarfile.TarError:
            if out:  # a stream we cannot read: fetch one by one rather than lose outputs
                return _get_each(self, files)
        if rc not in (0, 1) and not got:  # 1: GNU tar's "a file changed as we read it"
            return _get_each(self, files)  # e.g. no tar on the host (127)
        return [r for name, (r, _) in wanted.items() if name not in got]

    def close(self) -> None:
        with self._pool:
            shells, self._idle, self._open = self._idle, [], 0
        for shell in shells:
            with contextlib.suppress(*self._lost):
                shell.close()
        if self._sftp is not None:
            self._sftp.close()
        self._client.close()


def wait_for_banner(hosts: list[tuple[str, str]], timeout: float, *, phase: str, port: int = 22,
                    interval: float = 0.02, explain: Callable[[str], str] | None = None) -> None:
    """Until the sshd of every (name, address) answers with its banner: a daemon may accept
    before it serves, and a cloud host's port may be open before its sshd is up."""
    deadline = time.monotonic() + timeout
    for name, address in hosts:
        while True:
            try:
                with socket.create_connection((address, port), timeout=min(5.0, timeout)) as s:
                    s.settimeout(min(5.0, timeout))
                    if s.recv(8).startswith(b"SSH-"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                why = explain(name) if explain else ""
                raise RunFailed(f"SSH on {address}:{port} did not answer within {timeout:g}s"
                                + (f": {why}" if why else ""), host=name, phase=phase)
            time.sleep(interval)


def each(items: Sequence[T], fn: Callable[[T], R]) -> list[R]:
    """fn(item) for every host (or per-host item) at once, results in order.

    Per-host steps are mostly waiting for a remote shell; in parallel, a run on
    N client hosts costs about what a run on one costs.
    """
    if len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(fn, items))


# --- what reached each host, and when -----------------------------------------


@dataclass(frozen=True)
class CommandRecord:
    """One command or file transfer sent to a host; times are this machine's time.time()."""

    host: str
    start: float
    end: float
    kind: str  # run | put | get
    what: str  # the command line, or the remote path

    def overlaps(self, start: float, end: float) -> bool:
        return self.start < end and self.end > start


class CommandLog:
    """Every command and transfer of one run, on every host: proof of a quiet window."""

    def __init__(self) -> None:
        self._records: list[CommandRecord] = []
        self._lock = threading.Lock()  # per-host steps run in threads

    def add(self, record: CommandRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self) -> list[CommandRecord]:
        with self._lock:
            return list(self._records)

    def inside(self, start: float, end: float) -> list[CommandRecord]:
        """What ran on any host, even partly, between `start` and `end`."""
        return [r for r in self.records() if r.overlaps(start, end)]


class Logged:
    """A Transport that records everything sent through it (see CommandLog)."""

    def __init__(self, inner: Transport, log: CommandLog):
        self.inner = inner
        self.name = inner.name
        self.log = log

    @contextlib.contextmanager
    def _record(self, kind: str, what: str) -> Iterator[None]:
        start = time.time()
        try:
            yield
        finally:  # failed commands reached the host too
            self.log.add(CommandRecord(self.name, start, time.time(), kind, what))

    def run(self, cmd: str, *, timeout: float = 60.0, check: bool = True,
            env: dict[str, str] | None = None) -> Completed:
        with self._record("run", cmd):
            return self.inner.run(cmd, timeout=timeout, check=check, env=env)

    def put_text(self, text: str, path: str, mode: int = 0o644) -> None:
        with self._record("put", path):
            self.inner.put_text(text, path, mode)

    def get(self, remote: str, local: Path) -> None:
        with self._record("get", remote):
            self.inner.get(remote, local)

    def get_many(self, files: Sequence[tuple[str, Path]]) -> list[str]:
        start = time.time()
        try:
            return self.inner.get_many(files)
        finally:  # one record per file, all with the one transfer's times
            end = time.time()
            for remote, _ in files:
                self.log.add(CommandRecord(self.name, start, end, "get", remote))

    def close(self) -> None:
        self.inner.close()


# --- background processes ----------------------------------------------------


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


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds used so far by process groups (and optionally all sshd), read at one instant."""

    clock: float  # the host's epoch time when read
    cpu_s: dict[str, float]  # str(pgid) or "sshd" -> user + system s, reaped children included
    last_cpus: dict[str, list[int]]  # the same keys -> the CPUs those processes last ran on
    own_s: float  # what the reading's own shell had used: sshd is charged it when the shell ends


# One pass over every process's /proc/<pid>/stat (a single cat, a single awk: a reading costs
# the same few forks however many processes there are). Prints "KEY <stat line> | NS" for each
# process of the wanted groups (KEY: the group) and, with sshd=1, for the sshd tree serving
# this command (its daemon, the topmost sshd, and all below it, with the shells its sessions
# run: our control shells, which reap our commands); NS is schedstat's time on a CPU in ns,
# far finer than stat's ticks (10 ms), which matters for collectors that use a few ms a
# second. Last, "own": the reading's own shell, whose time sshd is charged when it ends.
_CPU_AWK = r"""
{ i = 0; while ((j = index(substr($0, i + 1), ")")) > 0) i += j  # comm may hold ")"
  o = index($0, "("); p = substr($0, 1, o - 2); comm[p] = substr($0, o + 1, i - o - 1)
  split(substr($0, i + 2), f, " "); up[p] = f[2]; grp[p] = f[3]; stat[p] = $0 }
function ns(p,   s) { s = ""; if ((getline s < ("/proc/" p "/schedstat")) > 0) split(s, x, " ")
  close("/proc/" p "/schedstat"); return s == "" ? "" : x[1] }
END {
  n = split(groups, g, ","); for (k = 1; k <= n; k++) want[g[k]] = 1
  top = up[self]; while (sshd && comm[up[top]] == "sshd") top = up[top]
  for (p in stat) {
    if (grp[p] in want) print grp[p], stat[p], "|", ns(p)
    if (sshd && p != self && (comm[p] == "sshd" || comm[up[p]] == "sshd")) {
      q = p; while (q > 1 && q != top) q = up[q]
      if (q == top) print "sshd", stat[p], "|", ns(p) }
  }
  print "own", stat[self], "|"
}"""


def cpu_times(t: Transport, pgids: list[int], *, sshd: bool = False) -> CpuTimes:
    """CPU time per process group (and of every sshd) from /proc/<pid>/stat, one round trip."""
    script = (f"date +%s.%N; getconf CLK_TCK; cat /proc/[0-9]*/stat 2>/dev/null | awk -v self=$$ "
              f"-v groups={','.join(map(str, pgids))} -v sshd={int(sshd)} {shlex.quote(_CPU_AWK)}")
    lines = t.run(script, timeout=15, check=False).stdout.splitlines()
    try:
        clock, tck = float(lines[0]), float(lines[1])
    except (IndexError, ValueError):
        raise RemoteError(f"cannot read process CPU times: {' '.join(lines[:2]) or 'no output'}",
                          host=t.name) from None
    cpu: dict[str, float] = {}
    last: dict[str, set[int]] = {}
    for line in lines[2:]:
        head, _, rest = line.rpartition(")")  # the command name may hold spaces
        stat, _, ns = rest.partition("|")
        fields = stat.split()
        try:
            key = head.split()[0]
            own = int(ns) / 1e9 if ns.strip() else (int(fields[11]) + int(fields[12])) / tck
            seconds = own + (int(fields[13]) + int(fields[14])) / tck  # + reaped children's
            where = int(fields[36])
        except (IndexError, ValueError):
            continue
        cpu[key] = cpu.get(key, 0.0) + seconds
        last.setdefault(key, set()).add(where)
    own = cpu.pop("own", 0.0)
    last.pop("own", None)
    return CpuTimes(clock, cpu, {k: sorted(v) for k, v in last.items()}, own)


def group_affinity(t: Transport, pgid: int) -> dict[int, dict[str, object]]:
    """thread_affinity of every live process of a group, found and read in one round trip."""
    return thread_affinity(t, [], group=pgid)


def thread_affinity(t: Transport, pids: list[int], *,
                    group: int | None = None) -> dict[int, dict[str, object]]:
    """Each thread's CPU affinity as the kernel has it now (read back, not assumed)."""
    if not pids and group is None:
        return {}
    which = (f"$(ps -o pid=,stat= -g {group} 2>/dev/null | awk '$2 !~ /^Z/ {{print $1}}')"
             if group is not None else " ".join(map(str, pids)))
    # One awk over every thread's status file (not one per thread); Tgid is the process.
    script = ("f=; for p in " + which + "; do for s in /proc/$p/task/*/status; do "
              "[ -r \"$s\" ] && f=\"$f $s\"; done; done; [ -z \"$f\" ] || awk "
              "'/^Name:/{n=$2}/^Tgid:/{g=$2}/^Pid:/{p=$2}"
              "/^Cpus_allowed_list:/{print g, p, n, $2}' $f 2>/dev/null")
    done = t.run(script, timeout=15, check=False)
    out: dict[int, dict[str, object]] = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            out[int(parts[1])] = {"pid": int(parts[0]), "name": parts[2],
                                  "cpus": cpus.parse_list(parts[3])}
    return out


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
        proc = spawn(self.transports[host], name, cmd, workdir=workdir, cpus=cpus, env=env, tag=self.tag,
                     shell=shell)
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
