"""Fixtures for the report tests (helpers live in report_fixtures.py: "conftest" is not a unique name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import CLOSED, OPEN, SAMPLE, analysed, copy_folder

from orchestrator import store
from orchestrator.records import Summary


@pytest.fixture(scope="session")
def closed_summary() -> Summary:
    """The recorded closed-loop run, analysed by the current rules."""
    return analysed(store.load_summary(CLOSED))


@pytest.fixture(scope="session")
def open_summary() -> Summary:
    return analysed(store.load_summary(OPEN))


@pytest.fixture(scope="session")
def old_summary() -> Summary:
    """The version-1 sample as loaded (upgraded, never analysed)."""
    return store.load_summary(SAMPLE)


@pytest.fixture
def old_folder(tmp_path: Path) -> Path:
    """A copy of the version-1 folder as captured (no analysis): build() writes into it."""
    return copy_folder(SAMPLE, tmp_path / "old", analyse=False)


@pytest.fixture
def analysed_folder(tmp_path: Path) -> Path:
    """A copy of the recorded closed-loop folder, analysed again (as `orchestrate report` does)."""
    return copy_folder(CLOSED, tmp_path / "analysed")


@pytest.fixture
def open_folder(tmp_path: Path) -> Path:
    return copy_folder(OPEN, tmp_path / "open")
