"""A host over SSH (paramiko): one connection, a few long-lived control shells, files by a tar
stream or SFTP; and the wait for a new host's sshd to answer."""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import secrets
import select
import shlex
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import RunFailed, UserError
from orchestrator.remote.transport import Completed, RemoteError, checked, get_each, with_env

if TYPE_CHECKING:
    import paramiko


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


def _fail_fast_on_a_cut_link(client: paramiko.SSHClient, seconds: float) -> None:
    """Data sent and not acknowledged for `seconds` ends the connection (TCP_USER_TIMEOUT,
    Linux): a command sent over a cut link fails as a lost connection after the connect
    timeout, not after the command's own (a wait of 10 s or more), and teardown moves on.
    A connection idle during a load sends nothing, so silence alone never ends it."""
    transport = client.get_transport()
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket) and hasattr(socket, "TCP_USER_TIMEOUT"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1000, int(seconds * 1000)))


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
        _fail_fast_on_a_cut_link(client, target.connect_timeout)
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
        rc, out, err = self._run_bytes(with_env(cmd, env), timeout, cmd)
        return checked(self.name, Completed(cmd, rc, out.decode(errors="replace"),
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
            return get_each(self, files)
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
                return get_each(self, files)
        if rc not in (0, 1) and not got:  # 1: GNU tar's "a file changed as we read it"
            return get_each(self, files)  # e.g. no tar on the host (127)
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
