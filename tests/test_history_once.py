"""A session goes into the history once, from execute.run's last step (issue 28): after what
`on_complete` adds to its folder (the CLI's report), for complete, failed and interrupted
sessions alike. The lab and the runs are stubbed: what is checked is the order of the ends."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from orchestrator import execute
from orchestrator.errors import Interrupted, RunFailed
from orchestrator.scenario import load

REPO = Path(__file__).resolve().parent.parent


class Recorder:
    """A history that notes each record and what the folder held then."""

    def __init__(self) -> None:
        self.records: list[tuple[str, set[str]]] = []

    def record(self, summary, folder: Path) -> str:
        self.records.append((summary.status, {p.name for p in folder.iterdir()}))
        return str(folder)


@pytest.fixture
def stubbed(monkeypatch):
    """execute.run with no lab and no runs; `fail` set makes the runs raise it."""
    history = Recorder()
    state: dict[str, BaseException | None] = {"fail": None}

    @contextlib.contextmanager
    def lab(*_a, **_k):
        yield type("Lab", (), {"hosts": ()})()

    def runs(*_a, **_k):
        if state["fail"] is not None:
            raise state["fail"]

    monkeypatch.setattr(execute, "open_history", lambda _spec: history)
    monkeypatch.setattr(execute._hosts, "open_lab", lab)
    monkeypatch.setattr(execute._hosts, "lock", lambda opened, _id: contextlib.nullcontext(opened))
    for name in ("_connect", "_host_noise", "_teardown"):
        monkeypatch.setattr(execute, name, lambda *_a, **_k: None)
    monkeypatch.setattr(execute, "_context", lambda *_a, **_k: None)
    monkeypatch.setattr(execute, "_execute", runs)
    return history, state


def _run(tmp_path: Path, run_id: str, on_complete=None):
    loaded = load(REPO / "scenarios" / "loopback.yaml", ["baseline.enabled=false"])
    return execute.run(loaded, results_root=tmp_path, run_id=run_id, progress=lambda _: None,
                       on_complete=on_complete)


def test_a_complete_session_is_indexed_once_after_on_complete(tmp_path, stubbed):
    history, _ = stubbed
    seen: list[str] = []

    def report(outcome: execute.Outcome) -> None:
        seen.append(outcome.summary.status)
        (outcome.results / "report.md").write_text("the report\n")

    done = _run(tmp_path, "once", report)
    assert seen == ["complete"]
    assert len(history.records) == 1
    status, files = history.records[0]
    assert status == "complete" and {"report.md", "summary.json"} <= files
    assert (done.results / "summary.json").is_file()


def test_a_failed_session_is_indexed_once_without_on_complete(tmp_path, stubbed):
    history, state = stubbed
    state["fail"] = RunFailed("boom", phase="run 1")
    called: list[object] = []
    with pytest.raises(RunFailed):
        _run(tmp_path, "fails", called.append)
    assert called == []
    assert [s for s, _ in history.records] == ["failed"]


def test_an_interrupted_session_is_indexed_once(tmp_path, stubbed):
    history, state = stubbed
    state["fail"] = Interrupted("SIGTERM")
    with pytest.raises(Interrupted):
        _run(tmp_path, "stopped", lambda _o: None)
    assert [s for s, _ in history.records] == ["interrupted"]


def test_on_complete_failing_still_indexes_the_session(tmp_path, stubbed):
    history, _ = stubbed

    def broken(_outcome: execute.Outcome) -> None:
        raise RunFailed("noise floor: too few rounds", phase="noise")

    with pytest.raises(RunFailed, match="noise floor"):
        _run(tmp_path, "late", broken)
    assert [s for s, _ in history.records] == ["complete"]
