"""What server/tests and loadgen/tests share: cmake builds of a C++ project (release,
ASan+UBSan, libFuzzer), the sanitizers' settings and report markers, and a bounded libFuzzer
run. Imported by server/tests/support.py and loadgen/tests/loadkit.py through their
project's cpp-common/ link. Only the standard library.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SANITIZER_ENV = {
    # Any report fails the process; the tests also look for reports on stderr.
    "ASAN_OPTIONS": "abort_on_error=0:exitcode=99:detect_leaks=1:strict_string_checks=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=99",
}
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def builds(project: Path) -> dict[str, tuple[Path, list[str]]]:
    """The flavours every test run builds: kind -> (build directory, cmake arguments)."""
    return {"release": (project / "build" / "release", ["-DCMAKE_BUILD_TYPE=Release"]),
            "asan": (project / "build" / "asan", ["-DCMAKE_BUILD_TYPE=Debug", "-DSANITIZE=ON"])}


def cmake_build(project: Path, build_dir: Path, args: list[str], target: str | None = None) -> None:
    """Configures (once) and builds; RuntimeError with the compiler's output on failure."""
    if not (build_dir / "CMakeCache.txt").exists():
        subprocess.run(["cmake", "-S", str(project), "-B", str(build_dir), *args],
                       check=True, capture_output=True, text=True, timeout=300)
    cmd = ["cmake", "--build", str(build_dir), "-j2", *(["--target", target] if target else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"build of {build_dir} failed:\n{proc.stdout}\n{proc.stderr}")


def clang() -> str:
    """A clang++ with libFuzzer; its absence fails the test (no skip: CI installs it)."""
    for name in ("clang++-14", "clang++"):
        if shutil.which(name):
            return name
    raise AssertionError("clang++ not installed (apt-get install clang-14 libclang-rt-14-dev)")


def fuzz(project: Path, target: str, seeds: list[bytes], workdir: Path) -> str:
    """Builds the libFuzzer `target` (FUZZ=ON, in build/fuzz) and runs it from `seeds` for at
    most 20 s or 300,000 inputs, crashes saved in `workdir`; asserts a clean finish and
    returns libFuzzer's report."""
    fuzz_dir = project / "build" / "fuzz"
    args = ["-DCMAKE_BUILD_TYPE=Debug", "-DFUZZ=ON", f"-DCMAKE_CXX_COMPILER={clang()}"]
    cmake_build(project, fuzz_dir, args, target=target)
    corpus = workdir / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seeds):
        (corpus / f"seed{i}").write_bytes(seed)
    run = subprocess.run([str(fuzz_dir / target), "-runs=300000", "-max_total_time=20", "-max_len=2048",
                          f"-artifact_prefix={workdir}/", str(corpus)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Done" in run.stderr
    return run.stderr
