"""The history of runs: an index of every run's summary, kept beside its results folder.

Two stores behind one face: a SQLite file on this machine (the embedded default,
history/sqlite.py) and an S3 prefix that outlives the machine (history/s3.py).
`open_history(spec)` picks one from what the user gave (--history or $ORCHESTRATE_HISTORY).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from orchestrator.history.fingerprint import (
    SummaryLike,
    environment,
    environment_differences,
    machine_fingerprint,
)
from orchestrator.history.sqlite import (
    HISTORY_ENV,
    history_frame,
    history_path,
    history_sessions,
    record_history,
)


class History(Protocol):
    """Where the index of runs lives. A session row: results_id, scenario, started, finished,
    status, provider, machine, path (where its results folder is), n_runs."""

    where: str  # for messages: a file path or an s3:// URL

    def check(self) -> None:
        """Raise UserError now if the store cannot be used (before anything starts)."""

    def record(self, summary: SummaryLike, folder: Path) -> str:
        """Index a run (and keep its results folder); returns where it went."""

    def record_gate(self, results_id: str, gate: dict[str, Any]) -> None:
        """Keep the regression gate's verdict on a run (for the dashboard)."""

    def sessions(self, *, scenario: str | None = None, status: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""

    def gates(self) -> dict[str, dict[str, Any]]:
        """results_id -> the gate's verdict on it."""

    def record_floor(self, results_id: str, floor: dict[str, Any]) -> None:
        """Keep a noise floor measured by an A/A run (orchestrator/noise.py), with its hosts."""

    def floors(self) -> dict[str, dict[str, Any]]:
        """results_id -> the noise floor that A/A run measured."""

    def folder(self, session: dict[str, Any], *, files: tuple[str, ...] = ("summary.json",)) -> Path | None:
        """A local results folder for a session (fetched when the store is remote), or None if gone."""


def open_history(spec: str | os.PathLike[str] | None = None) -> History:
    """`spec`: an s3://bucket/prefix URL, a SQLite file path, or None for the default."""
    text = str(spec) if spec is not None else os.environ.get(HISTORY_ENV, "")
    if text.startswith("s3:"):
        from orchestrator.history.s3 import S3History

        return S3History(text)
    from orchestrator.history.sqlite import SQLiteHistory

    return SQLiteHistory(history_path(spec))


__all__ = ["HISTORY_ENV", "History", "SummaryLike", "environment", "environment_differences", "history_frame",
           "history_path", "history_sessions", "machine_fingerprint", "open_history",
           "record_history"]
