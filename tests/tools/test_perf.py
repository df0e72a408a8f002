"""perf adapter: folding real `perf script` captures (tests/tools/data/perf/capture.sh), perf's own
error messages, and a live record -> SIGINT -> script -> fold -> SVG round trip."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from localservers import DATA, need

from orchestrator.report.flamegraph import render_svg
from orchestrator.tools import perf
from orchestrator.tools.base import ToolError

PERF = DATA / "perf"
SERVER = (PERF / "script_server.txt").read_text()  # the project's server under wrk, 2 threads
DEFAULT = (PERF / "script_default.txt").read_text()  # perf script's default format, with +0x offsets


def headers(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line[0].isspace())


def failure(name: str) -> tuple[int, str]:
    """A captured failure: exit status on the first line, perf's stderr after it."""
    status, _, stderr = (PERF / name).read_text().partition("\n")
    return int(status), stderr


def test_commands():
    assert perf.record_command([12, 34], "/tmp/p.data") == [
        "perf", "record", "-e", "cpu-clock", "-F", "499", "-g", "--no-buildid-cache",
        "-p", "12,34", "-o", "/tmp/p.data"]
    assert perf.record_command([5], "x", frequency=99)[5] == "99"
    assert perf.script_command("/tmp/p.data") == [
        "perf", "script", "-i", "/tmp/p.data", "-F", "comm,tid,ip,sym,dso"]
    with pytest.raises(ToolError, match="^perf: "):
        perf.record_command([], "x")
    with pytest.raises(ToolError, match="^perf: "):
        perf.record_command([0], "x")
    with pytest.raises(ToolError, match="^perf: "):
        perf.record_command([1], "x", frequency=0)


def test_fold_server_capture():
    folded = perf.fold(SERVER)
    # every sample folded once, and as many as perf record said it wrote
    assert sum(folded.values()) == headers(SERVER) == 215
    assert perf.samples_written((PERF / "record_server.stderr").read_text()) == 215
    stacks = list(folded)
    assert all(s.startswith("orchestrate-ser;") for s in stacks)  # comm first (15-char kernel name)
    frames = {f for s in stacks for f in s.split(";")}
    assert {"epoll_wait", "do_epoll_wait_[k]", "do_syscall_64_[k]", "__send", "[unknown]"} <= frames
    # root first: the syscall entry sits above the libc wrapper that made it
    wait = max((s for s in stacks if "do_epoll_wait_[k]" in s), key=folded.__getitem__)
    parts = wait.split(";")
    assert parts.index("epoll_wait") < parts.index("do_syscall_64_[k]") < parts.index("do_epoll_wait_[k]")
    assert not any("+0x" in f for f in frames)


def test_fold_default_format_strips_offsets():
    assert DEFAULT.count("+0x") == 5
    folded = perf.fold(DEFAULT)
    assert sum(folded.values()) == headers(DEFAULT) == 40
    assert folded["python3;_Py_Dealloc"] == 2  # "_Py_Dealloc+0x0": offset gone, stacks merged
    assert "python3;[unknown];PyLong_FromLong" in folded
    assert not any("+0x" in s for s in folded)


def test_fold_without_kernel_suffix():
    folded = perf.fold(SERVER, kernel_suffix=False)
    assert sum(folded.values()) == 215
    assert not any("_[k]" in s for s in folded)
    assert folded["orchestrate-ser;[unknown];epoll_wait;entry_SYSCALL_64_after_hwframe;do_syscall_64;"
                  "__x64_sys_epoll_wait;do_epoll_wait;schedule_hrtimeout_range_clock;schedule;__schedule;"
                  "finish_task_switch.isra.0"] == 45


