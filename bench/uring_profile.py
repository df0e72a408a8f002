#!/usr/bin/env python3
"""Where the keep-alive CPU per request goes: nginx vs orchestrate reuseport vs uring.

The same set-up as bench/server_vs_nginx.py (its helpers are imported: server on CPU 0,
orchestrate-load closed loop on CPU 1, 50 connections, both under SCHED_FIFO), keep-alive
without pipelining. Per run, over the measured window:

- system calls per request: `perf stat` counting the syscall tracepoints of the server's
  threads (raw_syscalls:sys_enter for the total, syscalls:sys_enter_<name> per call), with
  io_uring's own tracepoints for completions (io_uring_complete) and submitted requests
  (io_uring_submit_req) per io_uring_enter. Tracepoint counting does not slow the traced
  calls the way strace's ptrace stops do;
- the kernel/user split: stime and utime of the server's threads (/proc/<pid>/task/*/stat);
- with --record (once per target, in a separate run after the rounds): `perf record -e
  cpu-clock -g` of the server's threads (software clock: this VM has no PMU), reported
  self (flat) and children-inclusive (call paths).

Runs alternate targets in rotating order; per-request figures are medians of the rounds.

    python3 bench/uring_profile.py --rounds 5 --duration 4 --record 4 --json /tmp/uring_profile.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import server_vs_nginx as bench  # noqa: E402  (targets, pinning, loadgen command, CPU accounting)

SYSCALLS = ["io_uring_enter", "recvfrom", "sendto", "writev", "epoll_wait", "read", "write", "accept4",
            "close"]
EVENTS = (["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{s}" for s in SYSCALLS]
          + ["io_uring:io_uring_complete", "io_uring:io_uring_submit_req",
             "sock:sock_send_length", "sock:sock_recv_length"])
# The load runs this much longer than perf counts: perf's start-up (opening a dozen tracepoints)
# takes up to a second or more on a busy machine, and its window must not outlast the load.
TAIL_S = 3.0
PERF_PRIORITY = 20  # above the measured processes, so perf's own start and stop are not starved


def split_ticks(pids: list[int]) -> tuple[int, int]:
    """(utime, stime) of every thread of the processes, in USER_HZ ticks."""
    user = system = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            user, system = user + int(fields[11]), system + int(fields[12])
    return user, system


def perf_prefix(args) -> list[str]:
    # On the client's CPU, so perf's own work does not land on the server's core.
    return ["chrt", "-f", str(PERF_PRIORITY), "taskset", "-c", bench.cpulist.ranges(args.client_cpus)]


def loaded_run(target: str, args, seconds: float, during) -> dict:
    """Starts `target` and the generator, calls during(pids, seconds) at the start of the
    window; returns the generator's figures and what `during` returned."""
    t = bench.start_target(target, args)
    try:
        start_at = time.time() + bench.LEAD_S
        argv = bench.loadgen.command(f"http://127.0.0.1:{t.port}/", threads=args.client_threads,
                                     connections=args.connections, duration_s=seconds + TAIL_S,
                                     warmup_s=args.warmup, start_at=start_at, cpus=args.client_cpus,
                                     binary=str(bench.LOADGEN_BINARY))
        client = subprocess.Popen([*bench.pinned(args.client_cpus, args), *argv],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        bench.sleep_until(start_at + args.warmup)
        measured = during(t.pids(), seconds)
        out, err = client.communicate(timeout=seconds + 60)
        if client.returncode != 0:
            raise RuntimeError(f"orchestrate-load failed: {err.strip()[-500:]}")
    finally:
        t.stop()
    r = bench.loadgen.parse(out, err)
    return {"qps": r.qps, "errors": r.counts.socket_errors + r.counts.non_2xx, **measured}


def count_run(target: str, args, events: list[str]) -> dict:
    def during(pids, seconds):
        with tempfile.NamedTemporaryFile(suffix=".perfstat") as f:
            u0, s0 = split_ticks(pids)
            # Interval mode: the timestamps say how long perf actually counted (its start-up,
            # reading the tracepoints' formats, takes a good part of a second).
            subprocess.run([*perf_prefix(args), "perf", "stat", "-I", "500", "-x", ",", "-o", f.name,
                            "-e", ",".join(["task-clock", *events]), "-p", ",".join(map(str, pids)),
                            "--", "sleep", str(seconds)], check=True, capture_output=True, text=True)
            u1, s1 = split_ticks(pids)
            counts: dict[str, float] = {}
            elapsed = 0.0
            for line in Path(f.name).read_text().splitlines():
                parts = line.strip().split(",")
                if len(parts) > 3 and parts[3] in ("task-clock", *events):
                    elapsed = max(elapsed, float(parts[0]))
                    key = parts[3].split(":")[-1]
                    with contextlib.suppress(ValueError):
                        counts[key] = counts.get(key, 0.0) + float(parts[1])
        user, system = (u1 - u0), (s1 - s0)
        return {"window_s": elapsed, "counts": counts, "user_share": user / max(user + system, 1)}

    r = loaded_run(target, args, args.duration, during)
    counts = r.pop("counts")
    # Responses in perf's window: one sendmsg each (keep-alive without pipelining: one request
    # in flight per connection, so no send carries two responses). The generator's average
    # rate times the window is only a cross-check: the rate drifts within a run.
    served = counts.get("sock_send_length", 0) or r["qps"] * r["window_s"]
    cpu_us = counts.pop("task-clock", 0.0) * 1e3 / served  # task-clock counts msec
    per = {k: v / served for k, v in counts.items()}
    enters = counts.get("sys_enter_io_uring_enter", 0)
    return {"qps": r["qps"], "errors": r["errors"], "requests": served, "cpu_us_per_req": cpu_us,
            "window_qps": served / r["window_s"],
            "user_us_per_req": cpu_us * r["user_share"], "sys_us_per_req": cpu_us * (1 - r["user_share"]),
            "per_request": per,
            "completions_per_enter": counts.get("io_uring_complete", 0) / enters if enters else None,
            "submits_per_enter": counts.get("io_uring_submit_req", 0) / enters if enters else None}


# Self time bucketed by kernel symbol (leading underscores dropped, matched at the start);
# first match wins, unmatched kernel symbols are "other kernel".
BUCKETS = [
    ("io_uring", r"io_|do_sys_io_uring|tctx_|llist_"),
    ("epoll", r"ep_|do_epoll|x64_sys_epoll"),
    ("syscall entry/exit, fd lookup", r"entry_SYSCALL|do_syscall_64|syscall_|exit_to_user|x64_sys_|sys_|"
                                      r"fdget|fget|fput|x64_sys_call|vfs_(read|write)|rw_verify|security_file|put_user|"
                                      r"import_iovec|iovec_from_user"),
    ("copies", r"_?copy_(to|from)_iter|copy_user|rep_mov|memcpy|memset|skb_datagram_iter|"
               r"skb_copy_datagram|check_object_size|virt_addr_valid|check_heap_object"),
    ("TCP/IP, skb, socket, loopback", r"tcp_|ip_|inet_|skb_|sk_|sock_|net_|netif_|napi|process_backlog|"
                                     r"loopback|dev_|bbr_|kfree_skb|consume_skb|alloc_skb|release_sock|"
                                     r"lock_sock|ipv4_|validate_xmit|eth_|raw_local|raw_v4|nf_|minmax_|"
                                     r"build_skb|tso_|sch_direct|qdisc|security_sock|bpf_|neigh_|dst_|"
                                     r"ipt_|rb_|raw_local_deliver|ktime_get_with_offset"),
    ("memory (slab, pages)", r"kmem_cache|slab|kfree|kmalloc|page_frag|alloc_pages|free_unref|free_pages|"
                             r"get_page_from_freelist|mod_memcg|mod_|memcg|refill_stock|obj_cgroup|folio|"
                             r"put_page|pcpu_"),
    ("scheduler, softirq, timers, locks, RCU", r"schedule|wake|ttwu|enqueue|dequeue|update_curr|"
                                               r"(do_|handle_)?softirq|irq|timer|hrtimer|ktime_get|read_tsc|"
                                               r"rcu|raw_spin|native_|pv_|raw_callee|finish_task|switch_to|"
                                               r"pick_|select_task|psi_|cpuacct|update_|sched_|account_|"
                                               r"local_bh|preempt|clockevents|lapic|sysvec|asm_|tick_|kvm_|"
                                               r"pvclock|queued_spin|try_to_wake|check_preempt|set_next|"
                                               r"put_prev|task_|cgroup_rstat|hrtick|vtime"),
]


def buckets(data: Path) -> dict[str, float]:
    """Self-time shares (%) of the profile per bucket; user space is everything outside the kernel."""
    text = report(data, "--no-children", "--sort", "dso,sym", "--percent-limit", "0")
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(\S+)", line)
        if not m:
            continue
        share, kind, sym = float(m.group(1)), m.group(3), m.group(4)
        if kind != "k":
            name = "user space (server, libc, liburing)"
        else:
            name = next((b for b, rx in BUCKETS if re.match(rx, sym.lstrip("_"))), "other kernel")
        out[name] = out.get(name, 0.0) + share
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def report(data: Path, *extra: str) -> str:
    return subprocess.run(["perf", "report", "-i", str(data), "--stdio", "-q", "-g", "none", *extra],
                          check=True, capture_output=True, text=True).stdout


def record_run(target: str, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="uring-profile-"))
    data = tmp / "perf.data"

    def during(pids, seconds):
        subprocess.run([*perf_prefix(args), "perf", "record", "-q", "-e", "cpu-clock", "-F", "2999", "-g",
                        "-m", "1024", "-o", str(data), "-p", ",".join(map(str, pids)), "--", "sleep",
                        str(seconds)], check=True, capture_output=True, text=True)
        return {}

    r = loaded_run(target, args, args.record, during)
    flat = report(data, "--no-children", "--sort", "sym", "--percent-limit", "0.7")
    dso = report(data, "--no-children", "--sort", "dso")
    children = report(data, "--children", "--sort", "sym", "--percent-limit", "2")
    return {"qps": r["qps"], "flat": flat, "dso": dso, "children": children, "buckets": buckets(data),
            "data": str(data)}


