import pytest

from orchestrator import plan, scenario


def test_matrix_times_repeat_in_interleaved_order():
    sc = scenario.load("s.yaml", text="""
name: m
server: {arch: [reuseport, main-sub], threads: [1, 2], cpus: [0]}
load: {connections: [10, 20], duration: 4s, cpus: [1]}
repeat: 2
baseline: {iperf3: {duration: 1s, tcp: false}}
""", host_cpus={0, 1}).scenario
    p = plan.expand(sc)
    assert len(p.runs) == 2 * 2 * 2 * 2
    # all points once, then the second repetition
    assert [r.repetition for r in p.runs] == [1] * 8 + [2] * 8
    assert tuple(p.runs[0].point.values()) == ("reuseport", 1, 10, None)
    assert tuple(p.runs[1].point.values()) == ("reuseport", 1, 20, None)
    assert p.runs[8].point == p.runs[0].point
    assert len({r.run_id for r in p.runs}) == 16
    assert p.runs[3].run_id == "004-reuseport-t2-c20-r1"
    o = plan.overheads("local")
    assert p.baseline_s == 1 + o.per_baseline_test_s and p.per_run_s == 4 + o.per_run_s
    assert p.start_s == o.start_s + o.deploy_s  # here the deploy step builds the server
    assert p.expected_seconds == pytest.approx(p.start_s + p.baseline_s + 16 * p.per_run_s + o.report_s)
    assert plan.expand(sc) == p  # same plan every time (resume relies on it)


def test_three_new_axes_make_eight_points_with_short_readable_ids():
    sc = scenario.load("s.yaml", text="""
name: m
server: {arch: [reuseport, main-sub], work_us: [0, 5], cpus: [0]}
load: {keepalive: [true, false], cpus: [1]}
""", host_cpus={0, 1}).scenario
    p = plan.expand(sc)
    assert len(p.runs) == 8 and len({r.point for r in p.runs}) == 8
    first = p.runs[0]
    assert first.point.axes == ("server.arch", "server.threads", "load.connections", "load.rate",
                                "server.work_us", "load.keepalive")
    assert first.run_id == "001-reuseport-t1-c64-w0-kaon-r1"
    assert p.runs[-1].run_id == "008-main-sub-t1-c64-w5-kaoff-r1"
    assert p.runs[-1].point.label() == ("server.arch=main-sub server.threads=1 load.connections=64 "
                                        "server.work_us=5 load.keepalive=false")
    assert p.runs[-1].as_dict()["axes"] == {"server.work_us": 5, "load.keepalive": False}
    # a key written once is a setting, not an axis: the point and the id stay as before
    single = scenario.load("s.yaml", text="name: m\nserver: {work_us: 5, cpus: [0]}\nload: {cpus: [1]}\n",
                           host_cpus={0, 1}).scenario
    assert plan.expand(single).runs[0].run_id == "001-reuseport-t1-c64-r1"
    assert scenario.at(single, plan.expand(single).runs[0].point, "server.work_us") == 5


def test_fmt_seconds():
    assert plan.fmt_seconds(5) == "5s"
    assert plan.fmt_seconds(75) == "1m15s"
    assert plan.fmt_seconds(3725) == "1h02m05s"


def test_remote_hosts_cost_deploy_both_ways_and_each_client():
    text = """
name: m
hosts: {provider: netns, roles: {server: 1, client: 3}}
load: {duration: 5s}
baseline: {iperf3: {duration: 2s, tcp_duration: 1s}}
"""
    p = plan.expand(scenario.load("s.yaml", text=text, host_cpus={0, 1}).scenario)
    o = plan.overheads("ssh")
    assert p.start_s == o.start_s + o.deploy_s
    udp = 2 + o.per_baseline_test_s
    assert p.baseline_s == pytest.approx(3 * (2 * udp + 1 + o.per_baseline_test_s) + 2 * udp)
    assert p.per_run_s == pytest.approx(5 + o.per_run_s + 2 * o.per_client_s)
    no_deploy = scenario.load("s.yaml", text=text.replace("client: 3}", "client: 3}, deploy: false"),
                              host_cpus={0, 1})
    assert plan.expand(no_deploy.scenario).start_s == o.start_s


def _seconds(text: str) -> float:
    """fmt_seconds' output back to seconds: '1h02m05s', '1m15s', '5s'."""
    import re

    h, m, s = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(\d+)s", text).groups()  # type: ignore[union-attr]
    return int(h or 0) * 3600 + int(m or 0) * 60 + int(s)


@pytest.mark.slow
def test_the_plan_predicts_a_warm_lab_run_within_25_percent(tmp_path, warm_lab):
    import re
    import time

    from testkit import REPO, orchestrate

    # the session's lab, capped (iperf3 is not CPU-bound, so no widening retries), deployed
    # once by the session's run on it (conftest.py): warm now
    lab, _, warm = warm_lab
    assert warm.returncode == 0, warm.stderr
    args = [str(REPO / "scenarios" / "cross-host.yaml"), "--set", f"hosts.lab={lab}",
            "--set", "server.arch=reuseport", "--set", "repeat=1", "--set", "load.duration=2s",
            "--set", "baseline.iperf3.duration=2s", "--set", "baseline.iperf3.tcp_duration=1s"]
    planned = orchestrate("plan", *args)
    assert planned.returncode == 0, planned.stderr
    expected = _seconds(re.search(r"expected total (\S+) \(an estimate", planned.stdout)[1])
    start = time.monotonic()
    done = orchestrate("run", *args, "--results", str(tmp_path / "r"), timeout=600,
                       report=True, host_noise=True)  # the plan estimates a whole run, as a user's
    wall = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    assert "deploy skipped: every host holds this build-input hash already" in done.stderr  # warm
    print(f"PLAN estimate {expected:.0f} s, warm-lab run {wall:.1f} s ({expected / wall:.2f}x)")
    assert 0.75 * wall <= expected <= 1.25 * wall, (expected, wall)


def test_the_drain_is_bounded_in_the_estimate():
    """orchestrate-load drains up to load.timeout after each window: usually milliseconds (in
    the measured per-run overhead), at most the timeout per run (issue 22); wrk does not."""
    text = """
name: m
load: {tool: orchestrate-load, rate: [1000, 2000], duration: 3s, timeout: 1500ms, cpus: [1]}
server: {cpus: [0]}
baseline: {enabled: false}
"""
    p = plan.expand(scenario.load("s.yaml", text=text, host_cpus={0, 1}).scenario)
    assert p.drain_max_s == 1.5
    assert p.seconds_at_most_draining == pytest.approx(p.expected_seconds + 2 * 1.5)
    assert p.per_run_s == pytest.approx(3 + plan.overheads("local").per_run_s)
    wrk = plan.expand(scenario.load("s.yaml", text="name: m\nload: {cpus: [1]}\nserver: {cpus: [0]}\n",
                                    host_cpus={0, 1}).scenario)
    assert wrk.drain_max_s == 0 and wrk.seconds_at_most_draining == wrk.expected_seconds
