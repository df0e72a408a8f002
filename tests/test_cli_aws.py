"""The AWS commands as a user runs them: plan shows the cost and calls nothing, run asks first,
cleanup removes what a killed run left (against a standalone moto server, like a region)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.hosts.aws import ec2 as aws_api

from testkit import REPO, orchestrate

SCENARIO = str(REPO / "scenarios" / "aws-cross-host.yaml")
FAKE = {"AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKEFAKE", "AWS_SECRET_ACCESS_KEY": "fake/secret/for/tests/only",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
DEAD = "http://127.0.0.1:9"  # nothing listens there: any API call would fail


def test_plan_prints_instances_and_an_estimate_without_calling_aws():
    done = orchestrate("plan", SCENARIO, "--set", f"hosts.aws.endpoint_url={DEAD}", env=FAKE)
    assert done.returncode == 0, done.stderr
    assert "server: 1 x c6i.2xlarge (~$" in done.stdout and "client: 1 x c6i.2xlarge" in done.stdout
    assert "estimated cost: ~$" in done.stdout and "ESTIMATE: hand-kept list prices as of" in done.stdout
    assert "typed from memory, not fetched" in done.stdout and "/h each, estimate)" in done.stdout
    assert orchestrate("validate", SCENARIO, env=FAKE).returncode == 0
    # the spend limit: the plan's worst case (2 x c6i.2xlarge) is above $0.1/h
    done = orchestrate("plan", SCENARIO, "--max-hourly", "0.1", "--set", f"hosts.aws.endpoint_url={DEAD}",
                       env=FAKE)
    assert done.returncode == 2 and "--max-hourly: the plan costs up to ~$" in done.stderr
    assert "above the limit $0.1/h" in done.stderr


def test_run_asks_before_renting_machines(tmp_path):
    done = orchestrate("run", SCENARIO, "--results", str(tmp_path), "--set",
                       f"hosts.aws.endpoint_url={DEAD}", env=FAKE, timeout=120)
    assert done.returncode == 2
    assert "an aws run rents machines: confirm with --yes" in done.stderr
    assert "estimated cost" in done.stdout
    assert not any(tmp_path.iterdir())


ME = "arn:aws:sts::123456789012:user/moto"  # who moto says the caller is
SOMEONE = "arn:aws:iam::123456789012:user/someone-else"


@pytest.fixture
def profile(tmp_path, monkeypatch) -> dict[str, str]:
    """A named profile with its own region, as a user's ~/.aws holds it."""
    config, creds = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("[profile bench]\nregion = eu-west-2\n")
    creds.write_text(f"[bench]\naws_access_key_id = {FAKE['AWS_ACCESS_KEY_ID']}\n"
                     f"aws_secret_access_key = {FAKE['AWS_SECRET_ACCESS_KEY']}\n")
    env = {**FAKE, "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(creds),
           "ORCHESTRATE_STATE_DIR": str(tmp_path / "state")}  # the local run records: none yet
    env.pop("AWS_DEFAULT_REGION")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    return env


def test_cleanup_removes_what_a_killed_run_left(profile, moto_server):
    ec2 = aws_api.boto_session(None, "bench").client("ec2", endpoint_url=moto_server)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=5)).isoformat()

    def tags(run: str, expires: str, owner: str) -> list[dict]:
        return [{"Key": aws_api.TAG_RUN, "Value": run},
                {"Key": aws_api.TAG_SCENARIO, "Value": "aws-cross-host"},
                {"Key": aws_api.TAG_EXPIRES, "Value": expires}, {"Key": aws_api.TAG_OWNER, "Value": owner}]

    for run, expires, owner in (("killed-run", past, ME), ("live-run", future, ME),
                                ("their-killed-run", past, SOMEONE)):
        ec2.create_key_pair(KeyName=f"orchestrate-{run}", TagSpecifications=[
            {"ResourceType": "key-pair", "Tags": tags(run, expires, owner)}])
        ec2.create_security_group(GroupName=f"orchestrate-{run}", Description="test", TagSpecifications=[
            {"ResourceType": "security-group", "Tags": tags(run, expires, owner)}])

    def keys() -> set[str]:
        return {k["KeyName"].removeprefix("orchestrate-") for k in ec2.describe_key_pairs()["KeyPairs"]}

    # No region anywhere: one line, nothing touched.
    done = orchestrate("cleanup", "--provider", "aws", "--endpoint-url", moto_server, env=profile)
    assert done.returncode == 2 and done.stderr.strip().endswith("no region: pass --region, or set one in "
                                                                 "the profile or AWS_REGION")
    # The profile's region (eu-west-2, where the resources are), this caller's expired runs only.
    done = orchestrate("cleanup", "--provider", "aws", "--profile", "bench", "--endpoint-url", moto_server,
                       env=profile)
    # moto has no placement-group API: cleanup says it could not list them (exit 1) and
    # removes everything else; against AWS the same call lists them too.
    assert done.returncode == 1, done.stderr
    assert "FAILED eu-west-2: could not list placement-groups" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.count("removed") == 2 and "killed-run" in done.stdout and "live-run" not in done.stdout
    assert "left 2 resource(s) of other users' runs alone in eu-west-2 (--all-users to include them)" \
        in done.stdout
    assert keys() == {"live-run", "their-killed-run"}

    done = orchestrate("cleanup", "--provider", "aws", "--profile", "bench", "--endpoint-url", moto_server,
                       "--all", env=profile)
    assert done.returncode == 1 and "live-run" in done.stdout and keys() == {"their-killed-run"}
    done = orchestrate("cleanup", "--provider", "aws", "--profile", "bench", "--endpoint-url", moto_server,
                       "--all-users", "--dry-run", env=profile)
    assert "would remove key-pair orchestrate-their-killed-run" in done.stdout
    assert keys() == {"their-killed-run"}
    done = orchestrate("cleanup", "--provider", "aws", "--profile", "bench", "--endpoint-url", moto_server,
                       "--all-users", env=profile)
    assert done.returncode == 1 and not keys()
    for text in (done.stdout, done.stderr):
        assert FAKE["AWS_SECRET_ACCESS_KEY"] not in text and FAKE["AWS_ACCESS_KEY_ID"] not in text


