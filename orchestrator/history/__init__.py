"""The history of runs: an index of every summary, kept beside the results folders.

SQLite on this machine is the embedded default (history/sqlite.py).
"""

from orchestrator.history.fingerprint import machine_fingerprint
from orchestrator.history.sqlite import (
    HISTORY_ENV,
    history_frame,
    history_path,
    history_sessions,
    record_history,
)

__all__ = ["HISTORY_ENV", "history_frame", "history_path", "history_sessions", "machine_fingerprint",
           "record_history"]
