"""Named variants: `variants: {name: {overrides...}}` is an axis whose values are whole blocks of
overrides, each validated as if written in place (FILE:LINE, exit 2), reachable with --set; and
scenarios/nginx-variants.yaml compares two nginx configs point by point on a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator import scenario
from orchestrator.errors import UserError
from orchestrator.plan import expand

from testkit import orchestrate

REPO = Path(__file__).resolve().parent.parent
NGINX = REPO / "scenarios" / "nginx-variants.yaml"

BASE = """\
name: v
hosts: {provider: local}
server:
  threads: 1
  cpus: [0]
load:
  tool: orchestrate-load
  connections: 8
  cpus: [1]
variants:
  small:
    server:
      body: "x"
  big:
    server:
      body: "{big}"
    load:
      method: POST
      body: "abc"
"""


def base(big: str = "y") -> str:
    return BASE.replace("{big}", big)


def problems(text: str, sets: list[str] | None = None) -> list[str]:
    with pytest.raises(UserError) as e:
        scenario.load("v.yaml", sets, text=text, host_cpus={0, 1})
    return [str(p) for p in e.value.problems]


def test_variants_are_an_axis_of_whole_blocks():
    loaded = scenario.load("v.yaml", text=base("y" * 100), host_cpus={0, 1})
    sc = loaded.scenario
    plan = expand(sc)
    assert [r.point["variant"] for r in plan.runs] == ["small", "big"]
    assert [r.run_id for r in plan.runs] == ["001-reuseport-t1-c8-small-r1", "002-reuseport-t1-c8-big-r1"]
    small, big = (scenario.for_point(sc, r.point) for r in plan.runs)
    assert (small.server.body, small.load.method) == ("x", "GET")
    assert (big.server.body, big.load.method, big.load.body) == ("y" * 100, "POST", "abc")
    assert big.server.threads == [1] and big.variants == {}  # the rest as the scenario has it
    assert scenario.at(sc, plan.runs[1].point, "load.method") == "POST"
    # --set reaches into a block like any key
    sc2 = scenario.load("v.yaml", ["variants.small.server.body=z"], text=base(),
                        host_cpus={0, 1}).scenario
    assert scenario.variant_scenario(sc2, "small").server.body == "z"


def test_a_block_is_validated_as_if_written_in_place():
    text = base().replace('      body: "abc"', '      body: "abc"\n      threadz: 2')
    assert problems(text) == ["v.yaml:20: variants.big.load.threadz: unknown key 'threadz'; did you "
                              "mean 'threads'? (expected one of: body, connections, cpus, duration, "
                              "headers, keepalive, method, path, pipeline, rate, search, threads, "
                              "timeout, tool, warmup)"]
    # a cross-key rule broken by the block, at the block's line
    text = base().replace("      method: POST", "      method: BREW")
    (line,) = problems(text)
    assert line.startswith("v.yaml:18: variants.big.load.method: the built-in server answers 405 to 'BREW'")
    # a rule broken by the merge of the block with the scenario: the scenario's key, the variant named
    text = base().replace("      body: \"abc\"", "      tool: wrk").replace(
        "  connections: 8", "  connections: 8\n  warmup: 1s")
    assert problems(text) == ["v.yaml:9: load.warmup: wrk has no warm-up; it needs load.tool: "
                              "orchestrate-load (with variant big)"]
    # an axis belongs to the matrix, not to a variant
    text = base().replace("    server:\n      body: \"x\"", "    server:\n      arch: main-sub")
    (line,) = problems(text)
    assert line.startswith("v.yaml:13: variants.small.server.arch: server.arch is an axis of the matrix")
    # through --set: the override is named instead of a line
    (line,) = problems(base(), ["variants.small.server.threadz=3"])
    assert line.startswith("v.yaml (--set variants.small.server.threadz=3): variants.small.server.threadz: "
                           "unknown key 'threadz'")


def test_validate_refuses_a_bad_variant_in_one_line_with_exit_2(tmp_path):
    bad = tmp_path / "v.yaml"
    bad.write_text(base().replace('      body: "x"', "      port: 99999"))
    done = orchestrate("validate", str(bad))
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith(str(bad))]
    assert len(lines) == 1 and lines[0].startswith(f"{bad}:13: variants.small.server.port: "), done.stderr


def _opens(raw: Path) -> int:
    """TCP passive opens over a run (nstat before and after, the server's kernel)."""
    def read(name: str) -> int:
        rows = [ln.split() for ln in (raw / name).read_text().splitlines() if ln.startswith("Tcp:")]
        return int(rows[1][rows[0].index("PassiveOpens")])
    return read("nstat-after.txt") - read("nstat-before.txt")


@pytest.mark.slow
def test_two_nginx_configs_compare_point_by_point(tmp_path, run_id):
    done = orchestrate("run", str(NGINX), "--results", str(tmp_path), "--run-id", run_id,
                       "--set", "load.duration=1s", "--set", "rounds=2", "--set", "telemetry=[]", timeout=300)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "nginx-variants" / run_id
    summary = json.loads((folder / "summary.json").read_text())
    variants = ["unlimited", "close-every-100"]
    # two rounds, each running both variants (in alternating order)
    assert sorted((r["repetition"], r["axes"]["variant"]) for r in summary["runs"]) == \
        sorted((k, v) for k in (1, 2) for v in variants)
    assert [p["axes"]["variant"] for p in summary["points"]] == variants
    # each run used its own block: nginx closes a connection every 100 requests in one of them
    for r in summary["runs"]:
        opens = _opens(folder / "raw" / r["run_id"] / "localhost")
        if r["axes"]["variant"] == "close-every-100":
            assert opens >= r["requests"] / 100 * 0.9, (opens, r["requests"])
        else:
            assert opens < 64 + 10, (opens, r["requests"])  # wrk's 64 connections and readiness probes
    assert "variant" in (folder / "metrics.csv").read_text().splitlines()[0].split(",")
    done = orchestrate("compare", str(folder), "--factor", "variant", "--baseline", "unlimited",
                       "--history", str(tmp_path / "h.sqlite"))
    assert done.returncode == 0, done.stderr
    assert "arch=nginx threads=1 connections=64: close-every-100 / unlimited req/s: " in done.stdout
    assert "(2 rounds)" in done.stdout
