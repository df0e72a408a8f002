#!/usr/bin/env python3
"""A long libFuzzer run of the server's HTTP parser (a benchmark, not part of CI).

Builds `fuzz_http_parser` (server/tests/fuzz_http_parser.cc: ASan + UBSan +
libFuzzer, checks that the parser never crashes, never over-consumes, buffers
at most one head, and gives the same result however the input is split) the
way server/tests/test_fuzz.py does, seeds it with the malformed-request corpus
(server/tests/corpus/*.txt) and the CI seeds, runs it for a given time on one
core and reports executions, exec/s, coverage (edges) and features, new units,
crashes and peak RSS, as a markdown table row.

    python3 bench/fuzz_long.py --minutes 10            # default
    python3 bench/fuzz_long.py --minutes 5 --cpu 1     # pinned to CPU 1

The working corpus lives in server/build/fuzz-corpus (kept between runs unless
--fresh); crash artifacts go to server/build/fuzz-artifacts/. Exit code 1 if
the fuzzer found anything.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "cpp-common"))
import cpptest  # noqa: E402  (the clang lookup and cmake build server/tests use)

SERVER_DIR = REPO / "server"
FUZZ_DIR = SERVER_DIR / "build" / "fuzz"
TARGET = FUZZ_DIR / "fuzz_http_parser"
WORK_CORPUS = SERVER_DIR / "build" / "fuzz-corpus"
ARTIFACTS = SERVER_DIR / "build" / "fuzz-artifacts"
SEED_CORPUS = SERVER_DIR / "tests" / "corpus"


def build() -> None:
    """The fuzz build of server/tests/test_fuzz.py (cpptest's clang, build/fuzz, FUZZ=ON)."""
    try:
        compiler = cpptest.clang()
        cpptest.cmake_build(SERVER_DIR, FUZZ_DIR, ["-DCMAKE_BUILD_TYPE=Debug", "-DFUZZ=ON",
                                                   f"-DCMAKE_CXX_COMPILER={compiler}"],
                            target="fuzz_http_parser")
    except AssertionError as exc:  # no clang++
        print(f"fuzz build: {exc}", file=sys.stderr)
        sys.exit(2)
    except subprocess.CalledProcessError as exc:  # cmake configure
        print(f"fuzz build: cmake configure failed:\n{exc.stderr}", file=sys.stderr)
        sys.exit(1)
    except RuntimeError as exc:  # compile; the message carries the compiler's output
        print(f"fuzz build: {exc}", file=sys.stderr)
        sys.exit(1)


def seed(fresh: bool) -> int:
    """Copies the corpus files into the working corpus; the first byte of a fuzz
    input selects the chunk size of the split run (1 + b % 17), so each file is
    added with a few different first bytes."""
    if fresh and WORK_CORPUS.exists():
        shutil.rmtree(WORK_CORPUS)
    WORK_CORPUS.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted(SEED_CORPUS.glob("*.txt")):
        data = f.read_bytes()[:4096]
        for chunk_byte in (0, 4, 12):
            (WORK_CORPUS / f"seed-{f.stem}-{chunk_byte}").write_bytes(bytes([chunk_byte]) + data)
            n += 1
    return n


def run(seconds: int, max_len: int, cpu: int | None) -> dict:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = set(ARTIFACTS.iterdir())
    corpus_before = sum(1 for _ in WORK_CORPUS.iterdir())
    cmd = [str(TARGET), f"-max_total_time={seconds}", f"-max_len={max_len}", "-print_final_stats=1",
           "-rss_limit_mb=2048", "-timeout=10", f"-artifact_prefix={ARTIFACTS}/", str(WORK_CORPUS)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 600)
    wall = time.monotonic() - t0
    err = proc.stderr
    stats = {k: int(v) for k, v in re.findall(r"^stat::(\w+):\s+(\d+)", err, re.M)}
    progress = re.findall(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", err, re.M)
    last = progress[-1] if progress else ("0", "0", "0", "0", "0")
    init = next((p for p in progress if p), last)
    m_init = re.search(r"^#\d+\s+INITED cov: (\d+) ft: (\d+)", err, re.M)
    found = sorted(p.name for p in set(ARTIFACTS.iterdir()) - before)
    return {
        "seconds": seconds,
        "wall_s": round(wall, 1),
        "returncode": proc.returncode,
        "executions": stats.get("number_of_executed_units", int(last[0])),
        "exec_per_s": stats.get("average_exec_per_sec", 0),
        "peak_rss_mb": stats.get("peak_rss_mb", 0),
        "new_units": stats.get("new_units_added", 0),
        "cov_init": int(m_init.group(1)) if m_init else int(init[1]),
        "ft_init": int(m_init.group(2)) if m_init else int(init[2]),
        "cov": int(last[1]),
        "ft": int(last[2]),
        "corpus_before": corpus_before,
        "corpus_after": sum(1 for _ in WORK_CORPUS.iterdir()),
        "crashes": len(found),
        "artifacts": found,
        "stderr_tail": err[-3000:] if proc.returncode != 0 else "",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--max-len", type=int, default=4096)
    p.add_argument("--cpu", type=int, default=None, help="pin the fuzzer to this CPU (taskset)")
    p.add_argument("--fresh", action="store_true", help="start from the seeds only")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args()
    build()
    seeds = seed(a.fresh)
    r = run(int(a.minutes * 60), a.max_len, a.cpu)
    r["seeds"] = seeds
    r["machine"] = f"{platform.processor() or platform.machine()}, kernel {platform.release()}"
    if a.json:
        a.json.write_text(json.dumps(r, indent=1) + "\n")
    print(json.dumps({k: v for k, v in r.items() if k != "stderr_tail"}, indent=1))
    print()
    print("| run | executions | exec/s | cov (edges) start -> end | features start -> end "
          "| corpus | crashes | peak RSS |")
    print("|---|---:|---:|---|---|---|---:|---:|")
    print(f"| {a.minutes:g} min, max_len {a.max_len} | {r['executions']:,} | {r['exec_per_s']:,} "
          f"| {r['cov_init']} -> {r['cov']} | {r['ft_init']} -> {r['ft']} "
          f"| {r['corpus_before']} -> {r['corpus_after']} | {r['crashes']} | {r['peak_rss_mb']} MB |")
    if r["returncode"] != 0 or r["crashes"]:
        print(r["stderr_tail"], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
