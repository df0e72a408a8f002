"""The SQLite history's schema migration: a database written before N-axis points (user_version
0, a point as arch/server_threads/connections columns) is upgraded on open, keeps its rows, and
its runs compare against new ones point by point."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from orchestrator import compare, records, store
from orchestrator.errors import UserError
from orchestrator.history import history_frame, history_sessions, open_history, record_history
from orchestrator.history.sqlite import SCHEMA_VERSION, row_point
from orchestrator.point import PointKey

from testkit import run_record, session

DATA = Path(__file__).parent.parent / "report" / "data"

# the schema as version 0 wrote it (before this migration), verbatim
OLD_SCHEMA = """
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


def old_database(db: Path, folder: Path) -> dict:
    """A version-0 database indexing a version-2 results folder, written as the old code did."""
    data = json.loads((folder / "summary.json").read_text())
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.executescript(OLD_SCHEMA)
        con.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?)",
                    (data["run_id"], data["scenario"], data["started"], data["finished"], data["status"],
                     data["provider"], "m", str(folder), len(data["runs"])))
        for r in data["runs"]:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (data["run_id"], r["run_id"], data["scenario"], data["started"], "m", r["arch"],
                         r["server_threads"], r["connections"], r["repetition"], r["qps"], None, None, 0,
                         None, None, None, None))
        con.execute("INSERT INTO gates VALUES (?, ?)", (data["run_id"], json.dumps({"regressed": []})))
    return data


def test_an_old_history_is_migrated_and_compares_with_new_runs(tmp_path):
    old_folder = tmp_path / "old"
    shutil.copytree(DATA / "closed-loop", old_folder)
    db = tmp_path / "history.sqlite"
    data = old_database(db, old_folder)

    (session,) = history_sessions(db)  # opening migrates
    assert session["results_id"] == data["run_id"]
    with contextlib.closing(sqlite3.connect(db)) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
        rows = con.execute("SELECT arch, point, point_label FROM runs ORDER BY run_id").fetchall()
    assert len(rows) == len(data["runs"])
    arch, point, label = rows[0]
    assert json.loads(point) == {"server.arch": arch, "server.threads": 1, "load.connections": 64,
                                 "load.rate": None}
    assert label == f"{arch} threads=1 conns=64"
    assert open_history(db).gates() == {data["run_id"]: {"regressed": []}}  # kept

    # a new run of the same scenario, format 3, recorded into the migrated database
    new = records.load(data).model_copy(update={"run_id": "new", "started": "2026-12-06T00:00:00Z"})
    new_folder = tmp_path / "new"
    new_folder.mkdir()
    store.ResultsDir(new_folder).save_summary(new)
    record_history(new, new_folder, db)
    df = history_frame(db)
    assert len(df) == 2 * len(data["runs"]) and set(df["results_id"]) == {data["run_id"], "new"}
    assert df["server.threads"].notna().all() and list(df.columns).count("server.arch") == 1

    # compare against the newest earlier complete run: the old one, point by point
    name, baseline = compare.baseline("latest", scenario=data["scenario"], history=open_history(db),
                                      exclude="new")
    assert name == f"latest ({data['run_id']})"
    c = compare.compare(baseline, store.load_summary(new_folder))
    assert len(c.changes) == len({r.key for r in new.runs}) and not c.only_a and not c.only_b


def test_points_with_more_axes_are_kept_whole(tmp_path):
    db = tmp_path / "h.sqlite"
    runs = [run_record(run_id=f"r{w}{ka}", connections=8, qps=100.0 - w,
                       axes={"server.work_us": w, "load.keepalive": ka})
            for w in (0, 5) for ka in (True, False)]
    summary = session(scenario="s", run_id="x", runs=runs)
    record_history(summary, tmp_path, db)
    df = history_frame(db)
    assert sorted(zip(df["server.work_us"], df["load.keepalive"], strict=True)) == \
        [(0, False), (0, True), (5, False), (5, True)]
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.row_factory = sqlite3.Row
        points = {row_point(dict(r)) for r in con.execute("SELECT point FROM runs")}
    assert PointKey({"server.arch": "reuseport", "server.threads": 1, "load.connections": 8,
                     "load.rate": None, "server.work_us": 5, "load.keepalive": False}) in points
    assert len(points) == 4


def test_a_newer_database_is_refused(tmp_path):
    db = tmp_path / "h.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA user_version = 99")
    with pytest.raises(UserError, match="version 99 was written by a newer orchestrate"):
        history_sessions(db)


def test_a_run_without_error_counters_has_null_errors_not_zero(tmp_path):
    # issue 22: not measured is not 0 errors (the row's count is Errors.total, the record's own)
    counts = {"none": None, "part": {"connect": 0, "read": 2},
              "all": {"connect": 0, "read": 2, "write": 0, "timeout": 1}}
    runs = [run_record(run_id=rid, connections=8, qps=10.0, **({"errors": e} if e is not None else {}))
            for rid, e in counts.items()]
    db = tmp_path / "h.sqlite"
    record_history(session(scenario="s", run_id="e", runs=runs), tmp_path, db)
    with contextlib.closing(sqlite3.connect(db)) as con:
        got = dict(con.execute("SELECT run_id, errors FROM runs").fetchall())
    assert got == {"none": None, "part": None, "all": 3}
