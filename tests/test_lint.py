"""The code base stays ruff-clean (the rules are in pyproject.toml), and the playbooks pass
ansible-lint's production profile."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import REPO


def test_ruff_is_clean():
    ruff = (shutil.which("ruff", path=str(Path(sys.executable).parent))  # this interpreter's venv
            or shutil.which("ruff", path=str(REPO / ".venv" / "bin")) or shutil.which("ruff"))
    assert ruff, "ruff is a test dependency (pip install -e .[test])"
    done = subprocess.run([ruff, "check", "orchestrator", "tests", "server/tests", "bench"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _ansible_lint(path: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    """ansible-lint --profile production on `path`, offline: no collections or schemas are
    fetched and no cache is written under the project (--offline); Ansible's own home and
    ansible-lint's cache go to `scratch`."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "NO_COLOR": "1", "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")]),
           "ANSIBLE_HOME": str(scratch / "ansible"), "XDG_CACHE_HOME": str(scratch / "cache"),
           "ANSIBLE_LOCAL_TEMP": str(scratch / "tmp")}
    return subprocess.run([sys.executable, "-m", "ansiblelint", "--offline", "--profile", "production",
                           str(path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _written() -> set[str]:
    """Where a linter would leave files in the repository (a .ansible/ cache, say)."""
    return {p.name for p in REPO.iterdir()} | {str(p) for p in (REPO / "playbooks").rglob("*")}


@pytest.mark.slow  # ansible-lint takes seconds; ruff above is in the fast tier
def test_playbooks_pass_ansible_lint_production_profile(tmp_path):
    before = _written()
    done = _ansible_lint(Path("playbooks"), tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Profile 'production' was required, and it passed" in out, out
    assert _written() == before, "ansible-lint wrote into the repository"


@pytest.mark.slow
def test_ansible_lint_catches_a_violation(tmp_path):
    """The same run finds a command without changed_when: the rules are really applied."""
    copy = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", copy)
    with (copy / "roles" / "tools" / "tasks" / "main.yml").open("a") as f:
        f.write("\n- name: Report the date\n  ansible.builtin.command: date\n")
    done = _ansible_lint(copy, tmp_path / "scratch")
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "no-changed-when" in out, out
