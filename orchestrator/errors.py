"""Errors that map to exit codes (asv's UserError idea): no traceback for the user's mistakes."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURE = 1  # a run failed part-way (host, tool or server problem)
EXIT_BAD_INPUT = 2  # the scenario, inventory or command line is wrong; nothing was started
EXIT_REGRESSION = 3  # the regression gate found a significant drop
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    line: int | None
    path: str  # dotted key path, e.g. "load.duration"; "" for the whole document
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class UserError(Exception):
    """Bad input from the user: printed without a traceback, exit code 2."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = problems or []

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems] or [str(self)]


class RunFailed(Exception):
    """A run could not complete; names the host and the phase it failed in."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, host: str | None = None, phase: str | None = None):
        where = ", ".join(x for x in (f"host {host}" if host else "", phase or "") if x)
        super().__init__(f"{where}: {message}" if where else message)
        self.detail = message
        self.host = host
        self.phase = phase

    def in_phase(self, phase: str) -> RunFailed:
        """The same failure, located in `phase` if it did not say where it happened."""
        return self if self.phase else type(self)(self.detail, host=self.host, phase=phase)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; teardown runs, then exit 130."""

    exit_code = EXIT_INTERRUPTED
