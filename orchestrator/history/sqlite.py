"""The embedded history index: every summary goes into one SQLite file, so a scheduled
job can compare against earlier runs and a user can load all of it into pandas."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from orchestrator.history.fingerprint import SummaryLike, machine_fingerprint, point_key, typed
from orchestrator.point import PointKey
from orchestrator.records import Run

HISTORY_ENV = "ORCHESTRATE_HISTORY"
# The database's format, in PRAGMA user_version (asv's update_to_N, one step at a time):
#   0: the first: a run's point was its arch, server_threads and connections columns
#   1: N-axis points: `point` holds the run's whole point as a JSON object in axis order
#      (orchestrator/point.py; server.work_us, load.keepalive, variants, ...), `point_label`
#      names it as compare and the gate do, `rate` is the target rate; version-0 rows are given
#      theirs from the old columns (their rate was not recorded: null)
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    results_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, started TEXT, finished TEXT,
    status TEXT, provider TEXT, machine TEXT, path TEXT, n_runs INTEGER);
CREATE TABLE IF NOT EXISTS runs (
    results_id TEXT NOT NULL, run_id TEXT NOT NULL, scenario TEXT NOT NULL, started TEXT,
    machine TEXT, arch TEXT, server_threads INTEGER, connections INTEGER, repetition INTEGER,
    qps REAL, p50_ms REAL, p99_ms REAL, errors INTEGER, verdict TEXT, ceiling_pps REAL,
    packets_per_request REAL, cpu_us_per_request REAL,
    rate REAL, point TEXT, point_label TEXT,
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


def _connect(path: Path):  # -> sqlite3.Connection, its schema current
    import sqlite3

    con = sqlite3.connect(path)
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            from orchestrator.errors import UserError

            raise UserError(f"{path}: history database version {version} was written by a newer "
                            f"orchestrate (this one reads 0 to {SCHEMA_VERSION})")
        with con:
            con.executescript(_SCHEMA)
            if version < 1:
                _upgrade_0_to_1(con)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        con.close()
        raise
    return con


def _upgrade_0_to_1(con: Any) -> None:
    """The point columns of version 0 become an N-axis point (kept: older readers use them)."""
    have = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
    for column, kind in (("rate", "REAL"), ("point", "TEXT"), ("point_label", "TEXT")):
        if column not in have:
            con.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    rows = con.execute("SELECT results_id, run_id, arch, server_threads, connections, rate FROM runs "
                       "WHERE point IS NULL").fetchall()
    for rid, run_id, arch, threads, conns, rate in rows:
        key = point_key({"arch": arch, "server_threads": threads, "connections": conns, "rate": rate})
        con.execute("UPDATE runs SET point = ?, point_label = ? WHERE results_id = ? AND run_id = ?",
                    (json.dumps(key.as_json()), key.compact(), rid, run_id))


def row_point(row: dict[str, Any]) -> PointKey:
    """The point of a history row (its `point` column)."""
    return PointKey(json.loads(row["point"]).items()) if row.get("point") else point_key(row)


RUN_COLUMNS = ("results_id", "run_id", "scenario", "started", "machine", "arch", "server_threads",
               "connections", "repetition", "qps", "p50_ms", "p99_ms", "errors", "verdict", "ceiling_pps",
               "packets_per_request", "cpu_us_per_request", "rate", "point", "point_label")
_INSERT_RUN = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"


def record_history(summary: SummaryLike, folder: Path, db: Path | None = None) -> Path:
    s = typed(summary)
    path = history_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    machine = machine_fingerprint(s)
    rid = s.run_id or folder.name
    with contextlib.closing(_connect(path)) as con, con:
        con.execute("INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?,?,?)",
                    (rid, s.scenario, s.started, s.finished, s.status, s.provider, machine,
                     str(folder.resolve()), len(s.runs)))
        con.execute("DELETE FROM runs WHERE results_id = ?", (rid,))
        for r in s.runs:
            if r.qps is not None:  # else a run that failed before measuring
                con.execute(_INSERT_RUN, (rid, r.run_id, s.scenario, s.started, machine, *_run_row(r)))
    return path


def _run_row(r: Run) -> tuple[Any, ...]:
    """A measured run's own columns, from arch on (errors NULL when a counter is missing: not
    measured is not 0)."""
    a = r.analysis
    ppr = a.packets_per_request.total if a and a.packets_per_request else None
    cost = a.cpu_us_per_request.total if a and a.cpu_us_per_request else None
    key = r.key
    return (r.arch, r.server_threads, r.connections, r.repetition, r.qps, r.latency_ms.p50, r.latency_ms.p99,
            r.errors.total if r.errors else None, a.verdict if a else None, a.ceiling_pps if a else None,
            ppr, cost, key.get("load.rate"), json.dumps(key.as_json()), key.compact())


def history_sessions(db: Path | None = None, *, scenario: str | None = None, status: str | None = None,
                     limit: int = 50) -> list[dict[str, Any]]:
    import sqlite3

    path = history_path(db)
    if not path.exists():
        return []
    q, args = "SELECT * FROM sessions WHERE 1=1", list[Any]()
    if scenario:
        q += " AND scenario = ?"
        args.append(scenario)
    if status:
        q += " AND status = ?"
        args.append(status)
    q += " ORDER BY started DESC, results_id DESC LIMIT ?"
    args.append(limit)
    with contextlib.closing(_connect(path)) as con:
        con.row_factory = sqlite3.Row
        return [dict(row) for row in con.execute(q, args)]


def history_frame(db: Path | None = None):  # -> pandas.DataFrame
    """Every recorded run as one pandas DataFrame (one call, as users expect), with one column
    per axis of the points (server.arch, ..., server.work_us, load.keepalive) after its own."""
    import pandas as pd

    with contextlib.closing(_connect(history_path(db))) as con:
        df = pd.read_sql_query("SELECT * FROM runs ORDER BY started, run_id", con)
    points = [row_point({"point": p}) if p else PointKey() for p in df.get("point", [])]
    axes = list(dict.fromkeys(a for p in points for a in p))
    for a in axes:
        df[a] = [p.get(a) for p in points]
    return df


class SQLiteHistory:
    """The embedded default: one SQLite file; results folders stay where the run wrote them."""

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)

    def check(self) -> None:
        from orchestrator.errors import UserError

        if self.path.is_dir():
            raise UserError(f"--history {self.path}: a directory; give a SQLite file or s3://bucket/prefix")

    def record(self, summary: SummaryLike, folder: Path) -> str:
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

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(_connect(self.path)) as con, con:
            con.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", (results_id, json.dumps(value)))

    def _all(self, table: str, column: str) -> dict[str, dict[str, Any]]:

        if not self.path.exists():
            return {}
        with contextlib.closing(_connect(self.path)) as con:
            return {rid: json.loads(v) for rid, v in con.execute(f"SELECT results_id, {column} FROM {table}")}

    def folder(self, session: dict[str, Any], *, files: tuple[str, ...] = ("summary.json",)) -> Path | None:
        path = Path(session["path"])
        return path if (path / "summary.json").is_file() else None
