"""Fixtures for the tool adapter tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def child_pids() -> set[int]:
    """Live (non-zombie) processes whose parent is this test process."""
    me, found = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


@pytest.fixture
def no_children():
    """Asserts that a test left no child process of its own alive."""
    before = child_pids()
    yield
    left = child_pids() - before
    assert not left, f"processes left running: {sorted(left)}"
