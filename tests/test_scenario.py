from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from orchestrator import scenario
from orchestrator.errors import UserError

from testkit import orchestrate

CPUS = {0, 1}


def load(text: str, sets=None):
    return scenario.load("s.yaml", sets, text=textwrap.dedent(text), host_cpus=CPUS)


def problems(text: str, sets=None) -> list[str]:
    with pytest.raises(UserError) as exc:
        load(text, sets)
    return exc.value.lines()


def test_minimal_scenario_gets_defaults():
    sc = load("name: x\n").scenario
    assert sc.hosts.provider == "local"
    assert sc.server.arch == ["reuseport"] and sc.load.connections == [64]
    assert sc.telemetry.collectors == ["pidstat", "mpstat", "sar"] and sc.telemetry.cpus is None


def test_durations_and_matrix_axes_normalise():
    sc = load("""
        name: x
        server: {arch: [reuseport, main-sub], threads: 2, cpus: "0"}
        load: {duration: 1m30s, timeout: 2s, connections: [8, 16], cpus: [1]}
    """).scenario
    assert sc.load.duration == 90.0 and sc.load.timeout == 2.0
    assert sc.server.threads == [2] and sc.load.connections == [8, 16]


@pytest.mark.parametrize("text, expected", [
    ("10s", 10.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), (3, 3.0), ("1.5s", 1.5)])
def test_parse_duration(text, expected):
    assert scenario.parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["10 parsecs", "-3s", "0s", "", "s10", True, [1]])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        scenario.parse_duration(bad)


def test_cpu_keywords_resolve_against_the_host():
    assert scenario.resolve_cpus("even", [0, 1, 2, 3]) == [0, 2]
    assert scenario.resolve_cpus("odd", [0, 1, 2, 3]) == [1, 3]
    assert scenario.resolve_cpus("all", {3, 1}) == [1, 3]
    assert scenario.parse_cpus("0-2,5") == [0, 1, 2, 5]


def test_three_mistakes_give_three_located_messages():
    lines = problems("""
        name: three
        server:
          threads: two
        load:
          conections: 64
          duration: 10 parsecs
    """)
    assert lines == [
        "s.yaml:4: server.threads: Input should be a valid integer, unable to parse string as an "
        "integer, got 'two'",
        "s.yaml:6: load.conections: unknown key 'conections'; did you mean 'connections'? "
        "(expected one of: body, connections, cpus, duration, headers, keepalive, method, path, "
        "pipeline, rate, search, threads, timeout, tool, warmup)",
        "s.yaml:7: load.duration: cannot read '10 parsecs' as a duration; expected e.g. 10s, 500ms, 1m30s",
    ]


def test_missing_required_key_and_wrong_type_at_top():
    lines = problems("repeat: many\n")
    assert any(line.startswith("s.yaml:1: name: required key is missing") for line in lines)
    assert any("repeat:" in line and "valid integer" in line for line in lines)


def test_overlapping_and_missing_cpus_are_reported_even_with_other_errors():
    lines = problems("""
        name: x
        server: {cpus: [0, 1], port: not-a-port}
        load: {cpus: [1, 9]}
    """)
    text = "\n".join(lines)
    assert "s.yaml:3: server.port:" in text
    assert "s.yaml:4: load.cpus: overlaps server.cpus on CPU(s) [1]" in text
    assert "s.yaml:4: load.cpus: CPU(s) [9] not available on this host (it has 0-1)" in text


def test_yaml_syntax_error_has_a_line():
    lines = problems("name: x\nserver:\n  arch: [reuseport\n  threads: 1\n")
    assert len(lines) == 1 and lines[0].startswith("s.yaml:") and "YAML syntax error" in lines[0]
    assert lines[0].split(":")[1].isdigit()


def test_duplicate_keys_are_refused():
    lines = problems("name: x\nrepeat: 1\nrepeat: 2\n")
    assert lines == ["s.yaml:3: repeat: duplicate key; each key may appear once"]


def test_unknown_provider_and_arch_suggest():
    lines = problems("name: x\nhosts: {provider: netnz}\nserver: {arch: reuseprot}\n")
    text = "\n".join(lines)
    assert "s.yaml:2: hosts.provider:" in text and "'local', 'netns', 'static' or 'aws'" in text
    assert "s.yaml:3: server.arch: unknown architecture 'reuseprot'; did you mean 'reuseport'?" in text


