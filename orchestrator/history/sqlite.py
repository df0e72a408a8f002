"""The embedded history index: every summary goes into one SQLite file, so a scheduled
job can compare against earlier runs and a user can load all of it into pandas."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from orchestrator.history.fingerprint import machine_fingerprint, plain

HISTORY_ENV = "ORCHESTRATE_HISTORY"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    results_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, started TEXT, finished TEXT,
    status TEXT, provider TEXT, machine TEXT, path TEXT, n_runs INTEGER);
CREATE TABLE IF NOT EXISTS runs (
    results_id TEXT NOT NULL, run_id TEXT NOT NULL, scenario TEXT NOT NULL, started TEXT,
    machine TEXT, arch TEXT, server_threads INTEGER, connections INTEGER, repetition INTEGER,
    qps REAL, p50_ms REAL, p99_ms REAL, errors INTEGER, verdict TEXT, ceiling_pps REAL,
    packets_per_request REAL, cpu_us_per_request REAL,
    PRIMARY KEY (results_id, run_id));
CREATE TABLE IF NOT EXISTS gates (results_id TEXT PRIMARY KEY, verdict TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS floors (results_id TEXT PRIMARY KEY, floor TEXT NOT NULL);
"""


def history_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(HISTORY_ENV):
        return Path(os.environ[HISTORY_ENV])
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "orchestrate" / "history.sqlite"


def record_history(summary: Any, folder: Path, db: Path | None = None) -> Path:
    import sqlite3

    summary = plain(summary)
    path = history_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    machine = machine_fingerprint(summary)
    rid = summary.get("run_id") or folder.name
    with contextlib.closing(sqlite3.connect(path)) as con, con:
        con.executescript(_SCHEMA)
        con.execute("INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?,?,?)",
                    (rid, summary.get("scenario"), summary.get("started"), summary.get("finished"),
                     summary.get("status"), summary.get("provider"), machine, str(folder.resolve()),
                     len(summary.get("runs", []))))
        con.execute("DELETE FROM runs WHERE results_id = ?", (rid,))
        for r in summary.get("runs", []):
            a = r.get("analysis") or {}
            ppr = (a.get("packets_per_request") or {}).get("total")
            cost = (a.get("cpu_us_per_request") or {}).get("total")
            if not isinstance(r.get("qps"), int | float):
                continue  # a run that failed before measuring
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (rid, r["run_id"], summary.get("scenario"), summary.get("started"), machine,
                         r["arch"], r["server_threads"], r["connections"], r["repetition"], r["qps"],
                         (r.get("latency_ms") or {}).get("p50"), (r.get("latency_ms") or {}).get("p99"),
                         sum((r.get("errors") or {}).values()), a.get("verdict"), a.get("ceiling_pps"),
                         ppr, cost))
    return path


def history_sessions(db: Path | None = None, *, scenario: str | None = None, status: str | None = None,
                     limit: int = 50) -> list[dict[str, Any]]:
    import sqlite3

    path = history_path(db)
    if not path.exists():
        return []
    q, args = "SELECT * FROM sessions WHERE 1=1", []
    if scenario:
        q += " AND scenario = ?"
        args.append(scenario)
    if status:
        q += " AND status = ?"
        args.append(status)
    q += " ORDER BY started DESC, results_id DESC LIMIT ?"
    args.append(limit)
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.row_factory = sqlite3.Row
        con.executescript(_SCHEMA)
        return [dict(row) for row in con.execute(q, args)]


def history_frame(db: Path | None = None):  # -> pandas.DataFrame
    """Every recorded run as one pandas DataFrame (one call, as users expect)."""
    import sqlite3

    import pandas as pd

    with contextlib.closing(sqlite3.connect(history_path(db))) as con:
        con.executescript(_SCHEMA)
        return pd.read_sql_query("SELECT * FROM runs ORDER BY started, run_id", con)


class SQLiteHistory:
    """The embedded default: one SQLite file; results folders stay where the run wrote them."""

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)

    def check(self) -> None:
        from orchestrator.errors import UserError

        if self.path.is_dir():
            raise UserError(f"--history {self.path}: a directory; give a SQLite file or s3://bucket/prefix")

    def record(self, summary: Any, folder: Path) -> str:
        return str(record_history(summary, folder, self.path))

    def record_gate(self, results_id: str, gate: dict[str, Any]) -> None:
        self._put("gates", results_id, gate)

    def sessions(self, *, scenario: str | None = None, status: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
        return history_sessions(self.path, scenario=scenario, status=status, limit=limit)

    def gates(self) -> dict[str, dict[str, Any]]:
        return self._all("gates", "verdict")

    def record_floor(self, results_id: str, floor: dict[str, Any]) -> None:
        self._put("floors", results_id, floor)

    def floors(self) -> dict[str, dict[str, Any]]:
        return self._all("floors", "floor")

    # gates and floors are both results id -> one JSON value; the table names are ours, not input
    def _put(self, table: str, results_id: str, value: dict[str, Any]) -> None:
        import sqlite3

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path)) as con, con:
            con.executescript(_SCHEMA)
            con.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", (results_id, json.dumps(value)))

    def _all(self, table: str, column: str) -> dict[str, dict[str, Any]]:
        import sqlite3

        if not self.path.exists():
            return {}
        with contextlib.closing(sqlite3.connect(self.path)) as con:
            con.executescript(_SCHEMA)
            return {rid: json.loads(v) for rid, v in con.execute(f"SELECT results_id, {column} FROM {table}")}

    def folder(self, session: dict[str, Any], *, files: tuple[str, ...] = ("summary.json",)) -> Path | None:
        path = Path(session["path"])
        return path if (path / "summary.json").is_file() else None
