#!/usr/bin/env python3
"""orchestrate-server vs nginx under the same load generator, same pinning, same run.

The load comes from orchestrate-load (loadgen/, the project's own generator) in closed-loop
mode: wrk 4.1 was the limit of the earlier series (its core full at ~6 us of its own CPU
per request, the servers' cores not). Builds the Release server and generator, then for
several alternating rounds measures, for each load (keep-alive, pipelining depth 16,
Connection: close) and each target (nginx with 1 worker per server thread and `reuseport`;
orchestrate-server in `reuseport`, `main-sub` and `uring`): QPS, latency p50/p99, and the
server's and the client's CPU microseconds per request, from their processes' own accounting
(utime+stime in /proc/<pid>/stat, every thread and worker) over the measured window only
(the generator's warm-up is outside it). The busy share of each side's CPUs says which side
was the limit. Ratios to nginx are the geometric mean of the per-round ratios with a 95% t
interval on their logs (orchestrator/stats.paired_ratio; each round's runs share the
machine's state of the moment), chosen before the data; QPS and CPU the medians of the rounds.
Where the client's CPUs were at least CLIENT_FULL busy on both sides, the QPS ratio is the
ratio of the client's own costs, not of the servers' ceilings, and the table says so.

Traffic goes to 127.0.0.1 only; every process started is killed on exit.

    python3 bench/server_vs_nginx.py --rounds 5 --duration 5 --json bench/server_vs_nginx.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator import cpus as cpulist  # noqa: E402
from orchestrator import stats  # noqa: E402
from orchestrator.tools import loadgen  # noqa: E402
from orchestrator.tools import server as server_tool  # noqa: E402

SERVER_BUILD = REPO / "server" / "build" / "release"
LOADGEN_BUILD = REPO / "loadgen" / "build" / "release"
SERVER_BINARY = SERVER_BUILD / server_tool.BINARY
LOADGEN_BINARY = LOADGEN_BUILD / loadgen.BINARY
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Server vs nginx"
BODY = "hello\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LEAD_S = 0.3  # between starting the generator and its warm-up (--start-at)
RT_PRIORITY = 10  # SCHED_FIFO priority of server and client with --realtime (as loadgen's timing tests)

LOADS = {
    # name: (description, orchestrate-load keyword arguments)
    "keepalive": ("keep-alive, no pipelining", {}),
    "pipeline16": ("keep-alive, pipelining depth 16", {"pipeline": 16}),
    "close": ("new connection per request (Connection: close)", {"close": True}),
}
TARGETS = ["nginx", "reuseport", "main-sub", "uring"]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def build():
    for cmd in (server_tool.build_command(REPO / "server", SERVER_BUILD),
                loadgen.build_command(REPO / "loadgen", LOADGEN_BUILD)):
        subprocess.run(cmd, shell=True, check=True, timeout=900)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def proc_cpu_ticks(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            pass
    return total


def cpus_busy_ticks(cpus: set[int]) -> int:
    """Busy time (user+nice+system+irq+softirq+steal) of the given CPUs, in USER_HZ ticks."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m and int(m.group(1)) in cpus:
                v = [int(x) for x in m.group(2).split()]
                total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return total


