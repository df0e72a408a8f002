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
import dataclasses
import ipaddress
import json
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
from orchestrator.plan import expand, fmt_seconds
from orchestrator.remote import SshTarget, wait_for_banner
from orchestrator.scenario import Aws, Scenario
from orchestrator.signals import shielded

log = logging.getLogger(__name__)

TAG_RUN = "orchestrate:run-id"
TAG_SCENARIO = "orchestrate:scenario"
TAG_EXPIRES = "orchestrate:expires"
ROLES = ("server", "client")
KINDS = ("instance", "placement-group", "security-group", "key-pair")  # the order cleanup removes them in
LAB_ROOT = Path("/tmp/orchestrate")  # local lab dirs (key, known_hosts); remote hosts use their own /tmp
PRICES_FILE = Path(__file__).resolve().parent.parent / "data" / "aws_prices.json"
# Boot, SSH wait, deploy playbook and teardown are billed too (per second, 60 s minimum).
PROVISION_OVERHEAD_S = 600.0
SSH_TIMEOUT_S = 600.0
HOST_KEY_TIMEOUT_S = 180.0  # console output lags boot a little; after this, trust on first use
WAITER = {"Delay": 5, "MaxAttempts": 120}  # instance running/terminated: up to 10 minutes
ADDRESS_URL = "https://checkip.amazonaws.com"
LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")


def config(scenario: Scenario) -> Aws:
    return scenario.hosts.aws or Aws()


def _instance_type(aws: Aws, role: str) -> str:
    # A scenario may set one role's type only; the other keeps the default.
    return aws.instance_type.get(role) or Aws().instance_type[role]  # type: ignore[call-overload,index]


def _counts(scenario: Scenario) -> dict[str, int]:
    return {"server": scenario.hosts.roles.server, "client": scenario.hosts.roles.client}


# --- cost: no API calls --------------------------------------------------------


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    currency: str
    note: str
    public_ipv4_hourly: float
    prices: dict[str, dict[str, float]]  # region -> instance type -> hourly

    def hourly(self, region: str, instance_type: str) -> float | None:
        return self.prices.get(region, {}).get(instance_type)


def load_prices(path: Path | None = None) -> PriceTable:
    doc = json.loads((path or PRICES_FILE).read_text())
    if doc.get("version") != 1:
        raise ValueError(f"unknown price table version {doc.get('version')!r}")
    return PriceTable(doc["as_of"], doc["currency"], doc["note"], float(doc.get("public_ipv4_hourly", 0.0)),
                      doc["prices"])


@dataclass(frozen=True)
class RoleCost:
    role: str
    instance_type: str
    count: int
    hourly: float | None  # per instance, including its public IPv4; None: not in the table


@dataclass(frozen=True)
class CostEstimate:
    region: str
    hours: float
    roles: tuple[RoleCost, ...]
    total: float | None  # None when some instance type has no price in the table
    currency: str
    prices_as_of: str
    disclaimer: str

    @property
    def unpriced(self) -> list[str]:
        return [r.instance_type for r in self.roles if r.hourly is None]

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "estimate": True}


def estimate(scenario: Scenario, hours: float, *, prices: PriceTable | None = None) -> CostEstimate:
    """What the scenario's instances cost for `hours` at list price (from the project's table)."""
    if hours <= 0:
        raise ValueError(f"hours must be > 0, got {hours}")
    aws, table = config(scenario), prices or load_prices()
    roles: list[RoleCost] = []
    total: float | None = 0.0
    for role, count in _counts(scenario).items():
        itype = _instance_type(aws, role)
        price = table.hourly(aws.region, itype)
        hourly = None if price is None else price + table.public_ipv4_hourly
        roles.append(RoleCost(role, itype, count, hourly))
        total = total + hourly * count * hours if hourly is not None and total is not None else None
    disclaimer = (f"estimate only: on-demand list prices as of {table.as_of} kept in the project, "
                  f"per-second billing with a 60 s minimum; {table.note}")
    return CostEstimate(aws.region, hours, tuple(roles), total, table.currency, table.as_of, disclaimer)


