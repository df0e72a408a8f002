#!/usr/bin/env python3
"""orchestrate-server vs nginx under the same wrk, same pinning, same run.

Builds the Release server, then for several alternating rounds measures, for
each load (keep-alive, pipelining depth 16, Connection: close) and each target
(nginx with 1 worker per server thread and `reuseport`; orchestrate-server in
`reuseport`, `main-sub` and `uring`): QPS, latency p50/p99 (wrk --latency) and server
CPU microseconds per request from the server processes' own accounting
(utime+stime in /proc/<pid>/stat, all threads/workers, before/after the run).
Reports medians and the ratio to nginx, as a markdown table.

Traffic goes to 127.0.0.1 only; every process started is killed on exit.

    python3 bench/server_vs_nginx.py --rounds 5 --duration 5 --write-results
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
SERVER_DIR = REPO / "server"
BUILD_DIR = SERVER_DIR / "build" / "release"
BINARY = BUILD_DIR / "orchestrate-server"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Server vs nginx"
BODY = "hello\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")

PIPELINE_LUA = """
init = function(args)
  local r = {}
  for i = 1, %d do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end
request = function() return req end
"""

LOADS = {
    # name: (description, extra wrk args, connections)
    "keepalive": ("keep-alive, no pipelining", [], None),
    "pipeline16": ("keep-alive, pipelining depth 16", ["pipeline"], None),
    "close": ("new connection per request (Connection: close)", ["-H", "Connection: close"], None),
}
TARGETS = ["nginx", "reuseport", "main-sub", "uring"]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def build_server():
    if not (BUILD_DIR / "CMakeCache.txt").exists():
        run(["cmake", "-S", str(SERVER_DIR), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release"], timeout=300)
    run(["cmake", "--build", str(BUILD_DIR), "-j2"], timeout=600)


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


def parse_cpus(spec: str) -> set[int]:
    out = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


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


class Nginx:
    def __init__(self, workers: int, cpus: str, port: int):
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
        self.proc = subprocess.Popen(["taskset", "-c", cpus, "nginx", "-p", str(self.dir), "-e",
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
    def __init__(self, arch: str, threads: int, cpus: str):
        self.proc = subprocess.Popen(["taskset", "-c", cpus, str(BINARY), "--arch", arch,
                                      "--threads", str(threads), "--cpus", cpus,
                                      "--acceptor-cpu", cpus.split(",")[0], "--port", "0"],
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


def start_target(name: str, threads: int, cpus: str):
    if name == "nginx":
        return Nginx(threads, cpus, free_port())
    return Server(name, threads, cpus)


def parse_duration_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[unit]


def parse_wrk(out: str) -> dict:
    res = {"qps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        value = parse_duration_us(m.group(1)) if m else float("nan")
        # wrk 4.1 prints 0.00us above p50 when a Lua script pipelines: unusable.
        res[f"p{pct}_us"] = value if value > 0 else float("nan")
    errors = re.search(r"Socket errors: (.*)", out)
    res["socket_errors"] = errors.group(1) if errors else ""
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    return res


def wrk_cmd(load: str, port: int, args, duration: float, lua: Path) -> list[str]:
    extra = LOADS[load][1]
    cmd = ["taskset", "-c", args.wrk_cpus, "wrk", "-t", str(args.wrk_threads), "-c", str(args.connections),
           "-d", f"{max(1, round(duration))}s", "--latency", "--timeout", "5s"]
    if extra == ["pipeline"]:
        cmd += ["-s", str(lua)]
    else:
        cmd += extra
    return cmd + [f"http://127.0.0.1:{port}/"]


def measure_once(target: str, load: str, args, lua: Path) -> dict:
    t = start_target(target, args.threads, args.server_cpus)
    try:
        if args.warmup > 0:
            warm = run(wrk_cmd(load, t.port, args, args.warmup, lua), timeout=args.warmup + 60)
            warm_requests = parse_wrk(warm.stdout)["requests"]
        else:
            warm_requests = 0
        pids = t.pids()
        cpus = parse_cpus(args.server_cpus) | parse_cpus(args.wrk_cpus)
        wrk = subprocess.Popen(wrk_cmd(load, t.port, args, args.duration, lua), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        busy0, cpu0 = cpus_busy_ticks(cpus), proc_cpu_ticks(pids)
        wrk0, t0 = proc_cpu_ticks([wrk.pid]), time.time()
        # Sample just before wrk exits: wrk's own ticks vanish with it.
        time.sleep(max(0.0, round(args.duration) - 0.05))
        busy1, cpu1 = cpus_busy_ticks(cpus), proc_cpu_ticks(pids)
        wrk1, t1 = proc_cpu_ticks([wrk.pid]), time.time()
        out, err = wrk.communicate(timeout=args.duration + 60)
        if wrk.returncode != 0:
            raise RuntimeError(f"wrk failed: {err}")
        cpu_end = proc_cpu_ticks(pids)
    finally:
        stats = t.stop()
    res = parse_wrk(out)
    # Server CPU over the whole wrk run (the tail after the sample is tiny).
    res["cpu_s"] = (cpu_end - cpu0) / CLK_TCK
    res["cpu_us_per_req"] = res["cpu_s"] * 1e6 / max(res["requests"], 1)
    res["wrk_cpu_us_per_req"] = (wrk1 - wrk0) / CLK_TCK * 1e6 / max(res["qps"] * (t1 - t0), 1)
    # CPU time on the benchmark's CPUs used by anything but server and wrk,
    # as a share of those CPUs' capacity: other people's work disturbing us.
    foreign = (busy1 - busy0) - (cpu1 - cpu0) - (wrk1 - wrk0)
    res["foreign_share"] = max(0.0, foreign / CLK_TCK / ((t1 - t0) * len(cpus)))
    res["wrk_total_requests"] = warm_requests + res["requests"]
    if stats:
        res["server_requests"] = sum(th["requests"] for th in stats["threads"])
        res["per_thread_connections"] = [th["connections"] for th in stats["threads"]]
    res["raw"] = out
    return res


def measure(target: str, load: str, args, lua: Path) -> dict:
    """measure_once, retried while other processes used the benchmark CPUs."""
    best = None
    for attempt in range(args.retries + 1):
        r = measure_once(target, load, args, lua)
        r["attempts"] = attempt + 1
        if best is None or r["foreign_share"] < best["foreign_share"]:
            best = r
        if r["foreign_share"] <= args.max_foreign:
            break
        print(f"  disturbed: {r['foreign_share']:.0%} of the CPUs used by other processes; retrying",
              flush=True)
        time.sleep(2)
    return best


def machine() -> dict:
    lscpu = run(["lscpu"]).stdout
    model = re.search(r"Model name:\s+(.*)", lscpu).group(1).strip()
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "nginx": nginx_v.replace("nginx version: ", ""), "wrk": wrk_v.split(" [")[0],
            "compiler": run(["c++", "--version"]).stdout.split("\n")[0]}


def fmt_us(v: float) -> str:
    if v != v:  # NaN
        return "n/a"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} us"


def median_or_nan(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def render(results: dict, args, info: dict) -> str:
    lines = [SECTION, "",
             f"Machine: {info['cpu']}, {info['cpus']} CPUs, kernel {info['kernel']}; nginx {info['nginx']}; "
             f"{info['wrk']}; {info['compiler']}.",
             f"Server (all threads/workers) on CPU {args.server_cpus}, wrk on CPU {args.wrk_cpus} "
             f"(`taskset`); {args.threads} server thread(s) / nginx worker(s); wrk -t{args.wrk_threads} "
             f"-c{args.connections}; {args.rounds} alternating rounds of {args.duration:g} s "
             f"(+{args.warmup:g} s warm-up each); medians. CPU us/req = server processes' utime+stime "
             f"(/proc/<pid>/stat) during the run / requests wrk completed. A measurement during which other "
             f"processes used more than {args.max_foreign:.0%} of these CPUs (from /proc/stat) was "
             f"retried up to {args.retries} times, keeping the least disturbed.",
             f"Reproduce: `python3 bench/server_vs_nginx.py --rounds {args.rounds} "
             f"--duration {args.duration:g} --write-results`", "",
             "| load | server | QPS | p50 | p99 | CPU us/req | QPS vs nginx | CPU/req vs nginx |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for load in args.loads:
        base = results[load].get("nginx")
        for target in args.targets:
            runs = results[load][target]
            qps = statistics.median(r["qps"] for r in runs)
            p50 = median_or_nan([r["p50_us"] for r in runs])
            p99 = median_or_nan([r["p99_us"] for r in runs])
            cpu = statistics.median(r["cpu_us_per_req"] for r in runs)
            if base and target != "nginx":
                bq = statistics.median(r["qps"] for r in base)
                bc = statistics.median(r["cpu_us_per_req"] for r in base)
                rq, rc = f"{qps / bq:.2f}x", f"{cpu / bc:.2f}x"
            else:
                rq = rc = "-"
            name = target if target == "nginx" else f"orchestrate {target}"
            lines.append(f"| {LOADS[load][0]} | {name} | {qps:,.0f} | {fmt_us(p50)} | {fmt_us(p99)} | "
                         f"{cpu:.2f} | {rq} | {rc} |")
    lines.append("")
    lines.append("Server counters vs wrk: the per-thread `requests` of the stats line, summed, against the "
                 "requests wrk completed (warm-up + run); the server may also have answered requests that "
                 "were in flight when wrk stopped (at most connections x pipeline depth per wrk run).")
    lines.append("")
    for load in args.loads:
        diffs = [r["server_requests"] - r["wrk_total_requests"] for t in args.targets if t != "nginx"
                 for r in results[load][t] if "server_requests" in r]
        if diffs:
            depth = args.pipeline if load == "pipeline16" else 1
            bound = args.connections * depth * (2 if args.warmup > 0 else 1)
            ok = all(0 <= d <= bound for d in diffs)
            lines.append(f"- {load}: server - wrk = {min(diffs)}..{max(diffs)} requests "
                         f"(bound {bound}): {'consistent' if ok else 'INCONSISTENT'}")
    lines.append("")
    lines.append("Per-round figures (QPS / CPU us per request):")
    lines.append("")
    for load in args.loads:
        for target in args.targets:
            rounds = ", ".join(f"{r['qps']:,.0f} / {r['cpu_us_per_req']:.2f}" for r in results[load][target])
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up load before each")
    p.add_argument("--threads", type=int, default=1, help="server threads = nginx workers")
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--wrk-cpus", default="1")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--loads", default=",".join(LOADS))
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--max-foreign", type=float, default=0.05,
                   help="retry a measurement if other processes used more than this share of the CPUs")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--json", type=Path, help="write every measurement (with wrk's raw output) here")
    p.add_argument("--write-results", action="store_true", help=f"replace '{SECTION}' in bench/RESULTS.md")
    p.add_argument("--results-file", type=Path, default=RESULTS, help="the file --write-results rewrites")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--from-json", type=Path, help="only render a --json file written earlier (same flags)")
    args = p.parse_args(argv)
    args.loads = args.loads.split(",")
    args.targets = args.targets.split(",")
    for tool in ("wrk", "nginx", "taskset"):
        if shutil.which(tool) is None:
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        section = render(saved["results"], args, saved["machine"])
        print(section)
        if args.write_results:
            write_results(section, args.results_file)
        return 0
    if not args.no_build:
        build_server()
    info = machine()
    results = {load: {t: [] for t in args.targets} for load in args.loads}
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "pipeline.lua"
        lua.write_text(PIPELINE_LUA % args.pipeline)
        for rnd in range(args.rounds):
            for load in args.loads:
                # Rotate the order every round so drift hits every target alike.
                order = args.targets[rnd % len(args.targets):] + args.targets[:rnd % len(args.targets)]
                for target in order:
                    r = measure(target, load, args, lua)
                    results[load][target].append(r)
                    check = ""
                    if "server_requests" in r:
                        check = f" server counted {r['server_requests']} (wrk {r['wrk_total_requests']})"
                    print(f"round {rnd + 1}/{args.rounds} {load:10s} {target:9s} {r['qps']:>10,.0f} req/s "
                          f"p50 {fmt_us(r['p50_us'])} p99 {fmt_us(r['p99_us'])} "
                          f"{r['cpu_us_per_req']:.2f} us/req (wrk {r['wrk_cpu_us_per_req']:.2f}) "
                          f"foreign {r['foreign_share']:.0%}"
                          f"{check} {r['socket_errors']}", flush=True)
    section = render(results, args, info)
    print()
    print(section)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    if args.write_results:
        write_results(section, args.results_file)
        print(f"wrote {args.results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
