"""Every summary.json recorded in this repository (bench/, tests/) through today's code: it loads,
round-trips (what `report` rewrites is what the upgrade chain gives, and reads back equal), and
the history and dashboard read it as they did when the figures were recorded.

tests/data/recorded_history.json holds what the history made of each folder before history/
and site/ read the typed `Summary` (issue 28): its rows (sessions without their local path,
runs), the machine fingerprint, and the change-point series. A folder added under bench/ or
tests/ must be added there too (the test says so): regenerate it with the code of the day, and
read the diff.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from orchestrator import records, store
from orchestrator.history import changepoint, machine_fingerprint, record_history

REPO = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((Path(__file__).parent / "data" / "recorded_history.json").read_text())
FOLDERS = sorted(p.parent for p in [*REPO.glob("bench/**/summary.json"), *REPO.glob("tests/**/summary.json")])


def name(folder: Path) -> str:
    return folder.relative_to(REPO).as_posix()


def test_every_recorded_folder_is_covered():
    assert len(FOLDERS) >= 4
    assert sorted(map(name, FOLDERS)) == sorted(GOLDEN)


@pytest.mark.parametrize("folder", FOLDERS, ids=name)
def test_it_loads_and_round_trips(folder: Path):
    data = json.loads((folder / "summary.json").read_text())
    s = records.load(data, str(folder))
    upgraded = data
    while upgraded["version"] in records.UPGRADES:
        upgraded = records.UPGRADES[upgraded["version"]](upgraded)
    assert s.dump() == {**upgraded, "version": records.FORMAT_VERSION}  # nothing lost, nothing added
    assert records.load(s.dump()) == s
    assert len(s.runs) == len(data["runs"]) > 0


@pytest.mark.parametrize("folder", FOLDERS, ids=name)
def test_history_reads_it_as_it_did(folder: Path, tmp_path: Path):
    want = GOLDEN[name(folder)]
    db = tmp_path / "h.sqlite"
    record_history(json.loads((folder / "summary.json").read_text()), folder, db)  # as a dict
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.row_factory = sqlite3.Row
        sessions = [{k: v for k, v in dict(r).items() if k != "path"}
                    for r in con.execute("SELECT * FROM sessions")]
        runs = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY run_id")]
    assert sessions == want["sessions"]
    assert runs == want["runs"]
    record_history(records.load(json.loads((folder / "summary.json").read_text())), folder, db)
    with contextlib.closing(sqlite3.connect(db)) as con:  # as the record: the same rows
        con.row_factory = sqlite3.Row
        assert [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY run_id")] == runs
    typed = store.load_summary(folder)  # as readers get it (older CPU costs recounted)
    assert machine_fingerprint(typed) == want["fingerprint"]
    entries = {k[1].compact(): [list(e.__dict__.values()) for e in v]
               for k, v in changepoint.entries([typed]).items()}
    assert entries == want["entries"]
