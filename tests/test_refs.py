"""server.ref: refs resolved, built through a worktree, cached by every build input.

A scratch repository with the project's layout (server/ with a cpp-common link to ../cpp-common)
and a tiny server, so each real compile takes about a second: a build once per input set, a
rebuild for a change under cpp-common/ alone, the compiler's first error, an unknown ref, and a
flag an older build lacks read from its --help.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator import refs
from orchestrator.errors import RunFailed, UserError

import testkit

pytestmark = pytest.mark.slow  # real compiles (small ones)

MAIN = """\
#include <cstdio>
#include <cstring>
#include "version.h"
int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--help") == 0) {
    std::puts("usage: orchestrate-server --arch A --threads N --cpus C --acceptor-cpu C "
              "--bind B --port P --body T" FLAGS);
    return 0;
  }
  std::printf("%d\\n", VERSION);
  return 0;
}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> SimpleNamespace:
    repo = tmp_path_factory.mktemp("scratch")
    git(repo, "init", "-q")
    (repo / "server").mkdir()
    (repo / "server" / "cpp-common").symlink_to("../cpp-common")
    c1 = commit(repo, {
        "server/CMakeLists.txt": textwrap.dedent("""\
            cmake_minimum_required(VERSION 3.16)
            project(scratch LANGUAGES CXX)
            add_executable(orchestrate-server main.cc)
            target_include_directories(orchestrate-server PRIVATE cpp-common/include)
            """),
        "server/main.cc": MAIN,
        "cpp-common/include/version.h": '#define VERSION 1\n#define FLAGS ""\n',
        "README.md": "scratch\n"}, "first")
    c2 = commit(repo, {"README.md": "scratch, docs only\n"}, "docs only")
    c3 = commit(repo, {"cpp-common/include/version.h": '#define VERSION 2\n#define FLAGS " --work-us N"\n'},
                "cpp-common: version 2, --work-us")
    c4 = commit(repo, {"server/main.cc": MAIN.replace("return 0;\n}", "return 0 }")}, "broken")
    cache = tmp_path_factory.mktemp("cache")
    return SimpleNamespace(repo=repo, c1=c1, c2=c2, c3=c3, c4=c4, cache=cache)


def test_same_inputs_build_once_and_cpp_common_alone_rebuilds(scratch):
    one, two, three = (refs.resolve(r, scratch.repo) for r in (scratch.c1, "HEAD~2", scratch.c3))
    assert two.sha == scratch.c2 and two.subject == "docs only"
    # The key covers cpp-common/: the server/ tree is the same at c2 and c3, the key is not.
    assert git(scratch.repo, "rev-parse", f"{scratch.c2}:server") == git(scratch.repo, "rev-parse",
                                                                           f"{scratch.c3}:server")
    assert refs.inputs_key(one, scratch.repo) == refs.inputs_key(two, scratch.repo)
    assert refs.inputs_key(two, scratch.repo) != refs.inputs_key(three, scratch.repo)

    built = [refs.build(c, scratch.repo, cache=scratch.cache) for c in (one, two, three)]
    assert [b.cached for b in built] == [False, True, False]
    assert built[0].binary == built[1].binary != built[2].binary
    outputs = [subprocess.run([b.binary], capture_output=True, text=True).stdout.strip() for b in built]
    assert outputs == ["1", "1", "2"]
    assert "--work-us" not in built[0].flags and "--work-us" in built[2].flags
    # The worktrees are gone again.
    assert git(scratch.repo, "worktree", "list").count("\n") == 0


def test_a_ref_that_does_not_build_names_the_ref_and_the_first_error(scratch):
    with pytest.raises(RunFailed) as err:
        refs.build(refs.resolve(scratch.c4, scratch.repo), scratch.repo, cache=scratch.cache)
    text = str(err.value)
    assert f"server.ref {scratch.c4} ({scratch.c4[:12]}) does not build" in text
    assert "main.cc" in text and "error" in text
    assert err.value.exit_code == 1


def test_an_unknown_ref_is_a_user_error(scratch):
    with pytest.raises(UserError) as err:
        refs.resolve("no-such-branch", scratch.repo)
    assert str(err.value) == f"server.ref no-such-branch: no such commit in {scratch.repo}"