def planned_seconds(scenario: Scenario) -> float:
    """How long the instances live: the plan's runs and baseline plus provisioning and teardown."""
    return expand(scenario).expected_seconds + PROVISION_OVERHEAD_S


def describe_plan(scenario: Scenario, *, hours: float | None = None,
                  prices: PriceTable | None = None) -> list[str]:
    """Lines for `orchestrate plan`: what would be created and what it should cost. No API calls."""
    aws = config(scenario)
    seconds = hours * 3600 if hours is not None else planned_seconds(scenario)
    est = estimate(scenario, seconds / 3600, prices=prices)
    where = f"region {aws.region}" + (f" via {aws.endpoint_url}" if aws.endpoint_url else "")
    lines = [f"aws: {where}, one cluster placement group"]
    for r in est.roles:
        price = f"~${r.hourly:.4f}/h each" if r.hourly is not None else "price not in the table"
        lines.append(f"  {r.role}: {r.count} x {r.instance_type} ({price})")
    image = aws.image
    if image.startswith("resolve:ssm:"):
        image += " (looked up at run time)"
    lines.append(f"  image: {image}, ssh user {aws.ssh_user}")
    lines.append(f"  subnet: {aws.subnet or 'the default subnet of the default VPC'}; SSH admitted "
                 "only from this machine's public address")
    lines.append(f"  expiry: {fmt_seconds(aws.expire_after)} after launch; instances power off "
                 "(terminate) by themselves then")
    if est.total is not None:
        lines.append(f"  estimated cost: ~${est.total:.2f} {est.currency} for ~{fmt_seconds(seconds)} "
                     f"(ESTIMATE: list prices as of {est.prices_as_of}; excludes EBS, data transfer, tax)")
    else:
        lines.append(f"  estimated cost: unknown, no price for {', '.join(est.unpriced)} in {aws.region} "
                     f"(table as of {est.prices_as_of})")
    if seconds > aws.expire_after:
        lines.append(f"  WARNING: the run (~{fmt_seconds(seconds)}) outlasts hosts.aws.expire_after "
                     f"({fmt_seconds(aws.expire_after)}); the instances would power off mid-run")
    return lines


# --- sessions and small helpers -----------------------------------------------


def make_session(region: str) -> Any:
    """A boto3 session from the standard credential chain only; UserError when it finds none."""
    import boto3  # heavy import, only when AWS is used

    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:
        raise UserError("no AWS credentials found; configure them the standard way (AWS_PROFILE, "
                        "~/.aws/credentials, aws sso login, or an instance role)")
    return session


def _client(session: Any, service: str, endpoint_url: str | None) -> Any:
    from botocore.config import Config

    # Standard retry mode backs off on throttling; ClientToken keeps run_instances retries single.
    cfg = Config(retries={"mode": "standard", "max_attempts": 8}, user_agent_extra="orchestrate")
    return session.client(service, endpoint_url=endpoint_url, config=cfg)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _tags_of(obj: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in obj.get("Tags", []) or []}


def _spec(kind: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": _tag_list(tags)}]


def _error(exc: BaseException) -> str:
    """A one-line reason from a botocore error (never its request, which carries headers)."""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict) and "Error" in resp:
        err = resp["Error"]
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def discover_address(timeout: float = 5.0) -> str:
    """This machine's public IP address as AWS sees it (the SSH rule admits only this)."""
    import urllib.request

    try:
        with urllib.request.urlopen(ADDRESS_URL, timeout=timeout) as resp:
            text = resp.read(64).decode().strip()
        return str(ipaddress.ip_address(text))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot find this machine's public address via {ADDRESS_URL}: {exc}; "
                        "pass it explicitly") from None


