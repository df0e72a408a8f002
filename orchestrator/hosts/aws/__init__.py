"""The `aws` provider: EC2 instances per role in one cluster placement group, always torn down.

What a run creates, all tagged `orchestrate:run-id`, `orchestrate:scenario`,
`orchestrate:expires` and `Name`, so `cleanup` can find anything a killed run left:
  key pair (ed25519, private key written 0600 into a local lab dir, never logged)
  security group (SSH from this machine's public address only; all traffic between members)
  cluster placement group (so the network is comparable run to run)
  instances per role (`run_instances` per role: each role has its own instance type)
Teardown runs on every exit path (success, error, Ctrl-C, a failure half-way through
provisioning) with SIGINT/SIGTERM ignored while it works: instances are terminated and
waited for, then the placement group, security group and key pair are deleted. It also
looks resources up by the run's tag, so one whose create reply was lost is not leaked.

Last line of defence: each instance is told at boot (user data) to power off when its
expiry passes, and powering off terminates it (InstanceInitiatedShutdownBehavior), so an
orchestrator killed with SIGKILL leaks at most the free resources (groups, key) until
`orchestrate cleanup --provider aws` runs.

Host keys: an instance's SSH host key is unknown on first contact. Checking stays ON:
the keys are read from the instance's console output (cloud-init prints them between
`-----BEGIN SSH HOST KEY KEYS-----` markers; an out-of-band channel through the EC2 API)
and written to the lab's own known_hosts. If the console has not shown them within the
SSH wait, the key seen on first contact is trusted and recorded (TOFU) with a warning.

Credentials come only from the standard boto3 chain (env, profile, SSO, instance role);
nothing here reads, logs or returns them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.errors import RunFailed, UserError
from orchestrator.hosts import Host, Lab
from orchestrator.hosts.aws import ec2 as api  # attributes read at call time: tests patch them
from orchestrator.hosts.aws.cleanup import Leftover, remove, scan
from orchestrator.hosts.aws.ec2 import (
    TAG_EXPIRES,
    TAG_RUN,
    TAG_SCENARIO,
    client,
    config,
    discover_address,
    error_text,
    instance_type,
    iso,
    role_counts,
    tag_spec,
    tags_of,
)
from orchestrator.hosts.aws.prices import planned_seconds
from orchestrator.plan import fmt_seconds
from orchestrator.remote import SshTarget, wait_for_banner
from orchestrator.scenario import Scenario
from orchestrator.signals import shielded

log = logging.getLogger(__name__)

LAB_ROOT = Path("/tmp/orchestrate")  # local lab dirs (key, known_hosts); remote hosts use their own /tmp
SSH_TIMEOUT_S = 600.0
HOST_KEY_TIMEOUT_S = 180.0  # console output lags boot a little; after this, trust on first use


@dataclass(frozen=True)
class Booted:
    """One instance once it is running."""

    name: str  # f"{role}-{i}", i from 1
    role: str
    instance_id: str
    instance_type: str
    private_ip: str  # benchmark traffic
    public_ip: str  # SSH from the orchestrator


@dataclass
class Created:
    """What this run created so far; filled in as each create returns so teardown knows it all."""

    run_id: str
    lab_dir: Path
    attempted: bool = False  # a create call was made: from here on, teardown must look
    key_name: str | None = None
    security_group_id: str | None = None
    placement_group: str | None = None
    instance_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TeardownReport:
    removed: tuple[str, ...]
    failed: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self, region: str, run_id: str) -> str:
        return (f"AWS teardown could not remove: {'; '.join(self.failed)}. Remove them with "
                f"`orchestrate cleanup --provider aws --region {region} --run-id {run_id}`")


WaitSsh = Callable[[Sequence[Booted], float], None]
HostKeys = Callable[[Any, Sequence[Booted], float], dict[str, list[str]]]


def wait_for_ssh(hosts: Sequence[Booted], timeout: float, *, port: int = 22) -> None:
    """Wait until every host's sshd answers with its banner on its public address."""
    wait_for_banner([(h.name, h.public_ip) for h in hosts], timeout, port=port, interval=3.0,
                    phase="provision")


_HOST_KEYS = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----", re.S)
_KEY_LINE = re.compile(r"^((?:ssh|ecdsa|sk)-[\w@.-]+)\s+([A-Za-z0-9+/=]+)", re.M)