def children(ppid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        out.append(int(d))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
    return out


def pinned(cpus: list[int], args) -> list[str]:
    """The prefix that runs a command on `cpus`, under SCHED_FIFO with --realtime: the
    machine's other tenants then wait while ours run, instead of deciding the figures."""
    rt = ["chrt", "-f", str(RT_PRIORITY)] if args.realtime else []
    return [*rt, "taskset", "-c", cpulist.ranges(cpus)]


class Nginx:
    def __init__(self, workers: int, prefix: list[str], port: int):
        self.dir = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        conf = self.dir / "nginx.conf"
        body = BODY.replace("\n", "\\n")
        conf.write_text(f"""
worker_processes {workers};
daemon off;
master_process on;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 75s;
  default_type text/plain;
  client_body_temp_path {self.dir}/body;
  proxy_temp_path {self.dir}/proxy;
  fastcgi_temp_path {self.dir}/fastcgi;
  uwsgi_temp_path {self.dir}/uwsgi;
  scgi_temp_path {self.dir}/scgi;
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ return 200 "{body}"; }}
  }}
}}
""")
        self.proc = subprocess.Popen([*prefix, "nginx", "-p", str(self.dir), "-e",
                                      str(self.dir / "error.log"), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = port
        wait_port(port)
        deadline = time.monotonic() + 5
        while len(children(self.proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        self.workers = children(self.proc.pid)

    def pids(self):
        return [self.proc.pid, *self.workers]

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGQUIT)  # graceful
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)
        return {}


class Server:
    def __init__(self, arch: str, threads: int, cpus: list[int], prefix: list[str]):
        argv = server_tool.builtin_command(str(SERVER_BINARY), arch=arch, threads=threads, cpus=cpus,
                                           port=0, bind="127.0.0.1", body=BODY)
        self.proc = subprocess.Popen([*prefix, *argv],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server failed to start: {self.proc.stderr.read()}")
        self.ready = json.loads(line)
        self.port = self.ready["port"]

    def pids(self):
        return [self.proc.pid]

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=5)
        for line in out.splitlines():
            if '"stats"' in line:
                return json.loads(line)
        return {}


def start_target(name: str, args):
    if name == "nginx":
        return Nginx(args.threads, pinned(args.server_cpus, args), free_port())
    return Server(name, args.threads, args.server_cpus, pinned(args.server_cpus, args))


def sleep_until(epoch: float):
    time.sleep(max(0.0, epoch - time.time()))


def measure_once(target: str, load: str, args) -> dict:
    t = start_target(target, args)
    try:
        start_at = time.time() + LEAD_S
        argv = loadgen.command(f"http://127.0.0.1:{t.port}/", threads=args.client_threads,
                               connections=args.connections, duration_s=args.duration,
                               warmup_s=args.warmup, start_at=start_at, cpus=args.client_cpus,
                               binary=str(LOADGEN_BINARY), **LOADS[load][1])
        client = subprocess.Popen([*pinned(args.client_cpus, args), *argv],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pids = t.pids()
        cpus = set(args.server_cpus) | set(args.client_cpus)
        # Sample at the window's edges: after the warm-up, and just before the end
        # (the client's ticks vanish with it).
        sleep_until(start_at + args.warmup)
        busy0, cpu0, client0, t0 = (cpus_busy_ticks(cpus), proc_cpu_ticks(pids),
                                    proc_cpu_ticks([client.pid]), time.time())
        sleep_until(start_at + args.warmup + args.duration - 0.05)
        busy1, cpu1, client1, t1 = (cpus_busy_ticks(cpus), proc_cpu_ticks(pids),
                                    proc_cpu_ticks([client.pid]), time.time())
        out, err = client.communicate(timeout=args.duration + 60)
        if client.returncode != 0:
            raise RuntimeError(f"orchestrate-load failed: {err.strip()[-500:]}")
    finally:
        stats = t.stop()
    r = loadgen.parse(out, err)
    seconds = t1 - t0
    served = r.qps * seconds  # responses in the sampled part of the window
    server_s, client_s = (cpu1 - cpu0) / CLK_TCK, (client1 - client0) / CLK_TCK
    res = {"qps": r.qps, "responses": r.counts.responses, "p50_us": r.latency_ms.p50 * 1000,
           "p99_us": r.latency_ms.p99 * 1000, "errors": r.counts.socket_errors,
           "non_2xx": r.counts.non_2xx,
           "cpu_us_per_req": server_s * 1e6 / max(served, 1),
           "client_cpu_us_per_req": client_s * 1e6 / max(served, 1),
           # Busy share of each side's CPUs: the side near 100% is the limit.
           "server_busy": server_s / (seconds * len(set(args.server_cpus))),
           "client_busy": client_s / (seconds * len(set(args.client_cpus)))}
    # CPU time on the benchmark's CPUs used by anything but server and client, as a
    # share of those CPUs' capacity: other people's work disturbing us.
    foreign = (busy1 - busy0) - (cpu1 - cpu0) - (client1 - client0)
    res["foreign_share"] = max(0.0, foreign / CLK_TCK / (seconds * len(cpus)))
    if stats:
        res["server_requests"] = sum(th["requests"] for th in stats["threads"])
        res["per_thread_connections"] = [th["connections"] for th in stats["threads"]]
    return res


def measure(target: str, load: str, args) -> dict:
    """measure_once, retried while other processes used the benchmark CPUs."""
    best = None
    for attempt in range(args.retries + 1):
        r = measure_once(target, load, args)
        r["attempts"] = attempt + 1
        if best is None or r["foreign_share"] < best["foreign_share"]:
            best = r
        if r["foreign_share"] <= args.max_foreign or attempt == args.retries:
            break
        print(f"  disturbed: {r['foreign_share']:.0%} of the CPUs used by other processes; retrying",
              flush=True)
        time.sleep(2)
    return best


def machine() -> dict:
    lscpu = run(["lscpu"]).stdout
    model = re.search(r"Model name:\s+(.*)", lscpu).group(1).strip()
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    gen_v = run([str(LOADGEN_BINARY), "--version"]).stdout.strip()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "nginx": nginx_v.replace("nginx version: ", ""), "generator": gen_v, "commit": commit,
            "compiler": run(["c++", "--version"]).stdout.split("\n")[0]}


def fmt_us(v: float) -> str:
    if v != v:  # NaN
        return "n/a"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} us"


CLIENT_FULL = 0.90  # a generator this busy on both sides sets QPS itself


def ratio(runs: list[dict], base: list[dict], key: str) -> stats.Ratio:
    """This round's value / nginx's value in the same round, over the rounds: geometric mean
    with its 95% interval."""
    return stats.paired_ratio([b[key] for b in base], [r[key] for r in runs])


def client_bound(runs: list[dict], base: list[dict]) -> bool:
    """The generator was full on both sides in the median round: QPS followed its cost."""
    return min(statistics.median(r["client_busy"] for r in side) for side in (runs, base)) >= CLIENT_FULL


def render(results: dict, args, info: dict) -> str:
    rt = f", both under SCHED_FIFO: chrt -f {RT_PRIORITY}" if args.realtime else ""
    retried = (f"A measurement during which other processes used more than {args.max_foreign:.0%} of these "
               f"CPUs (from /proc/stat) was retried up to {args.retries} times, keeping the least disturbed."
               if args.retries else "No measurement was retried; the last figure of each per-round entry "
               "below is the share of these CPUs that other processes used (from /proc/stat).")
    lines = [SECTION, "",
             f"Machine: {info['cpu']}, {info['cpus']} CPUs, kernel {info['kernel']}; nginx {info['nginx']}; "
             f"{info['generator']}; {info['compiler']}; commit {info['commit']}. The machine is shared with "
             f"other engineers' builds and tests, so rounds alternate and ratios are per round.",
             f"Server (all threads/workers) on CPU {cpulist.ranges(args.server_cpus)}, orchestrate-load on "
             f"CPU {cpulist.ranges(args.client_cpus)} (`taskset` and `--cpus`"
             f"{rt}); {args.threads} server "
             f"thread(s) / nginx worker(s); orchestrate-load closed loop, {args.client_threads} thread(s), "
             f"{args.connections} connections (pipelining: 16 requests in flight on each); "
             f"{args.rounds} rounds of {args.duration:g} s after {args.warmup:g} s of warm-up, targets in "
             f"rotating order. QPS, p50, p99, CPU: medians of the rounds; ratios to nginx: geometric mean "
             f"of the per-round ratios with its 95% t interval on the logs (stats.paired_ratio), chosen "
             f"before the data. A QPS ratio marked *client full* had the client's CPUs at least "
             f"{CLIENT_FULL:.0%} busy on both sides: it is the ratio of the client's costs per request "
             f"with each server, not of the servers' ceilings. CPU us/req = the processes' utime+stime "
             f"(/proc/<pid>/stat) over the window "
             f"/ responses in it; busy = that CPU time / the side's CPUs over the window. " + retried,
             f"Reproduce: `python3 bench/server_vs_nginx.py --rounds {args.rounds} "
             f"--duration {args.duration:g} --retries {args.retries} --json bench/server_vs_nginx.json "
             f"--write-results`", "",
             "| load | server | QPS | p50 | p99 | CPU us/req | QPS vs nginx | CPU/req vs nginx "
             "| server busy | client busy | client us/req |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for load in args.loads:
        base = results[load].get("nginx")
        for target in args.targets:
            runs = results[load][target]

            def med(key, runs=runs):
                return statistics.median(r[key] for r in runs)

            if base and target != "nginx":
                rq = ratio(runs, base, "qps").text(2)
                if client_bound(runs, base):
                    rq += " *client full*"
                rc = ratio(runs, base, "cpu_us_per_req").text(2)
            else:
                rq = rc = "-"
            name = target if target == "nginx" else f"orchestrate {target}"
            lines.append(f"| {LOADS[load][0]} | {name} | {med('qps'):,.0f} | {fmt_us(med('p50_us'))} | "
                         f"{fmt_us(med('p99_us'))} | {med('cpu_us_per_req'):.2f} | {rq} | {rc} | "
                         f"{med('server_busy'):.0%} | {med('client_busy'):.0%} | "
                         f"{med('client_cpu_us_per_req'):.2f} |")
    lines += ["", "Checks: errors and non-2xx responses seen by the generator, and the server's own count "
              "of requests (stats line, warm-up included) against the responses of the window:", ""]
    for load in args.loads:
        runs = [r for t in args.targets for r in results[load][t]]
        errors = sum(r["errors"] + r["non_2xx"] for r in runs)
        short = [r for r in runs if "server_requests" in r and r["server_requests"] < r["responses"]]
        lines.append(f"- {load}: {errors} errors or non-2xx in {len(runs)} runs; server counted fewer "
                     f"requests than the window's responses in {len(short)}")
    lines += ["", "Per-round figures (QPS / server CPU us per request / share of the CPUs used by others):",
              ""]
    for load in args.loads:
        for target in args.targets:
            rounds = ", ".join(f"{r['qps']:,.0f} / {r['cpu_us_per_req']:.2f} / {r['foreign_share']:.0%}"
                               for r in results[load][target])
            lines.append(f"- {load}, {target}: {rounds}")
    lines.append("")
    return "\n".join(lines)


MARKER = "<!-- end of generated figures; notes below are kept on rewrite -->"


def write_results(section: str, path: Path = RESULTS):
    """Replaces the generated part of our section; keeps everything else."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    generated = section.rstrip("\n") + "\n\n" + MARKER + "\n"
    start = text.find(SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + generated
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        limit = len(text) if nxt < 0 else nxt + 1
        mpos = text.find(MARKER, start, limit)
        end = mpos + len(MARKER) + 1 if mpos >= 0 else limit
        text = text[:start] + generated + text[end:]
    path.write_text(text)


def cpu_arg(text: str) -> list[int]:
    try:
        cpus = cpulist.parse_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not cpus:
        raise argparse.ArgumentTypeError("needs at least one CPU")
    return cpus


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up load before each window")
    p.add_argument("--threads", type=int, default=1, help="server threads = nginx workers")
    p.add_argument("--server-cpus", type=cpu_arg, default=[0])
    p.add_argument("--client-cpus", type=cpu_arg, default=[1])
    p.add_argument("--client-threads", type=int, default=1)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--loads", default=",".join(LOADS))
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--max-foreign", type=float, default=0.05,
                   help="retry a measurement if other processes used more than this share of the CPUs")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help=f"run server and client under SCHED_FIFO (chrt -f {RT_PRIORITY}), so that other "
                        "work on a shared machine waits for them (default: on)")
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--write-results", action="store_true", help=f"replace '{SECTION}' in bench/RESULTS.md")
    p.add_argument("--results-file", type=Path, default=RESULTS, help="the file --write-results rewrites")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--from-json", type=Path, help="only render a --json file written earlier (same flags)")
    args = p.parse_args(argv)
    args.loads = args.loads.split(",")
    args.targets = args.targets.split(",")
    unknown = sorted(set(args.loads) - set(LOADS)) + sorted(set(args.targets) - set(TARGETS))
    if unknown:
        print(f"unknown load or target: {', '.join(unknown)}; loads: {', '.join(LOADS)}; "
              f"targets: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    for tool in ("nginx", "taskset", *(["chrt"] if args.realtime else [])):
        if shutil.which(tool) is None:
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        args.realtime = saved["machine"].get("realtime", args.realtime)
        section = render(saved["results"], args, saved["machine"])
        print(section)
        if args.write_results:
            write_results(section, args.results_file)
        return 0
    if not args.no_build:
        build()
    info = {**machine(), "realtime": args.realtime}
    results = {load: {t: [] for t in args.targets} for load in args.loads}
    for rnd in range(args.rounds):
        for load in args.loads:
            # Rotate the order every round so drift hits every target alike.
            order = args.targets[rnd % len(args.targets):] + args.targets[:rnd % len(args.targets)]
            for target in order:
                r = measure(target, load, args)
                results[load][target].append(r)
                print(f"round {rnd + 1}/{args.rounds} {load:10s} {target:9s} {r['qps']:>10,.0f} req/s "
                      f"p50 {fmt_us(r['p50_us'])} p99 {fmt_us(r['p99_us'])} "
                      f"{r['cpu_us_per_req']:.2f} us/req (client {r['client_cpu_us_per_req']:.2f}) "
                      f"busy server {r['server_busy']:.0%} client {r['client_busy']:.0%} "
                      f"foreign {r['foreign_share']:.0%} errors {r['errors']}", flush=True)
        if args.json:  # after every round: an interrupted run keeps what it measured
            args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1) + "\n")
    section = render(results, args, info)
    print()
    print(section)
    if args.write_results:
        write_results(section, args.results_file)
        print(f"wrote {args.results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