def redact(obj: Any) -> Any:
    """A JSON-ready copy of `obj` with anything secret-looking masked (for results and logs)."""
    secret_key = re.compile(r"secret|password|token|keymaterial|private_?key(?!_file)|access_?key|"
                            r"credential", re.I)
    secret_value = re.compile(r"PRIVATE KEY|(?:AKIA|ASIA)[A-Z0-9]{16}")

    def walk(x: Any) -> Any:
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            x = dataclasses.asdict(x)
        if isinstance(x, dict):
            return {str(k): "***" if secret_key.search(str(k)) else walk(v) for k, v in x.items()}
        if isinstance(x, list | tuple | set | frozenset):
            return [walk(v) for v in x]
        if isinstance(x, str):
            return "***" if secret_value.search(x) else x
        if isinstance(x, datetime):
            return _iso(x)
        if isinstance(x, Path):
            return str(x)
        return x if x is None or isinstance(x, bool | int | float) else str(x)

    return walk(obj)


# --- leftovers: find by tag, remove in dependency order -------------------------


@dataclass(frozen=True)
class Leftover:
    kind: str  # one of KINDS
    id: str  # what deletes it: instance id, group name (placement), group id, key name
    name: str
    run_id: str
    scenario: str
    expires: str  # ISO time from the tag ("" when missing)
    expired: bool
    state: str = ""  # instances only
    instance_type: str = ""


@dataclass(frozen=True)
class CleanupReport:
    removed: tuple[Leftover, ...]
    failed: tuple[str, ...]  # "kind id: reason"

    @property
    def ok(self) -> bool:
        return not self.failed


def _scan(ec2: Any, *, now: datetime, run_id: str | None = None,
          errors: list[str] | None = None) -> list[Leftover]:
    """Every live resource carrying our run tag (optionally of one run).

    With `errors`, a kind that cannot be listed is noted there and the others are still
    listed (cleanup removes what it can); without, the first failure raises.
    """
    flt = [{"Name": f"tag:{TAG_RUN}", "Values": [run_id]}] if run_id else \
        [{"Name": "tag-key", "Values": [TAG_RUN]}]

    def mk(kind: str, rid: str, tags: dict[str, str], **kw: str) -> Leftover:
        expires = tags.get(TAG_EXPIRES, "")
        when = _parse_time(expires)
        # A resource of ours with no readable expiry is treated as expired: a leak costs more.
        return Leftover(kind, rid, tags.get("Name", ""), tags.get(TAG_RUN, ""), tags.get(TAG_SCENARIO, ""),
                        expires, when is None or when <= now, **kw)

    def instances() -> list[Leftover]:
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=flt + [{"Name": "instance-state-name", "Values": list(LIVE_STATES)}])
        return [mk("instance", i["InstanceId"], _tags_of(i), state=i["State"]["Name"],
                   instance_type=i.get("InstanceType", ""))
                for page in pages for res in page["Reservations"] for i in res["Instances"]]

    def placement_groups() -> list[Leftover]:
        return [mk("placement-group", pg["GroupName"], _tags_of(pg))
                for pg in ec2.describe_placement_groups(Filters=flt).get("PlacementGroups", [])
                if pg.get("State") not in ("deleting", "deleted")]

    def security_groups() -> list[Leftover]:
        return [mk("security-group", sg["GroupId"], _tags_of(sg))
                for page in ec2.get_paginator("describe_security_groups").paginate(Filters=flt)
                for sg in page["SecurityGroups"]]

    def key_pairs() -> list[Leftover]:
        return [mk("key-pair", kp["KeyName"], _tags_of(kp))
                for kp in ec2.describe_key_pairs(Filters=flt).get("KeyPairs", [])]

    out: list[Leftover] = []
    for kind, lister in (("instance", instances), ("placement-group", placement_groups),
                         ("security-group", security_groups), ("key-pair", key_pairs)):
        try:
            out += lister()
        except Exception as exc:
            if errors is None:
                raise
            errors.append(f"could not list {kind}s: {_error(exc)}")
    return out


