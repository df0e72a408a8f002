"""Each module imports only its own layer or lower ones (DESIGN.md's pipeline, and
ARCHITECTURE.md): a pipeline step never reaches into report/, tool adapters know nothing of
scenarios, providers nothing of tools. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "orchestrator"

# lowest first; a top-level name stands for its subpackage too (tools.wrk is "tools")
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "bounded", "cpus", "signals"}),  # no knowledge of anything else
    frozenset({"scenario", "plan", "tools", "records"}),  # inputs, one adapter per external tool,
    # and the records of results (runs, analyses, points, summaries)
    frozenset({"remote"}),  # commands and files on a host
    frozenset({"hosts", "deploy"}),  # providers, and Ansible on what they provide
    frozenset({"store", "history", "analysis", "capacity"}),  # results folder, history; verdicts, searches
    frozenset({"context", "baseline", "telemetry", "load"}),  # pipeline steps
    frozenset({"execute"}),  # the pipeline
    frozenset({"report", "compare", "cleanup", "site"}),  # readers of results (site: the dashboard)
    frozenset({"cli", "__main__"}),
)
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}
# narrower rules than the layers alone give
FORBIDDEN = {"tools": {"scenario", "plan"}, "hosts": {"tools"}}


def top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("orchestrator"):
            found |= ({f"{node.module}.{a.name}" for a in node.names} if node.module == "orchestrator"
                      else {node.module})
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("orchestrator.")}
    return {top(m) for m in found} - {""}


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    names = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES} - {"__init__"}
    assert names <= set(LEVEL), names - set(LEVEL)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_upward(path: Path):
    me = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if me == "__init__":
        return
    upward = {m for m in imports(path) if LEVEL[m] > LEVEL[me]}
    assert not upward, f"{me} (layer {LEVEL[me]}) imports {sorted(upward)} from a higher layer"
    assert not imports(path) & FORBIDDEN.get(me, set())


def test_the_check_sees_an_upward_import(tmp_path: Path):
    bad = tmp_path / "telemetry.py"
    bad.write_text("def f():\n    from orchestrator.report import flamegraph\n")
    assert imports(bad) == {"report"} and LEVEL["report"] > LEVEL["telemetry"]
