"""What must show: the nightly gate, scheduled-style, on a lab with a packet-rate cap and its
history in S3 (a moto server). Twice with the same cap, then once with a tighter one:
exit 0, 0, 3; all three runs are in the S3 history, and the third names the points that
regressed. (The cap makes every run network-bound, so the same cap gives the same QPS
within noise and a tighter cap a real drop: the server is the same, the link is not.) The
second night is judged against the history (`last:5`), the third against the first night's
folder, and `compare` reads the first two folders as a user would."""

from __future__ import annotations

import json
import os
import re
import secrets

import boto3
import pytest

from orchestrator.hosts import netns

from testkit import REPO, orchestrate

pytestmark = pytest.mark.slow

# packets/s per link and direction: low enough that the link, not a CPU the suite's other
# tests share, sets the rate (at 20k pps a busy machine moved QPS by a third between nights)
CAP, TIGHTER = 5_000, 2_500
# Short: 1 s loads, no iperf3 baseline, no collectors, one architecture (the gate judges
# QPS; the suite's time is tight), and no deploy: the session's warm lab deployed this tree into
# the labs' shared root already (conftest.py: deployed_lab_root), and the gate reads none of it.
# The shipped nightly compares HEAD with the commit that last passed side by side (tests/test_nightly.py);
# this test keeps the night-against-history gate, on one architecture with repeat: 3.
SHORT = ["--set", "load.duration=1s", "--set", "baseline.enabled=false", "--set", "telemetry=[]",
         "--set", "server.arch=reuseport", "--set", "compare=null", "--set", "rounds=null",
         "--set", "repeat=3", "--set", "variants={}", "--set", "hosts.deploy=false"]
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
POINTS = ["reuseport threads=1 conns=64"]


def test_nightly_gate_passes_twice_then_fires_on_a_tighter_cap(moto_server, tmp_path, deployed_lab_root):
    env = {**CREDS, "AWS_ENDPOINT_URL_S3": moto_server, "ORCHESTRATE_CACHE": str(tmp_path / "cache")}
    s3 = boto3.session.Session(**{k.lower(): v for k, v in CREDS.items() if k != "AWS_DEFAULT_REGION"},
                               region_name="us-east-1").client("s3", endpoint_url=moto_server)
    bucket = f"nightly-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    history = f"s3://{bucket}/ci"
    lab = f"g{os.getpid() % 10000}"

    def night(cap: int, baseline: str = "last:5"):
        return orchestrate("run", str(REPO / "scenarios" / "nightly.yaml"), "--results",
                           str(tmp_path / "results"), "--history", history, "--baseline", baseline,
                           "--fail-on-regression", "5", "--yes", "--set", f"hosts.lab={lab}",
                           "--set", f"hosts.link.pps={cap}", *SHORT, env=env, timeout=900,
                           report=cap == TIGHTER)  # the bucket keeps the report the third night writes

    exits, outs = [], []
    try:
        netns.up(lab, 2, CAP)  # kept up across the first two nights, as a runner's hosts are
        for _ in range(2):
            done = night(CAP)
            exits.append(done.returncode)
            outs.append(done)
            assert done.returncode == 0, done.stderr[-3000:]
        netns.down(lab)
        netns.up(lab, 2, TIGHTER)
        folders = sorted((tmp_path / "results" / "nightly").iterdir())
        done = night(TIGHTER, baseline=str(folders[0]))  # a folder, as a user names one
        exits.append(done.returncode)
        outs.append(done)
    finally:
        netns.down(lab)
    assert exits == [0, 0, 3], [o.stderr[-2000:] for o in outs]

    first, second, third = outs
    assert "nothing to compare with yet" in first.stdout
    assert "regression gate: no significant drop larger than 5%" in second.stdout
    assert "last:5 (1 run:" in second.stdout
    done = orchestrate("compare", *map(str, folders))
    assert done.returncode == 0 and "unpaired: A and B ran at different times" in done.stdout
    # the third names the regressed points, each with its drop
    assert "REGRESSION: 1 point(s) dropped significantly by more than 5%" in third.stderr, third.stderr
    after = third.stderr.split("dropped significantly by more than 5%:\n", 1)[1]
    (named,) = [line for line in after.splitlines() if line.startswith("  ")]
    assert named.split()[:3] == ["reuseport", "threads=1", "conns=64"] and named.endswith("worse")
    drop = float(re.search(r"\(([-+]\d+\.\d)%", named)[1])
    assert drop < -30, named  # half the packet rate: far more than noise

    # all three runs, their results folders and the gate's verdicts are in S3
    index = json.loads(s3.get_object(Bucket=bucket, Key="ci/index.json")["Body"].read())
    sessions = sorted(index["sessions"].values(), key=lambda s: s["started"])
    assert len(sessions) == 3 and {s["status"] for s in sessions} == {"complete"}
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="ci/results/")["Contents"]}
    for s in sessions:
        assert f"ci/results/nightly/{s['results_id']}/summary.json" in keys
    reported = [f"ci/results/nightly/{s['results_id']}/report.html" in keys for s in sessions]
    assert reported == [False, False, True]  # the first two nights ran with --no-report
    verdicts = [index["gates"].get(s["results_id"]) for s in sessions]
    assert verdicts[0] is None  # nothing to judge against on the first night
    assert verdicts[1]["regressed"] == [] and verdicts[2]["regressed"] == POINTS

    # `orchestrate history` reads it back from S3 and marks the regression
    done = orchestrate("history", "--history", history, env=env)
    assert done.returncode == 0 and done.stdout.count("complete") == 3
    assert "REGRESSION: " in done.stdout and not netns.is_up(lab)
