"""Re-record the real tool outputs under tests/tools/data/ (run: python tests/tools/capture_outputs.py).

Everything runs on 127.0.0.1 for 1-3 s, bounded by timeouts, and every process started here
is stopped before the script ends. The parsers' tests read these files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import localservers as ls  # noqa: E402

from orchestrator.tools import facts, iperf3, mpstat, pidstat, sar, wrk  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"

# threads that start and exit while pidstat watches (named with prctl so tests can tell them)
CHURN = r"""
import ctypes, threading, time
libc = ctypes.CDLL(None)
def work(name, sec):
    libc.prctl(15, name.encode())
    end = time.time() + sec
    while time.time() < end:
        sum(range(1000))
ts = [threading.Thread(target=work, args=("short", 1.5)),
      threading.Thread(target=work, args=("long", 3.5))]
for t in ts: t.start()
time.sleep(2.2)
late = threading.Thread(target=work, args=("late", 1.2)); late.start()
for t in ts + [late]: t.join()
time.sleep(0.3)
"""


def env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


def save(name: str, text: str) -> None:
    (DATA / name).write_text(text)
    print(f"  {name}: {len(text)} chars")


def run(argv: list[str], extra_env: dict[str, str], timeout: float = 20) -> tuple[str, str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env(extra_env))
    return r.stdout, r.stderr


def background(argv: list[str], extra_env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(extra_env))


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> str:
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def wrk_cmd(url: str, script: Path, *, t: int = 1, c: int = 10, d: int = 1, timeout: int = 2,
            pipeline: int = 1) -> list[str]:
    return wrk.command(url, threads=t, connections=c, duration_s=d, timeout_s=timeout,
                       script_path=str(script), pipeline=pipeline)


def capture_wrk(tmp: Path) -> None:
    script = tmp / "report.lua"
    script.write_text(wrk.LUA_SCRIPT)
    with ls.nginx() as url:
        save("wrk_ok.txt", run(wrk_cmd(url, script, t=2, c=20), wrk.ENV)[0])
        save("wrk_pipeline4.txt", run(wrk_cmd(url, script, c=10, pipeline=4), wrk.ENV)[0])
        save("wrk_404.txt", run(wrk_cmd(url + "missing", script), wrk.ENV)[0])
        # two wrk at once, as on two client hosts, for merge()
        a = background(wrk_cmd(url, script, c=4), wrk.ENV)
        b = background(wrk_cmd(url, script, c=64), wrk.ENV)
        save("wrk_concurrent_a.txt", a.communicate(timeout=20)[0])
        save("wrk_concurrent_b.txt", b.communicate(timeout=20)[0])
        # wrk's own text report, no script: the parser's fallback
        plain = [a for a in wrk_cmd(url, script) if a not in ("-s", str(script))]
        plain = plain[: plain.index("--")]
        save("wrk_text_ok.txt", run(plain, wrk.ENV)[0])
        plain_404 = [url + "missing" if a == url else a for a in plain]
        save("wrk_text_404.txt", run(plain_404, wrk.ENV)[0])
    with ls.tcp_server("slow", delay_s=1.3) as url:
        # every answer comes after the 1 s timeout: counted as timeouts
        save("wrk_timeout.txt", run(wrk_cmd(url, script, c=4, d=3, timeout=1), wrk.ENV)[0])
        plain = [a for a in wrk_cmd(url, script, c=4, d=3, timeout=1)]
        plain = [a for a in plain[: plain.index("--")] if a not in ("-s", str(script))]
        save("wrk_text_timeout.txt", run(plain, wrk.ENV)[0])
    with ls.tcp_server("silent") as url:
        save("wrk_silent.txt", run(wrk_cmd(url, script, c=4, d=2, timeout=1), wrk.ENV)[0])
    with ls.tcp_server("reset") as url:
        save("wrk_reset.txt", run(wrk_cmd(url, script, c=4), wrk.ENV)[0])
    port = ls.free_port()
    out, err = run(wrk_cmd(f"http://127.0.0.1:{port}/", script), wrk.ENV)
    save("wrk_refused.stdout", out)
    save("wrk_refused.stderr", err)


def capture_iperf3() -> None:
    cases = {
        "iperf3_udp.json": lambda p: iperf3.udp_command("127.0.0.1", p, duration_s=1),
        "iperf3_udp_reverse.json": lambda p: iperf3.udp_command("127.0.0.1", p, duration_s=1,
                                                                reverse=True),
        "iperf3_udp_parallel2.json": lambda p: iperf3.udp_command("127.0.0.1", p, duration_s=1,
                                                                  parallel=2),
        "iperf3_tcp.json": lambda p: iperf3.tcp_command("127.0.0.1", p, duration_s=1),
        "iperf3_tcp_reverse.json": lambda p: iperf3.tcp_command("127.0.0.1", p, duration_s=1,
                                                                reverse=True),
    }
    for name, make in cases.items():
        with ls.iperf3_server() as port:
            save(name, run(make(port), iperf3.ENV)[0])
    port = ls.free_port()
    save("iperf3_refused.json",
         run(iperf3.udp_command("127.0.0.1", port, duration_s=1), iperf3.ENV)[0])


def capture_telemetry(tmp: Path) -> None:
    # pidstat on a process whose threads come and go, until the process itself exits
    churn = subprocess.Popen([sys.executable, "-c", CHURN])
    # reap it as soon as it exits: pidstat would keep watching a zombie
    reaper = threading.Thread(target=churn.wait, daemon=True)
    reaper.start()
    try:
        time.sleep(0.2)
        watch = background(pidstat.command([churn.pid]), pidstat.ENV)
        try:
            out, _ = watch.communicate(timeout=10)  # pidstat ends when the pid is gone
        except subprocess.TimeoutExpired:
            out = stop(watch)
        save("pidstat_churn.txt", out)
    finally:
        churn.kill()
        reaper.join(5)
    gone = subprocess.Popen(["true"])
    gone.wait()
    save("pidstat_nopid.txt", run(pidstat.command([gone.pid]) + ["1"], pidstat.ENV)[0])

    # mpstat and sar during loopback load, stopped with SIGINT in the middle of an interval
    script = tmp / "report.lua"
    script.write_text(wrk.LUA_SCRIPT)
    with ls.nginx() as url:
        mp = background(mpstat.command(), mpstat.ENV)
        sa = background(sar.command(), sar.ENV)
        load = background(wrk_cmd(url, script, c=10, d=2), wrk.ENV)
        load.communicate(timeout=20)
        time.sleep(0.4)
        save("mpstat_sigint.txt", stop(mp))
        save("sar_sigint.txt", stop(sa))


def main() -> None:
    DATA.mkdir(exist_ok=True)
    only = set(sys.argv[1:])  # e.g. "telemetry" to re-record only that group
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not only or "wrk" in only:
            capture_wrk(tmp)
        if not only or "iperf3" in only:
            capture_iperf3()
        if not only or "telemetry" in only:
            capture_telemetry(tmp)
    save("facts.txt", run(["sh", "-c", facts.command()], facts.ENV)[0])


if __name__ == "__main__":
    main()
