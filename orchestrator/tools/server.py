"""The server under test: the project's own (server/) or any command the user gives.

Builds the command line, renders a user's config template, and parses the
built-in server's two machine-readable lines (ready, and per-thread stats on exit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from orchestrator.records import CounterThread, ServerCounters
from orchestrator.tools.base import ToolError, cpu_list, join

BINARY = "orchestrate-server"
ENV: dict[str, str] = {}
REPO_SERVER_DIR = Path(__file__).resolve().parents[2] / "server"


def build_command(source_dir: str | Path, build_dir: str | Path) -> str:
    """Configure and build the Release server (incremental when already built)."""
    return (f"cmake -S {source_dir} -B {build_dir} -DCMAKE_BUILD_TYPE=Release >/dev/null && "
            f"cmake --build {build_dir} -j2 >/dev/null")


def thread_cpus(cpus: list[int], threads: int) -> list[int]:
    """Thread i runs on cpus[i mod len]: more threads than CPUs share them round-robin."""
    return [cpus[i % len(cpus)] for i in range(threads)]


def builtin_command(binary: str, *, arch: str, threads: int, cpus: list[int], port: int,
                    bind: str, body: str, work_us: int = 0, backlog: int | None = None) -> list[str]:
    """server/'s argv; `work_us`: busy CPU per request, simulating application work; `backlog`:
    listen(2)'s, which the kernel caps at net.core.somaxconn (None: the server's 4096)."""
    work = ["--work-us", str(work_us)] if work_us else []
    return [binary, "--arch", arch, "--threads", str(threads),
            "--cpus", cpu_list(thread_cpus(cpus, threads)), "--acceptor-cpu", str(cpus[0]),
            "--bind", bind, "--port", str(port), "--body", body, *work,
            *(["--backlog", str(backlog)] if backlog is not None else [])]


def custom_command(template: str, *, arch: str, threads: int, cpus: list[int], port: int,
                   workdir: str, config_path: str | None) -> str:
    """The user's server command with {threads} {port} {cpus} {arch} {workdir} {config} filled in."""
    values = {"arch": arch, "threads": threads, "cpus": cpu_list(thread_cpus(cpus, threads)),
              "port": port, "workdir": workdir, "config": config_path or ""}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise ToolError("server", f"cannot fill in server.command: {exc!r}; "
                        f"known fields: {', '.join('{' + k + '}' for k in values)}") from None


def render_config(template: str, **values: Any) -> str:
    """server.config rendered with jinja2 (threads, port, cpus, cpu_list, arch, workdir, body)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        return env.from_string(template).render(**values)
    except jinja2.TemplateError as exc:
        raise ToolError("server", f"server.config template: {exc}") from None


@dataclass(frozen=True)
class Ready:
    arch: str
    threads: int
    port: int
    pid: int


def _events(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
    return out


def parse_ready(stdout: str) -> Ready | None:
    for ev in _events(stdout):
        if ev.get("event") == "ready":
            return Ready(str(ev["arch"]), int(ev["threads"]), int(ev["port"]), int(ev["pid"]))
    return None


def parse_stats(stdout: str) -> ServerCounters | None:
    """The server's own per-thread counters, from the `stats` event it prints on exit."""
    for ev in _events(stdout):
        if ev.get("event") == "stats":
            threads = tuple(
                CounterThread(thread=int(t["thread"]), cpu=int(t.get("cpu", -1)), tid=int(t.get("tid", 0)),
                              connections=int(t["connections"]), requests=int(t["requests"]),
                              bytes_in=int(t.get("bytes_in", 0)), bytes_out=int(t.get("bytes_out", 0)))
                for t in ev.get("threads", []))
            acc = ev.get("acceptor")
            accepted = int(acc["connections"]) if isinstance(acc, dict) else None
            return ServerCounters(arch=str(ev.get("arch", "")), threads=threads,
                                  acceptor_connections=accepted)
    return None


def ready_probe(url: str, timeout_s: float = 1.0) -> str:
    """A one-shot HTTP GET run on a client host (python3 is there: Ansible needs it too).
    It prints one line, read by parse_probe: the status it got, or why it got none."""
    code = ("import urllib.request as u, urllib.error as e\n"
            "try:\n"
            f" r=u.urlopen({url!r},timeout={timeout_s}); print('status',r.status,r.reason)\n"
            "except e.HTTPError as x: print('status',x.code,x.reason)\n"
            "except Exception as x: print('error',type(x).__name__,str(x).replace(chr(10),' '))")
    return join(["python3", "-c", code])


@dataclass(frozen=True)
class Probe:
    status: int | None  # None: no HTTP answer at all
    detail: str  # the reason phrase, or why nothing answered

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def parse_probe(stdout: str) -> Probe:
    words = stdout.strip().splitlines()[-1].split(" ", 2) if stdout.strip() else []
    if len(words) >= 2 and words[0] == "status" and words[1].isdigit():
        return Probe(int(words[1]), words[2] if len(words) > 2 else "")
    if words and words[0] == "error":
        return Probe(None, " ".join(words[1:]))
    return Probe(None, stdout.strip()[-200:] or "the probe printed nothing")

