"""The aws provider against moto: in-process (mock_aws) and a standalone moto server via endpoint_url.

Nothing here can reach real AWS: credentials are fake, the config files are pointed away,
in-process calls are intercepted by moto, and in server mode every request is checked to
go to the local endpoint. What moto lacks or hides (placement groups, the Debian image
parameters, pending instances, EC2's eventual consistency and its errors) is added from
botocore's own event hooks by `awskit.Fakes`, so the code under test makes exactly the
calls it makes against AWS. The scenarios use the shipped Debian 12 image and its user.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from awskit import DEBIAN, DEBIAN_AMIS, REGION, Fakes, err, no_internet_route, public_default_vpc

from orchestrator import records
from orchestrator import scenario as scenario_mod
from orchestrator.errors import Interrupted, RunFailed, UserError
from orchestrator.hosts import NoMoreHosts, aws
from orchestrator.hosts import open_lab as open_any_lab
from orchestrator.hosts.aws import cleanup as aws_cleanup
from orchestrator.hosts.aws import ec2 as aws_api
from orchestrator.hosts.aws import launch, prices
from orchestrator.hosts.aws import state as aws_state
from orchestrator.plan import expand
from orchestrator.scenario import Scenario

from testkit import session

FAKE_KEY_ID = "AKIAORCHESTRATEFAKE1"
FAKE_SECRET = "fakeSecret/orchestrate+Test0nlyDoNotUse1234"
FAKE_TOKEN = "fakeSessionTokenOrchestrateTestOnly"
MY_ADDRESS = "203.0.113.7"
IMAGE = "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"  # moto has it
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOrchestrateTestHostKeyOnlyAAAAAAAAAAAAAAAA"


# --- environments ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch, tmp_path):
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("ORCHESTRATE_STATE_DIR", str(tmp_path / "aws-runs"))  # the local run records
    monkeypatch.setattr(aws_api, "STATE_TIMEOUT_S", 10.0)
    monkeypatch.setattr(aws_api, "POLL_S", 0.0)
    monkeypatch.setattr(aws_api, "BACKOFF", (0.001, 0.01, 5.0))

    def no_lookup(timeout: float = 5.0) -> str:
        raise AssertionError("tests must pass my_address; no external service is called")

    monkeypatch.setattr(aws, "discover_address", no_lookup)


@pytest.fixture(autouse=True)
def ssh_probe(monkeypatch) -> Iterator[tuple[str, int]]:
    """The public SSH server a run's pre-flight probes (port 22 out of this network): a real
    socket on 127.0.0.1 that greets like sshd, so no test reaches the internet."""
    from orchestrator.hosts.aws import reach

    with ssh_server() as port:
        monkeypatch.setattr(reach, "SSH_PROBE", ("127.0.0.1", port))
        yield reach.SSH_PROBE


class Cloud:
    def __init__(self, endpoint: str | None, fakes: Fakes):
        self.endpoint = endpoint
        self.fakes = fakes
        self._ec2: Any = None

    def session(self) -> Any:
        return self.fakes.install(aws_api.boto_session(REGION))

    def ec2(self) -> Any:
        if self._ec2 is None:  # one client: loading the EC2 model takes a while
            self._ec2 = self.session().client("ec2", endpoint_url=self.endpoint)
        return self._ec2

    def live(self, run_id: str | None = None) -> dict[str, list[str]]:
        """What is left: live instances, groups and keys carrying our tag."""
        ec2 = self.ec2()
        flt = [{"Name": f"tag:{aws_api.TAG_RUN}", "Values": [run_id]}] if run_id else \
            [{"Name": "tag-key", "Values": [aws_api.TAG_RUN]}]
        inst = [i["InstanceId"] for r in ec2.describe_instances(Filters=flt + [
            {"Name": "instance-state-name", "Values": list(aws_api.LIVE_STATES)}])["Reservations"]
            for i in r["Instances"]]
        return {"instances": inst,
                "security-groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=flt)
                                    ["SecurityGroups"]],
                "key-pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=flt)["KeyPairs"]],
                "placement-groups": [g["GroupName"] for g in ec2.describe_placement_groups(Filters=flt)
                                     ["PlacementGroups"]]}

    def nothing_left(self, run_id: str | None = None) -> bool:
        return not any(self.live(run_id).values())


@pytest.fixture(params=["inprocess", "server"])
def cloud(request, monkeypatch):
    yield from _cloud(request, monkeypatch, request.param)


# Which transports a test runs on. [server]: every request goes through endpoint_url to a
# standalone moto server, over HTTP, as a user's run goes to AWS; [inprocess]: moto answers
# inside botocore. Both where the transport is what is checked (every client of a run, and of
# cleanup, goes to the endpoint); the server alone where a request really on the wire matters
# (a signal while it is sent, the credentials it carries); in process alone where the test
# checks the provider's own control flow, which is the same on either (and the server tests
# have shown that flow's requests reach the endpoint).
ON_THE_WIRE = pytest.mark.parametrize("cloud", ["server"], indirect=True)
CONTROL_FLOW = pytest.mark.parametrize("cloud", ["inprocess"], indirect=True)


@pytest.fixture
def cloud1(request, monkeypatch):
    """In-process only: for behaviour injected client side, which is the same in both modes."""
    yield from _cloud(request, monkeypatch, "inprocess")


def _cloud(request, monkeypatch, mode: str):
    endpoint = None
    if mode == "server":
        endpoint = request.getfixturevalue("moto_server")
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    fakes = Fakes(endpoint)
    real = aws_api.make_session
    # The provider builds its own session from the standard chain, as for a user; the fakes ride on it.
    monkeypatch.setattr(aws_api, "make_session",
                        lambda region, profile=None: fakes.install(real(region, profile)))
    if endpoint:
        public_default_vpc(endpoint)
        yield Cloud(endpoint, fakes)
    else:
        from moto import mock_aws

        with mock_aws():
            public_default_vpc(None)
            yield Cloud(None, fakes)


def scenario(endpoint: str | None, client: Any = 1, **aws_kw: Any) -> Scenario:
    cfg = {"region": REGION, "instance_type": {"server": "c6i.2xlarge", "client": "c6i.xlarge"},
           "image": DEBIAN, "expire_after": "3h", **aws_kw}
    if endpoint:
        cfg["endpoint_url"] = endpoint
    return Scenario.model_validate({"name": "cross-host",
                                    "hosts": {"provider": "aws", "roles": {"server": 1, "client": client},
                                              "aws": cfg}})


class SshSeam:
    def __init__(self, fail: BaseException | None = None):
        self.seen: list[list[str]] = []
        self.fail = fail

    def __call__(self, hosts, timeout):
        self.seen.append([h.reach for h in hosts])
        if self.fail:
            raise self.fail


def fake_keys(ec2, hosts, timeout):
    return {h.instance_id: [HOST_KEY] for h in hosts}


def lab_kw(tmp_path: Path, run_id: str, **kw: Any) -> dict[str, Any]:
    return {"run_id": run_id, "lab_dir": tmp_path / f"lab-{run_id}", "my_address": MY_ADDRESS,
            "wait_ssh": kw.pop("wait_ssh", SshSeam()), "host_keys": fake_keys, **kw}


# --- provisioning -------------------------------------------------------------------


def test_provisions_the_cross_host_topology(cloud, tmp_path):
    sc = scenario(cloud.endpoint)
    seam = SshSeam()
    before = datetime.now(UTC)
    with open_any_lab(sc, **lab_kw(tmp_path, "r-topo", wait_ssh=seam)) as lab:
        ec2 = cloud.ec2()
        name = lab.name  # unique per attempt: a resumed run's names do not collide with its killed one's
        assert lab.provider == "aws" and re.fullmatch(r"orchestrate-r-topo-[0-9a-f]{6}", name)
        assert [h.name for h in lab.hosts] == ["server-1", "client-1"]
        assert lab.server.roles == ("server",) and [c.name for c in lab.clients] == ["client-1"]

        res = ec2.describe_instances(Filters=[{"Name": f"tag:{aws_api.TAG_RUN}", "Values": ["r-topo"]}])
        inst = {i["InstanceId"]: i for r in res["Reservations"] for i in r["Instances"]}
        assert len(inst) == 2
        by_name = {next(t["Value"] for t in i["Tags"] if t["Key"] == "Name"): i for i in inst.values()}
        assert set(by_name) == {f"{name}-server-1", f"{name}-client-1"}
        assert by_name[f"{name}-server-1"]["InstanceType"] == "c6i.2xlarge"
        assert by_name[f"{name}-client-1"]["InstanceType"] == "c6i.xlarge"
        for i in inst.values():
            assert i["State"]["Name"] == "running"
            tags = {t["Key"]: t["Value"] for t in i["Tags"]}
            assert tags[aws_api.TAG_RUN] == "r-topo" and tags[aws_api.TAG_SCENARIO] == "cross-host"
            expires = datetime.fromisoformat(tags[aws_api.TAG_EXPIRES])
            assert before + timedelta(hours=3) - timedelta(seconds=5) <= expires
            assert expires <= datetime.now(UTC) + timedelta(hours=3, seconds=5)
            expiry_tag = tags[aws_api.TAG_EXPIRES]

        # One run_instances per role, in the placement group, with the instance's own expiry.
        runs = [p for p in cloud.fakes.params("RunInstances") if not p.get("DryRun")]
        assert [(p["InstanceType"], p["MinCount"], p["MaxCount"]) for p in runs] == \
            [("c6i.2xlarge", 1, 1), ("c6i.xlarge", 1, 1)]
        # Pre-flight, all before the first create: types, zones, quota, a DryRun launch per role.
        ops = cloud.fakes.ops()
        first_create = ops.index("CreateKeyPair")
        for op in ("DescribeInstanceTypes", "DescribeInstanceTypeOfferings", "GetServiceQuota",
                   "DescribeImages", "DescribeRouteTables"):
            assert ops.index(op) < first_create, op
        dry = [p for p in cloud.fakes.params("RunInstances") if p.get("DryRun")]
        assert [p["InstanceType"] for p in dry] == ["c6i.2xlarge", "c6i.xlarge"]
        # ... with the real launch's arguments (an organisation policy on tags, IMDSv2, public
        # addresses or user data refuses it there), less what does not exist yet: key, groups
        for d, p in zip(dry, runs, strict=True):
            real = {k: v for k, v in p.items() if k not in ("KeyName", "Placement", "ClientToken")}
            real["NetworkInterfaces"] = [{k: v for k, v in nic.items() if k != "Groups"}
                                         for nic in p["NetworkInterfaces"]]
            assert {k: v for k, v in d.items() if k != "DryRun"} == real
        assert ops.index("RunInstances") < first_create
        assert {p["ImageId"] for p in runs} == {DEBIAN_AMIS["/aws/service/debian/release/12/latest/amd64"]}
        for p in runs:
            assert p["Placement"] == {"GroupName": name}
            assert p["KeyName"] == name and p["ImageId"].startswith("ami-")
            assert p["InstanceInitiatedShutdownBehavior"] == "terminate"
            # botocore encoded it; the run's absolute expiry, the same for every instance
            assert "OnCalendar=" + expiry_tag.replace("T", " ")[:-1] + " UTC" in \
                base64.b64decode(p["UserData"]).decode()
            assert p["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True
        assert cloud.fakes.groups[name]["Strategy"] == "cluster"
        pg_tags = {t["Key"]: t["Value"] for t in cloud.fakes.groups[name]["Tags"]}
        assert pg_tags[aws_api.TAG_RUN] == "r-topo" and pg_tags["Name"] == name
        assert aws_api.TAG_EXPIRES in pg_tags

        # Security group: SSH from this machine only, everything between members, nothing else.
        sg = ec2.describe_security_groups(Filters=[{"Name": f"tag:{aws_api.TAG_RUN}", "Values": ["r-topo"]}])
        (group,) = sg["SecurityGroups"]
        rules = group["IpPermissions"]
        ssh = [r for r in rules if r["IpProtocol"] == "tcp"]
        assert len(ssh) == 1 and ssh[0]["FromPort"] == ssh[0]["ToPort"] == 22
        assert [x["CidrIp"] for x in ssh[0]["IpRanges"]] == [f"{MY_ADDRESS}/32"]
        everything = [r for r in rules if r["IpProtocol"] == "-1"]
        assert len(everything) == 1 and not everything[0].get("IpRanges")
        assert [p["GroupId"] for p in everything[0]["UserIdGroupPairs"]] == [group["GroupId"]]
        assert len(rules) == 2

        (key,) = ec2.describe_key_pairs(Filters=[{"Name": f"tag:{aws_api.TAG_RUN}", "Values": ["r-topo"]}])[
            "KeyPairs"]
        assert key["KeyName"] == name

        # Hosts: private address for traffic, public for SSH, host keys checked against the lab file.
        for h in lab.hosts:
            i = by_name[f"{name}-{h.name}"]
            assert h.address == i["PrivateIpAddress"]
            assert h.ssh is not None and h.ssh.host == i["PublicIpAddress"]
            assert h.ssh.user == "admin" and h.ssh.host_key_checking  # Debian's, from the image
            assert h.workdir == f"/tmp/orchestrate/r-topo/{h.name}"
            assert h.vars["instance_type"] == i["InstanceType"]
            key_file = Path(h.ssh.key_file or "")
            assert key_file.stat().st_mode & 0o777 == 0o600
            assert key_file.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
            known = Path(h.ssh.known_hosts or "").read_text()
            assert f"{h.ssh.host} {HOST_KEY}\n" in known
        assert (tmp_path / "lab-r-topo").stat().st_mode & 0o777 == 0o700
        assert seam.seen == [[h.ssh.host for h in lab.hosts if h.ssh]]
        # the local record: where the run is and what it made, for a cleanup with no --region
        (record,) = aws_state.load_all()
        assert (record.run_id, record.attempt, record.region) == ("r-topo", name, REGION)
        assert sorted(record.ids["instance"]) == sorted(inst) and record.ids["key-pair"] == [name]
        assert record.ids["placement-group"] == [name] and record.ids["security-group"] == [group["GroupId"]]
        # the run's estimated cost: each instance's list price for as long as it was held
        table = prices.load_prices()
        cost = records.Summary.model_validate(session(cost=lab.cost())).cost
        assert cost is not None and cost.estimate and cost.prices_as_of == table.as_of
        assert cost.instance_hours == {"c6i.2xlarge": round(1 / 60, 4), "c6i.xlarge": round(1 / 60, 4)}
        assert cost.total == pytest.approx(sum(table.prices[REGION][t] + table.public_ipv4_hourly
                                               for t in ("c6i.2xlarge", "c6i.xlarge")) / 60, abs=1e-4)
        assert "ESTIMATE" in (cost.note or "")
    assert cloud.nothing_left() and aws_state.load_all() == []  # nothing left: the record goes too
    assert all(end is not None for _, _, end in lab.cost.__self__.held.values())  # billed until torn down
    assert not (tmp_path / "lab-r-topo").exists()
    # Teardown order: instances gone before the groups and the key.
    ops = cloud.fakes.ops()
    assert ops.index("TerminateInstances") < ops.index("DeletePlacementGroup") < \
        ops.index("DeleteSecurityGroup") < ops.index("DeleteKeyPair")
    # every call a run makes is in the README's list of IAM actions to grant
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("### AWS: the first run"):readme.index("**Spend.**")]
    assert [op for op in sorted(set(ops)) if f"`{op}`" not in table] == []


@CONTROL_FLOW  # the pool and its launches are the provider's flow; the topology test covers the wire
def test_autoscale_launches_more_clients_like_the_first_and_terminates_them(cloud, tmp_path):
    """Auto-scale: `min` clients at first; the lab's pool launches more of the client type in
    the same subnet, placement group and security group, tagged like the others, waited for
    (SSH, host keys); teardown terminates them with the rest. Quota and DryRun cover max."""
    seam = SshSeam()
    sc = scenario(cloud.endpoint, client={"min": 1, "max": 3})
    with open_any_lab(sc, **lab_kw(tmp_path, "r-grow", wait_ssh=seam)) as lab:
        assert [h.name for h in lab.hosts] == ["server-1", "client-1"] and lab.client_limit == 3
        first = launches(cloud)
        assert [(p["InstanceType"], p["MinCount"], p["MaxCount"]) for p in first] == \
            [("c6i.2xlarge", 1, 1), ("c6i.xlarge", 1, 1)]
        dry = [p for p in cloud.fakes.params("RunInstances") if p.get("DryRun")]
        assert [(p["InstanceType"], p["MinCount"]) for p in dry] == [("c6i.2xlarge", 1), ("c6i.xlarge", 3)]

        grown, new = lab.grow(2)
        assert [h.name for h in new] == ["client-2", "client-3"]
        assert [h.name for h in grown.clients] == ["client-1", "client-2", "client-3"]
        assert grown.client_limit == 3 and grown.pool is not None and grown.pool.spare == 0
        more = launches(cloud)[2:]
        assert [(p["InstanceType"], p["MinCount"], p["MaxCount"]) for p in more] == [("c6i.xlarge", 2, 2)]
        same = ("ImageId", "KeyName", "Placement", "InstanceInitiatedShutdownBehavior", "UserData")
        assert {k: more[0][k] for k in same} == {k: first[1][k] for k in same}
        assert more[0]["NetworkInterfaces"] == first[1]["NetworkInterfaces"]  # subnet and group
        assert more[0]["ClientToken"] != first[1]["ClientToken"]
        mine = [{"Name": f"tag:{aws_api.TAG_RUN}", "Values": ["r-grow"]}]
        res = cloud.ec2().describe_instances(Filters=mine)
        inst = {i["InstanceId"]: {t["Key"]: t["Value"] for t in i["Tags"]}
                for r in res["Reservations"] for i in r["Instances"]}
        assert len(inst) == 4
        for h in new:
            tags = inst[h.vars["instance_id"]]
            assert tags["Name"] == f"{lab.name}-{h.name}" and tags["orchestrate:role"] == "client"
            assert tags[aws_api.TAG_SCENARIO] == "cross-host" and aws_api.TAG_EXPIRES in tags
            assert h.roles == ("client",) and h.vars["instance_type"] == "c6i.xlarge"
            assert h.ssh is not None
            assert f"{h.ssh.host} {HOST_KEY}\n" in Path(h.ssh.known_hosts or "").read_text()
        assert seam.seen[-1] == [h.ssh.host for h in new if h.ssh]  # waited for, the new ones only
        with pytest.raises(NoMoreHosts):
            grown.grow(1)
    assert cloud.nothing_left()
    assert cloud.fakes.count["RunInstances"] == len(dry) + 3


@pytest.mark.parametrize("code,message,said", [
    ("InsufficientInstanceCapacity", "We currently do not have sufficient c6i.xlarge capacity",
     "aws has no room for more c6i.xlarge in the run's placement group now: InsufficientInstanceCapacity"),
    ("VcpuLimitExceeded", "You have requested more vCPU capacity than your current vCPU limit of 16 allows",
     "aws quota allows no more c6i.xlarge now: VcpuLimitExceeded: .* \\(quota: .*L-1216C47A"),
])
def test_no_capacity_or_quota_for_more_clients_stops_the_scaling_not_the_run(cloud1, tmp_path, code, message,
                                                                               said):
    """Out of capacity or of vCPU quota while auto-scaling: NoMoreHosts (the run goes on with
    the clients it has, and execute says why the scaling stopped), nothing half-launched."""
    cloud1.fakes.fail["RunInstances"] = lambda params, nth: (
        err(code, message, 500 if code.startswith("Insufficient") else 400)
        if params["MinCount"] == 2 and not params.get("DryRun") else None)
    sc = scenario(cloud1.endpoint, client={"min": 1, "max": 3})
    with open_any_lab(sc, **lab_kw(tmp_path, "r-full")) as lab:
        with pytest.raises(NoMoreHosts, match=said) as info:
            lab.grow(2)
        assert info.value.phase == "add client hosts"
        assert len(cloud1.live("r-full")["instances"]) == 2  # the lab as it was
        (_, new) = lab.grow(1)  # capacity came back: one at a time still works
        assert [h.name for h in new] == ["client-2"]
    assert cloud1.nothing_left()


def test_ctrl_c_while_more_clients_are_pending_leaves_nothing(cloud1, tmp_path):
    sc = scenario(cloud1.endpoint, client={"min": 1, "max": 2})
    first: set[str] = set()
    polls: list[int] = []

    def interrupt(params, nth):
        ids = {v for f in params.get("Filters", []) if f["Name"] == "instance-id" for v in f["Values"]}
        if first and ids and not ids & first:  # waiting for the new client, still pending
            polls.append(nth)
            if len(polls) == 2:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)  # KeyboardInterrupt lands here
        return None

    cloud1.fakes.fail["DescribeInstances"] = interrupt
    with pytest.raises(KeyboardInterrupt), open_any_lab(sc, **lab_kw(tmp_path, "r-gint")) as lab:
        first.update(h.vars["instance_id"] for h in lab.hosts)
        cloud1.fakes.boot_polls = 1000  # the new instance never gets to running
        lab.grow(1)
    assert len(polls) >= 2 and cloud1.fakes.count["RunInstances"] == 2 + 2 + 1  # dry runs, launches, one more
    assert cloud1.nothing_left()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@CONTROL_FLOW  # teardown on an exception: the provider's flow
def test_an_error_inside_the_block_leaves_nothing(cloud, tmp_path):
    sc = scenario(cloud.endpoint)
    with pytest.raises(ZeroDivisionError), open_any_lab(sc, **lab_kw(tmp_path, "r-err")):
        assert not cloud.nothing_left()
        1 / 0  # noqa: B018
    assert cloud.nothing_left()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@CONTROL_FLOW  # raised in the block, no request in flight
def test_ctrl_c_inside_the_block_leaves_nothing(cloud, tmp_path):
    sc = scenario(cloud.endpoint)
    with pytest.raises(KeyboardInterrupt), open_any_lab(sc, **lab_kw(tmp_path, "r-int")):
        raise KeyboardInterrupt
    assert cloud.nothing_left()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@CONTROL_FLOW  # the SSH wait is a seam: the provider's flow
def test_ssh_never_answering_leaves_nothing(cloud, tmp_path):
    seam = SshSeam(fail=RunFailed("SSH did not answer", phase="provision"))
    with pytest.raises(RunFailed, match="SSH did not answer"), \
            open_any_lab(scenario(cloud.endpoint), **lab_kw(tmp_path, "r-ssh", wait_ssh=seam)):
        pytest.fail("the block must not run")
    assert cloud.nothing_left()


@ON_THE_WIRE  # SIGINT while TerminateInstances is being sent over HTTP
def test_second_ctrl_c_during_teardown_is_ignored(cloud, tmp_path):
    # SIGINT arrives while instances are being terminated: teardown must finish regardless.
    def interrupt(params, nth):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        return None

    cloud.fakes.fail["TerminateInstances"] = interrupt
    with pytest.raises(KeyboardInterrupt), open_any_lab(scenario(cloud.endpoint), **lab_kw(tmp_path, "r-2c")):
        raise KeyboardInterrupt
    assert cloud.fakes.count["TerminateInstances"] == 1
    assert cloud.nothing_left()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@ON_THE_WIRE  # the cleanup it names runs against the endpoint
def test_leftovers_after_a_complete_run_are_a_warning_with_their_ids(cloud, tmp_path, caplog):
    cloud.fakes.fail["DeleteSecurityGroup"] = lambda params, nth: err("UnauthorizedOperation", "not allowed")
    with open_any_lab(scenario(cloud.endpoint), **lab_kw(tmp_path, "r-part")):
        pass  # the run completes: a group it cannot delete does not fail it
    left = cloud.live("r-part")
    (sg,) = left["security-groups"]
    assert not left["instances"] and not left["key-pairs"] and not left["placement-groups"]
    warning = next(r.getMessage() for r in caplog.records
                   if r.levelname == "WARNING" and sg in r.getMessage())
    assert "UnauthorizedOperation" in warning
    assert "orchestrate cleanup --provider aws --region eu-west-1 --run-id r-part" in warning
    # With an error already in flight, that error wins and the leftovers are noted on it.
    with pytest.raises(ValueError) as info, \
            open_any_lab(scenario(cloud.endpoint), **lab_kw(tmp_path, "r-part2")):
        raise ValueError("boom")
    assert any("r-part2" in n for n in info.value.__notes__)
    del cloud.fakes.fail["DeleteSecurityGroup"]
    report = aws_cleanup.cleanup(REGION, all=True, endpoint_url=cloud.endpoint)
    assert report.ok and cloud.nothing_left()


# --- EC2 as it really behaves (injected through botocore's event hooks) -------------


def zone_of_subnets(cloud) -> dict[str, str]:
    return {s["SubnetId"]: s["AvailabilityZone"] for s in cloud.ec2().describe_subnets()["Subnets"]}


def launches(cloud) -> list[dict[str, Any]]:
    return [p for p in cloud.fakes.params("RunInstances") if not p.get("DryRun")]


def test_pending_instances_and_eventual_consistency_are_waited_out(cloud1, tmp_path):
    """pending -> running, new resources unknown for a while after their create, terminate
    NotFound on a live instance, shutting-down before terminated, groups still in use."""
    f = cloud1.fakes
    f.boot_polls, f.unseen_polls, f.shutdown_polls = 3, 2, 3

    def first(code: str, times: int = 1):
        seen = []

        def answer(params, nth):
            if params.get("DryRun"):
                return None
            seen.append(1)
            return err(code, "not yet") if len(seen) <= times else None
        return answer

    f.fail["AuthorizeSecurityGroupIngress"] = first("InvalidGroup.NotFound")
    f.fail["RunInstances"] = first("InvalidKeyPair.NotFound")
    f.fail["CreateTags"] = first("InvalidInstanceID.NotFound")
    f.fail["TerminateInstances"] = first("InvalidInstanceID.NotFound")
    f.fail["DeletePlacementGroup"] = first("InvalidPlacementGroup.InUse", 2)
    f.fail["DeleteSecurityGroup"] = first("DependencyViolation", 2)
    with open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-real")) as lab:
        ids = [h.vars["instance_id"] for h in lab.hosts]
        assert all(h.ssh and h.ssh.host for h in lab.hosts)  # public addresses, once running
        shown = [st for st in f.states if set(ids) <= set(st)]
        assert shown[0] == dict.fromkeys(ids, "pending") and shown[-1] == dict.fromkeys(ids, "running")
        assert any(not set(ids) & set(st) for st in f.states)  # unknown to the API at first
    assert cloud1.nothing_left()
    assert f.count["AuthorizeSecurityGroupIngress"] == 2 and f.count["CreateTags"] == 3
    assert len(launches(cloud1)) == 3  # the first launch retried, same ClientToken
    assert launches(cloud1)[0]["ClientToken"] == launches(cloud1)[1]["ClientToken"]
    assert f.count["DeletePlacementGroup"] == 3 and f.count["DeleteSecurityGroup"] == 3
    # terminate sent again after NotFound; instances seen shutting-down, then terminated
    assert f.count["TerminateInstances"] >= 2
    after = [st for st in f.states if set(ids) <= set(st) and "running" not in st.values()
             and "pending" not in st.values()]
    assert after[0] == dict.fromkeys(ids, "shutting-down") and after[-1] == dict.fromkeys(ids, "terminated")
    assert not (tmp_path / "lab-r-real").exists()


@pytest.mark.parametrize("code", ["InsufficientInstanceCapacity", "Unsupported"])
def test_capacity_on_the_second_role_moves_to_the_next_zone(cloud1, tmp_path, caplog, code):
    zones = zone_of_subnets(cloud1)
    first_zone = sorted(zones.values())[0]

    def no_room(params, nth):
        subnet = (params.get("NetworkInterfaces") or [{}])[0].get("SubnetId")
        if params.get("DryRun"):  # a DryRun checks permissions, not capacity
            return None
        if params.get("InstanceType") == "c6i.xlarge" and zones.get(subnet) == first_zone:
            return err(code, "We currently do not have sufficient c6i.xlarge capacity in the Availability "
                       f"Zone you requested ({first_zone})." if code != "Unsupported" else
                       f"Your requested instance type (c6i.xlarge) is not supported in {first_zone}.", 500)
        return None

    cloud1.fakes.fail["RunInstances"] = no_room
    with open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-cap")) as lab:
        got = cloud1.ec2().describe_instances(InstanceIds=[h.vars["instance_id"] for h in lab.hosts])
        placed = {i["Placement"]["AvailabilityZone"] for r in got["Reservations"] for i in r["Instances"]}
        assert placed == {sorted(zones.values())[1]}
        # the first attempt (its server instance and placement group) is gone already
        assert list(cloud1.fakes.groups) == [f"{lab.name}-2"]
        assert len(cloud1.live("r-cap")["instances"]) == 2
    assert [zones[p["NetworkInterfaces"][0]["SubnetId"]] for p in launches(cloud1)] == \
        [first_zone, first_zone] + [sorted(zones.values())[1]] * 2
    assert f"no capacity in {first_zone}" in caplog.text and code in caplog.text
    assert cloud1.nothing_left()


def test_capacity_nowhere_fails_naming_the_step_and_leaves_nothing(cloud1, tmp_path):
    cloud1.fakes.fail["RunInstances"] = lambda params, nth: (
        err("InsufficientInstanceCapacity", "We currently do not have sufficient c6i.xlarge capacity", 500)
        if params["InstanceType"] == "c6i.xlarge" and not params.get("DryRun") else None)
    with pytest.raises(RunFailed) as info, \
            open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-half")):
        pytest.fail("the block must not run")
    msg = str(info.value)
    assert msg.startswith("provision: aws launch: no capacity in any zone") and "\n" not in msg
    assert "launch client (c6i.xlarge)" in msg and "eu-west-1c" in msg
    assert len(launches(cloud1)) == 6  # server then client, in each of the three zones
    assert cloud1.nothing_left() and not cloud1.fakes.groups
    assert not (tmp_path / "lab-r-half").exists()


def test_an_instance_dying_of_capacity_while_pending_moves_on(cloud1, tmp_path):
    # EC2 may accept the launch, then end the instance: pending -> terminated, capacity reason.
    zones = zone_of_subnets(cloud1)
    first_zone = sorted(zones.values())[0]
    doomed: list[str] = []

    def die(parsed, **_):
        for res in parsed.get("Reservations", []):
            for i in res["Instances"]:
                if i["Placement"]["AvailabilityZone"] == first_zone and i["InstanceType"] == "c6i.xlarge":
                    doomed.append(i["InstanceId"])
                    i["State"] = {"Code": 48, "Name": "terminated"}
                    i["StateReason"] = {"Code": "Server.InsufficientInstanceCapacity", "Message":
                                        "Server.InsufficientInstanceCapacity: insufficient capacity"}

    session = aws_api.make_session(REGION)  # the same hooks as the provider's, plus this one
    session.events.register("after-call.ec2.DescribeInstances", die)
    with open_any_lab(scenario(cloud1.endpoint), session=session, **lab_kw(tmp_path, "r-die")) as lab:
        assert len(lab.hosts) == 2 and doomed
    assert cloud1.nothing_left()


@ON_THE_WIRE  # an interrupted poll, then teardown's requests over HTTP
def test_ctrl_c_while_an_instance_is_pending_leaves_nothing(cloud, tmp_path):
    cloud.fakes.boot_polls = 1000  # never gets to running
    polls = []

    def interrupt(params, nth):
        polls.append(nth)
        if len(polls) == 3:  # Ctrl-C while the instances are still pending
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # KeyboardInterrupt lands here
        return None

    cloud.fakes.fail["DescribeInstances"] = interrupt
    with pytest.raises(Interrupted) as info, \
            open_any_lab(scenario(cloud.endpoint), **lab_kw(tmp_path, "r-pend")):
        pytest.fail("the block must not run")
    assert "during aws provisioning: wait for the instances to run" in str(info.value)
    assert "everything it created was removed" in str(info.value)
    before_terminate = cloud.fakes.states[1]
    assert set(before_terminate.values()) == {"pending"}
    assert cloud.nothing_left()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_api_errors_are_one_line_naming_the_step_with_a_hint(cloud1, tmp_path):
    cloud1.fakes.fail["CreateSecurityGroup"] = lambda params, nth: err(
        "UnauthorizedOperation", "You are not authorized to perform this operation.", 403)
    with pytest.raises(RunFailed) as info, \
            open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-iam")):
        pytest.fail("the block must not run")
    assert str(info.value) == (
        "provision: aws create security group: UnauthorizedOperation: You are not authorized to perform "
        "this operation. (IAM: the credentials need ec2:CreateSecurityGroup; see the README, "
        "'AWS: the first run, permissions, spend and cleanup')")
    assert info.value.phase == "provision"
    assert cloud1.nothing_left()  # the key pair made before it is gone

    cloud1.fakes.fail.clear()
    cloud1.fakes.fail["RunInstances"] = lambda params, nth: None if params.get("DryRun") else err(
        "VcpuLimitExceeded", "You have requested more vCPU capacity than your current vCPU limit of 8 allows")
    with pytest.raises(RunFailed, match=r"aws launch server .*VcpuLimitExceeded.*\(quota: .*ask for more in "
                       "Service Quotas"), \
            open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-vcpu")):
        pytest.fail("the block must not run")
    assert cloud1.nothing_left()


# --- pre-flight: nothing is created when it fails ------------------------------------


def created_anything(cloud) -> list[str]:
    made = [op for op in cloud.fakes.ops()
            if op.startswith("Create") or op == "AuthorizeSecurityGroupIngress"]
    return made + [f"RunInstances {p['InstanceType']}" for p in launches(cloud)]


def test_dry_run_without_permission_stops_before_anything_is_created(cloud1, tmp_path):
    cloud1.fakes.fail["RunInstances"] = lambda params, nth: err(
        "UnauthorizedOperation", "You are not authorized to perform this operation.", 403) \
        if params.get("DryRun") else None
    with pytest.raises(RunFailed, match=r"^provision: aws pre-flight: DryRun launch of c6i.2xlarge "
                       r"\(server\): UnauthorizedOperation: .*"
                       r"\(IAM: the credentials need ec2:RunInstances"), \
            open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-dry")):
        pytest.fail("the block must not run")
    assert created_anything(cloud1) == [] and cloud1.nothing_left()


def test_vcpu_quota_is_checked_before_anything_is_created(cloud1, tmp_path, caplog):
    # moto has no EC2 quotas: the check says it could not be made, and the run goes on.
    with open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-q1")):
        pass
    assert "vCPU quota not checked (service-quotas L-1216C47A: NoSuchResourceException" in caplog.text
    assert "needs 12 standard vCPUs" in caplog.text
    # Where the quota is readable (as on AWS): 8 vCPUs cannot hold c6i.2xlarge + c6i.xlarge (8 + 4).
    from awskit import ok

    cloud1.fakes.fail["GetServiceQuota"] = lambda params, nth: ok(
        {"Quota": {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A", "Value": 8.0}})
    cloud1.fakes.calls.clear()
    with pytest.raises(RunFailed, match=r"vCPU quota: the run needs 12 standard vCPUs, 0 of 8 are in use"), \
            open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-q2")):
        pytest.fail("the block must not run")
    assert created_anything(cloud1) == [] and cloud1.nothing_left()


def test_a_4_vcpu_quota_refuses_the_default_plan_before_anything_is_created(cloud1, tmp_path):
    """A fresh account (4 vCPUs of L-1216C47A) against the defaults (2 x c6i.2xlarge, 16 vCPUs):
    refused at pre-flight, nothing created, pointing at the smoke scenario, which fits."""
    from awskit import ok

    cloud1.fakes.fail["GetServiceQuota"] = lambda params, nth: ok(
        {"Quota": {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A", "Value": 4.0}})
    cfg = {"region": REGION, **({"endpoint_url": cloud1.endpoint} if cloud1.endpoint else {})}
    defaults = Scenario.model_validate({"name": "defaults", "hosts": {"provider": "aws", "aws": cfg}})
    expect = (r"vCPU quota: the run needs 16 standard vCPUs, 0 of 4 are in use in eu-west-1 "
              r"\(quota L-1216C47A, .*start with scenarios/aws-smoke.yaml, which fits 4 vCPUs")
    with pytest.raises(RunFailed, match=expect), open_any_lab(defaults, **lab_kw(tmp_path, "r-4cpu")):
        pytest.fail("the block must not run")
    assert created_anything(cloud1) == [] and "RunInstances" not in cloud1.fakes.ops()
    assert cloud1.nothing_left() and aws_state.load_all() == []
    # ... and the smoke scenario as shipped (us-east-1, its max_hourly) passes that quota
    smoke = scenario_mod.load(Path(__file__).resolve().parents[2] / "scenarios" / "aws-smoke.yaml").scenario
    assert smoke.hosts.aws is not None and cloud1.endpoint is None  # in-process: no endpoint to set
    public_default_vpc(None, smoke.hosts.aws.region)
    with open_any_lab(smoke, **lab_kw(tmp_path, "r-smoke")) as lab:
        assert [h.vars["instance_type"] for h in lab.hosts] == ["c7i-flex.large"] * 2
    assert cloud1.nothing_left()


def test_doctor_fails_a_4_vcpu_quota_against_the_default_plan_before_anything_is_created(cloud1):
    """`orchestrate doctor` on an AWS scenario runs the provider's own pre-flight (issue 26): a
    fresh account's 4 vCPUs against the defaults' 16 is a fail line with its fix, and nothing
    is created in the account."""
    from awskit import ok

    from orchestrator.doctor import checks

    cloud1.fakes.fail["GetServiceQuota"] = lambda params, nth: ok(
        {"Quota": {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A", "Value": 4.0}})
    cfg = {"region": REGION, **({"endpoint_url": cloud1.endpoint} if cloud1.endpoint else {})}
    defaults = Scenario.model_validate({"name": "defaults", "hosts": {"provider": "aws", "aws": cfg}})
    with ssh_server() as port:
        check, out = checks.aws(defaults, ssh_probe=("127.0.0.1", port))
    assert check.status == "fail", check
    assert out.name == "ssh out" and out.status == "ok", out  # the path out is checked all the same
    assert "vCPU quota: the run needs 16 standard vCPUs, 0 of 4 are in use" in check.line(), check.line()
    assert "aws-smoke.yaml" in check.line(), check.line()
    assert created_anything(cloud1) == [] and "RunInstances" not in cloud1.fakes.ops()


@contextmanager
def ssh_server() -> Iterator[int]:
    """A real socket on 127.0.0.1 that greets like sshd: the public SSH server doctor's probe reaches."""
    from testkit import listener

    with listener(b"SSH-2.0-OpenSSH_9.2\r\n") as port:
        yield port


