"""One real bisect (issue 25): a scratch clone with 8 commits, the fourth raising the server's
default work per request; `orchestrate bisect` must name the fourth in at most 4 steps, with an
interval at each.

The clone is of this checkout's HEAD (commit 1). Commits 2-8 on top: docs, a server/ README line
(a new build key), the fourth (Options.h: workUs 0 -> WORK_US), docs, a cpp-common/ README line
(a new key from cpp-common/ alone), docs, docs. Every step's builds go through a fresh build
cache, so the builds counted are the ones this bisect needed.

Run it alone on an idle machine (it builds and loads for several minutes):
  flock /work/.heavy.lock python3 bench/bisect_real.py --json bench/bisect_real.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK_US = 50  # the fourth commit's default work per request (server/src/Options.h)

SCENARIO = """\
name: bisect-real
description: one server thread over loopback; the server's own defaults (no --work-us passed)
hosts: {provider: local}
server: {arch: reuseport, threads: 1, cpus: [0]}
load: {tool: wrk, threads: 1, connections: 16, duration: 3s, cpus: [1]}
baseline: {enabled: false}
telemetry: [pidstat]
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def edit(repo: Path, rel: str, old: str, new: str) -> None:
    path = repo / rel
    text = path.read_text()
    if old not in text:
        raise SystemExit(f"{rel}: {old!r} not found")
    path.write_text(text.replace(old, new, 1))


def append(repo: Path, rel: str, line: str) -> None:
    with (repo / rel).open("a") as f:
        f.write(line + "\n")


def commit(repo: Path, message: str) -> str:
    git(repo, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qam", message)
    return git(repo, "rev-parse", "HEAD")


def make_clone(where: Path) -> list[str]:
    repo = where / "scratch"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    shas = [git(repo, "rev-parse", "HEAD")]
    steps = [
        (lambda: append(repo, "README.md", "\nScratch clone for a bisect."), "docs: say what this clone is"),
        (lambda: append(repo, "server/README.md", "\n(A server/ docs line: a new build key.)"),
         "server: a README line"),
        (lambda: edit(repo, "server/src/Options.h", "int64_t workUs = 0;", f"int64_t workUs = {WORK_US};"),
         f"server: default work per request {WORK_US} us (was 0)"),
        (lambda: append(repo, "README.md", "\nMore docs."), "docs: more"),
        (lambda: append(repo, "cpp-common/README.md", "\n(A cpp-common/ docs line.)"),
         "cpp-common: a README line"),
        (lambda: append(repo, "README.md", "\nEven more docs."), "docs: even more"),
        (lambda: append(repo, "README.md", "\nThe last docs."), "docs: the last"),
    ]
    for change, message in steps:
        change()
        shas.append(commit(repo, message))
    return shas


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the outcome here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--cache", type=Path, help="a build cache to reuse (default: a fresh one, so every "
                    "build the bisect needs is counted)")
    args = ap.parse_args()
    where = Path(tempfile.mkdtemp(prefix="orchestrate-bisect-bench-"))
    try:
        shas = make_clone(where)
        scenario = where / "bisect-real.yaml"
        scenario.write_text(SCENARIO)
        cache = args.cache or where / "cache"
        env = {**os.environ, "ORCHESTRATE_BUILD_CACHE": str(cache),
               "ORCHESTRATE_HISTORY": str(where / "history.sqlite"), "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "orchestrator", "bisect", str(scenario), "--good", shas[0][:12],
               "--bad", shas[-1][:12], "--repo", str(where / "scratch"), "--results", str(where / "results"),
               "--rounds", "4", "--max-rounds", "12", "--bisect-id", "real"]
        print("$ orchestrate bisect bisect-real.yaml --good COMMIT1 --bad COMMIT8 --rounds 4 --max-rounds 12",
              flush=True)
        started = time.monotonic()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
        wall = time.monotonic() - started
        print(done.stdout)
        steps = [ln for ln in done.stdout.splitlines() if ln.startswith("step ")]
        found = re.search(r"first bad commit: ([0-9a-f]{40})", done.stdout)
        builds = [json.loads(p.read_text()) for p in sorted(cache.glob("*/build.json"))]
        outcome = {
            "commits": [{"sha": s, "subject": git(where / "scratch", "log", "-1", "--format=%s", s)}
                        for s in shas],
            "exit": done.returncode, "wall_s": round(wall, 1), "steps": steps,
            "first_bad": found.group(1) if found else None,
            "names_the_fourth": bool(found and found.group(1) == shas[3]),
            "steps_taken": len(steps), "builds": [{"sha": b["sha"][:12], "subject": b["subject"],
                                                   "build_s": b["build_s"]} for b in builds],
            "report": (where / "results" / "bisect-real-bisect" / "real" / "bisect.md").read_text()
            if (where / "results" / "bisect-real-bisect" / "real" / "bisect.md").exists() else None,
            "stderr_tail": done.stderr.splitlines()[-15:],
        }
        print(f"wall {wall:.0f}s, {len(builds)} builds: "
              + ", ".join(f"{b['subject']!r} {b['build_s']:.0f}s" for b in builds))
        if args.json:
            args.json.write_text(json.dumps(outcome, indent=1) + "\n")
        ok = outcome["names_the_fourth"] and len(steps) <= 4
        print("PASS: names the fourth commit in at most 4 steps" if ok else
              f"FAIL: {outcome['first_bad']} in {len(steps)} steps\n" + done.stderr[-3000:])
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept: {where}")
        else:
            shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