def test_cleanup_with_no_region_finds_a_killed_run_in_another_region(profile, moto_server, tmp_path):
    """A run in us-west-2 killed with kill -9 (provisioned, never torn down) while the profile
    says eu-west-2: its local record names the region, so a bare cleanup finds it there."""
    from awskit import UBUNTU_AMI, public_default_vpc

    from orchestrator.hosts import aws
    from orchestrator.hosts.aws import state
    from orchestrator.scenario import Scenario

    from testkit import listener

    sc = Scenario.model_validate({"name": "elsewhere", "hosts": {"provider": "aws", "aws": {
        "region": "us-west-2", "endpoint_url": moto_server, "image": UBUNTU_AMI, "placement": "none",
        "instance_type": {"server": "c6i.large", "client": "c6i.large"}}}})
    created = aws.Created(run_id="killed-elsewhere", lab_dir=tmp_path / "lab")
    public_default_vpc(moto_server, "us-west-2")  # the internet gateway a real default VPC has
    with listener(b"SSH-2.0-OpenSSH_9.2\r\n") as port:  # the public SSH server pre-flight probes
        aws.provision(sc, run_id="killed-elsewhere", created=created,
                      session=aws_api.make_session("us-west-2"), my_address="203.0.113.7",
                      wait_ssh=lambda hosts, timeout: None, ssh_probe=("127.0.0.1", port),
                      host_keys=lambda ec2, hosts, timeout: {h.instance_id: ["ssh-ed25519 AAAA"]
                                                             for h in hosts})
    (record,) = state.load_all()
    assert record.region == "us-west-2" and sorted(record.ids["instance"]) == sorted(created.instance_ids)
    west = aws_api.boto_session("us-west-2").client("ec2", endpoint_url=moto_server)

    def live() -> list[str]:
        return [i["InstanceId"] for r in west.describe_instances(Filters=[
            {"Name": f"tag:{aws_api.TAG_RUN}", "Values": ["killed-elsewhere"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
            for i in r["Instances"]]

    assert len(live()) == 2
    done = orchestrate("cleanup", "--provider", "aws", "--profile", "bench", "--endpoint-url", moto_server,
                       "--all", env=profile)
    # both regions scanned (moto's placement-group API fails in each: listed as such, exit 1)
    assert "FAILED eu-west-2: could not list placement-groups" in done.stderr, done.stdout + done.stderr
    assert done.returncode == 1 and "in eu-west-2" not in done.stdout
    for iid in created.instance_ids:
        assert f"removed instance {iid} in us-west-2 (run killed-elsewhere" in done.stdout
    assert "removed key-pair orchestrate-killed-elsewhere-" in done.stdout
    assert live() == [] and state.load_all() == []  # nothing left there, so the record went too


def test_local_cleanup_without_aws_credentials_is_not_bothered_by_aws(tmp_path, monkeypatch):
    """A record of an aws run is here, and no AWS credentials: cleanup for the local provider
    neither asks AWS nor mentions it."""
    from orchestrator.hosts.aws import state

    env = {"ORCHESTRATE_STATE_DIR": str(tmp_path / "state"), "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
           "AWS_EC2_METADATA_DISABLED": "true"}
    monkeypatch.setenv("ORCHESTRATE_STATE_DIR", env["ORCHESTRATE_STATE_DIR"])
    state.RunState("r-1", "orchestrate-r-1-abcdef", "ap-south-1", ids={"instance": ["i-1"]}).save()
    assert [r.region for r in state.load_all()] == ["ap-south-1"]
    done = orchestrate("cleanup", "--provider", "local", env=env)
    assert done.returncode == 0, done.stderr
    assert "aws" not in (done.stdout + done.stderr).lower() and "credential" not in done.stderr.lower()


def test_bad_ssh_settings_are_bad_input_at_their_line(tmp_path):
    doc = tmp_path / "aws.yaml"
    doc.write_text("name: aws-bad\nhosts:\n  provider: aws\n  aws:\n    ssh_cidr: 10.0.0.300/8\n"
                   "    ssh_address: elastic\n")
    done = orchestrate("validate", str(doc), env=FAKE)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{doc}:5: hosts.aws.ssh_cidr: expected a CIDR such as 203.0.113.7/32, " \
           "got '10.0.0.300/8'" in done.stderr
    assert f"{doc}:6: hosts.aws.ssh_address: Input should be 'public' or 'private'" in done.stderr



def _cloud_env(tmp_path) -> dict[str, str]:
    """FAKE credentials, the run's local records in tmp_path, and no way out for the public
    address lookup (a dead proxy: with hosts.aws.ssh_cidr set, the run only warns about it)."""
    return {**FAKE, "ORCHESTRATE_STATE_DIR": str(tmp_path / "state"), "HTTPS_PROXY": DEAD,
            "https_proxy": DEAD, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def _what_exists(ec2) -> dict[str, list[str]]:
    """What a run could create in the region: instances (any state), key pairs, security groups
    and VPCs besides the default ones."""
    return {"instances": [i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
                          for i in r["Instances"]],
            "key pairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
            "security groups": [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                                if g["GroupName"] != "default"],
            "vpcs": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")]}


def test_run_checks_the_ssh_path_before_it_creates_anything(moto_server, tmp_path, monkeypatch):
    """`orchestrate run` on aws runs doctor's SSH-path checks before its first create (issue 26).
    moto's default VPC as moto makes it (no route to an internet gateway) refuses the run with
    exit 1 and one line naming the check, the subnet and the fix, nothing created in the
    account; with the route a real account has, the same command goes on and launches (Ctrl-C
    once its instances exist ends it, terminating them)."""
    import re
    import signal
    import subprocess
    import sys
    import time

    from awskit import UBUNTU_AMI, no_internet_route, public_default_vpc

    from testkit import listener

    for k, v in FAKE.items():
        monkeypatch.setenv(k, v)
    region = "ap-northeast-1"  # a region of its own on the module's moto server
    ec2 = aws_api.boto_session(region).client("ec2", endpoint_url=moto_server)
    no_internet_route(moto_server, region)
    before = _what_exists(ec2)
    subnets = {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    env = _cloud_env(tmp_path)
    with listener(b"SSH-2.0-OpenSSH_9.2\r\n") as port:  # the public SSH server the probe reaches
        args = ["run", SCENARIO, "--yes", "--results", str(tmp_path / "results"), "--ssh-probe",
                f"127.0.0.1:{port}", "--set", f"hosts.aws.endpoint_url={moto_server}", "--set",
                f"hosts.aws.region={region}", "--set", f"hosts.aws.image={UBUNTU_AMI}", "--set",
                "hosts.aws.placement=none", "--set", "hosts.aws.ssh_cidr=0.0.0.0/0"]
        done = orchestrate(*args, env=env, timeout=120)
        assert done.returncode == 1, done.stderr
        (line,) = [x for x in done.stderr.splitlines() if "ssh route" in x]
        m = re.fullmatch(r"orchestrate: run failed: provision: aws pre-flight: ssh route: subnet "
                         r"(subnet-\w+) has no route to an internet gateway: its instances' public "
                         r"addresses cannot be reached from here; fix: set hosts.aws.subnet to a public "
                         r"subnet, route 0.0.0.0/0 to an internet gateway, or run from inside the VPC with "
                         r"hosts.aws.ssh_address: private", line)
        assert m and m[1] in subnets, line
        assert "Traceback" not in done.stderr and "ssh out" not in done.stderr  # the probe answered
        assert _what_exists(ec2) == before  # not even a terminated instance: nothing was launched

        public_default_vpc(moto_server, region)
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=REPO,
                                env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            deadline = time.monotonic() + 90
            while len(_what_exists(ec2)["instances"]) < 2 and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
            launched = _what_exists(ec2)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert len(launched["instances"]) == 2 and len(launched["key pairs"]) == 1, (launched, err)
    assert proc.returncode == 130 and "during aws provisioning: wait for SSH" in err, err
    assert "ssh route" not in err and "ssh out" not in err, err
    states = {i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert states <= {"shutting-down", "terminated"}, states
    assert _what_exists(ec2)["key pairs"] == [] and _what_exists(ec2)["security groups"] == []