def test_doctor_checks_the_ssh_path_to_the_instances_before_anything_is_created(cloud1):
    """doctor for aws, port 22 reachable from here (issue 26): out of this network (a real
    socket standing in for the public SSH server), admitted by the run's SSH rule (this machine's
    address against hosts.aws.ssh_cidr), and routed into the subnet (its route table on moto).
    Each broken piece is a fail line with its fix; nothing is created."""
    from orchestrator.doctor import checks
    from orchestrator.hosts.aws import reach

    def lines(sc: Scenario, port: int, here: str = "203.0.113.7") -> dict[str, Any]:
        return {c.name: c for c in checks.aws(sc, ssh_probe=("127.0.0.1", port), my_address=lambda: here)}

    no_internet_route(cloud1.endpoint)
    with ssh_server() as port:
        got = lines(scenario(cloud1.endpoint), port)
        assert got["aws pre-flight"].status == "ok" and got["ssh out"].status == "ok", got
        assert got["ssh rule"].status == "ok" and "203.0.113.7/32" in got["ssh rule"].detail, got
        # moto's default VPC routes nothing out: its instances' public addresses are unreachable
        route = got["ssh route"]
        assert route.status == "fail" and "no route to an internet gateway" in route.detail, route
        assert "hosts.aws.subnet" in got["ssh route"].fix
        assert created_anything(cloud1) == []
        public_default_vpc(cloud1.endpoint)  # the gateway and route, made outside the fakes
        got = lines(scenario(cloud1.endpoint, ssh_cidr="198.51.100.0/24"), port)
        assert got["ssh route"].status == "ok" and "igw-" in got["ssh route"].detail, got["ssh route"]
        rule = got["ssh rule"]
        assert rule.status == "fail" and "outside it" in rule.detail and "203.0.113.7/32" in rule.fix, rule
        assert lines(scenario(cloud1.endpoint, ssh_cidr="203.0.113.0/24"), port)["ssh rule"].status == "ok"
    blocked = reach.outbound(("127.0.0.1", port), timeout=2)  # the same port, nothing listening now
    assert blocked.status == "fail" and "refused" in blocked.detail.lower(), blocked
    assert created_anything(cloud1) == []  # pre-flight's launches were dry runs
    dry = cloud1.fakes.params("RunInstances")
    assert all(p.get("DryRun") for p in dry), dry