def ratios(counts: dict) -> None:
    """Each target against nginx, as stats.paired_ratio (chosen before the data: geometric mean
    of per-round ratios, 95% t interval on the logs): the rounds share the machine's state."""
    from orchestrator import stats

    for target, runs in counts.items():
        if "nginx" not in counts or target == "nginx":
            continue
        base = counts["nginx"]
        cpu = stats.paired_ratio([b["plain_cpu_us_per_req"] for b in base],
                                 [r["plain_cpu_us_per_req"] for r in runs])
        qps = stats.paired_ratio([b["plain_qps"] for b in base], [r["plain_qps"] for r in runs])
        print(f"{target:9s} vs nginx ({stats.PAIRED}, {len(runs)} rounds): CPU/req {cpu.text(2)}, "
              f"QPS {qps.text(2)}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0, help="seconds counted per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--record", type=float, default=0.0, help="seconds of perf record per target (0: none)")
    p.add_argument("--targets", default="nginx,reuseport,uring")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--json", type=Path)
    p.add_argument("--table", type=Path, metavar="JSON", help="only print the ratios of recorded rounds")
    args = p.parse_args(argv)
    if args.table:
        ratios(json.loads(args.table.read_text())["counts"])
        return 0
    args.targets = args.targets.split(",")
    unknown = sorted(set(args.targets) - set(bench.TARGETS))
    if unknown:
        print(f"--targets: unknown {', '.join(unknown)}; known: {', '.join(bench.TARGETS)}", file=sys.stderr)
        return 2
    # The bench's fixed set-up: one server thread on CPU 0, the generator on CPU 1, SCHED_FIFO.
    args.threads, args.client_threads, args.realtime = 1, 1, True
    args.server_cpus, args.client_cpus = [0], [1]
    out: dict = {"counts": {t: [] for t in args.targets}, "profiles": {}}
    for rnd in range(args.rounds):
        order = args.targets[rnd % len(args.targets):] + args.targets[:rnd % len(args.targets)]
        for target in order:
            # CPU per request with one tracepoint (the send that counts responses), then the
            # calls with all of them: every traced event costs the server some CPU itself.
            plain = count_run(target, args, ["sock:sock_send_length"])
            r = count_run(target, args, EVENTS)
            r["plain_cpu_us_per_req"] = plain["cpu_us_per_req"]
            r["plain_user_us_per_req"] = plain["user_us_per_req"]
            r["plain_qps"] = plain["window_qps"]
            out["counts"][target].append(r)
            per = ", ".join(f"{k.removeprefix('sys_enter_')} {v:.3f}"
                            for k, v in r["per_request"].items() if v)
            cpe = f" completions/enter {r['completions_per_enter']:.1f}" if r["completions_per_enter"] else ""
            print(f"round {rnd + 1} {target:9s} untraced {r['plain_qps']:>9,.0f} req/s "
                  f"{r['plain_cpu_us_per_req']:.2f} us/req (user {r['plain_user_us_per_req']:.2f}); traced "
                  f"{r['cpu_us_per_req']:.2f} us/req; per req: {per}{cpe}", flush=True)
    print("\nmedians:")
    for target in args.targets if args.rounds else []:
        runs = out["counts"][target]

        def med(f, runs=runs):
            return statistics.median(f(r) for r in runs)

        print(f"{target:9s} untraced {med(lambda r: r['plain_qps']):,.0f} req/s "
              f"{med(lambda r: r['plain_cpu_us_per_req']):.2f} us/req (user "
              f"{med(lambda r: r['plain_user_us_per_req']):.2f}); syscalls/req "
              f"{med(lambda r: r['per_request'].get('sys_enter', 0)):.3f}"
              + (f"; completions/enter {med(lambda r: r['completions_per_enter']):.1f}, submits/enter "
                 f"{med(lambda r: r['submits_per_enter']):.1f}" if runs[0]["completions_per_enter"] else ""))
    ratios(out["counts"])
    for target in args.targets if args.record else []:
        prof = record_run(target, args)
        out["profiles"][target] = prof
        shares = ", ".join(f"{k} {v:.1f}%" for k, v in prof["buckets"].items())
        print(f"\n== {target} ({prof['qps']:,.0f} req/s while recorded)\n-- buckets: {shares}\n"
              f"-- dso\n{prof['dso']}"
              f"-- self\n{prof['flat']}-- children\n{prof['children']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
