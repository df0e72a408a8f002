"""History in S3 against a moto server: results folders and the index go up, history/compare
read them back, two writers cannot lose each other's entries, and bad URLs, missing buckets
and denied credentials fail in one line with nothing half-written."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from orchestrator import cli, store
from orchestrator.errors import RunFailed
from orchestrator.history import open_history
from orchestrator.history.s3 import INDEX, S3History

from testkit import orchestrate, run_record, session, stop_process

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_DEFAULT_REGION": "us-east-1", "AWS_SESSION_TOKEN": "testing"}
P = ("reuseport", 1, 64, None)


def start_moto(env: dict[str, str] | None = None):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)


@pytest.fixture
def s3env(moto_server, monkeypatch):
    """A fresh bucket on the suite's moto server; AWS_ENDPOINT_URL_S3 points the SDK at it."""
    env = {**CREDS, "AWS_ENDPOINT_URL_S3": moto_server}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    bucket = f"hist-{secrets.token_hex(4)}"
    client = boto3.session.Session().client("s3")
    client.create_bucket(Bucket=bucket)
    return env, bucket, client


def keys(client, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def results(tmp_path: Path, rid: str, qps: list[float], *, scenario: str = "s",
            started: str = "2026-11-27T00:00:00Z") -> tuple[dict, Path]:
    runs = [run_record(run_id=f"{i:03d}-reuseport-r{i}", repetition=i, qps=q,
                       latency_ms={"p50": 1.0, "p99": 2.0},
                       errors={"connect": 0, "read": 0, "write": 0, "timeout": 0})
            for i, q in enumerate(qps, 1)]
    summary = session(scenario=scenario, run_id=rid, started=started, topology={"server": "h"},
                      hosts={"h": {"cpu_model": "cpu-x", "cpus": 2, "roles": ["server"]}}, runs=runs)
    folder = tmp_path / scenario / rid
    store.ResultsDir(folder).save_summary(summary)
    (folder / "report.html").write_text("<html>report</html>")
    return json.loads((folder / "summary.json").read_text()), folder


def test_runs_go_up_and_come_back(s3env, tmp_path, monkeypatch):
    env, bucket, client = s3env
    monkeypatch.setenv("ORCHESTRATE_CACHE", str(tmp_path / "cache"))
    h = open_history(f"s3://{bucket}/nightly/")
    assert isinstance(h, S3History) and h.where == f"s3://{bucket}/nightly"
    h.check()
    for i, qps in enumerate(([100.0, 101.0, 99.0], [80.0, 81.0, 79.0]), 1):
        s, folder = results(tmp_path, f"r{i}", qps, started=f"2026-11-2{i}T02:30:00Z")
        assert h.record(s, folder) == f"s3://{bucket}/nightly/results/s/r{i}"
    assert "nightly/results/s/r1/summary.json" in keys(client, bucket)
    assert "nightly/results/s/r2/report.html" in keys(client, bucket)
    assert f"nightly/{INDEX}" in keys(client, bucket)
    rows = h.sessions(scenario="s")
    assert [r["results_id"] for r in rows] == ["r2", "r1"] and rows[0]["n_runs"] == 3
    local = h.folder(rows[0])
    assert local is not None and local.is_relative_to(tmp_path / "cache")
    assert store.load_summary(local).run_id == "r2"

    # the CLI reads the same history: list it, compare two runs by id (fetched from S3)
    done = orchestrate("history", "--history", f"s3://{bucket}/nightly", env=env)
    assert done.returncode == 0, done.stderr
    assert f"s3://{bucket}/nightly/results/s/r1" in done.stdout and done.stdout.count("complete") == 2
    done = orchestrate("compare", "r1", "r2", "--history", f"s3://{bucket}/nightly",
                       env={**env, "ORCHESTRATE_CACHE": str(tmp_path / "cache2")})
    assert done.returncode == 0, done.stderr
    assert "(-20.0%" in done.stdout and "worse" in done.stdout

    h.record_gate("r2", {"threshold_pct": 5, "regressed": ["reuseport threads=1 conns=64"]})
    assert h.gates()["r2"]["regressed"] == ["reuseport threads=1 conns=64"]
    done = orchestrate("history", "--history", f"s3://{bucket}/nightly", env=env)
    assert "REGRESSION: reuseport threads=1 conns=64" in done.stdout

    # the dashboard from the S3 history: each run's report fetched into the site
    site = tmp_path / "site"
    done = orchestrate("publish", "--site", str(site), "--history", f"s3://{bucket}/nightly",
                       env={**env, "ORCHESTRATE_CACHE": str(tmp_path / "cache3")})
    assert done.returncode == 0, done.stderr
    page = (site / "index.html").read_text()
    assert 'href="runs/s/r1/report.html"' in page and 'href="runs/s/r2/report.html"' in page
    assert (site / "runs/s/r2/report.html").read_text() == "<html>report</html>"
    assert 'class="run gate-failure" data-run="r2"' in page


def test_two_writers_never_lose_an_entry(s3env, tmp_path):
    """The index is read-modify-written under If-Match: a writer whose read went stale is
    refused (412) and reads again. First deterministically: another runner records between
    our read and our write; then 2 runners x 6 runs at once."""
    _, bucket, client = s3env
    url = f"s3://{bucket}/p"
    ours, theirs = S3History(url), S3History(url)
    s0, f0 = results(tmp_path, "first", [1.0, 1.0, 1.0])
    ours.record(s0, f0)

    s1, f1 = results(tmp_path, "theirs", [1.0, 1.0, 1.0])
    real_read = ours._read_index
    raced = []

    def read_then_lose_the_race():
        index, etag = real_read()
        if not raced:  # their whole record lands after our read, before our write
            raced.append(True)
            theirs.record(s1, f1)
        return index, etag

    ours._read_index = read_then_lose_the_race
    s2, f2 = results(tmp_path, "ours", [1.0, 1.0, 1.0])
    ours.record(s2, f2)
    assert {r["results_id"] for r in S3History(url).sessions()} == {"first", "theirs", "ours"}

    errors: list[BaseException] = []

    def runner(name: str) -> None:
        h = S3History(url)
        try:
            for i in range(6):
                s, f = results(tmp_path / name, f"{name}-{i}", [1.0, 1.0, 1.0])
                h.record(s, f)
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    ids = {r["results_id"] for r in S3History(url).sessions(limit=100)}
    assert {f"{n}-{i}" for n in "ab" for i in range(6)} <= ids and len(ids) == 15
    json.loads(client.get_object(Bucket=bucket, Key=f"p/{INDEX}")["Body"].read())  # whole JSON


def test_a_failed_record_leaves_nothing_half_written(s3env, tmp_path):
    _, bucket, client = s3env
    client.put_object(Bucket=bucket, Key=f"p/{INDEX}", Body=b"{ not json")
    s, folder = results(tmp_path, "r1", [1.0, 1.0, 1.0])
    with pytest.raises(RunFailed, match=f"history s3://{bucket}/p: {INDEX} is not JSON"):
        S3History(f"s3://{bucket}/p").record(s, folder)
    assert keys(client, bucket) == [f"p/{INDEX}"]  # the uploaded folder was taken back
    assert client.get_object(Bucket=bucket, Key=f"p/{INDEX}")["Body"].read() == b"{ not json"


@pytest.mark.parametrize("url", ["s3://", "s3:/bucket/x", "s3://Upper_Case/x", "s3://b/x//y"])
def test_a_malformed_url_is_bad_input(url, tmp_path, capsys):
    """`history` through the CLI's entry point in this process (its parsing, its one-line error;
    an interpreter start saved per URL), `run` as a real process: it must start nothing."""
    code = cli.main(["history", "--history", url])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "not an S3 URL" in err or "empty path segment" in err
    done = orchestrate("run", "--history", url, "--results", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr and not any(tmp_path.iterdir())


def test_a_missing_bucket_stops_the_run_before_it_starts(s3env, tmp_path):
    env, _, _ = s3env
    done = orchestrate("run", "--history", "s3://no-such-bucket-here/p", "--results", str(tmp_path),
                       env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("history s3://no-such-bucket-here/p: checking the bucket: "
                           "no such bucket 'no-such-bucket-here'\n")
    assert not any(tmp_path.iterdir())
    # the same from $ORCHESTRATE_HISTORY, as a scheduled job sets it
    done = orchestrate("run", "--results", str(tmp_path), env={
        **env, "ORCHESTRATE_HISTORY": "s3://no-such-bucket-here/p"})
    assert done.returncode == 2 and "no such bucket" in done.stderr and not any(tmp_path.iterdir())


@pytest.mark.slow  # a moto server of its own (a real process; 10 s here): not the fast tier
def test_denied_credentials_are_one_line_and_nothing_is_written(tmp_path):
    """A moto server that checks credentials (as S3 does): unknown keys are refused."""
    proc, url = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        env = {**CREDS, "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1", "AWS_ENDPOINT_URL_S3": url}
        done = orchestrate("run", "--history", "s3://some-bucket/p", "--results", str(tmp_path), env=env)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "checking the bucket: access denied (403)" in done.stderr
        assert not any(tmp_path.iterdir())
        done = orchestrate("history", "--history", "s3://some-bucket/p", env=env)
        assert done.returncode == 2 and "access denied" in done.stderr and "Traceback" not in done.stderr
    finally:
        stop_process(proc, 10)


def test_a_version_1_index_reads_and_upgrades_on_the_next_write(s3env, tmp_path, monkeypatch):
    """An index and results folder as the version-1 code left them: the old session still reads
    and compares against a new one, and the next record writes the index as version 2 with
    each session's points."""
    _, bucket, client = s3env
    monkeypatch.setenv("ORCHESTRATE_CACHE", str(tmp_path / "cache"))
    old, old_folder = results(tmp_path, "old", [100.0, 101.0, 99.0], started="2026-11-20T00:00:00Z")
    old["version"] = 2  # written before format 3
    (old_folder / "summary.json").write_text(json.dumps(old))
    base = "p/results/s/old"
    client.upload_file(str(old_folder / "summary.json"), bucket, f"{base}/summary.json")
    v1 = {"version": 1, "gates": {}, "sessions": {"old": {
        "results_id": "old", "scenario": "s", "started": old["started"], "finished": None,
        "status": "complete", "provider": "local", "machine": "local|cpu-x|2 CPUs",
        "path": f"s3://{bucket}/{base}", "n_runs": 3}}}
    client.put_object(Bucket=bucket, Key=f"p/{INDEX}", Body=json.dumps(v1).encode())

    h = open_history(f"s3://{bucket}/p")
    h.check()
    (row,) = h.sessions()
    assert row["results_id"] == "old" and row["points"] == []
    new, new_folder = results(tmp_path, "new", [80.0, 81.0, 79.0], started="2026-11-21T00:00:00Z")
    for r in new["runs"]:
        r["axes"] = {"server.work_us": 0}
    h.record(new, new_folder)
    index = json.loads(client.get_object(Bucket=bucket, Key=f"p/{INDEX}")["Body"].read())
    assert index["version"] == 2 and set(index["sessions"]) == {"old", "new"}
    assert index["sessions"]["new"]["points"] == [{"server.arch": "reuseport", "server.threads": 1,
                                                   "load.connections": 64, "load.rate": None,
                                                   "server.work_us": 0}]
    assert index["sessions"]["new"]["format"] == 3
    # the old session compares against a new run with the same point
    same, same_folder = results(tmp_path, "same", [80.0, 81.0, 79.0], started="2026-11-22T00:00:00Z")
    h.record(same, same_folder)
    from orchestrator import compare

    name, baseline = compare.baseline("latest", scenario="s", history=h, exclude="same")
    assert name == "latest (new)"
    _, old_back = compare.find("old", h)
    c = compare.compare(old_back, store.load_summary(same_folder))
    (ch,) = c.changes
    assert ch.word == "worse" and round(ch.change_pct) == -20
