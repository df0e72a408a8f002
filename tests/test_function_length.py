"""Short functions (issue 28): no function in orchestrator/ is over 60 lines unless argued.

A long function is allowed only when the first line of its body is a comment starting with
`# long:` that says why splitting it would not help (e.g. a declarative argparse builder).
"""

import ast
from pathlib import Path

import orchestrator

LIMIT = 60
ROOT = Path(orchestrator.__file__).parent


def _offenders(label: str, source: str) -> list[str]:
    """Functions in one source over LIMIT lines without a `# long:` reason, as 'label:name lines'."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source, label)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        assert node.end_lineno is not None
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        length = node.end_lineno - start + 1
        if length > LIMIT and not _argued(lines, node):
            found.append(f"{label}:{node.name} {length}")
    return found


def _argued(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether the first body line (a comment between signature and first statement) argues length."""
    for text in (lines[i].strip() for i in range(node.lineno, node.body[0].lineno)):
        if text.startswith("#"):
            return text.startswith("# long:") and len(text) > len("# long:") + 10
    return False


def test_no_function_is_long_without_an_argument() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        found += _offenders(str(path.relative_to(ROOT.parent)), path.read_text())
    assert found == []


def test_the_checker_fails_on_a_long_function_and_accepts_an_argued_one() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    assert _offenders("m", f"def f():\n{body}\n") == [f"m:f {LIMIT + 1}"]
    assert _offenders("m", f"def f():\n    # long: sixty literal assignments\n{body}\n") == []
    assert _offenders("m", f"def f():\n    # long\n{body}\n") == [f"m:f {LIMIT + 2}"]
    short = "\n".join(f"    x{i} = {i}" for i in range(LIMIT - 1))
    assert _offenders("m", f"def f():\n{short}\n") == []
