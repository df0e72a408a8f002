"""perf (linux-perf): sampled call stacks of the server for a flame graph.

`perf record -e cpu-clock -F 499 -g -p PIDS -o FILE` samples the given processes (all their
threads) on the software clock, the only event this class of VM offers (no PMU), walking
stacks by frame pointer (-g). It runs until stopped: on SIGINT it finishes writing a valid
file, then exits by re-raising the signal, so a clean stop shows as status -2 (Popen) or 130
(through a shell); 0 means every target exited first. A perf killed hard (SIGKILL) leaves a
file whose header was never completed: `perf script` then refuses it (status 255, "data size
field is 0"), which check() reports.

`perf script` must run on the host that recorded (it resolves symbols from that host's
binaries and kallsyms); its text is what gets fetched and folded here.

Binary: Debian's linux-perf (6.1 here) installs the real perf as /usr/bin/perf, diverting the
old wrapper that refused to run under a kernel of another version, so plain `perf` works on
a newer kernel (6.18 here). Hosts with a `perf_X.Y`-only install need it on PATH as `perf`.

User-space frames are only as good as the binary's frame pointers: a -O2 build without
-fno-omit-frame-pointer shows its libc leaf (send, epoll_wait) over `[unknown]` frames.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator.tools.base import ToolError

BINARY = "perf"
ENV: dict[str, str] = {"LC_ALL": "C"}
KERNEL_SUFFIX = "_[k]"  # stackcollapse-perf.pl --kernel / perf's stackcollapse.py convention

# Sample header: "comm tid" (-F comm,tid) or the default "comm pid/tid [cpu] time: period event:".
# comm may hold spaces: the lazy match stops at the first "NUMBER" that is followed by the end
# of the line or a timestamp, which also keeps perf's "Processed N events..." notes out.
_HEADER = re.compile(r"^(\S.*?)\s+(?:\d+/)?\d+\s*(?:\[\d+\]\s+)?(?:\d+\.\d+:.*)?$")
# Stack line: "\t  ADDR SYM[+0xOFF] (DSO)"; SYM may itself hold " (" (C++), so the greedy SYM
# leaves DSO the last parenthesised group; the second branch is a line printed without DSO.
_FRAME = re.compile(r"^\s+([0-9a-fA-F]+) (?:(.+) \((.*)\)|(.+))$")
_OFFSET = re.compile(r"\+0x[0-9a-fA-F]+$")
_SAMPLES = re.compile(r"Captured and wrote [\d.]+ MB .*?(?:\((\d+) samples\))? \]$", re.M)


def record_command(pids: Sequence[int], output: str, *, frequency: int = 499) -> list[str]:
    """Sample `pids` on the software clock with call stacks until SIGINT.

    499 Hz rather than 500/1000 so sampling does not run in lockstep with periodic timers.
    --no-buildid-cache: symbols are resolved right after on the same host, so copying every
    binary into ~/.debug on each run would only grow the disk of the host under test.
    """
    pid_list = [int(p) for p in pids]
    if not pid_list or any(p <= 0 for p in pid_list):
        raise ToolError("perf", f"record needs positive pids, got {pid_list}")
    if frequency < 1:
        raise ToolError("perf", "sampling frequency must be >= 1 Hz")
    return [BINARY, "record", "-e", "cpu-clock", "-F", str(int(frequency)), "-g",
            "--no-buildid-cache", "-p", ",".join(map(str, pid_list)), "-o", output]


def script_command(data: str) -> list[str]:
    """One header line "comm tid" per sample, then one "addr sym (dso)" line per frame.

    Without offsets or timestamps the text is about half the default's size and stable.
    """
    return [BINARY, "script", "-i", data, "-F", "comm,tid,ip,sym,dso"]


def _message(stderr: str) -> str:
    """perf's own words: its first two sentences, plus the paranoid setting when it names one."""
    lines = [ln.strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and ln != "Error:" and not ln.startswith("[ perf record:")]
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(lines))[:2]
    sentences += [ln.rstrip(":") for ln in lines if ln.startswith("perf_event_paranoid setting is")]
    return " ".join(s for s in sentences if s) or "failed without a message"


