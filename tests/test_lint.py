"""The code base stays ruff-clean (the rules are in pyproject.toml)."""

import shutil
import subprocess

from testkit import REPO


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(REPO / ".venv" / "bin")) or shutil.which("ruff")
    assert ruff, "ruff is a test dependency (pip install -e .[test])"
    done = subprocess.run([ruff, "check", "orchestrator", "tests", "server/tests", "bench"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
