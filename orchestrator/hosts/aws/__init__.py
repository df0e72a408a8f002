"""The `aws` provider: EC2 instances per role (placement: cluster, spread or none), always torn down.

Before anything is created, `preflight` checks that a zone offers every role's type, picks
each role's image by its type's architecture (an apt-based OS, whose user is the SSH user),
checks the vCPU quota and launches with DryRun and the real launch arguments; then
`reach.ssh_path` checks the way SSH will take as `orchestrate doctor` does (the SSH rule
against this machine's address, each subnet's route to an internet gateway). Then a run
creates, all tagged `orchestrate:run-id`, `orchestrate:scenario`, `orchestrate:expires`,
`orchestrate:owner` and `Name` (`orchestrate-<run id>-<nonce>`: an attempt's own, so
`--resume` does not collide), and records where and what in a local file (`state`), so
`cleanup` can find anything a killed run left, in whichever region:
  key pair (ed25519, private key written 0600 into a local lab dir, never logged)
  security group (SSH from hosts.aws.ssh_cidr, else this machine's public address or,
    with ssh_address: private, the VPC; all traffic between members)
  cluster placement group (so the network is comparable run to run)
  instances per role (`run_instances` per role: each role has its own instance type)
With client auto-scale (`hosts.roles.client: {min, max}`) the run launches `min` clients
and the lab's pool launches more of the client type while the run needs them: same zone,
subnet, placement group, security group, key and tags, waited for (running, SSH, host
keys) like the first; teardown terminates them with the rest. Pre-flight checks the quota
and permissions for `max`, so a run fails before it starts rather than half-way; a zone
out of capacity for more clients ends the scaling (said in the summary), not the run.
EC2 as it really behaves: a new group, key or instance can be unknown to the API for a
while (retried with backoff); a zone out of capacity for a type makes the run tear that
attempt down and try the next zone; instances are `pending` before `running`.
Teardown runs on every exit path (success, error, Ctrl-C, a failure half-way through
provisioning) with SIGINT/SIGTERM ignored while it works: instances are terminated and
polled until `terminated` (terminate re-sent to any the API does not know yet), then the
placement group, security group and key pair are deleted, retried while still in use. It
also looks resources up by the run's tag and instances by the launches' ClientTokens, so one
whose create reply was lost is not leaked.
Anything it cannot remove after a complete run is a warning with its ID, not a failed run.
An API error is one line naming the step, with the IAM permission or quota to ask for.

Last line of defence: each instance is told at boot (user data: a systemd timer at the run's
absolute expiry, which survives a reboot) to power off when its expiry passes, and powering
off terminates it (InstanceInitiatedShutdownBehavior), so an
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
import dataclasses
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
from functools import partial
from pathlib import Path
from typing import Any

from orchestrator.errors import Interrupted, RunFailed, UserError
from orchestrator.hosts import Host, Lab, NoMoreHosts
from orchestrator.hosts.aws import ec2 as api  # attributes read at call time: tests patch them
from orchestrator.hosts.aws import preflight, reach, state
from orchestrator.hosts.aws.cleanup import Leftover, delete_when_free, remove, scan, terminate
from orchestrator.hosts.aws.ec2 import (
    CAPACITY,
    CONSISTENCY,
    QUOTA,
    TAG_EXPIRES,
    TAG_OWNER,
    TAG_RUN,
    TAG_SCENARIO,
    client,
    code_of,
    config,
    discover_address,
    error_text,
    iso,
    role_counts,
    step,
    tag_spec,
    tags_of,
)
from orchestrator.hosts.aws.launch import run_args
from orchestrator.hosts.aws.prices import check_spend, held_cost, planned_seconds
from orchestrator.plan import fmt_seconds
from orchestrator.remote import SshTarget, wait_for_banner
from orchestrator.scenario import Scenario
from orchestrator.signals import deferred, shielded

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
    public_ip: str  # "" without one
    ssh_ip: str = ""  # where the orchestrator connects (public, or private inside the VPC)

    @property
    def reach(self) -> str:
        return self.ssh_ip or self.public_ip


@dataclass
class Created:
    """What this run created so far; filled in as each create returns so teardown knows it all."""

    run_id: str
    lab_dir: Path
    attempted: bool = False  # a create call was made: from here on, teardown must look
    doing: str = "pre-flight"  # the provisioning step under way, for an interrupt's message
    key_name: str | None = None
    security_group_id: str | None = None
    placement_groups: list[str] = field(default_factory=list)  # one per zone tried
    instance_ids: list[str] = field(default_factory=list)
    expires: str = ""  # ISO time the instances power off by themselves (their dead-man switch)
    record: state.RunState | None = None  # the local record of the run, written as ids are learned
    region: str = ""
    # every launch's ClientToken, known before the call: an instance whose launch reply was lost
    # (ids unknown) and that a tag scan does not show yet is found by it
    tokens: list[str] = field(default_factory=list)
    # instance id -> (type, launched, terminated or None), epoch seconds: what the run is billed for
    held: dict[str, tuple[str, float, float | None]] = field(default_factory=dict)

    def launched(self, ids: list[str], instance_type: str) -> None:
        self.instance_ids += ids
        self.held.update({i: (instance_type, time.time(), None) for i in ids})
        self.save()

    def ended(self, ids: Sequence[str]) -> None:
        now = time.time()
        self.held.update({i: (self.held[i][0], self.held[i][1], now) for i in ids
                          if i in self.held and self.held[i][2] is None})

    def cost(self) -> dict[str, Any] | None:
        """The run's estimated cost so far (records.Cost's fields); None before any launch."""
        return held_cost(self.region, self.held, now=time.time()) if self.held else None

    def save(self) -> None:
        """Write the local record with the ids known now (cleanup reads it to know the region)."""
        if self.record is None:
            return
        self.record.expires = self.expires
        self.record.ids = {"instance": list(self.instance_ids),
                           "placement-group": list(self.placement_groups),
                           "security-group": [self.security_group_id] if self.security_group_id else [],
                           "key-pair": [self.key_name] if self.key_name else []}
        self.record.save()


@dataclass(frozen=True)
class TeardownReport:
    removed: tuple[str, ...]
    failed: tuple[str, ...]
    expires: str = ""  # when what may remain powers itself off ("" if nothing was launched)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self, region: str, run_id: str) -> str:
        when = f"; its instances power off by themselves at {self.expires}" if self.expires else ""
        return (f"AWS teardown could not remove: {'; '.join(self.failed)}. Remove them with "
                f"`orchestrate cleanup --provider aws --region {region} --run-id {run_id}`{when}")


WaitSsh = Callable[[Sequence[Booted], float], None]
HostKeys = Callable[[Any, Sequence[Booted], float], dict[str, list[str]]]


def wait_for_ssh(hosts: Sequence[Booted], timeout: float, *, port: int = 22) -> None:
    """Wait until every host's sshd answers with its banner on the address we connect to."""
    wait_for_banner([(h.name, h.reach) for h in hosts], timeout, port=port, interval=3.0,
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
                with step(f"read {h.name}'s host keys from its console"):
                    out = api.retry(partial(ec2.get_console_output, InstanceId=h.instance_id),
                                    codes=CONSISTENCY, what="console output").get("Output") or ""
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
            keys[h.instance_id] = [_first_contact_key(h.reach)]
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
        raise UserError(f"hosts.aws.image: cannot resolve SSM parameter {name}: {error_text(exc)}"
                        f"{api.hint(exc, 'ssm')}") from None
    if not value.startswith("ami-"):
        raise UserError(f"hosts.aws.image: SSM parameter {name} holds {value!r}, not an AMI id")
    return value


class _NoCapacity(Exception):
    """This zone has no room for a type now (a launch error, or an instance that died of it)."""


def _address_once(given: str | None) -> Callable[[], str]:
    """This machine's public address: `given`, else looked up once, when first asked for."""
    found: list[str] = [given] if given else []

    def address() -> str:
        if not found:
            found.append(discover_address())
        return found[0]
    return address


def _ssh_cidr(aws: Any, checked: preflight.Checked, my_address: Callable[[], str]) -> str:
    if aws.ssh_cidr:
        return str(aws.ssh_cidr)
    if aws.ssh_address == "private":  # the orchestrator runs inside the VPC
        return checked.vpc_cidr
    address = ipaddress.ip_address(my_address())
    return f"{address}/{32 if address.version == 4 else 128}"


def _create_key_pair(ec2: Any, base: str, tags: dict[str, str], created: Created) -> Path:
    """The run's key pair, recorded in `created` as it appears; its private key kept in the lab dir."""
    # Each create runs with signals deferred (not dropped): a Ctrl-C or hang-up lands once its
    # id is recorded, so teardown knows it.
    with deferred(), step("create key pair"):
        key = ec2.create_key_pair(KeyName=base, KeyType="ed25519",
                                  TagSpecifications=tag_spec("key-pair", tags))
        created.key_name = key["KeyName"]
        created.save()
    key_file = created.lab_dir / "id_ed25519"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.pop("KeyMaterial"))
    del key
    return key_file