def check(returncode: int, stderr: str) -> None:
    """Raise ToolError (with perf's message) unless perf record/script ended well.

    SIGINT is how record is meant to stop, so -2 and 130 count as success.
    """
    if returncode not in (0, -2, 130):
        raise ToolError("perf", f"{_message(stderr)} (exit status {returncode})")


def check_data(path: str | Path) -> None:
    """A fetched perf.data that is missing or empty means record never wrote it."""
    p = Path(path)
    if not p.is_file():
        raise ToolError("perf", f"no data file {p}: perf record did not finish writing it")
    if p.stat().st_size == 0:
        raise ToolError("perf", f"empty data file {p}: perf record was stopped before writing")


def samples_written(stderr: str) -> int | None:
    """The sample count perf record reports on exit; None when it never got that far."""
    m = _SAMPLES.search(stderr)
    if m is None:
        return None
    return int(m.group(1)) if m.group(1) else 0


def _frame_name(addr: str, sym: str, dso: str | None, kernel_suffix: bool) -> str:
    name = _OFFSET.sub("", sym).replace(";", ":")  # ';' separates frames in folded stacks
    is_kernel = (dso is not None and (dso.startswith("[kernel") or "vmlinux" in dso)) or (
        len(addr) == 16 and addr.lower().startswith("ffff"))  # also covers kernel modules
    return name + KERNEL_SUFFIX if kernel_suffix and is_kernel else name


def fold(script_text: str, *, kernel_suffix: bool = True) -> dict[str, int]:
    """`perf script` text -> {"comm;root;...;leaf": samples}, as stackcollapse-perf.pl folds it.

    Offsets are stripped; `[unknown]` frames are kept; kernel frames get `_[k]` (unless
    kernel_suffix=False) so the renderer can colour them. A sample counts only once the blank
    line ending it is seen: a stack cut short (perf or the transfer interrupted) would lack
    its outer frames and land in the wrong place. Lines that fit neither a sample header nor
    a frame (perf's warnings) are skipped.
    """
    folded: Counter[str] = Counter()
    comm: str | None = None
    frames: list[str] = []
    for line in script_text.splitlines(keepends=True):
        if not line.strip():
            if comm is not None and frames and line.endswith("\n"):
                folded[";".join([comm, *reversed(frames)])] += 1
            comm, frames = None, []
        elif line[0].isspace():
            m = _FRAME.match(line.rstrip("\n"))
            if comm is not None and m:
                sym = m.group(2) if m.group(2) is not None else m.group(4)
                frames.append(_frame_name(m.group(1), sym, m.group(3), kernel_suffix))
        else:
            m = _HEADER.match(line.rstrip("\n"))
            comm, frames = (m.group(1).replace(";", ":"), []) if m else (None, [])
    return dict(folded)


def dump_folded(folded: Mapping[str, int]) -> str:
    """Folded stacks as text, one "stack count" per line (stackcollapse's format)."""
    return "".join(f"{stack} {count}\n" for stack, count in sorted(folded.items()))


def load_folded(text: str) -> dict[str, int]:
    """The inverse of dump_folded; lines that are not "stack count" are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out[stack] = out.get(stack, 0) + int(count)
    return out


def top_frames(folded: Mapping[str, int], n: int = 10) -> list[tuple[str, float]]:
    """The `n` leaf frames with the most self time, as (frame, share of all samples 0..1)."""
    total = sum(folded.values())
    if total <= 0:
        return []
    self_time: Counter[str] = Counter()
    for stack, count in folded.items():
        self_time[stack.rsplit(";", 1)[-1]] += count
    ranked = sorted(self_time.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [(name, count / total) for name, count in ranked]
