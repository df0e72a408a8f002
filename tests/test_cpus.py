"""CPU lists in the kernel's format: one parser and one writer for the whole tool."""

from __future__ import annotations

import pytest

from orchestrator import cpus


def test_parse_list():
    assert cpus.parse_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert cpus.parse_list("") == [] and cpus.parse_list(" 5 ") == [5]
    assert cpus.parse_list("4,0") == [4, 0]  # a user's order means something: kept


@pytest.mark.parametrize("bad", ["a", "1-", "3-1", "1,,x", "-2", "1.5"])
def test_parse_list_refuses_what_is_not_a_cpu_list(bad):
    with pytest.raises(ValueError, match="as CPUs"):
        cpus.parse_list(bad)


def test_ranges_is_the_inverse():
    assert cpus.ranges([8, 0, 1, 2, 3, 11, 10]) == "0-3,8,10-11"
    assert cpus.ranges([]) == "" and cpus.ranges([7]) == "7"
    for text in ("0-3,8,10-11", "1", "0,2,4"):
        assert cpus.ranges(cpus.parse_list(text)) == text
