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
    assert p.runs[0].point == ("reuseport", 1, 10) and p.runs[1].point == ("reuseport", 1, 20)
    assert p.runs[8].point == p.runs[0].point
    assert len({r.run_id for r in p.runs}) == 16
    assert p.runs[3].run_id == "004-reuseport-t2-c20-r1"
    assert p.expected_seconds == (1 + plan.BASELINE_OVERHEAD_S) + 16 * (4 + plan.RUN_OVERHEAD_S)
    assert plan.expand(sc) == p  # same plan every time (resume relies on it)


def test_fmt_seconds():
    assert plan.fmt_seconds(5) == "5s"
    assert plan.fmt_seconds(75) == "1m15s"
    assert plan.fmt_seconds(3725) == "1h02m05s"
