"""The results folder: results/<scenario>/<run-id>/ with raw outputs, summary.json and metrics.csv.

Every file is written to a temporary name and renamed into place, so a crash
or a full disk never leaves a half-written summary behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestrator import bounded, records
from orchestrator.records import Summary  # summary.json: its format, versions and upgrades

MAX_SUMMARY_BYTES = 256 * bounded.MiB  # thousands of runs with their telemetry fit in far less


def new_run_id(now: float | None = None) -> str:
    """Sortable and unique: 20261127-101500-3fa2."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ResultsDir:
    """One results folder. Paths inside it are fixed so tools and people can find things."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, root: Path, scenario: str, run_id: str) -> ResultsDir:
        path = root / scenario / run_id
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def write_text(self, name: str, text: str) -> Path:
        p = self.path / name
        atomic_write(p, text)
        return p

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")

    def raw(self, run: str, host: str, tool: str) -> Path:
        """Where a tool's raw output for one run on one host is kept."""
        return self.path / "raw" / run / host / f"{tool}.txt"

    def save_summary(self, summary: Summary | dict[str, Any]) -> None:
        """summary.json (the current format) and metrics.csv. execute hands the record; a dict
        (tests, tools) goes through the typed record first, so what is written always reads back;
        a field of the wrong kind there is our bug (pydantic's ValidationError), not bad input."""
        if not isinstance(summary, Summary):
            summary = Summary.model_validate({k: v for k, v in summary.items() if k != "version"})
        data = summary.dump()
        self.write_json("summary.json", data)
        self.write_text("metrics.csv", metrics_csv(data.get("runs", [])))


# Bulky per-run detail that stays in summary.json / runs/*.json, not in the CSV (lists too:
# the per-client results, the server's threads).
CSV_SKIP = {"telemetry", "affinity", "window", "server_counters", "cpus", "axes"}


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> one level with dotted keys; lists and bulky detail are left out of the CSV."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k in CSV_SKIP:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif not isinstance(v, list):
            out[key] = v
    return out


def metrics_csv(runs: list[dict[str, Any]]) -> str:
    """One row per run: first its point, one column per axis named by its key (server.arch,
    server.work_us, load.keepalive, ...; an axis no run set is left out), then its figures."""
    keys = [records.Run.model_validate(r).key for r in runs]
    axes: list[str] = []
    for k in keys:
        axes += [a for a, v in k.items() if v is not None and a not in axes]
    rows = [{**{a: k.get(a) for a in axes}, **flatten(r)} for k, r in zip(keys, runs, strict=True)]
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def load_summary(folder: Path) -> Summary:
    """A results folder's summary, upgraded from an older format (records.load); anything
    that is not one is refused in one line naming the file."""
    from orchestrator.errors import UserError

    p = folder / "summary.json"
    try:
        data = json.loads(bounded.read_text(p, limit=MAX_SUMMARY_BYTES, what="summary.json"))
    except FileNotFoundError:
        raise UserError(f"{p}: no summary.json here; is this a results folder?") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{p}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise UserError(f"{p}: nested too deeply to be a summary") from None
    from orchestrator.analysis import upgrade_costs

    # CPU µs per request recorded before softirq was counted once are recounted from the run's
    # own figures, so compare, gate and history show no step that is only that fix
    return upgrade_costs(records.load(data, str(p)))
