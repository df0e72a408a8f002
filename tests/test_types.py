"""orchestrator/ type-checks with mypy (the settings are pyproject.toml's [tool.mypy]), and every
`# type: ignore` names its error code and says why on its line.

orchestrator/ is clean. KNOWN is where a file could wait while it is being reshaped (with its
count, for the record); a listed file that has become clean must leave the list, so it only shrinks.
"""

import re
import subprocess
import sys
from collections import Counter

from testkit import REPO

# file -> mypy errors it had when listed; empty since every file checks clean
KNOWN: dict[str, int] = {}
ERROR = re.compile(r"^(?P<file>[^:\s]+\.py):\d+: error: ", re.M)


def mypy_errors(*args: str) -> tuple[Counter[str], str]:
    done = subprocess.run([sys.executable, "-m", "mypy", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode in (0, 1), out  # 2: mypy itself failed (a bad config, a crash)
    return Counter(m["file"] for m in ERROR.finditer(out)), out


def test_mypy_is_clean_outside_the_known_files():
    errors, out = mypy_errors()
    new = {f: n for f, n in errors.items() if f not in KNOWN}
    assert not new, f"type errors in {new}:\n{out}"
    clean = sorted(f for f in KNOWN if not errors.get(f))
    assert not clean, f"{clean} type-check clean now: remove them from KNOWN"


def test_mypy_sees_an_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n")
    errors, out = mypy_errors("--cache-dir", str(tmp_path / "cache"), str(bad))
    assert errors == {str(bad): 1} and "Incompatible return value type" in out, out


IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
# file -> bare ignores it still had then, in files other work of this round is reshaping
KNOWN_BARE: dict[str, int] = {}


def test_every_type_ignore_names_its_code_and_a_reason():
    bare = []
    for path in sorted((REPO / "orchestrator").rglob("*.py")):
        name = str(path.relative_to(REPO))
        found = [f"{name}:{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1)
                 if (m := IGNORE.search(line))
                 and not re.match(r"\[[a-z-]+(,\s*[a-z-]+)*\]\s*(#\s*)?\S.{4,}", m["rest"].strip())]
        if len(found) > KNOWN_BARE.get(name, 0):
            bare += found
    assert not bare, "a `# type: ignore[code]` says why on its line:\n" + "\n".join(bare)