def scenario_file(tmp_path: Path, scratch, ref: str | list[str], work_us: int = 0) -> Path:
    path = tmp_path / "refs.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: refs-test
        hosts: {{provider: local}}
        server: {{ref: {ref}, repo: {scratch.repo}, work_us: {work_us}}}
        load: {{duration: 1s}}
        baseline: {{enabled: false}}
        """))
    return path


def test_cli_unknown_ref_exit_2_bad_build_exit_1_before_any_load(scratch, tmp_path):
    env = {"ORCHESTRATE_BUILD_CACHE": str(scratch.cache)}
    results = tmp_path / "results"
    unknown = testkit.orchestrate("run", str(scenario_file(tmp_path, scratch, "[HEAD, nope]")),
                                  "--results", str(results), env=env)
    assert unknown.returncode == 2, unknown.stderr
    assert unknown.stderr.strip().splitlines()[-1] == f"server.ref nope: no such commit in {scratch.repo}"
    broken = testkit.orchestrate("run", str(scenario_file(tmp_path, scratch, f"[{scratch.c1}, HEAD]")),
                                 "--results", str(results), env=env)
    assert broken.returncode == 1, broken.stderr
    assert "server.ref HEAD (" in broken.stderr and "does not build" in broken.stderr
    assert "error" in broken.stderr.splitlines()[-1]
    assert not results.exists()  # nothing was provisioned, no run started


def test_a_flag_the_older_build_lacks_is_refused_with_the_reason(scratch, tmp_path):
    env = {"ORCHESTRATE_BUILD_CACHE": str(scratch.cache)}
    done = testkit.orchestrate("run", str(scenario_file(tmp_path, scratch, f"[{scratch.c1}, {scratch.c3}]",
                                                        work_us=5)),
                               "--results", str(tmp_path / "results"), env=env)
    assert done.returncode == 2, done.stderr
    assert (f"server.ref {scratch.c1} ({scratch.c1[:12]}): its server has no --work-us (not in its "
            "--help), which this scenario needs (server.work_us > 0)") in done.stderr


def test_plan_shows_the_build_cost(scratch, tmp_path):
    env = {"ORCHESTRATE_BUILD_CACHE": str(scratch.cache)}
    sc = scenario_file(tmp_path, scratch, f"[{scratch.c1}, {scratch.c2}]")
    done = testkit.orchestrate("plan", str(sc), env={"ORCHESTRATE_BUILD_CACHE": str(tmp_path / "empty")})
    assert done.returncode == 0, done.stderr
    assert f"server.ref {scratch.c2} = {scratch.c2[:12]} 'docs only'" in done.stdout
    assert f"same build inputs as {scratch.c1}: built once" in done.stdout
    assert "builds: 1 of 1 distinct input set(s) to build" in done.stdout
    cached = testkit.orchestrate("plan", str(sc), env=env)
    assert "builds: 0 of 1 distinct input set(s) to build, ~0s" in cached.stdout, cached.stdout


def test_refs_build_on_the_server_hosts_through_the_build_role(scratch, tmp_path):
    """Remote server hosts build each ref from its own sources through the playbooks' build role
    (deploy_refs), into a root of its own: a real netns lab host over ssh, two refs with
    different inputs, each binary the one its commit builds (it prints its version)."""
    import dataclasses
    import os

    from orchestrator.hosts import Lab, netns

    root = tmp_path / "opt"  # a fresh root: each ref really builds there
    built = {r: refs.build(refs.resolve(r, scratch.repo), scratch.repo, cache=scratch.cache)
             for r in (scratch.c1, scratch.c3)}
    name = f"t{os.getpid() % 100000}-refs"
    st = netns.up(name, 1)
    said: list[str] = []
    try:
        (server,) = [dataclasses.replace(h, vars={**h.vars, "orchestrate_root": str(root)})
                     for h in netns.hosts_of(st, run_id="refs")]
        refs.deploy_refs(Lab("netns", (server,)), built, repo=scratch.repo, log_dir=tmp_path,
                         progress=said.append)
    finally:
        netns.down(name)
    assert said == [f"orchestrate: building the server at {r} ({b.commit.short}) on the server hosts"
                    for r, b in built.items()]
    for version, b in zip(("1", "2"), built.values(), strict=True):
        binary = Path(refs.remote_binary(str(root), b.key))  # a netns host shares this filesystem
        assert subprocess.run([str(binary)], capture_output=True, text=True).stdout.strip() == version
        log = (tmp_path / f"deploy-ref-{b.key[:12]}.log").read_text()
        assert re.search(rf"{server.name}\s+:\s+ok=\d+\s+changed=[1-9]\d*\s+unreachable=0\s+failed=0", log), \
            log[-1500:]
