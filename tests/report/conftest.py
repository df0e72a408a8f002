"""Fixtures for the report tests (helpers live in report_fixtures.py: "conftest" is not a unique name)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import SAMPLE, fabricate_analysis, write_summary


@pytest.fixture
def real_summary() -> dict[str, Any]:
    return json.loads((SAMPLE / "summary.json").read_text())


@pytest.fixture
def real_folder(tmp_path: Path) -> Path:
    """A copy of the real results folder as captured (no analysis): build() writes into it."""
    dest = tmp_path / "real"
    shutil.copytree(SAMPLE, dest)
    return dest


@pytest.fixture
def analysed_folder(tmp_path: Path, real_summary: dict[str, Any]) -> Path:
    """The real folder plus fabricated analysis (test input) and a flame graph file for run 1."""
    s = fabricate_analysis(real_summary)
    folder = write_summary(tmp_path / "analysed", s)
    svg = folder / s["runs"][0]["perf"]["flamegraph"]
    svg.parent.mkdir(parents=True)
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    return folder
