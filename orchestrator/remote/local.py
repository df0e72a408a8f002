"""This machine as a host: commands through /bin/sh, files by copying. No SSH involved."""

from __future__ import annotations

import contextlib
import os
import signal as _signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from orchestrator.remote.transport import Completed, RemoteError, checked, get_each, with_env


class LocalTransport:
    """This machine, through /bin/sh: no SSH involved."""

    def __init__(self, name: str = "localhost"):
        self.name = name

    def run(self, cmd: str, *, timeout: float = 60.0, check: bool = True,
            env: dict[str, str] | None = None) -> Completed:
        # Own session so a timeout can kill the whole command, not just sh.
        proc = subprocess.Popen(["/bin/sh", "-c", with_env(cmd, env)], stdout=subprocess.PIPE,
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
        return checked(self.name, Completed(cmd, proc.returncode, out, err), check)

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
        return get_each(self, files)

    def close(self) -> None:
        pass
