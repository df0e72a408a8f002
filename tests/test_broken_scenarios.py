"""A corpus of broken scenario files: each gets exit 2 and located messages, never a traceback,
and `run` starts nothing for any of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testkit import REPO, orchestrate

CORPUS = REPO / "tests" / "data" / "broken"

EXPECTED = {
    "yaml_syntax": [(4, "YAML syntax error: expected ',' or ']'")],
    "tab_indent": [(3, "YAML syntax error: found character '\\t'")],
    "wrong_types": [(3, "server.threads: Input should be a valid integer"),
                    (4, "server.port: Input should be a valid integer"),
                    (6, "load.connections: Input should be a valid integer"),
                    (7, "repeat: Input should be a valid integer, got a number with a fractional part")],
    "overlapping_cpus": [(5, "load.cpus: overlaps server.cpus on CPU(s) [1]")],
    "unknown_provider": [(3, "hosts.provider: Input should be 'local', 'netns', 'static' or 'aws', "
                             "got 'kubernetes'")],
    "missing_inventory": [(2, "hosts.inventory: provider 'static' needs an Ansible inventory file")],
    "inventory_not_found": [(4, "hosts.inventory: no such inventory file: inventories/does-not-exist.ini")],
    "negative_durations": [(3, "load.duration: duration must be positive, got '-10s'"),
                           (4, "load.timeout: duration must be positive, got '0s'")],
    "huge_matrix": [(7, "repeat: the matrix expands to 1120 runs, more than max_runs=500")],
    "not_a_mapping": [(1, "a scenario is a YAML mapping")],
    "empty": [(1, "name: required key is missing")],
    "unknown_keys": [(3, "server.treads: unknown key 'treads'; did you mean 'threads'?"),
                     (4, "laod: unknown key 'laod'; did you mean 'load'?")],
    "bad_values": [(1, "name: String should match pattern"), (3, "server.port: Input should be less than "
                   "or equal to 65535, got 70000"), (4, "server.cpus: cannot read '0-' as CPUs")],
    "cpus_not_on_host": [(3, "server.cpus: CPU(s) [64] not available on this host")],
    "duplicate_key": [(3, "repeat: duplicate key; each key may appear once")],
    "binary": [(1, "not UTF-8 text (byte 0xff)")],
}


def test_the_corpus_is_covered():
    assert {p.stem for p in CORPUS.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_scenario(name, tmp_path):
    path = CORPUS / f"{name}.yaml"
    done = orchestrate("validate", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(EXPECTED[name]), lines
    for line, (lineno, text) in zip(lines, EXPECTED[name], strict=True):
        assert line.startswith(f"{path}:{lineno}: "), line
        assert text in line, line
        assert re.match(rf"{re.escape(str(path))}:\d+: ", line)


@pytest.mark.parametrize("name", ["wrong_types", "huge_matrix", "inventory_not_found", "binary"])
def test_run_starts_nothing_for_a_broken_scenario(name, tmp_path, run_id):
    done = orchestrate("run", str(CORPUS / f"{name}.yaml"), "--results", str(tmp_path / "r"),
                       "--run-id", run_id)
    assert done.returncode == 2
    assert not Path(tmp_path / "r").exists()
