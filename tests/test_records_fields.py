"""Which record fields are optional, and why (issue 28: required fields are required).

A field of orchestrator/records.py that defaults to None is optional: some producer leaves it
out, or an older format did not keep it. Each says which on its own line (a `#` comment); a
field every producer writes is required (no default).

`python tests/test_records_fields.py` prints the count per record.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

RECORDS = Path(__file__).resolve().parent.parent / "orchestrator" / "records.py"

def optional_fields(source: str | None = None) -> dict[str, dict[str, str | None]]:
    """record -> {field: its line's comment, None without one} for each field declared with a
    None default (own declarations only: a subclass's inherited fields count once, where declared)."""
    text = RECORDS.read_text() if source is None else source
    lines = text.splitlines()
    out: dict[str, dict[str, str | None]] = {}
    for node in ast.parse(text).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = out.setdefault(node.name, {})
        for stmt in node.body:
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(stmt.value, ast.Constant) and stmt.value.value is None):
                line = lines[stmt.end_lineno - 1] if stmt.end_lineno else ""
                comment = line.split("#", 1)[1].strip() if "#" in line else None
                fields[stmt.target.id] = comment or None
        if not fields:
            del out[node.name]
    return out


def unexplained() -> dict[str, set[str]]:
    return {r: got for r, fs in optional_fields().items() if (got := {f for f, why in fs.items() if not why})}


def test_every_optional_field_says_why():
    assert not unexplained(), "optional fields without a reason on their line (say which producer omits it)"


def test_the_lister_sees_a_field_without_its_reason():
    src = ("class A(Record):\n    x: int | None = None\n    y: int | None = None  # old format\n"
           "    z: int = 0\n    w: int\n")
    assert optional_fields(src) == {"A": {"x": None, "y": "old format"}}


if __name__ == "__main__":
    total = 0
    for record, fields in optional_fields().items():
        total += len(fields)
        bare = sorted(f for f, why in fields.items() if not why)
        print(f"{record:18} {len(fields):3} optional, {len(bare):3} without a reason: {', '.join(bare)}")
    print(f"{total} optional fields", file=sys.stderr)