def parse_console_host_keys(console: str) -> list[str]:
    """'<type> <base64>' lines from cloud-init's host key block on a console log."""
    keys: list[str] = []
    for block in _HOST_KEYS.findall(console):
        for m in _KEY_LINE.finditer(block):
            if f"{m[1]} {m[2]}" not in keys:
                keys.append(f"{m[1]} {m[2]}")
    return keys


def fetch_host_keys(ec2: Any, hosts: Sequence[Booted], timeout: float) -> dict[str, list[str]]:
    """Each host's keys by instance id: from the console (out of band), else first contact (TOFU)."""
    import base64

    keys: dict[str, list[str]] = {}
    deadline = time.monotonic() + timeout
    while True:
        for h in hosts:
            if h.instance_id in keys:
                continue
            try:
                out = ec2.get_console_output(InstanceId=h.instance_id, Latest=True).get("Output") or ""
            except Exception:  # Latest is Nitro-only; older types have the buffered console
                out = ec2.get_console_output(InstanceId=h.instance_id).get("Output") or ""
            found = parse_console_host_keys(out)
            if not found:  # the API returns the console base64-encoded
                with contextlib.suppress(ValueError):
                    found = parse_console_host_keys(base64.b64decode(out).decode(errors="replace"))
            if found:
                keys[h.instance_id] = found
        if len(keys) == len(hosts) or time.monotonic() > deadline:
            break
        time.sleep(10)
    for h in hosts:
        if h.instance_id not in keys:
            log.warning("%s: host key not on the console within %.0fs; trusting the key seen on first "
                        "contact (TOFU)", h.name, timeout)
            keys[h.instance_id] = [_first_contact_key(h.public_ip)]
    return keys


def _first_contact_key(address: str, port: int = 22) -> str:
    import paramiko

    with socket.create_connection((address, port), timeout=10) as sock:
        t = paramiko.Transport(sock)
        try:
            t.start_client(timeout=10)
            key = t.get_remote_server_key()
            return f"{key.get_name()} {key.get_base64()}"
        finally:
            t.close()


def resolve_image(ssm: Any, image: str) -> str:
    """An AMI id: `resolve:ssm:<parameter>` looked up in SSM, anything else used as given."""
    if not image.startswith("resolve:ssm:"):
        return image
    name = image[len("resolve:ssm:"):]
    try:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except Exception as exc:
        raise UserError(f"hosts.aws.image: cannot resolve SSM parameter {name}: {error_text(exc)}") from None
    if not value.startswith("ami-"):
        raise UserError(f"hosts.aws.image: SSM parameter {name} holds {value!r}, not an AMI id")
    return value


def _subnet(ec2: Any, subnet: str | None) -> tuple[str, str]:
    """(subnet id, vpc id): the one given, or the default VPC's default subnet (first AZ by name)."""
    if subnet:
        found = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"]
    else:
        found = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
        if not found:
            raise UserError("no default VPC subnet in this region; set hosts.aws.subnet")
    best = sorted(found, key=lambda s: s["AvailabilityZone"])[0]
    return best["SubnetId"], best["VpcId"]


