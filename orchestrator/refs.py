"""The server at a git ref: `server.ref` resolved, checked out through a worktree, built, cached.

A ref (a branch, a tag, `HEAD~3`, a commit id) is resolved to a commit in the repository the
server comes from (`server.repo`, default: this checkout). Its build is cached under a key over
every build input: the commit's trees under server/ AND cpp-common/ (server/cpp-common is a link
to ../cpp-common, so the server/ tree alone is not the key), how it is built (the build command,
the build role's files, the compiler's version) and this key's own format. Two refs with the same
inputs build once; a change under cpp-common/ alone rebuilds.

Everything is built here, before anything is provisioned: an unknown ref is a UserError (exit 2),
a ref that does not build is a RunFailed (exit 1) naming the ref and the compiler's first error.
Remote server hosts then build the same sources through the playbooks' build role, each ref
installed under its own root (`<orchestrate_root>/refs/<key>/bin/orchestrate-server`).

The server's command line is the ref's own: the flags its build accepts are read from its
`--help`; a flag HEAD's adapter would pass that an older build lacks is refused with the reason
(flags left at their defaults are not passed at all: --work-us 0, no --backlog).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import RunFailed, UserError

REPO = Path(__file__).resolve().parents[1]
# What a build at a ref reads from that ref's tree (git paths, relative to the repository root).
TREE_INPUTS = ("server", "cpp-common")
# How it is built, from this checkout: a change here changes every ref's binary.
BUILD_ROLE = REPO / "playbooks" / "roles" / "build"
BINARY = "orchestrate-server"
# key format history: 1: ls-tree of TREE_INPUTS, build role files, build command, compiler
KEY_VERSION = 1
# A build's wall time before this machine has measured one (seconds): the server target, Release,
# -j2, on this 2-CPU VM: 9.5-11.6 s for the 8 builds of bench/bisect_real.py's last two runs
# (2026-12-06). Replaced by the cache's newest measured build as soon as there is one.
DEFAULT_BUILD_S = 11.0

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def cache_root() -> Path:
    """Where builds are kept: $ORCHESTRATE_BUILD_CACHE, else ~/.cache/orchestrate/builds."""
    env = os.environ.get("ORCHESTRATE_BUILD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "orchestrate" / "builds"


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RunFailed(f"git {' '.join(args)} in {repo}: {done.stderr.strip() or done.returncode}",
                        phase="build")
    return done


@dataclass(frozen=True)
class Commit:
    ref: str  # as the user wrote it
    sha: str
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:12]


def resolve(ref: str, repo: Path = REPO) -> Commit:
    """The commit a ref names; UserError (exit 2, one line) when it names none."""
    if not (repo / ".git").exists() and _git(repo, "rev-parse", "--git-dir", check=False).returncode:
        raise UserError(f"server.repo {repo}: not a git repository")
    done = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}",
                check=False)
    if done.returncode != 0 or not done.stdout.strip():
        shallow = _git(repo, "rev-parse", "--is-shallow-repository", check=False).stdout.strip()
        hint = (" (a shallow clone: fetch the full history, e.g. actions/checkout with "
                "fetch-depth: 0)") if shallow == "true" else ""
        raise UserError(f"server.ref {ref}: no such commit in {repo}{hint}")
    sha = done.stdout.strip()
    subject = _git(repo, "log", "-1", "--format=%s", sha).stdout.strip()
    return Commit(ref, sha, subject)


def _compiler() -> str:
    cxx = os.environ.get("CXX") or "c++"
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True,
                              check=False).stdout.splitlines()[0]
    except (OSError, IndexError):
        return cxx


def build_command(src: Path, build: Path) -> list[list[str]]:
    """Configure and build the Release server only (the build role's target), nothing else."""
    return [["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
            ["cmake", "--build", str(build), "-j2", "--target", BINARY]]


def inputs_key(commit: Commit, repo: Path = REPO) -> str:
    """sha256 over every build input of `commit` (see the module's docstring)."""
    h = hashlib.sha256(f"orchestrate-build-key {KEY_VERSION}\n".encode())
    # Blob ids of every file under server/ and cpp-common/ at that commit (a link is a blob of
    # its target's path: cpp-common/ is listed on its own, so its contents count).
    tree = _git(repo, "ls-tree", "-r", "--full-tree", commit.sha, "--", *TREE_INPUTS).stdout
    h.update(tree.encode())
    for path in sorted(BUILD_ROLE.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(json.dumps(build_command(Path("SRC"), Path("BUILD"))).encode())
    h.update(_compiler().encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Built:
    """The server built at one commit: where the binary is and what its command line accepts."""

    commit: Commit
    key: str
    binary: Path
    seconds: float  # the build's wall time (the cached one's, when it came from the cache)
    cached: bool
    flags: frozenset[str]  # the long options its --help lists

    @property
    def ref(self) -> str:
        return self.commit.ref

    def as_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "sha": self.commit.sha, "subject": self.commit.subject,
                "key": self.key, "binary": str(self.binary), "build_s": round(self.seconds, 1),
                "cached": self.cached, "flags": sorted(self.flags)}


def help_flags(binary: Path | str) -> frozenset[str]:
    """The long options a server build accepts, read from its --help (usage on stdout)."""
    done = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30,
                          check=False)
    return frozenset(re.findall(r"--[a-z][a-z0-9-]*", done.stdout + done.stderr))


def first_error(output: str) -> str:
    """The compiler's (or CMake's) first error line, for a one-line failure."""
    lines = output.splitlines()
    for pattern in (r"\berror\b", r"CMake Error", r"\*\*\*"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip()
    return next((ln.strip() for ln in reversed(lines) if ln.strip()), "no output")


@contextlib.contextmanager
def checkout(commit: Commit, repo: Path = REPO) -> Iterator[Path]:
    """The commit's tree in a temporary detached git worktree, removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="orchestrate-ref-"))
    tree = parent / commit.short
    _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit.sha)
    try:
        yield tree
    finally:
        _git(repo, "worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(parent, ignore_errors=True)
        _git(repo, "worktree", "prune", check=False)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build(commit: Commit, repo: Path = REPO, *, cache: Path | None = None,
          progress: Progress = _quiet) -> Built:
    """The server at `commit`, from the cache when its inputs were built before."""
    cache = cache or cache_root()
    key = inputs_key(commit, repo)
    home = cache / key[:16]
    binary, meta = home / BINARY, home / "build.json"
    with _locked(cache / f".{key[:16]}.lock"):  # two builds of one key: the second finds the first's
        if binary.exists() and meta.exists():
            m = json.loads(meta.read_text())
            if m.get("key") == key:
                return Built(commit, key, binary, float(m.get("build_s", 0.0)), True,
                             frozenset(m.get("flags", ())))
        progress(f"orchestrate: building the server at {commit.ref} ({commit.short} {commit.subject})")
        started = time.monotonic()
        with checkout(commit, repo) as tree:
            src, out = tree / "server", tree / "server" / "build" / "release"
            if not (src / "CMakeLists.txt").exists():
                raise RunFailed(f"server.ref {commit.ref} ({commit.short}): no server/CMakeLists.txt "
                                "at that commit", phase="build")
            for argv in build_command(src, out):
                done = subprocess.run(argv, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise RunFailed(f"server.ref {commit.ref} ({commit.short}) does not build: "
                                    f"{first_error(done.stdout + done.stderr)}", phase="build")
            home.mkdir(parents=True, exist_ok=True)
            shutil.copy2(out / BINARY, binary.with_suffix(".new"))
            os.replace(binary.with_suffix(".new"), binary)
        seconds = time.monotonic() - started
        flags = help_flags(binary)
        meta.write_text(json.dumps({"key": key, "sha": commit.sha, "subject": commit.subject,
                                    "build_s": round(seconds, 1), "flags": sorted(flags),
                                    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                                   indent=1) + "\n")
        return Built(commit, key, binary, seconds, False, flags)


def build_estimate(cache: Path | None = None) -> float:
    """Seconds one build likely takes here: the newest measured build in the cache, else the
    recorded default."""
    metas = sorted((cache or cache_root()).glob("*/build.json"), key=lambda p: p.stat().st_mtime)
    for meta in reversed(metas):
        with contextlib.suppress(OSError, ValueError):
            s = float(json.loads(meta.read_text()).get("build_s") or 0)
            if s > 0:
                return s
    return DEFAULT_BUILD_S


def is_cached(key: str, cache: Path | None = None) -> bool:
    home = (cache or cache_root()) / key[:16]
    return (home / BINARY).exists() and (home / "build.json").exists()


# --- a scenario's refs --------------------------------------------------------------------


def _refs_of(sc: Any) -> list[str]:
    value = getattr(sc.server, "ref", None)
    if value is None:
        return []
    return [str(r) for r in (value if isinstance(value, list) else [value])]


def scenario_refs(sc: Any) -> list[str]:
    """The refs a scenario names (server.ref: one, or a list: an axis; or one per named variant
    that sets it), in order, once each."""
    from orchestrator.scenario import variant_scenario

    found = _refs_of(sc)
    for name in getattr(sc, "variants", None) or {}:
        found += _refs_of(variant_scenario(sc, name))
    return list(dict.fromkeys(found))


# --- the commit that last passed ------------------------------------------------------------
# A scheduled job has no release to compare with: it names `last-passed` as a ref, the commit
# its newest passing run (a factor gate that passed, kept in history) had as the candidate.

LAST_PASSED = "last-passed"


def ref_of_value(sc: Any, factor: str, value: Any) -> str | None:
    """The ref the runs of one value of the compared factor build: the value itself for
    server.ref, a named variant's server.ref for `variant`; None when it names none."""
    from orchestrator.scenario import variant_scenario

    if factor == "server.ref":
        return str(value)
    if factor == "variant" and str(value) in (getattr(sc, "variants", None) or {}):
        got = _refs_of(variant_scenario(sc, str(value)))
        return got[0] if len(got) == 1 else None
    return None


def candidate(sc: Any, built: dict[str, Any]) -> dict[str, str] | None:
    """{ref, sha} of the one commit a factor gate judges against its baseline (`built`: the
    results folder's refs.json, ref -> its build); None when the factor is not one commit
    against another."""
    c = getattr(sc, "compare", None)
    if c is None:
        return None
    from orchestrator.scenario import swept

    values = next((v for axis, v in swept(sc) if axis.name == c.factor), [])
    others = {ref_of_value(sc, c.factor, v) for v in values if v != c.baseline}
    if len(others) != 1 or None in others:
        return None
    ref = others.pop()
    sha = (built.get(str(ref)) or {}).get("sha")
    return {"ref": str(ref), "sha": str(sha)} if sha else None


def last_passed(history: Any, scenario: str) -> tuple[str, str] | None:
    """(sha, results id) of the commit the newest passing gate of `scenario` passed: its
    candidate, recorded in the verdict (cli._factor_gate). None: none has passed yet."""
    gates = history.gates()
    for s in history.sessions(scenario=scenario, status="complete", limit=1000):
        g = gates.get(s["results_id"]) or {}
        passed = g.get("passed") if not g.get("regressed") else None
        if isinstance(passed, dict) and passed.get("sha"):
            return str(passed["sha"]), str(s["results_id"])
    return None


def last_passed_sets(sc: Any, history: Any, repo: Path | None = None) -> tuple[list[str], str]:
    """--set overrides putting the commit that last passed where the scenario names
    `last-passed` (server.ref, or a variant's), and the line that says which; ([], "") when it
    names none. With no passing run yet it is HEAD: that night compares HEAD with itself."""
    from orchestrator.scenario import variant_scenario

    places = []
    if LAST_PASSED in _refs_of(sc):
        value = sc.server.ref
        places.append(("server.ref", [str(r) for r in value] if isinstance(value, list) else str(value)))
    for name in getattr(sc, "variants", None) or {}:
        if _refs_of(variant_scenario(sc, name)) == [LAST_PASSED]:
            places.append((f"variants.{name}.server.ref", LAST_PASSED))
    if not places:
        return [], ""
    found = last_passed(history, sc.name)
    if found is None:
        sha = resolve("HEAD", repo or scenario_repo(sc)).sha
        why = (f"server.ref {LAST_PASSED} = HEAD {sha[:12]}: no run of {sc.name} has passed its "
               "gate yet (kept in history), so this run compares HEAD with itself")
    else:
        sha, rid = found
        resolve(sha, repo or scenario_repo(sc))  # exit 2 when the checkout lacks it (shallow?)
        why = f"server.ref {LAST_PASSED} = {sha[:12]}: the commit run {rid} of {sc.name} passed"
    sets = []
    for key, value in places:
        if isinstance(value, list):
            got = [sha if v == LAST_PASSED else v for v in value]
            sets.append(f"{key}=[{', '.join(repr(v) for v in got)}]")
        else:
            sets.append(f"{key}={sha}")
    return sets, why


def scenario_repo(sc: Any) -> Path:
    repo = getattr(sc.server, "repo", None)
    return Path(repo).expanduser().resolve() if repo else REPO


@dataclass(frozen=True)
class BuildPlan:
    """What building a scenario's refs will cost, before anything is built."""

    commits: tuple[Commit, ...]
    keys: tuple[str, ...]
    cached: tuple[bool, ...]
    estimate_s: float  # per build

    @property
    def to_build(self) -> int:
        return len({k for k, c in zip(self.keys, self.cached, strict=True) if not c})

    @property
    def seconds(self) -> float:
        return self.to_build * self.estimate_s

    def lines(self) -> list[str]:
        out = []
        first: dict[str, str] = {}
        for c, k, hit in zip(self.commits, self.keys, self.cached, strict=True):
            if hit:
                what = "cached"
            elif k in first:
                what = f"same build inputs as {first[k]}: built once"
            else:
                what = f"to build, ~{self.estimate_s:.0f}s"
            first.setdefault(k, c.ref)
            out.append(f"  server.ref {c.ref} = {c.short} {c.subject!r}: build key {k[:12]}, {what}")
        out.append(f"  builds: {self.to_build} of {len(set(self.keys))} distinct input set(s) to build, "
                   f"~{self.seconds:.0f}s before anything is provisioned")
        return out


def plan_builds(sc: Any, *, cache: Path | None = None) -> BuildPlan | None:
    refs = scenario_refs(sc)
    if not refs:
        return None
    repo = scenario_repo(sc)
    commits = tuple(resolve(r, repo) for r in refs)
    keys = tuple(inputs_key(c, repo) for c in commits)
    return BuildPlan(commits, keys, tuple(is_cached(k, cache) for k in keys), build_estimate(cache))


def adapter_flags(sc: Any, work_us: Sequence[int]) -> dict[str, str]:
    """The long options HEAD's adapter passes for this scenario, each with why."""
    from orchestrator.tools import server as server_tool

    out: dict[str, str] = {}
    for w in work_us:
        argv = server_tool.builtin_command("x", arch="reuseport", threads=1, cpus=[0], port=1,
                                           bind="127.0.0.1", body="x", work_us=int(w),
                                           backlog=sc.server.backlog)
        for a in argv[1:]:
            if a.startswith("--") and a not in out:
                out[a] = ("server.work_us > 0" if a == "--work-us" else
                          "server.backlog is set" if a == "--backlog" else "always passed")
    return out


def check_command(sc: Any, built: Built) -> None:
    """Refuse, with the reason, a scenario whose command line this build cannot take."""
    if sc.server.command is not None:
        return
    work = sc.server.work_us if isinstance(sc.server.work_us, list) else [sc.server.work_us]
    for flag, why in adapter_flags(sc, work).items():
        if flag not in built.flags:
            raise UserError(f"server.ref {built.ref} ({built.commit.short}): its server has no {flag} "
                            f"(not in its --help), which this scenario needs ({why}); leave it out "
                            "for this ref or choose a newer ref")


def prepare(sc: Any, *, cache: Path | None = None, progress: Progress = _quiet) -> dict[str, Built]:
    """Resolve and build every ref of the scenario here (each distinct input set once), and check
    each build takes the scenario's command line. ref -> Built; {} without server.ref."""
    refs = scenario_refs(sc)
    if not refs:
        return {}
    if sc.server.command is not None:
        raise UserError("server.ref builds the project's own server; it cannot go with server.command")
    repo = scenario_repo(sc)
    commits = [resolve(r, repo) for r in refs]  # every ref resolved before the first build
    out: dict[str, Built] = {}
    for c in commits:
        out[c.ref] = build(c, repo, cache=cache, progress=progress)
        check_command(sc, out[c.ref])
    return out


def remote_root(key: str) -> str:
    """The build role's build_root for a ref (a Jinja expression over the host's own root)."""
    return "{{ orchestrate_root | default('/opt/orchestrate') }}/refs/" + key[:16]


def remote_binary(host_root: str, key: str) -> str:
    return f"{host_root}/refs/{key[:16]}/bin/{BINARY}"


def deploy_refs(lab: Any, builds: dict[str, Built], *, repo: Path = REPO, log_dir: Path | None = None,
                progress: Progress = _quiet) -> None:
    """Build each distinct ref on the lab's server hosts through the playbooks' build role (tag
    server), from the ref's own sources, into a root of its own. The role's stamp makes a
    ref already built there a no-op."""
    from orchestrator import deploy

    done: set[str] = set()
    for b in builds.values():
        if b.key in done:
            continue
        done.add(b.key)
        progress(f"orchestrate: building the server at {b.ref} ({b.commit.short}) on the server hosts")
        with checkout(b.commit, repo) as tree:
            deploy.deploy(lab, tags=["server"], limit=[h.name for h in lab.hosts if "server" in h.roles],
                          extra_vars={"build_src": str(tree / "server"), "build_root": remote_root(b.key)},
                          log=(log_dir / f"deploy-ref-{b.key[:12]}.log") if log_dir else None)