def test_run_refuses_a_broken_ssh_path_before_anything_is_created(cloud1, tmp_path, monkeypatch, caplog):
    """`orchestrate run` runs doctor's SSH-path checks in the provider's pre-flight (issue 26):
    a subnet without a route to an internet gateway (moto's default VPC as moto makes it), or
    this machine outside hosts.aws.ssh_cidr, refuses the run with one line naming the subnet or
    the key and the fix, before any instance, group or key exists; port 22 blocked out of this
    network only warns (the run goes on)."""
    from orchestrator.hosts.aws import reach

    no_internet_route(cloud1.endpoint)
    with pytest.raises(RunFailed) as refused, open_any_lab(scenario(cloud1.endpoint),
                                                           **lab_kw(tmp_path, "r-noroute")):
        pytest.fail("the block must not run")
    line = str(refused.value)
    assert re.fullmatch(r"provision: aws pre-flight: ssh route: subnet subnet-\w+ has no route to an "
                        r"internet gateway: its instances' public addresses cannot be reached from here; "
                        r"fix: set hosts.aws.subnet to a public subnet, route 0.0.0.0/0 to an internet "
                        r"gateway, .*ssh_address: private", line), line
    assert "\n" not in line and refused.value.exit_code == 1
    assert created_anything(cloud1) == [] and cloud1.nothing_left()
    ec2 = cloud1.ec2()
    assert ec2.describe_instances()["Reservations"] == []  # not even a terminated one
    assert ec2.describe_key_pairs()["KeyPairs"] == [] and aws_state.load_all() == []
    # the route as a real account has it: the same run passes the check
    public_default_vpc(cloud1.endpoint)
    with pytest.raises(UserError, match=r"^hosts.aws.ssh_cidr: ssh rule: SSH admitted from "
                       r"hosts.aws.ssh_cidr 198.51.100.0/24; this machine is 203.0.113.7, outside it: the "
                       r"security group will drop its SSH; fix: --set hosts.aws.ssh_cidr=203.0.113.7/32"), \
            open_any_lab(scenario(cloud1.endpoint, ssh_cidr="198.51.100.0/24"), **lab_kw(tmp_path, "r-out")):
        pytest.fail("the block must not run")
    assert created_anything(cloud1) == [] and ec2.describe_instances()["Reservations"] == []
    # port 22 blocked on the way out: a warning, and the run provisions
    with socket.socket() as s:  # bound, never listening: a connection is refused
        s.bind(("127.0.0.1", 0))
        monkeypatch.setattr(reach, "SSH_PROBE", s.getsockname())
        with open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-probe")) as lab:
            assert len(lab.hosts) == 2
    assert re.search(r"WARNING aws: ssh out: TCP port \d+ to 127.0.0.1 from here: .*refused.*; open outbound "
                     r"TCP port 22 .*; going on", caplog.text), caplog.text
    assert "route tables" not in caplog.text and cloud1.nothing_left()