def _remove(ec2: Any, items: Sequence[Leftover]) -> tuple[list[Leftover], list[str]]:
    """Delete `items`: instances first (terminated and waited for), then the rest. Tries every step."""
    removed: list[Leftover] = []
    failed: list[str] = []
    instances = [x for x in items if x.kind == "instance"]
    if instances:
        ids = [x.id for x in instances]
        try:
            ec2.terminate_instances(InstanceIds=ids)
            ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig=WAITER)
            removed += instances
        except Exception as exc:  # teardown goes on whatever failed
            failed.append(f"instances {', '.join(ids)}: {_error(exc)}")
    for item in (x for x in items if x.kind == "placement-group"):
        _attempt(lambda item=item: ec2.delete_placement_group(GroupName=item.id), item, removed, failed)
    for item in (x for x in items if x.kind == "security-group"):
        _attempt(lambda item=item: _delete_group(ec2, item.id), item, removed, failed)
    for item in (x for x in items if x.kind == "key-pair"):
        _attempt(lambda item=item: ec2.delete_key_pair(KeyName=item.id), item, removed, failed)
    return removed, failed


def _attempt(step: Callable[[], Any], item: Leftover, removed: list[Leftover], failed: list[str]) -> None:
    try:
        step()
        removed.append(item)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code.endswith("NotFound") or code == "InvalidPlacementGroup.Unknown":
            removed.append(item)  # already gone: the goal is reached
        else:
            failed.append(f"{item.kind} {item.id}: {_error(exc)}")


def _delete_group(ec2: Any, group_id: str, *, wait_s: float = 120.0) -> None:
    # A terminated instance's network interface lingers for a while; the group is "in use" until then.
    deadline = time.monotonic() + wait_s
    while True:
        try:
            ec2.delete_security_group(GroupId=group_id)
            return
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code != "DependencyViolation" or time.monotonic() > deadline:
                raise
            time.sleep(5)


def find_leftovers(region: str, *, all: bool = False, run_id: str | None = None,
                   endpoint_url: str | None = None, now: datetime | None = None,
                   session: Any = None) -> list[Leftover]:
    """Resources tagged by orchestrate in `region`: expired ones, or every one with `all`/`run_id`."""
    ec2 = _client(session or make_session(region), "ec2", endpoint_url)
    return _find(ec2, all=all, run_id=run_id, now=now)


def _find(ec2: Any, *, all: bool, run_id: str | None, now: datetime | None,
          errors: list[str] | None = None) -> list[Leftover]:
    found = _scan(ec2, now=now or datetime.now(UTC), run_id=run_id, errors=errors)
    return found if (all or run_id) else [x for x in found if x.expired]


def cleanup(region: str, *, all: bool = False, run_id: str | None = None,
            endpoint_url: str | None = None, now: datetime | None = None, session: Any = None,
            dry_run: bool = False) -> CleanupReport:
    """Remove what `find_leftovers` finds (instances first); returns what was removed and what failed.

    With `dry_run`, `removed` lists what would be removed and nothing is touched.
    """
    ec2 = _client(session or make_session(region), "ec2", endpoint_url)
    unlisted: list[str] = []
    items = _find(ec2, all=all, run_id=run_id, now=now, errors=unlisted)
    if dry_run or not items:
        return CleanupReport(tuple(items) if dry_run else (), tuple(unlisted))
    with shielded():
        removed, failed = _remove(ec2, items)
    failed = unlisted + failed
    for line in failed:
        log.warning("cleanup: could not remove %s", line)
    return CleanupReport(tuple(removed), tuple(failed))


def warn_expired(region: str, *, endpoint_url: str | None = None, now: datetime | None = None,
                 session: Any = None) -> list[str]:
    """Warnings for `run` about expired leftovers in `region`; never raises (a check, not a step)."""
    try:
        items = find_leftovers(region, endpoint_url=endpoint_url, now=now, session=session)
    except Exception as exc:
        return [f"could not check {region} for leftover orchestrate resources: {_error(exc)}"]
    if not items:
        return []
    running = [x for x in items if x.kind == "instance"]
    runs = sorted({x.run_id or "?" for x in items})
    what = f"{len(items)} expired orchestrate resource(s) in {region} from run(s) {', '.join(runs)}"
    if running:
        types = ", ".join(sorted({x.instance_type for x in running if x.instance_type}))
        what += f", including {len(running)} instance(s) still billed ({types})"
    return [f"{what}; remove them with `orchestrate cleanup --provider aws --region {region}`"]


