"""The aws provider against moto: in-process (mock_aws) and a standalone moto server via endpoint_url.

Nothing here can reach real AWS: credentials are fake, the config files are pointed away,
in-process calls are intercepted by moto, and in server mode every request is checked to
go to the local endpoint. moto does not implement placement groups, so a small stateful
fake answers those three calls from botocore's own event hooks (client side, so it works
in both modes and the code under test makes exactly the calls it makes against AWS).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import time
import urllib.request
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from orchestrator.errors import RunFailed, UserError
from orchestrator.hosts import aws
from orchestrator.hosts import open_lab as open_any_lab
from orchestrator.hosts.aws import cleanup as aws_cleanup
from orchestrator.hosts.aws import ec2 as aws_api
from orchestrator.hosts.aws import prices
from orchestrator.scenario import Scenario

REGION = "eu-west-1"
FAKE_KEY_ID = "AKIAORCHESTRATEFAKE1"
FAKE_SECRET = "fakeSecret/orchestrate+Test0nlyDoNotUse1234"
FAKE_TOKEN = "fakeSessionTokenOrchestrateTestOnly"
MY_ADDRESS = "203.0.113.7"
IMAGE = "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOrchestrateTestHostKeyOnlyAAAAAAAAAAAAAAAA"


class _Http:
    def __init__(self, status: int):
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""
        self.raw = None


def _ok(body: dict[str, Any]) -> tuple[_Http, dict[str, Any]]:
    return _Http(200), {**body, "ResponseMetadata": {"HTTPStatusCode": 200}}


def _err(code: str, message: str, status: int = 400) -> tuple[_Http, dict[str, Any]]:
    return _Http(status), {"Error": {"Code": code, "Message": message},
                           "ResponseMetadata": {"HTTPStatusCode": status}}


class Fakes:
    """Placement groups (moto lacks them), a call log, and injectable failures; per test."""

    def __init__(self, endpoint: str | None):
        self.endpoint = endpoint
        self.groups: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, Any] = {}  # operation -> callable(params, nth) -> error response or None
        self.count: dict[str, int] = {}

    def install(self, session: Any) -> Any:
        ev = session.events
        ev.register("before-parameter-build.ec2", self._record)
        ev.register("before-parameter-build.ssm", self._record)
        ev.register("before-call.ec2", self._call)
        if self.endpoint:
            ev.register("before-send", self._local_only)
        return session

    def _record(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["orch_params"] = dict(params)
        self.calls.append((model.name, dict(params)))

    def _local_only(self, request: Any, **_: Any) -> None:
        assert request.url.startswith(self.endpoint), f"request left the test endpoint: {request.url}"

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]

    def params(self, op: str) -> list[dict[str, Any]]:
        return [p for o, p in self.calls if o == op]

    def _call(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        op, params = model.name, context.get("orch_params", {})
        self.count[op] = self.count.get(op, 0) + 1
        if op in self.fail:
            resp = self.fail[op](params, self.count[op])
            if resp is not None:
                return resp
        if op == "CreatePlacementGroup":
            name = params["GroupName"]
            if name in self.groups:
                return _err("InvalidPlacementGroup.Duplicate", f"{name} exists")
            tags = [t for s in params.get("TagSpecifications", []) for t in s["Tags"]]
            self.groups[name] = {"GroupName": name, "Strategy": params["Strategy"], "State": "available",
                                 "GroupId": f"pg-{len(self.groups):017x}", "Tags": tags}
            return _ok({"PlacementGroup": self.groups[name]})
        if op == "DescribePlacementGroups":
            return _ok({"PlacementGroups": [g for g in self.groups.values()
                                            if _matches(g, params.get("Filters", []))]})
        if op == "DeletePlacementGroup":
            if self.groups.pop(params["GroupName"], None) is None:
                return _err("InvalidPlacementGroup.Unknown", "no such group")
            return _ok({})
        return None


def _matches(obj: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
    tags = {t["Key"]: t["Value"] for t in obj.get("Tags", [])}
    for f in filters:
        if f["Name"] == "tag-key" and not set(f["Values"]) & set(tags):
            return False
        if f["Name"].startswith("tag:") and tags.get(f["Name"][4:]) not in f["Values"]:
            return False
    return True


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
    monkeypatch.setattr(aws_api, "WAITER", {"Delay": 0, "MaxAttempts": 100})

    def no_lookup(timeout: float = 5.0) -> str:
        raise AssertionError("tests must pass my_address; no external service is called")

    monkeypatch.setattr(aws, "discover_address", no_lookup)


class Cloud:
    def __init__(self, endpoint: str | None, fakes: Fakes):
        self.endpoint = endpoint
        self.fakes = fakes
        self._ec2: Any = None

    def session(self) -> Any:
        return self.fakes.install(boto3.session.Session(region_name=REGION))

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
    endpoint = None
    if request.param == "server":
        endpoint = request.getfixturevalue("moto_server")
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    fakes = Fakes(endpoint)
    real = aws_api.make_session
    # The provider builds its own session from the standard chain, as for a user; the fakes ride on it.
    monkeypatch.setattr(aws_api, "make_session", lambda region: fakes.install(real(region)))
    if endpoint:
        yield Cloud(endpoint, fakes)
    else:
        from moto import mock_aws

        with mock_aws():
            yield Cloud(None, fakes)


def scenario(endpoint: str | None, **aws_kw: Any) -> Scenario:
    cfg = {"region": REGION, "instance_type": {"server": "c6i.2xlarge", "client": "c6i.xlarge"},
           "image": IMAGE, "expire_after": "3h", "ssh_user": "ec2-user", **aws_kw}
    if endpoint:
        cfg["endpoint_url"] = endpoint
    return Scenario.model_validate({"name": "cross-host",
                                    "hosts": {"provider": "aws", "roles": {"server": 1, "client": 1},
                                              "aws": cfg}})


class SshSeam:
    def __init__(self, fail: BaseException | None = None):
        self.seen: list[list[str]] = []
        self.fail = fail

    def __call__(self, hosts, timeout):
        self.seen.append([h.public_ip for h in hosts])
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
        name = "orchestrate-r-topo"
        assert lab.provider == "aws" and lab.name == name
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

        # One run_instances per role, in the placement group, with the instance's own expiry.
        runs = cloud.fakes.params("RunInstances")
        assert [(p["InstanceType"], p["MinCount"], p["MaxCount"]) for p in runs] == \
            [("c6i.2xlarge", 1, 1), ("c6i.xlarge", 1, 1)]
        for p in runs:
            assert p["Placement"] == {"GroupName": name}
            assert p["KeyName"] == name and p["ImageId"].startswith("ami-")
            assert p["InstanceInitiatedShutdownBehavior"] == "terminate"
            assert "shutdown -P +180" in base64.b64decode(p["UserData"]).decode()  # botocore encoded it
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
            assert h.ssh.user == "ec2-user" and h.ssh.host_key_checking
            assert h.workdir == "/tmp/orchestrate/r-topo"
            assert h.vars["instance_type"] == i["InstanceType"]
            key_file = Path(h.ssh.key_file or "")
            assert key_file.stat().st_mode & 0o777 == 0o600
            assert key_file.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
            known = Path(h.ssh.known_hosts or "").read_text()
            assert f"{h.ssh.host} {HOST_KEY}\n" in known
        assert (tmp_path / "lab-r-topo").stat().st_mode & 0o777 == 0o700
        assert seam.seen == [[h.ssh.host for h in lab.hosts if h.ssh]]
    assert cloud.nothing_left()
    assert not (tmp_path / "lab-r-topo").exists()
    # Teardown order: instances gone before the groups and the key.
    ops = cloud.fakes.ops()
    assert ops.index("TerminateInstances") < ops.index("DeletePlacementGroup") < \
        ops.index("DeleteSecurityGroup") < ops.index("DeleteKeyPair")


def test_an_error_inside_the_block_leaves_nothing(cloud, tmp_path):
    sc = scenario(cloud.endpoint)
    with pytest.raises(ZeroDivisionError), open_any_lab(sc, **lab_kw(tmp_path, "r-err")):
        assert not cloud.nothing_left()
        1 / 0  # noqa: B018
    assert cloud.nothing_left()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_inside_the_block_leaves_nothing(cloud, tmp_path):
    sc = scenario(cloud.endpoint)
    with pytest.raises(KeyboardInterrupt), open_any_lab(sc, **lab_kw(tmp_path, "r-int")):
        raise KeyboardInterrupt
    assert cloud.nothing_left()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_failure_half_way_through_provisioning_leaves_nothing(cloud, tmp_path):
    # The client role's launch fails the way a full cluster placement group does.
    cloud.fakes.fail["RunInstances"] = lambda params, nth: (
        _err("InsufficientInstanceCapacity", "We currently do not have sufficient c6i.xlarge capacity")
        if params["InstanceType"] == "c6i.xlarge" else None)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="InsufficientInstanceCapacity"), \
            open_any_lab(scenario(cloud.endpoint), **lab_kw(tmp_path, "r-half")):
        pytest.fail("the block must not run")
    assert cloud.fakes.count["RunInstances"] == 2
    assert cloud.nothing_left()
    assert not (tmp_path / "lab-r-half").exists()


def test_ssh_never_answering_leaves_nothing(cloud, tmp_path):
    seam = SshSeam(fail=RunFailed("SSH did not answer", phase="provision"))
    with pytest.raises(RunFailed, match="SSH did not answer"), \
            open_any_lab(scenario(cloud.endpoint), **lab_kw(tmp_path, "r-ssh", wait_ssh=seam)):
        pytest.fail("the block must not run")
    assert cloud.nothing_left()


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


def test_teardown_tries_every_step_and_reports_what_it_could_not_remove(cloud, tmp_path):
    cloud.fakes.fail["DeleteSecurityGroup"] = lambda params, nth: _err("UnauthorizedOperation", "not allowed")
    with pytest.raises(RunFailed, match=r"security-group sg-.*UnauthorizedOperation") as info, \
            open_any_lab(scenario(cloud.endpoint), **lab_kw(tmp_path, "r-part")):
        pass
    assert "orchestrate cleanup --provider aws --region eu-west-1 --run-id r-part" in str(info.value)
    left = cloud.live("r-part")
    assert left["security-groups"] and not left["instances"] and not left["key-pairs"]
    assert not left["placement-groups"]
    # With an error already in flight, that error wins and the leftovers are noted on it.
    with pytest.raises(ValueError) as info2, \
            open_any_lab(scenario(cloud.endpoint), **lab_kw(tmp_path, "r-part2")):
        raise ValueError("boom")
    assert any("r-part2" in n for n in info2.value.__notes__)
    del cloud.fakes.fail["DeleteSecurityGroup"]
    report = aws_cleanup.cleanup(REGION, all=True, endpoint_url=cloud.endpoint)
    assert report.ok and cloud.nothing_left()


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


def test_user_data_powers_off_at_expiry():
    assert "shutdown -P +90 " in aws._user_data(5400)


def test_bad_image_fails_before_anything_is_created(cloud, tmp_path):
    sc = scenario(cloud.endpoint, image="resolve:ssm:/orchestrate/test/missing")
    with pytest.raises(UserError, match="cannot resolve"), open_any_lab(sc, **lab_kw(tmp_path, "r-img")):
        pytest.fail("the block must not run")
    assert not [op for op in cloud.fakes.ops() if op.startswith(("Create", "Run", "Describe"))]
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