def private_subnet(endpoint: str | None, subnet: str, region: str = REGION) -> str:
    """`subnet` given a route table of its own that routes nothing out of the VPC (a private
    subnet in a VPC whose main table has the internet gateway); made outside the fakes."""
    ec2 = aws_api.boto_session(region).client("ec2", endpoint_url=endpoint)
    vpc = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["VpcId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    return str(table)


def test_every_subnet_the_launch_may_use_is_checked_not_only_the_first(cloud1, tmp_path):
    """The launch tries the VPC's subnets zone after zone: doctor and a run check the route of
    each. The first routes to an internet gateway, the second has a table of its own without
    one: doctor fails on that subnet by name, and the run is refused naming it, before any
    instance, group or key exists."""
    from orchestrator.doctor import checks

    public_default_vpc(cloud1.endpoint)
    by_zone = sorted(zone_of_subnets(cloud1).items(), key=lambda kv: kv[1])
    (first, _), (second, _) = by_zone[:2]
    private_subnet(cloud1.endpoint, second)
    got = checks.aws(scenario(cloud1.endpoint), my_address=lambda: MY_ADDRESS)
    routes = [c for c in got if c.name == "ssh route"]
    assert len(routes) == len(by_zone), [c.line() for c in got]  # every zone offers c6i here
    assert routes[0].status == "ok" and first in routes[0].detail and "igw-" in routes[0].detail, routes[0]
    (bad,) = [c for c in routes if c.status != "ok"]
    assert bad.status == "fail" and f"subnet {second} has no route to an internet gateway" in bad.detail, bad
    assert "hosts.aws.subnet" in bad.fix
    with pytest.raises(RunFailed) as refused, open_any_lab(scenario(cloud1.endpoint),
                                                           **lab_kw(tmp_path, "r-second")):
        pytest.fail("the block must not run")
    assert f"aws pre-flight: ssh route: subnet {second} has no route" in str(refused.value)
    assert created_anything(cloud1) == [] and cloud1.ec2().describe_instances()["Reservations"] == []
    # the one subnet named in the scenario is the one the launch uses: only its route counts
    with open_any_lab(scenario(cloud1.endpoint, subnet=first), **lab_kw(tmp_path, "r-first")) as lab:
        assert len(lab.hosts) == 2
    assert {p["NetworkInterfaces"][0]["SubnetId"] for p in launches(cloud1)} == {first}
    assert cloud1.nothing_left()


def test_the_zone_is_one_that_offers_every_roles_type(cloud1, tmp_path):
    zones = sorted(set(zone_of_subnets(cloud1).values()))
    offered = {"c6i.2xlarge": zones, "c6i.xlarge": zones[2:]}

    def offerings(params, nth):
        from awskit import ok

        return ok({"InstanceTypeOfferings": [{"InstanceType": t, "LocationType": "availability-zone",
                                              "Location": z} for t, zs in offered.items() for z in zs]})

    cloud1.fakes.fail["DescribeInstanceTypeOfferings"] = offerings
    with open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-zone")) as lab:
        got = cloud1.ec2().describe_instances(InstanceIds=[h.vars["instance_id"] for h in lab.hosts])
        assert {i["Placement"]["AvailabilityZone"] for r in got["Reservations"] for i in r["Instances"]} == \
            {zones[2]}
    offered["c6i.xlarge"] = []
    cloud1.fakes.calls.clear()
    with pytest.raises(UserError, match=r"hosts.aws.instance_type: no subnet is in a zone that offers every "
                       r"role's type in eu-west-1: c6i.2xlarge in eu-west-1a, .*; c6i.xlarge in no zone"), \
            open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-nozone")):
        pytest.fail("the block must not run")
    assert created_anything(cloud1) == [] and cloud1.nothing_left()


def test_each_role_gets_an_image_of_its_types_architecture(cloud1, tmp_path):
    sc = scenario(cloud1.endpoint, instance_type={"server": "c7g.xlarge", "client": "c6i.xlarge"})
    with open_any_lab(sc, **lab_kw(tmp_path, "r-arch")):
        images = {p["InstanceType"]: p["ImageId"] for p in launches(cloud1)}
    assert images == {"c7g.xlarge": DEBIAN_AMIS["/aws/service/debian/release/12/latest/arm64"],
                      "c6i.xlarge": DEBIAN_AMIS["/aws/service/debian/release/12/latest/amd64"]}
    assert cloud1.nothing_left()
    # An explicit image must fit every role's type: found before anything is created.
    cloud1.fakes.calls.clear()
    amd64 = DEBIAN_AMIS["/aws/service/debian/release/12/latest/amd64"]
    with pytest.raises(UserError, match=rf"hosts.aws.image: {amd64} is x86_64, but c7g.xlarge \(server\) "
                       "runs arm64"), \
            open_any_lab(scenario(cloud1.endpoint, image=amd64, instance_type={"server": "c7g.xlarge"}),
                         **lab_kw(tmp_path, "r-arch2")):
        pytest.fail("the block must not run")
    assert created_anything(cloud1) == [] and cloud1.nothing_left()
    with pytest.raises(UserError, match=r"hosts.aws.instance_type: .*InvalidInstanceType"), \
            open_any_lab(scenario(cloud1.endpoint, instance_type={"server": "c9z.huge"}),
                         **lab_kw(tmp_path, "r-type")):
        pytest.fail("the block must not run")


def test_ssh_cidr_and_private_addresses(cloud1, tmp_path, monkeypatch, caplog):
    # ssh_cidr: the SSH rule as given; this machine's address checked against it, and when it
    # cannot be looked up (no service reachable), a warning, not a refusal.
    def no_service(timeout: float = 5.0) -> str:
        raise UserError("cannot find this machine's public address via https://checkip.amazonaws.com: "
                        "timed out; pass it explicitly")

    monkeypatch.setattr(aws, "discover_address", no_service)
    kw = lab_kw(tmp_path, "r-cidr")
    del kw["my_address"]
    with open_any_lab(scenario(cloud1.endpoint, ssh_cidr="198.51.100.0/24"), **kw):
        assert "WARNING aws: ssh rule: SSH admitted from 198.51.100.0/24; cannot tell if that is this " \
            "machine" in caplog.text, caplog.text
        (group,) = cloud1.ec2().describe_security_groups(
            Filters=[{"Name": f"tag:{aws_api.TAG_RUN}", "Values": ["r-cidr"]}])["SecurityGroups"]
        ssh = next(r for r in group["IpPermissions"] if r["IpProtocol"] == "tcp")
        assert [x["CidrIp"] for x in ssh["IpRanges"]] == ["198.51.100.0/24"]
    # ssh_address: private: reached on the private address, SSH admitted from the VPC only. The
    # orchestrator is inside the VPC: its route there leaves from a VPC address (moto's 172.31/16).
    from orchestrator.hosts.aws import reach

    monkeypatch.setattr(reach, "source_address", lambda cidr: "172.31.7.7")
    kw = lab_kw(tmp_path, "r-priv")
    del kw["my_address"]
    seam = SshSeam()
    with open_any_lab(scenario(cloud1.endpoint, ssh_address="private"), **{**kw, "wait_ssh": seam}) as lab:
        for h in lab.hosts:
            assert h.ssh is not None and h.ssh.host == h.address
        assert seam.seen == [[h.address for h in lab.hosts]]
        (group,) = cloud1.ec2().describe_security_groups(
            Filters=[{"Name": f"tag:{aws_api.TAG_RUN}", "Values": ["r-priv"]}])["SecurityGroups"]
        ssh = next(r for r in group["IpPermissions"] if r["IpProtocol"] == "tcp")
        vpc = cloud1.ec2().describe_vpcs(VpcIds=[group["VpcId"]])["Vpcs"][0]["CidrBlock"]
        assert [x["CidrIp"] for x in ssh["IpRanges"]] == [vpc]
        assert all("AssociatePublicIpAddress" not in p["NetworkInterfaces"][0] for p in launches(cloud1)[-2:])
    assert cloud1.nothing_left()


def test_failed_provisioning_completes_the_runs_bookkeeping(cloud1, tmp_path):
    """Through the pipeline: the summary says failed, in which phase and step; history has it."""
    import sqlite3

    from orchestrator import execute, store
    from orchestrator import scenario as scenario_mod

    cloud1.fakes.fail["CreatePlacementGroup"] = lambda params, nth: err(
        "PlacementGroupLimitExceeded", "You have reached the limit of placement groups")
    doc = tmp_path / "aws.yaml"
    cfg = {"region": REGION, "image": DEBIAN, "instance_type": {"server": "c6i.large", "client": "c6i.large"},
           **({"endpoint_url": cloud1.endpoint} if cloud1.endpoint else {})}
    doc.write_text(json.dumps({"name": "aws-book", "hosts": {"provider": "aws", "aws": cfg}}))
    history = tmp_path / "history.sqlite"
    with pytest.raises(RunFailed) as info:
        execute.run(scenario_mod.load(doc), results_root=tmp_path / "results", run_id="r-book",
                    history=history, progress=lambda m: None,
                    lab_options={k: v for k, v in lab_kw(tmp_path, "r-book").items() if k != "run_id"})
    assert re.match(r"provision: aws create placement group orchestrate-r-book-[0-9a-f]{6}: "
                    "PlacementGroupLimitExceeded", str(info.value))
    summary = json.loads((tmp_path / "results" / "aws-book" / "r-book" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["phase"] == "provision"
    assert "create placement group" in summary["error"] and "(quota:" in summary["error"]
    assert not (tmp_path / "results" / "aws-book" / "r-book" / "traceback.txt").exists()
    with sqlite3.connect(history) as db:
        assert db.execute("select count(*) from sessions").fetchone()[0] == 1
    assert store is not None and cloud1.nothing_left()

    # Ctrl-C while the instances are pending: recorded as interrupted, the step named.
    del cloud1.fakes.fail["CreatePlacementGroup"]
    cloud1.fakes.boot_polls = 1000
    before = cloud1.fakes.count.get("DescribeInstances", 0)  # the first run's teardown scans counted

    def interrupt(params, nth):
        if nth - before == 3:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        return None

    cloud1.fakes.fail["DescribeInstances"] = interrupt
    with pytest.raises(Interrupted):
        execute.run(scenario_mod.load(doc), results_root=tmp_path / "results", run_id="r-book2",
                    history=history, progress=lambda m: None,
                    lab_options={k: v for k, v in lab_kw(tmp_path, "r-book2").items() if k != "run_id"})
    summary = json.loads((tmp_path / "results" / "aws-book" / "r-book2" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert "during aws provisioning: wait for the instances to run; everything it created was removed" \
        in summary["error"]
    with sqlite3.connect(history) as db:
        assert db.execute("select count(*) from sessions").fetchone()[0] == 2
    assert cloud1.nothing_left()


# --- leftovers ----------------------------------------------------------------------


def test_cleanup_removes_a_killed_runs_leftovers(cloud, tmp_path):
    sc = scenario(cloud.endpoint)
    session = aws_api.make_session(REGION)
    long_ago = datetime.now(UTC) - timedelta(hours=5)
    # Two runs "killed" before their teardown: provisioning alone, nothing removes them.
    for run_id, when in (("r-old", long_ago), ("r-new", datetime.now(UTC))):
        created = aws.Created(run_id=run_id, lab_dir=tmp_path / run_id)
        aws.provision(sc, run_id=run_id, created=created, session=session, my_address=MY_ADDRESS,
                      wait_ssh=SshSeam(), host_keys=fake_keys, now=when)
    assert cloud.live("r-old")["instances"] and cloud.live("r-new")["instances"]

    expired = aws_cleanup.find_leftovers(REGION, endpoint_url=cloud.endpoint)
    assert {x.run_id for x in expired} == {"r-old"}
    assert sorted(x.kind for x in expired) == sorted([*aws_api.KINDS, "instance"])
    assert all(x.expired and x.scenario == "cross-host" for x in expired)
    (warning,) = aws_cleanup.warn_expired(REGION, endpoint_url=cloud.endpoint)
    assert "r-old" in warning and "2 instance(s) still billed" in warning and "orchestrate cleanup" in warning

    dry = aws_cleanup.cleanup(REGION, endpoint_url=cloud.endpoint, dry_run=True)
    assert len(dry.removed) == 5 and cloud.live("r-old")["instances"]

    report = aws_cleanup.cleanup(REGION, endpoint_url=cloud.endpoint)
    assert report.ok and {x.run_id for x in report.removed} == {"r-old"}
    assert [x.kind for x in report.removed][:2] == ["instance", "instance"]  # instances first
    assert cloud.nothing_left("r-old")
    assert not any(not v for v in cloud.live("r-new").values())  # the live run is untouched
    assert aws_cleanup.warn_expired(REGION, endpoint_url=cloud.endpoint) == []
    # an expired run recorded in another region: named before a run, with no call made there
    aws_state.RunState("r-far", "orchestrate-r-far-abcdef", "ap-south-1",
                       expires=aws_api.iso(long_ago)).save()
    (far,) = aws_cleanup.warn_expired(REGION, endpoint_url=cloud.endpoint)
    assert far.startswith("local records name expired run(s) in ap-south-1") and "--dry-run" in far
    aws_state.forget("r-far")

    # Later, past its expiry, or right away with all=True.
    later = datetime.now(UTC) + timedelta(hours=4)
    found = aws_cleanup.find_leftovers(REGION, endpoint_url=cloud.endpoint, now=later)
    assert {x.run_id for x in found} == {"r-new"}
    report = aws_cleanup.cleanup(REGION, all=True, endpoint_url=cloud.endpoint)
    assert report.ok and len(report.removed) == 5
    assert cloud.nothing_left()


# --- plan and cost: no calls ----------------------------------------------------------


@pytest.fixture
def no_api(monkeypatch):
    import botocore.client

    def refuse(*a, **kw):
        raise AssertionError("plan/estimate made an AWS API call")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    monkeypatch.setattr(boto3.session, "Session", refuse)


def test_estimate_and_plan_make_no_api_calls(no_api):
    sc = scenario(None)
    est = prices.estimate(sc, 2.0)
    table = prices.load_prices()
    by_role = {r.role: r for r in est.roles}
    assert by_role["server"].instance_type == "c6i.2xlarge" and by_role["server"].count == 1
    assert by_role["server"].hourly == pytest.approx(table.prices[REGION]["c6i.2xlarge"] + 0.005)
    assert est.total == pytest.approx(2.0 * (by_role["server"].hourly + by_role["client"].hourly))
    assert est.prices_as_of == table.as_of and "estimate" in est.disclaimer.lower()
    assert est.as_dict()["estimate"] is True
    lines = prices.describe_plan(sc)
    text = "\n".join(lines)
    assert "server: 1 x c6i.2xlarge" in text and "client: 1 x c6i.xlarge" in text
    assert "estimated cost: ~$" in text and "ESTIMATE" in text and table.as_of in text
    assert "WARNING" not in text

    # Auto-scale: a range, from min clients for the least time to max clients for the most.
    scaled = scenario(None, client={"min": 1, "max": 3})
    est = prices.estimate(scaled, 2.0, hours_min=1.0)
    server, client = (next(r for r in est.roles if r.role == role) for role in ("server", "client"))
    assert (server.count_min, client.count_min, client.count) == (None, 1, 3)
    assert est.total == pytest.approx(2.0 * (server.hourly + 3 * client.hourly))
    assert est.total_min == pytest.approx(1.0 * (server.hourly + client.hourly))
    text = "\n".join(prices.describe_plan(scaled))
    assert "server: 1 x c6i.2xlarge" in text and "client: 1..3 x c6i.xlarge" in text
    low, high = (float(x) for x in re.search(r"estimated cost: ~\$([\d.]+)\.\.\$([\d.]+) USD", text).groups())
    assert 0 < low < high
    # the worst case: every client auto-scale may add, per hour and until the instances expire
    worst = server.hourly + 3 * client.hourly
    assert f"worst case per hour: ~${worst:.3f} (4 instances, auto-scale at its most)" in text
    assert f"~${worst * 3:.2f} if they are held until they expire (3h00m00s" in text
    assert prices.worst_hourly(scaled) == pytest.approx(worst)
    plan = expand(scaled)
    assert plan.scale_runs_max == 2  # one point, from 1 to 3 clients
    assert prices.planned_seconds(scaled) - prices.planned_seconds(scaled, least=True) == \
        pytest.approx(2 * plan.per_run_s + 2 * prices.GROW_OVERHEAD_S)

    unknown = prices.estimate(scenario(None, instance_type={"server": "z9.huge", "client": "c6i.large"}), 1)
    assert unknown.total is None and unknown.unpriced == ["z9.huge"]
    assert "unknown" in "\n".join(prices.describe_plan(scenario(None, instance_type={"server": "z9.huge"})))
    short = scenario(None, expire_after="5m")
    assert "WARNING" in "\n".join(prices.describe_plan(short))
    with pytest.raises(UserError, match="expire_after"), aws.open_lab(short, run_id="x"):
        pass


def test_estimate_without_table_or_api_in_moto_creates_nothing(cloud):
    prices.describe_plan(scenario(cloud.endpoint))
    prices.estimate(scenario(cloud.endpoint), 1.0)
    assert cloud.fakes.calls == [] and cloud.nothing_left()


# --- secrets ------------------------------------------------------------------------


@ON_THE_WIRE  # signed requests really sent, DEBUG logging on
def test_no_credential_or_key_material_in_results(cloud, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="orchestrator")
    results = tmp_path / "results" / "cross-host" / "r-sec"
    results.mkdir(parents=True)
    sc = scenario(cloud.endpoint)
    with open_any_lab(sc, **lab_kw(tmp_path, "r-sec")) as lab:
        key_text = Path(lab.hosts[0].ssh.key_file).read_text()  # type: ignore[union-attr,arg-type]
        # what the provider hands the pipeline and the user, as a results folder would hold it
        (results / "lab.json").write_text(json.dumps(asdict(lab), indent=1, default=str))
        (results / "estimate.json").write_text(json.dumps(asdict(prices.estimate(sc, 1.0)), default=str))
        (results / "plan.txt").write_text("\n".join(prices.describe_plan(sc)))
        leftovers = aws_cleanup.find_leftovers(REGION, all=True, endpoint_url=cloud.endpoint)
        (results / "leftovers.json").write_text(json.dumps([asdict(x) for x in leftovers], default=str))
        warnings = aws_cleanup.warn_expired(REGION, endpoint_url=cloud.endpoint)
        (results / "warnings.txt").write_text("\n".join(warnings))
    (results / "orchestrate.log").write_text(caplog.text)
    body = "".join(line for line in key_text.splitlines() if "-----" not in line)
    assert len(body) > 40
    needles = [FAKE_KEY_ID, FAKE_SECRET, FAKE_TOKEN, "PRIVATE KEY", body[:40], body[-40:]]
    for f in results.rglob("*"):
        text = f.read_text()
        for needle in needles:
            assert needle not in text, f"{needle[:12]}... found in {f.name}"
    assert "orchestrate-r-sec" in (results / "lab.json").read_text()  # the files do hold the lab


def test_missing_credentials_is_a_user_error(monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var)
    with pytest.raises(UserError, match="no AWS credentials"):
        aws_api.make_session(REGION)


# --- small pieces -----------------------------------------------------------------------


def test_image_resolution(cloud):
    ssm = cloud.session().client("ssm", endpoint_url=cloud.endpoint)
    ssm.put_parameter(Name="/orchestrate/test/ami", Value="ami-0123456789abcdef0", Type="String")
    ssm.put_parameter(Name="/orchestrate/test/not-ami", Value="debian", Type="String")
    assert aws.resolve_image(ssm, "resolve:ssm:/orchestrate/test/ami") == "ami-0123456789abcdef0"
    assert aws.resolve_image(ssm, "ami-0fedcba9876543210") == "ami-0fedcba9876543210"
    assert aws.resolve_image(ssm, IMAGE).startswith("ami-")
    with pytest.raises(UserError, match="not an AMI"):
        aws.resolve_image(ssm, "resolve:ssm:/orchestrate/test/not-ami")
    with pytest.raises(UserError, match="cannot resolve"):
        aws.resolve_image(ssm, "resolve:ssm:/orchestrate/test/missing")


CONSOLE = """\
[   12.345678] cloud-init[512]: Cloud-init v. 22.4.2 running 'modules:final'
<14>Jan 15 10:00:01 ec2: #############################################################
<14>Jan 15 10:00:01 ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----
<14>Jan 15 10:00:01 ec2: 256 SHA256:3WQm0bWl7bA0n1 root@ip-172-31-0-4 (ECDSA)
<14>Jan 15 10:00:01 ec2: -----END SSH HOST KEY FINGERPRINTS-----
<14>Jan 15 10:00:01 ec2: #############################################################
-----BEGIN SSH HOST KEY KEYS-----
ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= root@ip-172-31-0-4
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9 root@ip-172-31-0-4
-----END SSH HOST KEY KEYS-----
"""


def test_sessions_share_one_loader_of_botocore_models(monkeypatch, tmp_path):
    """Every session of the process reads botocore's models through one loader (each would
    otherwise parse the EC2 model and the endpoints table again); another data path, which a
    profile or AWS_DATA_PATH may set, gets a loader of its own, as botocore would make it."""
    a, b = aws_api.boto_session(REGION), aws_api.boto_session("us-east-1")
    loader = a._session.get_component("data_loader")  # botocore's; boto3 has no public accessor
    assert b._session.get_component("data_loader") is loader
    model = a.client("ec2", endpoint_url="http://127.0.0.1:9").meta.service_model
    assert b.client("ec2", endpoint_url="http://127.0.0.1:9").meta.service_model.operation_names == \
        model.operation_names and "RunInstances" in model.operation_names
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    other = aws_api.boto_session(REGION)._session.get_component("data_loader")
    assert other is not loader and str(tmp_path) in other.search_paths


def test_a_session_builds_each_client_once(cloud1, tmp_path, monkeypatch):
    """A run asks its session for the same client at each step (pre-flight, provision, STS):
    each service, endpoint and retry policy is built once per session (a client costs 15-40 ms
    of CPU), teardown's with its own few retries, and the memo goes with its session."""
    import gc

    built: list[tuple[str, int]] = []
    real = aws_api.make_session

    def counting(region, profile=None):
        session = real(region, profile)
        build = session.client

        def client(service, **kw):
            built.append((service, kw["config"].retries["max_attempts"]))
            return build(service, **kw)

        session.client = client
        return session

    monkeypatch.setattr(aws_api, "make_session", counting)
    with open_any_lab(scenario(None), **lab_kw(tmp_path, "r-once")):
        pass
    assert sorted(built) == [("ec2", aws_api.TEARDOWN_ATTEMPTS), ("ec2", aws_api.ATTEMPTS),
                             ("service-quotas", aws_api.ATTEMPTS), ("ssm", aws_api.ATTEMPTS),
                             ("sts", aws_api.ATTEMPTS)]
    session = aws_api.boto_session(REGION)
    assert aws_api.client(session, "ec2", None) is aws_api.client(session, "ec2", None)
    assert aws_api.client(session, "ec2", "http://127.0.0.1:9") is not aws_api.client(session, "ec2", None)
    other = aws_api.boto_session(REGION)
    assert aws_api.client(other, "ec2", None) is not aws_api.client(session, "ec2", None)
    before = len(aws_api._CLIENTS)
    del session, other
    gc.collect()
    assert len(aws_api._CLIENTS) <= before - 2  # (and the lab's, where gc found it only now)


def test_host_keys_from_the_console():
    assert aws.parse_console_host_keys(CONSOLE) == [
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9"]
    assert aws.parse_console_host_keys("no keys yet") == []

    class Ec2:
        def get_console_output(self, InstanceId, Latest):  # noqa: N803 (boto3's names)
            return {"Output": base64.b64encode(CONSOLE.encode()).decode()}

    host = aws.Booted("server-1", "server", "i-1", "c6i.large", "10.0.0.1", "198.51.100.1")
    assert aws.fetch_host_keys(Ec2(), [host], 1.0)["i-1"][1].startswith("ssh-ed25519 ")


def test_user_data_installs_a_timer_at_the_runs_absolute_expiry(tmp_path):
    """The dead-man switch as the instance runs it: a systemd timer at the absolute UTC time,
    Persistent so a reboot does not disarm it, powering off (= terminate) when it fires."""
    import subprocess

    script = tmp_path / "user-data"
    script.write_text(launch.user_data("2026-03-01T04:05:06Z"))
    done = subprocess.run(["sh", str(script)], env={**os.environ, "ORCHESTRATE_ROOT": str(tmp_path / "root")},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    units = tmp_path / "root" / "etc" / "systemd" / "system"
    timer = (units / "orchestrate-expire.timer").read_text()
    assert "OnCalendar=2026-03-01 04:05:06 UTC" in timer and "Persistent=true" in timer
    assert "WantedBy=timers.target" in timer
    assert "ExecStart=/bin/systemctl poweroff" in (units / "orchestrate-expire.service").read_text()


def test_the_user_data_a_run_sends_arms_a_timer_at_its_expiry_inside_a_lab_host(cloud1, tmp_path, lab3):
    """The user data of a real launch (what RunInstances was sent), run as root inside a lab
    host: the timer it installs fires at the run's absolute expiry (the instances' expires
    tag), which systemd itself reads back. ORCHESTRATE_ROOT keeps it from arming anything."""
    import subprocess

    with open_any_lab(scenario(cloud1.endpoint, client={"min": 1, "max": 2}),
                      **lab_kw(tmp_path, "r-ud")) as lab:
        grown, _ = lab.grow(1)  # an auto-scaled client counts from the run's start, not its own boot
        got = cloud1.ec2().describe_instances(InstanceIds=[h.vars["instance_id"] for h in grown.hosts])
        expires = {aws_api.tags_of(i)[aws_api.TAG_EXPIRES]
                   for r in got["Reservations"] for i in r["Instances"]}
    sent = {base64.b64decode(p["UserData"]).decode() for p in launches(cloud1)}
    assert len(sent) == 1 and len(launches(cloud1)) == 3 and len(expires) == 1  # one expiry for all
    (script,), (expiry,) = sent, expires
    (tmp_path / "user-data").write_text(script)
    st, _ = lab3
    host = st.hosts[0].name
    done = subprocess.run(["ip", "netns", "exec", host, "env", f"ORCHESTRATE_ROOT={tmp_path / 'root'}",
                           "sh", str(tmp_path / "user-data")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    units = tmp_path / "root" / "etc" / "systemd" / "system"
    timer = (units / "orchestrate-expire.timer").read_text()
    (calendar,) = re.findall(r"^OnCalendar=(.*)$", timer, re.M)
    assert "Persistent=true" in timer and "WantedBy=timers.target" in timer
    assert "ExecStart=/bin/systemctl poweroff" in (units / "orchestrate-expire.service").read_text()
    read = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, text=True,
                          env={**os.environ, "TZ": "UTC"}, timeout=30)
    assert read.returncode == 0, read.stderr
    when = datetime.fromisoformat(expiry.replace("Z", "+00:00"))
    assert f"Next elapse: {when:%a %Y-%m-%d %H:%M:%S} UTC" in read.stdout, read.stdout


@CONTROL_FLOW  # refused at pre-flight: the provider's flow
def test_bad_image_fails_before_anything_is_created(cloud, tmp_path):
    sc = scenario(cloud.endpoint, image="resolve:ssm:/orchestrate/test/missing")
    with pytest.raises(UserError, match="cannot resolve"), open_any_lab(sc, **lab_kw(tmp_path, "r-img")):
        pytest.fail("the block must not run")
    assert not [op for op in cloud.fakes.ops() if op.startswith(("Create", "Run"))]
    assert cloud.nothing_left()


def test_host_key_falls_back_to_first_contact(monkeypatch, caplog):
    class Ec2:
        def get_console_output(self, InstanceId, Latest=False):  # noqa: N803 (boto3's names)
            if Latest:
                raise RuntimeError("UnsupportedOperation: Latest is Nitro-only")
            return {"Output": "booting, no keys yet"}

    monkeypatch.setattr(aws, "_first_contact_key", lambda address: f"ssh-ed25519 KEYOF{address}")
    monkeypatch.setattr(aws.time, "sleep", lambda s: None)
    host = aws.Booted("client-1", "client", "i-2", "c6i.large", "10.0.0.2", "198.51.100.2")
    assert aws.fetch_host_keys(Ec2(), [host], 0.0) == {"i-2": ["ssh-ed25519 KEYOF198.51.100.2"]}
    assert "TOFU" in caplog.text


# --- a first real run: lost network, interrupts, hints ---------------------------------


def test_an_unreachable_endpoint_ends_teardown_at_once_with_the_cleanup_line(cloud1, tmp_path):
    """No network at teardown: it stops at the first connection error (seconds, not botocore's
    minutes), and the line says what may remain, the cleanup command and when it expires."""
    import socket

    with socket.socket() as s:  # a port nothing listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    ec2 = aws_api.client(aws_api.boto_session(REGION), "ec2", dead, teardown=True)
    created = aws.Created(run_id="r-offline", lab_dir=tmp_path / "lab", attempted=True, key_name="k",
                          security_group_id="sg-1", placement_groups=["pg"], instance_ids=["i-1", "i-2"],
                          expires="2026-01-01T03:00:00Z")
    began = time.monotonic()
    report = aws.teardown(ec2, created, deadline_s=30.0)
    took = time.monotonic() - began
    assert took < 30.0, took
    line = report.summary(REGION, "r-offline")
    assert "instance i-1" in line
    assert "security-group sg-1: not removed (the endpoint cannot be reached)" in line
    assert f"orchestrate cleanup --provider aws --region {REGION} --run-id r-offline" in line
    assert "power off by themselves at 2026-01-01T03:00:00Z" in line
    # 1 scan + 1 terminate, each at most TEARDOWN_ATTEMPTS quick refusals: nothing else was tried
    assert took < 4 * aws_api.TEARDOWN_ATTEMPTS * aws_api.CONNECT_TIMEOUT_S


def test_an_interrupt_during_run_instances_leaves_nothing(cloud1, tmp_path):
    """Ctrl-C arriving while RunInstances is on the wire: held until its reply is recorded, then
    the run unwinds and teardown terminates the instance it would otherwise not know of."""
    def interrupt(params, nth):
        if not params.get("DryRun") and not sent:
            sent.append(nth)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # the signal is pending while the call goes on
        return None

    sent: list[int] = []

    cloud1.fakes.fail["RunInstances"] = interrupt
    expect = "during aws provisioning: launch in .*everything it created was removed"
    with pytest.raises(Interrupted, match=expect), \
            open_any_lab(scenario(cloud1.endpoint), **lab_kw(tmp_path, "r-int")):
        pass
    launched = [p for p in cloud1.fakes.params("RunInstances") if not p.get("DryRun")]
    assert len(launched) == 1  # the interrupt landed right after the first launch returned
    # ... which did create its instance (the signal did not cut the call short), and teardown knew it
    assert cloud1.fakes.params("TerminateInstances")
    assert cloud1.nothing_left()


def test_a_launch_whose_reply_was_lost_is_found_by_its_client_token(cloud1, tmp_path):
    """RunInstances made the instance but its reply never came (a read timeout), so the run never
    learned the id, and EC2's tag index has not caught up (a tag scan misses it): teardown finds
    it by the launch's ClientToken, known before the call, and terminates it."""
    from botocore.exceptions import ReadTimeoutError

    lost: list[str] = []

    def reply_lost(parsed, context, **_):
        if not lost and not context.get("orch_params", {}).get("DryRun"):
            lost.extend(i["InstanceId"] for i in parsed["Instances"])
            cloud1.fakes.untagged.update(lost)
            raise ReadTimeoutError(endpoint_url="https://ec2.eu-west-1.amazonaws.com/")

    session = aws_api.make_session(REGION)
    session.events.register("after-call.ec2.RunInstances", reply_lost)
    with pytest.raises(RunFailed, match="launch server .*ReadTimeoutError"), \
            open_any_lab(scenario(cloud1.endpoint), session=session, **lab_kw(tmp_path, "r-lost")):
        pytest.fail("the block must not run")
    assert len(lost) == 1 and cloud1.live("r-lost")["instances"] == []  # the tag scan cannot see it
    by_token = [p for p in cloud1.fakes.params("DescribeInstances")
                if any(f["Name"] == "client-token" for f in p.get("Filters", []))]
    assert by_token and [p["InstanceIds"] for p in cloud1.fakes.params("TerminateInstances")] == [lost]
    (inst,) = [i for r in cloud1.ec2().describe_instances(InstanceIds=lost)["Reservations"]
               for i in r["Instances"]]
    assert inst["State"]["Name"] == "terminated" and cloud1.nothing_left()


@pytest.mark.parametrize("code,message,expect", [
    ("PendingVerification", "Your request for accessing resources in this region is being validated",
     "verification:"),
    ("OptInRequired", "You are not subscribed to this service", "opt-in:"),
    ("InvalidParameterCombination", "The specified instance type is not eligible for Free Tier.",
     "free plan:"),
    ("VcpuLimitExceeded", "You have requested more vCPU capacity than your current vCPU limit of 4 allows",
     "scenarios/aws-smoke.yaml, which fits 4 vCPUs"),
])
def test_hints_for_a_fresh_accounts_refusals(code, message, expect):
    from botocore.exceptions import ClientError

    exc = ClientError({"Error": {"Code": code, "Message": message}}, "RunInstances")
    assert expect in aws_api.hint(exc)
    assert "IAM" not in aws_api.hint(exc)


def test_a_plan_above_max_hourly_is_refused_before_anything_starts(cloud1, tmp_path):
    sc = scenario(cloud1.endpoint, max_hourly=0.1)  # c6i.2xlarge + c6i.xlarge: well above
    expect = r"hosts.aws.max_hourly: the plan costs up to ~\$.*above the limit \$0.1/h"
    with pytest.raises(UserError, match=expect), open_any_lab(sc, **lab_kw(tmp_path, "r-spend")):
        pass
    assert "RunInstances" not in cloud1.fakes.ops() and cloud1.nothing_left()


def test_cluster_placement_refuses_flex_types_with_the_reason(cloud1, tmp_path):
    sc = scenario(cloud1.endpoint, instance_type={"server": "c7i-flex.large", "client": "c7i-flex.large"})
    with pytest.raises(UserError, match="hosts.aws.placement: a cluster placement group does not take "
                                        "c7i-flex.large"), open_any_lab(sc, **lab_kw(tmp_path, "r-flex")):
        pass
    assert cloud1.nothing_left()
    smoke = scenario(cloud1.endpoint, instance_type={"server": "c7i-flex.large", "client": "c7i-flex.large"},
                     placement="none")
    with open_any_lab(smoke, **lab_kw(tmp_path, "r-none")) as lab:
        assert len(lab.hosts) == 2
    runs = [p for p in cloud1.fakes.params("RunInstances") if not p.get("DryRun")]
    assert runs and all("Placement" not in p for p in runs)
    assert "CreatePlacementGroup" not in cloud1.fakes.ops() and cloud1.nothing_left()


def test_the_ssh_user_follows_the_image_and_a_non_apt_image_is_refused(cloud1, tmp_path):
    """Debian's user is admin (the other tests), Ubuntu's ubuntu; Amazon Linux 2023 (dnf) is
    refused at pre-flight with the reason, before anything exists, set ssh_user or not."""
    from awskit import UBUNTU_AMI

    sc = scenario(cloud1.endpoint, image=UBUNTU_AMI)
    with open_any_lab(sc, **lab_kw(tmp_path, "r-ubu")) as lab:
        assert {h.ssh.user for h in lab.hosts if h.ssh} == {"ubuntu"}
    assert cloud1.nothing_left()
    cloud1.fakes.calls.clear()
    for kw in ({}, {"ssh_user": "ec2-user"}):
        expect = r"hosts.aws.image: ami-\w+ \(server\) is refused: it is not an apt-based OS \('al2023' in " \
                 r"'al2023-ami-.*use Debian or Ubuntu"
        with pytest.raises(UserError, match=expect), \
                open_any_lab(scenario(cloud1.endpoint, image=IMAGE, **kw), **lab_kw(tmp_path, "r-al")):
            pytest.fail("the block must not run")
    assert created_anything(cloud1) == [] and "RunInstances" not in cloud1.fakes.ops()


def test_resume_after_kill_9_does_not_collide_with_the_killed_attempt(cloud1, tmp_path):
    """kill -9 mid-provisioning leaves the key pair, groups and instances; `--resume` runs
    again under the same run id: its names are its own (no Duplicate), its client tokens are
    fresh (EC2 would otherwise answer with the killed attempt's instances), and its teardown
    removes the killed attempt's leftovers too (same run tag)."""
    sc = scenario(cloud1.endpoint)
    killed = aws.Created(run_id="r-again", lab_dir=tmp_path / "lab-killed")
    aws.provision(sc, session=aws_api.make_session(REGION), created=killed,
                  **{k: v for k, v in lab_kw(tmp_path, "r-again").items() if k not in ("lab_dir",)})
    assert len(cloud1.live("r-again")["instances"]) == 2
    with open_any_lab(sc, **lab_kw(tmp_path, "r-again")) as lab:
        mine = {h.vars["instance_id"] for h in lab.hosts}
        assert not mine & set(killed.instance_ids) and lab.name != killed.key_name
    tokens = [p["ClientToken"] for p in launches(cloud1)]
    assert len(set(tokens)) == 4
    assert cloud1.nothing_left()