def _create_security_group(ec2: Any, run_id: str, base: str, checked: preflight.Checked,
                           tags: dict[str, str], created: Created,
                           cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """The run's security group (recorded in `created`): SSH from us, all traffic between members."""
    with deferred(), step("create security group"):
        sg = ec2.create_security_group(GroupName=base, VpcId=checked.subnets[0].vpc_id,
                                       Description=f"orchestrate run {run_id}: SSH from the orchestrator, "
                                                   "all traffic between members",
                                       TagSpecifications=tag_spec("security-group", tags))
        created.security_group_id = sg_id = sg["GroupId"]
        created.save()
    v4 = cidr.version == 4
    ssh_rule: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                "IpRanges" if v4 else "Ipv6Ranges": [
                                    {"CidrIp" if v4 else "CidrIpv6": str(cidr),
                                     "Description": "orchestrate: SSH from the orchestrator"}]}
    members = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg_id, "Description": "benchmark hosts"}]}
    with step("authorize SSH and member traffic in the security group"):
        api.retry(lambda: ec2.authorize_security_group_ingress(GroupId=sg_id,
                                                               IpPermissions=[ssh_rule, members]),
                  codes=CONSISTENCY, what="authorize ingress")
    return sg_id


def _name_booted(aws: Any, described: dict[str, Any], created: Created) -> list[Booted]:
    """The launched instances in launch order, named per role (server-1, client-1, client-2, ...)."""
    seen: dict[str, int] = {}
    booted: list[Booted] = []
    for iid in created.instance_ids:
        role = tags_of(described[iid]).get("orchestrate:role", "")
        seen[role] = seen.get(role, 0) + 1
        booted.append(_booted(aws, described[iid], f"{role}-{seen[role]}", role))
    return booted