def test_set_overrides_are_validated_like_the_file():
    sc = load("name: x\n", ["load.connections=[1, 2]", "server.port=9000"]).scenario
    assert sc.load.connections == [1, 2] and sc.server.port == 9000
    lines = problems("name: x\n", ["load.duration=soon"])
    assert lines == ["s.yaml (--set load.duration=soon): load.duration: cannot read 'soon' as a "
                     "duration; expected e.g. 10s, 500ms, 1m30s"]


def test_huge_matrix_is_refused():
    lines = problems("name: x\nload: {connections: [1,2,3,4,5,6,7,8,9,10]}\nrepeat: 100\n")
    assert any("1000 runs, more than max_runs=500" in line for line in lines)


def test_static_needs_an_inventory():
    lines = problems("name: x\nhosts: {provider: static}\nserver: {cpus: [0]}\nload: {cpus: [0]}\n")
    assert lines == ["s.yaml:2: hosts.inventory: provider 'static' needs an Ansible inventory file"]


def test_shipped_scenarios_are_valid(repo):
    for path in sorted((repo / "scenarios").glob("*.yaml")):
        loaded = scenario.load(path, host_cpus=set(range(16)))
        assert loaded.scenario.name


def test_wrk_durations_are_whole_seconds():
    assert problems("name: x\nload: {duration: 1500ms, timeout: 2s}\n") == [
        "s.yaml:2: load.duration: wrk takes whole seconds; got 1.5s"]


# --- the JSON Schema editors check scenarios against ------------------------------------

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "scenarios" / "scenario.schema.json"


def test_the_shipped_schema_is_the_one_the_models_give():
    # regenerate with: orchestrate schema -o orchestrator/defaults/scenario.schema.json
    assert json.loads(SCHEMA_FILE.read_text()) == scenario.json_schema()
    done = orchestrate("schema")
    assert done.returncode == 0 and json.loads(done.stdout) == scenario.json_schema()


def test_every_shipped_scenario_points_to_the_schema_and_passes_it():
    import jsonschema
    import yaml

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    shipped = sorted(SCHEMA_FILE.parent.glob("*.yaml"))
    assert len(shipped) >= 8
    for path in shipped:
        text = path.read_text()
        assert text.startswith("# yaml-language-server: $schema=scenario.schema.json\n"), path
        assert (path.parent / "scenario.schema.json").is_file()  # resolves beside the file
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(text))]
        assert errors == [], (path, errors)


@pytest.mark.parametrize("bad", [
    {"name": "x", "load": {"duraton": "10s"}},  # a typo an editor should underline
    {"name": "x", "load": {"duration": "10 parsecs"}},
    {"name": "x", "server": {"cpus": "evens"}},
    {"name": "x", "telemetry": ["pidstat", "top"]},
])
def test_the_schema_refuses_what_validation_refuses(bad):
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    assert list(validator.iter_errors(bad))
    with pytest.raises(UserError):
        load(json.dumps(bad))


def test_the_schema_takes_every_short_form_validation_takes():
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    good = {"name": "x", "server": {"arch": "reuseport", "threads": 2, "cpus": "0,2"},
            "load": {"connections": 64, "duration": "1m30s", "cpus": "odd"},
            "telemetry": {"collectors": ["mpstat"], "cpus": [3]}}
    assert list(validator.iter_errors(good)) == []
    scenario.load("x.yaml", text=json.dumps(good), host_cpus={0, 1, 2, 3})


def test_link_caps_a_packet_rate_or_a_bandwidth_with_a_queue():
    sc = load("name: x\nhosts: {provider: netns, link: {rate: 2.5gbit, queue: 30000}}\n").scenario
    assert (sc.hosts.link.rate, sc.hosts.link.queue, sc.hosts.link.pps) == (2_500_000_000, 30000, None)
    assert load("name: x\nhosts: {provider: netns, link: {rate: 50000}}\n").scenario.hosts.link.rate == 50000
    got = problems("name: x\nhosts: {provider: netns, link: {pps: 1000, rate: 10mbit}}\n")
    assert any("hosts.link.rate" in p and "not both" in p for p in got), got
    got = problems("name: x\nhosts: {provider: netns, link: {queue: 1000}}\n")
    assert any("hosts.link.queue" in p and "set pps or rate" in p for p in got), got
    got = problems("name: x\nhosts: {link: {rate: fast}}\n")
    assert any("hosts.link.rate" in p and "not a bit rate" in p for p in got), got
