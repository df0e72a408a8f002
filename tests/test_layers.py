"""Each module imports only its own layer or lower ones (DESIGN.md's pipeline, and
ARCHITECTURE.md): a pipeline step never reaches into report/, tool adapters know nothing of
scenarios, providers nothing of tools. Imports inside functions count too. Within a layer no
two modules import each other, even through others (no cycles), and every import is absolute."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "orchestrator"

# lowest first; a top-level name stands for its subpackage too (tools.wrk is "tools")
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "bounded", "cpus", "signals", "stats", "point", "check"}),  # no knowledge of
    # anything else (check: one check's outcome, made by doctor and by a provider's pre-flight)
    frozenset({"scenario", "plan", "tools", "records", "packages", "metrics"}),  # inputs, one adapter
    # per external tool, the records of results (runs, analyses, points, summaries), tools'
    # packages, the metrics a comparison reads from runs
    frozenset({"remote"}),  # commands and files on a host
    frozenset({"hosts", "deploy"}),  # providers, and Ansible on what they provide
    frozenset({"store", "history", "analysis", "capacity", "kernel"}),  # results folder, history;
    # verdicts (kernel: the TCP counters as their evidence), searches
    frozenset({"context", "baseline", "telemetry", "load", "doctor", "refs", "sysctl"}),  # pipeline
    # steps; host checks; the server built at git refs; the kernel settings a run applies and restores
    frozenset({"execute"}),  # the pipeline
    frozenset({"report", "compare", "noise", "cleanup", "site", "bisect", "explain"}),  # readers of
    # results (site: the dashboard; noise: the floor an A/A run measured; bisect: runs at refs)
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


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph(paths: list[Path], package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (a name imported from a package that is a
    module of its own counts as that module), inside functions too."""
    known = {module_name(p, package): p for p in paths}

    def resolve(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("orchestrator"):
                deps |= {resolve(f"{node.module}.{a.name}") for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {resolve(a.name) for a in node.names if a.name.startswith("orchestrator")}
        graph[name] = deps - {name, ""}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(module_graph(MODULES)) == []


def relative_imports(path: Path) -> list[int]:
    return [n.lineno for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.ImportFrom) and n.level > 0]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_are_absolute(path: Path):
    lines = relative_imports(path)
    assert not lines, f"relative imports at lines {lines}: write orchestrator.X in full"


def test_the_checks_see_a_cycle_and_a_relative_import(tmp_path: Path):
    pkg = tmp_path / "orchestrator"
    pkg.mkdir()
    (pkg / "a.py").write_text("from orchestrator import b\n")
    (pkg / "b.py").write_text("def f():\n    from orchestrator.c import x\n")
    (pkg / "c.py").write_text("import orchestrator.a\n")
    assert cycles(module_graph(sorted(pkg.glob("*.py")), pkg)) == [
        ["orchestrator.a", "orchestrator.b", "orchestrator.c"]]
    (pkg / "c.py").write_text("x = 1\n\n\ndef g():\n    from . import a\n")
    assert cycles(module_graph(sorted(pkg.glob("*.py")), pkg)) == []
    assert relative_imports(pkg / "c.py") == [5] and relative_imports(pkg / "b.py") == []