def provision(scenario: Scenario, *, run_id: str, created: Created, session: Any,
              my_address: str | None = None, wait_ssh: WaitSsh = wait_for_ssh,
              host_keys: HostKeys = fetch_host_keys, ssh_timeout: float = SSH_TIMEOUT_S,
              now: datetime | None = None, ssh_probe: tuple[str, int] | None = None) -> Lab:
    """Check, create everything and return the Lab; records each resource in `created` as it appears.
    `ssh_probe`: the public SSH server that shows port 22 leaves this network (reach.SSH_PROBE).

    Does not clean up after itself: `open_lab` does (and tests call this directly to
    simulate a run killed before its teardown).
    """
    aws = config(scenario)
    ec2 = client(session, "ec2", aws.endpoint_url)
    now = now or datetime.now(UTC)
    # Names are unique per attempt, not per run: `--resume` after a kill -9 reuses the run id,
    # and the killed attempt's key pair or group may still exist (its tag finds it for teardown).
    base = f"orchestrate-{run_id}-{uuid.uuid4().hex[:6]}"

    created.expires = iso(now + timedelta(seconds=aws.expire_after))
    tags = {TAG_RUN: run_id, TAG_SCENARIO: scenario.name, TAG_OWNER: api.identity(session, aws.endpoint_url),
            TAG_EXPIRES: created.expires, "Name": base}
    checked = preflight.check(session, aws, role_counts(scenario), resolve_image, tags=tags, base=base,
                              expires=created.expires)
    mine = _address_once(my_address)
    reach.ssh_path(ec2, aws, checked, mine, probe=ssh_probe)  # doctor's SSH-path checks, before any create
    cidr = ipaddress.ip_network(_ssh_cidr(aws, checked, mine), strict=False)
    log.info("aws: %s in %s: %s; SSH from %s", base, aws.region,
             ", ".join(f"{r.role} {r.count} x {r.instance_type} ({r.arch}, {r.image})"
                       for r in checked.roles), cidr)

    created.lab_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    created.lab_dir.chmod(0o700)
    # A resumed run's lab dir may hold a killed attempt's host keys for addresses now reused.
    (created.lab_dir / "known_hosts").unlink(missing_ok=True)
    created.attempted = True
    created.record = state.RunState(run_id, base, aws.region, getattr(session, "profile_name", None),
                                    aws.endpoint_url)
    created.save()  # before the first create: from here on something may exist in aws.region
    created.doing = "create the key pair and security group"
    key_file = _create_key_pair(ec2, base, tags, created)
    sg_id = _create_security_group(ec2, run_id, base, checked, tags, created, cidr)

    # Auto-scale launches `min` clients now (pre-flight checked quota and permissions for max).
    start = role_counts(scenario, start=True)
    launch = dataclasses.replace(checked, roles=tuple(dataclasses.replace(r, count=start[r.role])
                                                      for r in checked.roles))
    described = _launch(ec2, scenario, launch, created, base, tags, sg_id)
    booted = _name_booted(aws, described, created)
    fleet = _Fleet(ec2, scenario, created, base, tags, sg_id, key_file, wait_ssh, host_keys, ssh_timeout,
                   users={r.role: r.ssh_user for r in checked.roles})
    hosts = fleet.ready(booted)
    scale = scenario.hosts.roles.autoscale
    if scale is None:
        return Lab(provider="aws", hosts=hosts, name=base, cost=created.cost)
    first = next(described[i] for i in created.instance_ids)  # the zone and group that had room
    fleet.more(next(r for r in checked.roles if r.role == "client"), first["SubnetId"],
               created.placement_groups[-1] if created.placement_groups else "", used=scale.min,
               limit=scale.max)
    return Lab(provider="aws", hosts=hosts, name=base, pool=fleet, cost=created.cost)


