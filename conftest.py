"""Hooks for the whole suite (tests/ and server/tests/ alike)."""

from __future__ import annotations

import os

import pytest

# Most tests start the CLI (`python -m orchestrator`, a real process). Where the environment sets
# PYTHONDONTWRITEBYTECODE (this machine and its CI do), each of those compiled orchestrator/ from
# source again; the processes the suite starts may keep their bytecode (in __pycache__/, ignored
# by git), so only the first one compiles.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skipped test is a failure: CI installs everything, so a skip hides a gap."""
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("CI") and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"skipped in CI, which must run every test: {rep.longrepr}"


# The fast tier (`./setup.sh test -m "not slow"`, under 2 minutes) is every test that starts no
# real process: what catches import, schema, analysis and report breakage. Every test under the
# C++ projects' own suites builds and runs a binary, and a test taking one of these fixtures
# brings up real hosts (a lab), a real service (moto) or a real run, so they are slow; so is any
# test marked by hand (`pytest.mark.slow`, module-wide as `pytestmark`). CI runs both tiers.
SLOW_DIRS = ("server/tests/", "loadgen/tests/")
SLOW_MODULES = frozenset({  # real processes without one of the fixtures below
    "tests/test_deploy.py",  # Ansible against lab hosts
    "tests/test_remote.py",  # SSH to lab hosts, timeouts that kill real commands
    "tests/hosts/test_aws.py", "tests/test_cli_aws.py",  # whole provisioning flows on moto
    "tests/hosts/test_sized.py",  # cgroups holding busy loops
    "tests/report/test_browser.py",  # Chromium
})
SLOW_FIXTURES = frozenset({"lab3", "make_lab", "moto_server", "run_id", "binaries", "generators",
                           "server_binary", "loopback_run", "native_run", "work_factor_run",
                           "warm_lab", "_warm_lab_session"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        fixtures = set(getattr(item, "fixturenames", ()))
        if path.startswith(SLOW_DIRS) or path in SLOW_MODULES or SLOW_FIXTURES & fixtures:
            item.add_marker(pytest.mark.slow)