# --- provisioning ---------------------------------------------------------------


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
        raise UserError(f"hosts.aws.image: cannot resolve SSM parameter {name}: {_error(exc)}") from None
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
    ec2 = _client(session, "ec2", aws.endpoint_url)
    ssm = _client(session, "ssm", aws.endpoint_url)
    now = now or datetime.now(UTC)
    base = f"orchestrate-{run_id}"
    tags = {TAG_RUN: run_id, TAG_SCENARIO: scenario.name,
            TAG_EXPIRES: _iso(now + timedelta(seconds=aws.expire_after)), "Name": base}

    image = resolve_image(ssm, aws.image)
    subnet_id, vpc_id = _subnet(ec2, aws.subnet)
    address = ipaddress.ip_address(my_address or discover_address())
    log.info("aws: %s in %s, image %s, subnet %s", base, aws.region, image, subnet_id)

    created.lab_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    created.lab_dir.chmod(0o700)
    created.attempted = True
    key = ec2.create_key_pair(KeyName=base, KeyType="ed25519", TagSpecifications=_spec("key-pair", tags))
    created.key_name = key["KeyName"]
    key_file = created.lab_dir / "id_ed25519"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.pop("KeyMaterial"))
    del key

    sg = ec2.create_security_group(GroupName=base, VpcId=vpc_id,
                                   Description=f"orchestrate run {run_id}: SSH from the orchestrator, "
                                               "all traffic between members",
                                   TagSpecifications=_spec("security-group", tags))
    created.security_group_id = sg_id = sg["GroupId"]
    cidr = {"CidrIp": f"{address}/32"} if address.version == 4 else {"CidrIpv6": f"{address}/128"}
    ssh_rule: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                "IpRanges" if address.version == 4 else "Ipv6Ranges": [
                                    {**cidr, "Description": "orchestrate: SSH from the orchestrator"}]}
    members = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg_id, "Description": "benchmark hosts"}]}
    ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[ssh_rule, members])

    ec2.create_placement_group(GroupName=base, Strategy="cluster",
                               TagSpecifications=_spec("placement-group", tags))
    created.placement_group = base

    nonce = uuid.uuid4().hex[:16]  # idempotency for botocore's own retries, fresh for every lab
    booted: list[Booted] = []
    for role, count in _counts(scenario).items():
        itype = _instance_type(aws, role)
        role_tags = {**tags, "Name": f"{base}-{role}", "orchestrate:role": role}
        resp = ec2.run_instances(
            ImageId=image, InstanceType=itype, MinCount=count, MaxCount=count, KeyName=created.key_name,
            Placement={"GroupName": base},
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id, "Groups": [sg_id],
                                "AssociatePublicIpAddress": True, "DeleteOnTermination": True}],
            InstanceInitiatedShutdownBehavior="terminate", UserData=_user_data(aws.expire_after),
            MetadataOptions={"HttpTokens": "required"},
            TagSpecifications=_spec("instance", role_tags) + _spec("volume", role_tags),
            ClientToken=f"orch-{nonce}-{role}")
        ids = [i["InstanceId"] for i in resp["Instances"]]
        created.instance_ids += ids
        log.info("aws: %s: %d x %s: %s", role, count, itype, ", ".join(ids))

    ec2.get_waiter("instance_running").wait(InstanceIds=created.instance_ids, WaiterConfig=WAITER)
    pages = ec2.get_paginator("describe_instances").paginate(InstanceIds=created.instance_ids)
    described = {i["InstanceId"]: i
                 for page in pages
                 for r in page["Reservations"] for i in r["Instances"]}
    seen: dict[str, int] = {}
    for iid in created.instance_ids:
        inst = described[iid]
        role = _tags_of(inst).get("orchestrate:role", "")
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
        for x in _scan(ec2, now=now, run_id=created.run_id):
            items.setdefault((x.kind, x.id), x)
    except Exception as exc:
        failed.append(f"looking up this run's resources by tag: {_error(exc)}")
    removed, not_removed = _remove(ec2, list(items.values()))
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
    session = session or make_session(aws.region)
    ec2 = _client(session, "ec2", aws.endpoint_url)
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