def _booted(aws: Any, inst: dict[str, Any], name: str, role: str) -> Booted:
    iid, public = inst["InstanceId"], aws.ssh_address == "public"
    if public and not inst.get("PublicIpAddress"):
        raise RunFailed(f"instance {iid} has no public address; use a subnet with internet access, "
                        "or hosts.aws.ssh_address: private from inside the VPC", phase="provision")
    return Booted(name, role, iid, inst["InstanceType"], inst["PrivateIpAddress"],
                  inst.get("PublicIpAddress", ""),
                  inst["PublicIpAddress"] if public else inst["PrivateIpAddress"])


@dataclass
class _Fleet:
    """This run's instances made into hosts, and (auto-scale) the pool that launches more
    clients like the first: same subnet, placement group, security group, key, tags."""

    ec2: Any
    scenario: Scenario
    created: Created
    base: str
    tags: dict[str, str]
    sg_id: str
    key_file: Path
    wait_ssh: WaitSsh
    host_keys: HostKeys
    ssh_timeout: float
    users: dict[str, str] = field(default_factory=dict)  # role -> its image's SSH user
    role: preflight.RolePlan | None = None  # the client role (type, image)
    subnet_id: str = ""
    group: str = ""  # the placement group the first instances went into
    used: int = 0  # client instances launched so far
    limit: int = 0  # the most the scenario lets it launch

    def more(self, role: preflight.RolePlan, subnet_id: str, group: str, *, used: int, limit: int) -> None:
        self.role, self.subnet_id, self.group, self.used, self.limit = role, subnet_id, group, used, limit

    @property
    def spare(self) -> int:
        return self.limit - self.used

    def add(self, count: int) -> tuple[Host, ...]:
        assert self.role is not None
        r, created = dataclasses.replace(self.role, count=count), self.created
        created.doing = f"launch {count} more client(s)"
        kw = _run_args(config(self.scenario), r, created, self.group, self.subnet_id, self.sg_id, self.tags,
                       self.base, token=f"orch-{uuid.uuid4().hex[:16]}-more-{self.used}")
        created.tokens.append(kw["ClientToken"])
        with deferred(), step(f"launch {count} more client(s) ({r.instance_type} in {self.subnet_id})"):
            try:
                resp = api.retry(lambda: self.ec2.run_instances(**kw), codes=CONSISTENCY,
                                 what="launch client")
            except Exception as exc:
                if code_of(exc) in CAPACITY:
                    raise NoMoreHosts(f"aws has no room for more {r.instance_type} in the run's placement "
                                      f"group now: {error_text(exc)}", phase="add client hosts") from None
                if code_of(exc) in QUOTA:  # scaling stops here; the run goes on with what it has
                    raise NoMoreHosts(f"aws quota allows no more {r.instance_type} now: {error_text(exc)}"
                                      f"{api.hint(exc)}", phase="add client hosts") from None
                raise
            ids = [i["InstanceId"] for i in resp["Instances"]]
            created.launched(ids, r.instance_type)  # from here on teardown terminates them with the rest
        log.info("aws: %d more client(s): %s", count, ", ".join(ids))
        created.doing = "wait for the new instances to run"
        try:
            described = _wait_running(self.ec2, ids)
        except _NoCapacity as exc:
            with shielded():
                if not terminate(self.ec2, ids):  # not worth keeping until teardown; it looks again then
                    created.ended(ids)
            raise NoMoreHosts(f"aws: {exc}", phase="add client hosts") from None
        booted = [_booted(config(self.scenario), described[iid], f"client-{self.used + i}", "client")
                  for i, iid in enumerate(ids, 1)]
        hosts = self.ready(booted)
        self.used += count
        return hosts

    def ready(self, booted: list[Booted]) -> tuple[Host, ...]:
        """Named, reachable over SSH, host keys known: the instances as the lab's hosts."""
        aws, ec2, created = config(self.scenario), self.ec2, self.created
        for b in booted:
            name = [{"Key": "Name", "Value": f"{self.base}-{b.name}"}]
            with step(f"tag {b.instance_id}"):
                api.retry(partial(ec2.create_tags, Resources=[b.instance_id], Tags=name),
                          codes=CONSISTENCY, what="tag instance")
        created.doing = "wait for SSH"
        self.wait_ssh(booted, self.ssh_timeout)
        created.doing = "read the host keys"
        keys = self.host_keys(ec2, booted, min(self.ssh_timeout, HOST_KEY_TIMEOUT_S))
        known = created.lab_dir / "known_hosts"
        with known.open("a") as f:
            f.write("".join(f"{b.reach} {k}\n" for b in booted for k in keys.get(b.instance_id, [])))
        ssh = self.scenario.hosts.ssh
        # the host's name in its work directory keeps hosts apart where they share a file
        # system (a home on NFS; the tests' lab hosts standing in for instances)
        return tuple(
            Host(name=b.name, address=b.private_ip, roles=(b.role,),
                 workdir=f"/tmp/orchestrate/{created.run_id}/{b.name}",
                 ssh=SshTarget(host=b.reach, name=b.name,
                               user=self.users.get(b.role) or aws.ssh_user or "admin",
                               port=22,
                               key_file=str(self.key_file), known_hosts=str(known),
                               host_key_checking=ssh.host_key_checking, connect_timeout=ssh.connect_timeout),
                 interface=None,  # ens5 on Nitro images, but found by address like any host
                 vars={"instance_id": b.instance_id, "instance_type": b.instance_type, "ena": True})
            for b in booted)