def _user_data(expire_after: float) -> str:
    # The instance's own dead-man switch: power off (= terminate, see run_instances) at expiry.
    minutes = max(1, int(expire_after // 60))
    return ("#!/bin/sh\n"
            f"shutdown -P +{minutes} 'orchestrate: expiry reached' || "
            f"(sleep {minutes * 60}; poweroff) &\n")


def provision(scenario: Scenario, *, run_id: str, created: Created, session: Any,
              my_address: str | None = None, wait_ssh: WaitSsh = wait_for_ssh,
              host_keys: HostKeys = fetch_host_keys, ssh_timeout: float = SSH_TIMEOUT_S,
              now: datetime | None = None) -> Lab:
    """Create everything and return the Lab; records each resource in `created` as it appears.

    Does not clean up after itself: `open_lab` does (and tests call this directly to
    simulate a run killed before its teardown).
    """
    aws = config(scenario)
    ec2 = client(session, "ec2", aws.endpoint_url)
    ssm = client(session, "ssm", aws.endpoint_url)
    now = now or datetime.now(UTC)
    base = f"orchestrate-{run_id}"
    tags = {TAG_RUN: run_id, TAG_SCENARIO: scenario.name,
            TAG_EXPIRES: iso(now + timedelta(seconds=aws.expire_after)), "Name": base}

    image = resolve_image(ssm, aws.image)
    subnet_id, vpc_id = _subnet(ec2, aws.subnet)
    address = ipaddress.ip_address(my_address or discover_address())
    log.info("aws: %s in %s, image %s, subnet %s", base, aws.region, image, subnet_id)

    created.lab_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    created.lab_dir.chmod(0o700)
    created.attempted = True
    key = ec2.create_key_pair(KeyName=base, KeyType="ed25519", TagSpecifications=tag_spec("key-pair", tags))
    created.key_name = key["KeyName"]
    key_file = created.lab_dir / "id_ed25519"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.pop("KeyMaterial"))
    del key

    sg = ec2.create_security_group(GroupName=base, VpcId=vpc_id,
                                   Description=f"orchestrate run {run_id}: SSH from the orchestrator, "
                                               "all traffic between members",
                                   TagSpecifications=tag_spec("security-group", tags))
    created.security_group_id = sg_id = sg["GroupId"]
    cidr = {"CidrIp": f"{address}/32"} if address.version == 4 else {"CidrIpv6": f"{address}/128"}
    ssh_rule: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                "IpRanges" if address.version == 4 else "Ipv6Ranges": [
                                    {**cidr, "Description": "orchestrate: SSH from the orchestrator"}]}
    members = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg_id, "Description": "benchmark hosts"}]}
    ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[ssh_rule, members])

    ec2.create_placement_group(GroupName=base, Strategy="cluster",
                               TagSpecifications=tag_spec("placement-group", tags))
    created.placement_group = base

    nonce = uuid.uuid4().hex[:16]  # idempotency for botocore's own retries, fresh for every lab
    booted: list[Booted] = []
    for role, count in role_counts(scenario).items():
        itype = instance_type(aws, role)
        role_tags = {**tags, "Name": f"{base}-{role}", "orchestrate:role": role}
        resp = ec2.run_instances(
            ImageId=image, InstanceType=itype, MinCount=count, MaxCount=count, KeyName=created.key_name,
            Placement={"GroupName": base},
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id, "Groups": [sg_id],
                                "AssociatePublicIpAddress": True, "DeleteOnTermination": True}],
            InstanceInitiatedShutdownBehavior="terminate", UserData=_user_data(aws.expire_after),
            MetadataOptions={"HttpTokens": "required"},
            TagSpecifications=tag_spec("instance", role_tags) + tag_spec("volume", role_tags),
            ClientToken=f"orch-{nonce}-{role}")
        ids = [i["InstanceId"] for i in resp["Instances"]]
        created.instance_ids += ids
        log.info("aws: %s: %d x %s: %s", role, count, itype, ", ".join(ids))

    ec2.get_waiter("instance_running").wait(InstanceIds=created.instance_ids, WaiterConfig=api.WAITER)
    pages = ec2.get_paginator("describe_instances").paginate(InstanceIds=created.instance_ids)
    described = {i["InstanceId"]: i
                 for page in pages
                 for r in page["Reservations"] for i in r["Instances"]}
    seen: dict[str, int] = {}
    for iid in created.instance_ids:
        inst = described[iid]
        role = tags_of(inst).get("orchestrate:role", "")
        seen[role] = seen.get(role, 0) + 1
        if not inst.get("PublicIpAddress"):
            raise RunFailed(f"instance {iid} has no public address; use a subnet with internet access",
                            phase="provision")
        booted.append(Booted(f"{role}-{seen[role]}", role, iid, inst["InstanceType"],
                             inst["PrivateIpAddress"], inst["PublicIpAddress"]))
    for b in booted:
        ec2.create_tags(Resources=[b.instance_id], Tags=[{"Key": "Name", "Value": f"{base}-{b.name}"}])

    wait_ssh(booted, ssh_timeout)
    keys = host_keys(ec2, booted, min(ssh_timeout, HOST_KEY_TIMEOUT_S))
    known = created.lab_dir / "known_hosts"
    known.write_text("".join(f"{b.public_ip} {k}\n" for b in booted for k in keys.get(b.instance_id, [])))

    ssh = scenario.hosts.ssh
    hosts = tuple(
        Host(name=b.name, address=b.private_ip, roles=(b.role,), workdir=f"/tmp/orchestrate/{run_id}",
             ssh=SshTarget(host=b.public_ip, name=b.name, user=aws.ssh_user, port=22, key_file=str(key_file),
                           known_hosts=str(known), host_key_checking=ssh.host_key_checking,
                           connect_timeout=ssh.connect_timeout),
             interface=None,  # ens5 on Nitro images, but found by address like any host
             vars={"instance_id": b.instance_id, "instance_type": b.instance_type, "ena": True})
        for b in booted)
    return Lab(provider="aws", hosts=hosts, name=base)


