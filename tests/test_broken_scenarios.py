"""A corpus of broken scenario files: each gets exit 2 and located messages, never a traceback,
and `run` starts nothing for any of them.

The corpus goes through the CLI's own entry point in this process (`cli.main`: the argument
parsing, the loading and the error printing a user's `orchestrate validate` runs), 0.35 s of
interpreter start saved per file; `orchestrate validate` as a real process is checked once here
(`test_validate_as_a_process`) and in test_cli.py, and `run` below is always a real process."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator import cli

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
    "bad_size": [(5, "hosts.size.client.cpu: Input should be greater than or equal to 0.01, got 0"),
                 (6, "hosts.size.db.[key]: Input should be 'server' or 'client', got 'db'")],
    "size_beyond_cpuset": [(6, "hosts.size.server.cpu: 2 CPUs of time, but cpus gives the host only 1"),
                           (7, "hosts.size.server.cpus: server.cpus pins to CPU(s) [0], outside this "
                               "cpuset (1)")],
    "bad_search": [(4, "load.search: a capacity search paces requests at chosen rates; it needs "
                       "load.tool: orchestrate-load"),
                   (5, "load.search.slo: needs at least one latency bound, e.g. {p99: 2ms}"),
                   (7, "load.search.max_rate: must be above min_rate (5000); got 1000"),
                   (8, "load.search.precision: expected a percentage such as 2% or 2, got 'lots'")],
    "bad_autoscale": [(6, "hosts.roles.client.min: 4 is above max 2"),
                      (14, "load.rate: set either load.rate (fixed rates) or load.search (the rate is "
                           "searched), not both")],
    "binary": [(1, "not UTF-8 text (byte 0xff)")],
    # 9 levels of 9 aliases of the level before: 9^9 values once expanded; the first level past
    # the bound is f (line 7), found on the composed graph before anything expands it
    "alias_bomb": [(7, "this YAML expands to more than 100,000 values once its aliases are followed")],
}


def test_the_corpus_is_covered():
    assert {p.stem for p in CORPUS.glob("*.yaml")} == set(EXPECTED)


def check_refusal(name: str, returncode: int, stdout: str, stderr: str) -> None:
    """Exit 2 and, on stderr, exactly the expected FILE:LINE messages for this corpus file."""
    path = CORPUS / f"{name}.yaml"
    assert returncode == 2, stdout + stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == len(EXPECTED[name]), lines
    for line, (lineno, text) in zip(lines, EXPECTED[name], strict=True):
        assert line.startswith(f"{path}:{lineno}: "), line
        assert text in line, line
        assert re.match(rf"{re.escape(str(path))}:\d+: ", line)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_scenario(name, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # as the process below: relative inventories resolve from the checkout
    code = cli.main(["validate", str(CORPUS / f"{name}.yaml")])
    out = capsys.readouterr()
    check_refusal(name, code, out.out, out.err)


@pytest.mark.parametrize("name", ["unknown_keys", "alias_bomb"])
def test_validate_as_a_process(name):
    """The same refusal from `orchestrate validate` as a user runs it: real exit code and stderr."""
    done = orchestrate("validate", str(CORPUS / f"{name}.yaml"))
    check_refusal(name, done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("name", ["wrong_types", "huge_matrix", "inventory_not_found", "binary",
                                  "alias_bomb"])
def test_run_starts_nothing_for_a_broken_scenario(name, tmp_path, run_id):
    done = orchestrate("run", str(CORPUS / f"{name}.yaml"), "--results", str(tmp_path / "r"),
                       "--run-id", run_id)
    assert done.returncode == 2
    assert not Path(tmp_path / "r").exists()


def test_hostile_files_are_refused_in_bounded_time_and_memory(tmp_path):
    """Sizes first, then aliases; each a one-line refusal, exit 2, in well under a second of
    work and without the memory the expansion would take (capped here at 300 MiB)."""
    big = tmp_path / "big.yaml"
    big.write_text("name: big\ndescription: " + "x" * (2 << 20) + "\n")
    deep = tmp_path / "results" / "deep"
    deep.mkdir(parents=True)
    (deep / "summary.json").write_text("[" * 100_000 + "]" * 100_000)
    inventory = tmp_path / "bomb-inventory.yaml"
    inventory.write_text((CORPUS / "alias_bomb.yaml").read_text().replace("name: bomb", "all: {}"))
    scenario = tmp_path / "static.yaml"
    scenario.write_text(f"name: s\nhosts: {{provider: static, inventory: {inventory}}}\n")
    cases = [
        (("validate", str(big)),
         f"{big}: {big.stat().st_size:,} bytes; a scenario may have at most 1,048,576"),
        (("report", str(deep)), f"{deep / 'summary.json'}: nested too deeply to be a summary"),
        (("run", str(scenario), "--results", str(tmp_path / "r")),
         f"{inventory}:7: this YAML expands to more than 100,000 values"),
    ]
    for args, message in cases:
        limited = ["prlimit", f"--as={300 << 20}", "--", sys.executable, "-m", "orchestrator", *args]
        start = time.monotonic()
        done = subprocess.run(limited, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert done.returncode == 2, done.stderr
        said = done.stderr.strip().splitlines()
        assert said[-1].startswith(message), done.stderr  # one line says why ...
        assert len(said) == (2 if args[0] == "run" else 1), said  # ... after run's opening line
        assert time.monotonic() - start < 20
    assert not list((tmp_path / "r").glob("*/*"))  # the inventory was found bad late: no folder kept