def _run_args(aws: Any, r: preflight.RolePlan, created: Created, group: str, subnet_id: str, sg_id: str,
              tags: dict[str, str], base: str, *, token: str) -> dict[str, Any]:
    return run_args(aws, role=r.role, image=r.image, instance_type=r.instance_type, count=r.count,
                    subnet_id=subnet_id, tags=tags, base=base, expires=created.expires,
                    key_name=created.key_name, sg_id=sg_id, group=group, token=token)


def _launch(ec2: Any, scenario: Scenario, checked: preflight.Checked, created: Created, base: str,
            tags: dict[str, str], sg_id: str) -> dict[str, dict[str, Any]]:
    """Instances per role in one zone, running; a zone out of capacity is torn down and the next tried.

    Returns the instances as described once running, by id.
    """
    aws = config(scenario)
    nonce = uuid.uuid4().hex[:16]  # idempotency for botocore's own retries, fresh for every lab
    tried: list[str] = []
    for attempt, subnet in enumerate(checked.subnets, 1):
        group = "" if aws.placement == "none" else base if attempt == 1 else f"{base}-{attempt}"
        if group:
            with deferred(), step(f"create placement group {group}"):
                ec2.create_placement_group(GroupName=group, Strategy=aws.placement,
                                           TagSpecifications=tag_spec("placement-group", tags))
                created.placement_groups.append(group)
                created.save()
        created.doing = f"launch in {subnet.zone}"
        here: list[str] = []
        try:
            for r in checked.roles:
                kw = _run_args(aws, r, created, group, subnet.id, sg_id, tags, base,
                               token=f"orch-{nonce}-{attempt}-{r.role}")
                created.tokens.append(kw["ClientToken"])
                with deferred(), step(f"launch {r.role} ({r.count} x {r.instance_type} in {subnet.zone})"):
                    try:
                        resp = api.retry(partial(ec2.run_instances, **kw), codes=CONSISTENCY,
                                         what=f"launch {r.role}")
                    except Exception as exc:
                        if code_of(exc) in CAPACITY:
                            raise _NoCapacity(f"launch {r.role} ({r.instance_type}): "
                                              f"{error_text(exc)}") from None
                        raise
                    ids = [i["InstanceId"] for i in resp["Instances"]]
                    created.launched(ids, r.instance_type)
                here += ids
                log.info("aws: %s: %d x %s in %s: %s", r.role, r.count, r.instance_type, subnet.zone,
                         ", ".join(ids))
            created.doing = "wait for the instances to run"
            return _wait_running(ec2, created.instance_ids)
        except _NoCapacity as exc:
            tried.append(f"{subnet.zone}: {exc}")
            nxt = checked.subnets[attempt].zone if attempt < len(checked.subnets) else None
            log.warning("orchestrate: WARNING aws: no capacity in %s (%s); %s", subnet.zone, exc,
                        f"tearing this attempt down and trying {nxt}" if nxt else "no zone left to try")
            with shielded():
                left = terminate(ec2, here)
                if left:
                    raise RunFailed(f"aws tear down the attempt in {subnet.zone}: "
                                    + "; ".join(f"{i} {why}" for i, why in left.items()),
                                    phase="provision") from None
                created.instance_ids = [i for i in created.instance_ids if i not in here]
                created.ended(here)
                if group:
                    with step(f"delete placement group {group}"):
                        delete_when_free(partial(ec2.delete_placement_group, GroupName=group))
                    created.placement_groups.remove(group)
                    created.save()
    raise RunFailed(f"aws launch: no capacity in any zone offering the types ({'; '.join(tried)}) "
                    "(capacity: try another instance type or region, or later)", phase="provision")