def teardown(ec2: Any, created: Created, *, now: datetime | None = None) -> TeardownReport:
    """Remove everything of this run: what `created` recorded plus anything found by its run tag."""
    now = now or datetime.now(UTC)
    if not created.attempted:  # failed before creating anything (bad image, no default VPC, ...)
        shutil.rmtree(created.lab_dir, ignore_errors=True)
        return TeardownReport((), ())
    items: dict[tuple[str, str], Leftover] = {}

    def known(kind: str, rid: str | None) -> None:
        if rid:
            items.setdefault((kind, rid), Leftover(kind, rid, "", created.run_id, "", "", True))

    for iid in created.instance_ids:
        known("instance", iid)
    known("placement-group", created.placement_group)
    known("security-group", created.security_group_id)
    known("key-pair", created.key_name)
    failed: list[str] = []
    try:
        for x in scan(ec2, now=now, run_id=created.run_id):
            items.setdefault((x.kind, x.id), x)
    except Exception as exc:
        failed.append(f"looking up this run's resources by tag: {error_text(exc)}")
    removed, not_removed = remove(ec2, list(items.values()))
    shutil.rmtree(created.lab_dir, ignore_errors=True)  # the key is useless once the pair is deleted
    return TeardownReport(tuple(f"{x.kind} {x.id}" for x in removed), tuple(failed + not_removed))


@contextmanager
def open_lab(scenario: Scenario, *, run_id: str, session: Any = None, lab_dir: Path | None = None,
             my_address: str | None = None, wait_ssh: WaitSsh = wait_for_ssh,
             host_keys: HostKeys = fetch_host_keys, ssh_timeout: float = SSH_TIMEOUT_S,
             now: datetime | None = None) -> Iterator[Lab]:
    """Provision the scenario's hosts on EC2, yield the Lab, and tear everything down on any exit.

    `session` defaults to the standard credential chain for the scenario's region;
    `my_address` to `discover_address()`; `wait_ssh`/`host_keys` are seams for tests.
    """
    aws = config(scenario)
    if planned_seconds(scenario) > aws.expire_after:
        raise UserError(f"hosts.aws.expire_after ({fmt_seconds(aws.expire_after)}) is shorter than the "
                        f"planned run (~{fmt_seconds(planned_seconds(scenario))}); raise it")
    session = session or api.make_session(aws.region)
    ec2 = client(session, "ec2", aws.endpoint_url)
    created = Created(run_id=run_id, lab_dir=lab_dir or LAB_ROOT / f"aws-{run_id}")
    try:
        yield provision(scenario, run_id=run_id, created=created, session=session, my_address=my_address,
                        wait_ssh=wait_ssh, host_keys=host_keys, ssh_timeout=ssh_timeout, now=now)
    except BaseException as exc:
        report = _teardown_logged(ec2, created, aws.region)
        if not report.ok:
            exc.add_note(report.summary(aws.region, run_id))
        raise
    report = _teardown_logged(ec2, created, aws.region)
    if not report.ok:
        raise RunFailed(report.summary(aws.region, run_id), phase="teardown")


def _teardown_logged(ec2: Any, created: Created, region: str) -> TeardownReport:
    with shielded():
        log.info("aws: tearing down run %s", created.run_id)
        report = teardown(ec2, created)
    if report.ok:
        log.info("aws: removed %s", ", ".join(report.removed) or "nothing")
    else:
        log.error("%s", report.summary(region, created.run_id))
    return report