def test_fold_empty_warnings_and_truncation():
    assert perf.fold("") == {}
    # perf's notes on stdout/stderr mixed in are neither headers nor frames
    noisy = "Warning:\nProcessed 1234 events and lost 2 chunks!\n\n" + DEFAULT
    assert perf.fold(noisy) == perf.fold(DEFAULT)
    # a stack cut short (no closing blank line) is dropped rather than misplaced
    cut = SERVER[: SERVER.index("\n\t", len(SERVER) // 2) + 12]
    complete = headers(cut) - 1
    assert sum(perf.fold(cut).values()) == complete
    # ';' inside a name must not split frames; C++ names with " (" keep their DSO apart
    odd = ("a;b 7 \n\t  ffffffff81000130 f;g+0x1 ([kernel.kallsyms])\n"
           "\t  1234 std::function<void ()>::operator()() const (/usr/lib/libx.so)\n\n")
    assert perf.fold(odd) == {"a:b;std::function<void ()>::operator()() const;f:g_[k]": 1}


def test_top_frames():
    folded = perf.fold(SERVER)
    top = perf.top_frames(folded, 3)
    assert len(top) == 3
    name, share = top[0]
    assert name == "finish_task_switch.isra.0_[k]"  # threads blocked in epoll_wait, switched out
    assert share == pytest.approx(45 / 215)
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    assert sum(s for _, s in perf.top_frames(folded, 10_000)) == pytest.approx(1.0)
    assert perf.top_frames({}) == []


@pytest.mark.parametrize(("name", "words"), [
    ("record_paranoid.stderr", "Access to performance monitoring and observability operations is limited. "
                               "Consider adjusting /proc/sys/kernel/perf_event_paranoid setting"),
    ("record_nopid.stderr", "Couldn't create thread/CPU maps: No such process"),
    ("script_missing.stderr", "failed to open "),
    ("script_empty.stderr", "zero-sized data ("),
    ("script_sigkilled.stderr", "WARNING: The "),
])
def test_check_reports_perfs_own_words(name, words):
    status, stderr = failure(name)
    assert status not in (0, 130)
    with pytest.raises(ToolError) as info:
        perf.check(status, stderr)
    assert info.value.tool == "perf"
    assert info.value.message.startswith(words)
    assert info.value.message.endswith(f" (exit status {status})")
    assert "More information" not in info.value.message  # two sentences, not perf's whole page


def test_check_messages_keep_what_matters():
    with pytest.raises(ToolError) as info:
        perf.check(*failure("record_paranoid.stderr"))
    assert "perf_event_paranoid setting is 2 (exit status 255)" in info.value.message
    with pytest.raises(ToolError) as info:
        perf.check(*failure("script_sigkilled.stderr"))
    assert "data size field is 0 which is unexpected. Was the 'perf record' command properly terminated?" \
        in info.value.message


def test_check_accepts_sigint_and_target_exit():
    stderr = (PERF / "record_server.stderr").read_text()
    for status in (0, 130, -signal.SIGINT):
        perf.check(status, stderr)
    assert perf.samples_written("[ perf record: Captured and wrote 0.001 MB x.data ]") == 0
    assert perf.samples_written("") is None


def test_check_data(tmp_path: Path):
    with pytest.raises(ToolError, match="no data file"):
        perf.check_data(tmp_path / "perf.data")
    (tmp_path / "perf.data").write_bytes(b"")
    with pytest.raises(ToolError, match="empty data file"):
        perf.check_data(tmp_path / "perf.data")
    (tmp_path / "perf.data").write_bytes(b"PERFILE2")
    perf.check_data(tmp_path / "perf.data")


BUSY = "import time\nt = time.time()\nwhile time.time() - t < 8: sum(range(1000))\n"


@pytest.mark.slow
def test_live_record_sigint_script_fold_render(tmp_path: Path, no_children):
    need("perf")
    data = tmp_path / "perf.data"
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    rec = None
    try:
        time.sleep(0.3)
        # as the runner does it: its own process group, stopped by SIGINT to the group
        rec = subprocess.Popen(perf.record_command([busy.pid], str(data)), env={**os.environ, **perf.ENV},
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
        time.sleep(1.5)
        os.killpg(rec.pid, signal.SIGINT)
        _, stderr = rec.communicate(timeout=30)
    finally:
        busy.kill()
        busy.wait()
        if rec is not None and rec.poll() is None:
            os.killpg(rec.pid, signal.SIGKILL)
            rec.wait()
    perf.check(rec.returncode, stderr)
    perf.check_data(data)
    written = perf.samples_written(stderr)
    assert written is not None and written > 100  # ~499 Hz x 1.5 s of a busy loop

    script = subprocess.run(perf.script_command(str(data)), capture_output=True, text=True, timeout=60,
                            env={**os.environ, **perf.ENV})
    perf.check(script.returncode, script.stderr)
    folded = perf.fold(script.stdout)
    assert sum(folded.values()) == written
    assert perf.top_frames(folded)[0][1] > 0

    svg = render_svg(folded, title=f"live {Path(sys.executable).name}")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    frames = root.findall(f"{ns}g")
    assert len(frames) >= 2 and all(g.find(f"{ns}rect") is not None for g in frames)
    widest = max(frames, key=lambda g: float(g.find(f"{ns}rect").get("width")))
    assert widest.findtext(f"{ns}title") == f"all ({written:,} samples, 100.00%)"


def test_folded_stacks_round_trip():
    folded = {"srv;main;epoll_wait_[k]": 7, "srv;main;send": 3, "wrk;[unknown]": 1}
    text = perf.dump_folded(folded)
    assert text.splitlines()[0] == "srv;main;epoll_wait_[k] 7"
    assert perf.load_folded(text + "garbage line\n") == folded