def _wait_running(ec2: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Poll until every instance is `running` (our own loop: a new id may be unknown for a while)."""
    first, cap, _ = api.BACKOFF
    deadline = time.monotonic() + api.STATE_TIMEOUT_S
    delay = first
    while True:
        with step("wait for the instances to run"):
            pages = ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-id", "Values": ids}])
            found = {i["InstanceId"]: i for page in pages for res in page["Reservations"]
                     for i in res["Instances"]}
        for iid, inst in found.items():
            state = inst["State"]["Name"]
            if state in ("shutting-down", "terminated", "stopping", "stopped"):
                reason = inst.get("StateReason") or {}
                text = (f"{iid} went {state} while starting: "
                        f"{reason.get('Code', '?')}: {reason.get('Message', '')}")
                if reason.get("Code") in CAPACITY:
                    raise _NoCapacity(text)
                raise RunFailed(f"aws wait for the instances to run: {text}", phase="provision")
        if len(found) == len(ids) and all(i["State"]["Name"] == "running" for i in found.values()):
            return found
        if time.monotonic() > deadline:
            states = ", ".join(f"{i} {found[i]['State']['Name'] if i in found else 'unknown'}" for i in ids)
            raise RunFailed(f"aws wait for the instances to run: not running after "
                            f"{api.STATE_TIMEOUT_S:.0f}s ({states})", phase="provision")
        time.sleep(min(delay, api.POLL_S))
        delay = min(delay * 2, cap)


def launched_with(ec2: Any, tokens: Sequence[str]) -> list[str]:
    """Live instances launched with any of these ClientTokens (none asked for: none)."""
    if not tokens:
        return []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "client-token", "Values": list(tokens)},
                 {"Name": "instance-state-name", "Values": list(api.LIVE_STATES)}])
    return [i["InstanceId"] for page in pages for res in page["Reservations"] for i in res["Instances"]]


def teardown(ec2: Any, created: Created, *, now: datetime | None = None,
             deadline_s: float | None = None) -> TeardownReport:
    """Remove everything of this run: what `created` recorded plus anything found by its run tag
    or by the launches' ClientTokens, both looked for again once the rest is gone (a launch whose
    reply was lost shows up in DescribeInstances late). Ends by `deadline_s` (default
    TEARDOWN_DEADLINE_S), or at the first sign that the endpoint cannot be reached, reporting what
    may remain."""
    now = now or datetime.now(UTC)
    deadline = time.monotonic() + (api.TEARDOWN_DEADLINE_S if deadline_s is None else deadline_s)
    if not created.attempted:  # failed before creating anything (bad image, no default VPC, ...)
        shutil.rmtree(created.lab_dir, ignore_errors=True)
        return TeardownReport((), ())
    items: dict[tuple[str, str], Leftover] = {}

    def known(kind: str, rid: str | None) -> None:
        if rid:
            items.setdefault((kind, rid), Leftover(kind, rid, "", created.run_id, "", "", True))

    for iid in created.instance_ids:
        known("instance", iid)
    for group in created.placement_groups:
        known("placement-group", group)
    known("security-group", created.security_group_id)
    known("key-pair", created.key_name)
    failed: list[str] = []
    reachable = True
    try:
        for x in scan(ec2, now=now, run_id=created.run_id):
            items.setdefault((x.kind, x.id), x)
        for iid in launched_with(ec2, created.tokens):
            known("instance", iid)
    except Exception as exc:
        failed.append(f"looking up this run's resources by tag: {error_text(exc)}")
        reachable = not api.offline(exc)
    removed, not_removed = remove(ec2, list(items.values()), deadline=deadline)
    if reachable and not not_removed:  # once more: what the first scan could not see yet
        try:
            late = [x for x in scan(ec2, now=now, run_id=created.run_id) if (x.kind, x.id) not in items]
            late += [Leftover("instance", iid, "", created.run_id, "", "", True)
                     for iid in launched_with(ec2, created.tokens)
                     if ("instance", iid) not in items and iid not in {x.id for x in late}]
        except Exception as exc:
            late, not_removed = [], [f"looking again by tag: {error_text(exc)}"]
        if late:
            log.info("aws: found late: %s", ", ".join(f"{x.kind} {x.id}" for x in late))
            more, not_removed = remove(ec2, late, deadline=deadline)
            removed += more
    created.ended([x.id for x in removed if x.kind == "instance"])
    shutil.rmtree(created.lab_dir, ignore_errors=True)  # the key is useless once the pair is deleted
    return TeardownReport(tuple(f"{x.kind} {x.id}" for x in removed), tuple(failed + not_removed),
                          created.expires if created.instance_ids else "")


@contextmanager
def open_lab(scenario: Scenario, *, run_id: str, session: Any = None, lab_dir: Path | None = None,
             my_address: str | None = None, wait_ssh: WaitSsh = wait_for_ssh,
             host_keys: HostKeys = fetch_host_keys, ssh_timeout: float = SSH_TIMEOUT_S,
             now: datetime | None = None, max_hourly: float | None = None,
             ssh_probe: tuple[str, int] | None = None) -> Iterator[Lab]:
    """Provision the scenario's hosts on EC2, yield the Lab, and tear everything down on any exit.

    `session` defaults to the standard credential chain for the scenario's region;
    `my_address` to `discover_address()`; `wait_ssh`/`host_keys` are seams for tests.
    """
    aws = config(scenario)
    if planned_seconds(scenario) > aws.expire_after:
        raise UserError(f"hosts.aws.expire_after ({fmt_seconds(aws.expire_after)}) is shorter than the "
                        f"planned run (~{fmt_seconds(planned_seconds(scenario))}); raise it")
    check_spend(scenario, max_hourly)
    session = session or api.make_session(aws.region)
    ec2 = client(session, "ec2", aws.endpoint_url, teardown=True)  # few retries, short timeouts
    created = Created(run_id=run_id, lab_dir=lab_dir or LAB_ROOT / f"aws-{run_id}", region=aws.region)
    lab: Lab | None = None
    try:
        lab = provision(scenario, run_id=run_id, created=created, session=session, my_address=my_address,
                        wait_ssh=wait_ssh, host_keys=host_keys, ssh_timeout=ssh_timeout, now=now,
                        ssh_probe=ssh_probe)
        yield lab
    except BaseException as exc:
        report = _teardown_logged(ec2, created, aws.region)
        if report.ok:
            state.forget(run_id)
        if not report.ok:
            log.error("orchestrate: %s", report.summary(aws.region, run_id))
            exc.add_note(report.summary(aws.region, run_id))
        if lab is None and isinstance(exc, KeyboardInterrupt | Interrupted):
            # Say where provisioning was (`pending` instances, ...) and that teardown ran.
            what = f"{exc} " if str(exc) else ""
            raise Interrupted(f"{what}during aws provisioning: {created.doing}; "
                              + ("everything it created was removed" if report.ok else
                                 report.summary(aws.region, run_id))) from None
        raise
    report = _teardown_logged(ec2, created, aws.region)
    if report.ok:  # nothing of the run is left: its local record goes too
        state.forget(run_id)
    if any(f.startswith("instance ") for f in report.failed):  # still billed: the run failed
        raise RunFailed(report.summary(aws.region, run_id), phase="teardown")
    if not report.ok:  # the run itself is complete: free leftovers are a warning with their ids
        log.warning("orchestrate: WARNING %s", report.summary(aws.region, run_id))


def _teardown_logged(ec2: Any, created: Created, region: str) -> TeardownReport:
    with shielded():
        log.info("aws: tearing down run %s", created.run_id)
        report = teardown(ec2, created)
    if report.ok:
        log.info("aws: removed %s", ", ".join(report.removed) or "nothing")
    return report
