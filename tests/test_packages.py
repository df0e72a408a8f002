"""A fresh machine after `./setup.sh run` has every tool the shipped scenarios start."""

from __future__ import annotations

import re

import pytest

from orchestrator import cli, packages, scenario

from testkit import REPO, path_without

SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


def run_packages() -> set[str]:
    text = (REPO / "setup.sh").read_text()
    m = re.search(r"^RUN_PACKAGES=\((.*?)\)", text, re.S | re.M)
    assert m, "setup.sh has no RUN_PACKAGES=(...) list"
    return set(m.group(1).split())


def test_every_tool_of_every_shipped_scenario_and_provider_is_in_the_run_set_up():
    pkgs = run_packages()
    wanted: dict[str, str] = {}
    for provider in ("local", "netns", "static"):
        for tool in packages.PROVIDER_TOOLS[provider]:
            wanted[tool] = f"provider {provider}"
    for path in SCENARIOS:
        sc = scenario.load(str(path), host_cpus=set(range(64))).scenario
        if sc.hosts.provider == "aws":
            continue  # its hosts get their tools from the deploy playbook
        for tool in packages.controller_tools(sc):
            wanted[tool] = path.name
    assert "sshd" in wanted and "nginx" in wanted  # the lab's and nginx.yaml's, found as such
    unknown = {t: w for t, w in wanted.items() if t not in packages.TOOL_PACKAGES}
    assert not unknown, f"tools with no package in packages.TOOL_PACKAGES: {unknown}"
    absent = {t: (packages.TOOL_PACKAGES[t], w) for t, w in wanted.items()
              if packages.TOOL_PACKAGES[t] not in pkgs}
    assert not absent, f"setup.sh RUN_PACKAGES lacks (tool: package, used by): {absent}"


def test_missing_line_names_the_package_and_the_command():
    assert str(packages.Missing("sshd", "openssh-server")) == \
        "sshd is missing: apt-get install -y openssh-server"


@pytest.fixture
def path_without_sshd(tmp_path, monkeypatch):
    """A PATH holding every tool this machine has except sshd (nothing else changed)."""
    bin_dir = path_without("sshd", tmp_path, also=("sh", "python3"))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("ORCHESTRATE_PATH_ONLY", "1")
    return bin_dir


def test_a_lab_scenario_without_sshd_names_the_package_and_starts_nothing(
        path_without_sshd, tmp_path, capsys):
    results = tmp_path / "results"
    rc = cli.main(["run", str(REPO / "scenarios" / "cross-host.yaml"), "--results", str(results),
                   "--history", str(tmp_path / "h.sqlite")])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "sshd is missing: apt-get install -y openssh-server" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not results.exists()  # no results folder: nothing was started
