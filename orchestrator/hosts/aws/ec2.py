"""EC2 basics shared by the aws provider, its cost estimate and its cleanup: the tags that
mark what a run created, sessions and clients from the standard credential chain, who the
caller is, retries for EC2's eventual consistency, and one-line errors naming the step
with an IAM or quota hint (never a request, which carries headers)."""

from __future__ import annotations

import getpass
import ipaddress
import logging
import socket
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from orchestrator.errors import RunFailed, UserError
from orchestrator.scenario import Aws, Scenario

log = logging.getLogger(__name__)
T = TypeVar("T")

TAG_RUN = "orchestrate:run-id"
TAG_SCENARIO = "orchestrate:scenario"
TAG_EXPIRES = "orchestrate:expires"
TAG_OWNER = "orchestrate:owner"  # who ran it (caller ARN): cleanup leaves other users' runs alone
ROLES = ("server", "client")
KINDS = ("instance", "placement-group", "security-group", "key-pair")  # the order cleanup removes them in
STATE_TIMEOUT_S = 600.0  # how long an instance may take to reach running, or terminated
ADDRESS_URL = "https://checkip.amazonaws.com"
LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
POLL_S = 5.0  # between describe calls while instances change state
# Seconds, not botocore's 60 s: with no network every call would otherwise take minutes while
# Ctrl-C is shielded, and the user reaches for kill -9. Teardown also retries less and stops
# at its deadline, then says what may remain and when it expires by itself.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
ATTEMPTS = 5  # standard retry mode's attempts (throttling), for provisioning
TEARDOWN_ATTEMPTS = 2
TEARDOWN_DEADLINE_S = 900.0  # terminate + wait for terminated + delete the groups and key
# Backoff for EC2's eventual consistency and for deletes that wait on a dependency:
# first delay, the longest delay, and how long to keep trying (seconds).
BACKOFF = (1.0, 15.0, 180.0)
# What a fresh create answers for a while: the resource exists, the API does not know it yet.
CONSISTENCY = ("InvalidGroup.NotFound", "InvalidKeyPair.NotFound", "InvalidPlacementGroup.Unknown",
               "InvalidInstanceID.NotFound", "InvalidNetworkInterfaceID.NotFound")
# No room for this type here now: another zone may have it.
CAPACITY = ("InsufficientInstanceCapacity", "Unsupported", "InsufficientCapacity",
            "Server.InsufficientInstanceCapacity", "InsufficientHostCapacity")
# The account may not launch more now: the run as planned cannot, but auto-scale can stop here.
QUOTA = ("VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded")
_IAM = ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "AuthFailure",
        "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken")
DOCS = "README, 'AWS: the first run, permissions, spend and cleanup'"


def config(scenario: Scenario) -> Aws:
    return scenario.hosts.aws or Aws()


def instance_type(aws: Aws, role: str) -> str:
    # A scenario may set one role's type only; the other keeps the default.
    mine = {str(r): t for r, t in aws.instance_type.items()}
    return mine.get(role) or {str(r): t for r, t in Aws().instance_type.items()}[role]


def role_counts(scenario: Scenario, *, start: bool = False) -> dict[str, int]:
    """Instances per role: the most a run holds (auto-scale's max), or with `start` those it
    launches first (auto-scale's min)."""
    roles = scenario.hosts.roles
    clients = roles.autoscale.min if start and roles.autoscale else roles.clients
    return {"server": roles.server, "client": clients}


_LOADERS: dict[str, Any] = {}  # botocore data path -> the one loader the process's sessions share


def boto_session(region: str | None, profile: str | None = None) -> Any:
    """A boto3 session that reads botocore's models through the process's one loader, which keeps
    what it parsed. A session's own loader would parse the EC2 model and the endpoints table
    again (0.2-0.3 s of CPU per session), and a run makes several: doctor's pre-flight and the
    provider's, cleanup one per region. A session's clients share its loader in any case, so
    sharing it across sessions adds no new concurrency."""
    import boto3  # heavy import, only when AWS is used
    import botocore.session

    core = botocore.session.get_session()
    session = boto3.session.Session(region_name=region, profile_name=profile, botocore_session=core)
    # the data path can come from the profile: one loader per path, as botocore would make it
    own = core.get_component("data_loader")  # boto3 has added its own data folder to it
    shared = _LOADERS.setdefault(str(core.get_config_variable("data_path")), own)
    core.register_component("data_loader", shared)
    return session


def make_session(region: str | None, profile: str | None = None) -> Any:
    """A boto3 session from the standard credential chain only; UserError when it finds none.

    `region` None: the profile's (or AWS_REGION's) region, which must then be set.
    """
    from botocore.exceptions import BotoCoreError

    try:
        session = boto_session(region, profile)
    except BotoCoreError as exc:  # ProfileNotFound and friends
        raise UserError(f"aws: {exc}") from None
    if not session.region_name:
        raise UserError("aws: no region: pass --region, or set one in the profile or AWS_REGION")
    if session.get_credentials() is None:
        raise UserError("no AWS credentials found; configure them the standard way (AWS_PROFILE, "
                        "~/.aws/credentials, aws sso login, or an instance role)")
    return session


# session -> its clients by (service, endpoint, teardown); an entry goes with its session
_CLIENTS: weakref.WeakKeyDictionary[Any, dict[tuple[str, str | None, bool], Any]] = \
    weakref.WeakKeyDictionary()


def client(session: Any, service: str, endpoint_url: str | None, *, teardown: bool = False) -> Any:
    """The session's one client for this service, endpoint and retry policy. Building a client
    costs 15-40 ms of CPU (botocore makes a method for each of EC2's ~700 operations) and a run
    asks for the same one at each step (pre-flight, provision, STS for each lab); botocore's
    clients are thread-safe, and a client keeps the credentials of its session."""
    from botocore.config import Config

    mine = _CLIENTS.setdefault(session, {})
    key = (service, endpoint_url, teardown)
    if key not in mine:
        # Standard retry mode backs off on throttling; ClientToken keeps run_instances retries single.
        attempts = TEARDOWN_ATTEMPTS if teardown else ATTEMPTS
        cfg = Config(retries={"mode": "standard", "max_attempts": attempts},
                     connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                     user_agent_extra="orchestrate")
        mine[key] = session.client(service, endpoint_url=endpoint_url, config=cfg)
    return mine[key]


def offline(exc: BaseException) -> bool:
    """The endpoint cannot be reached (no network, DNS, a timeout): retrying here will not help."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    return isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError
                      | ConnectionClosedError)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tags_of(obj: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in obj.get("Tags", []) or []}


def tag_spec(kind: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": tag_list(tags)}]


def error_text(exc: BaseException) -> str:
    """A one-line reason from a botocore error (never its request, which carries headers)."""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict) and "Error" in resp:
        err = resp["Error"]
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def code_of(exc: BaseException) -> str:
    resp = getattr(exc, "response", None)
    return str(resp.get("Error", {}).get("Code", "")) if isinstance(resp, dict) else ""


def is_aws_error(exc: BaseException) -> bool:
    """A botocore/boto3 error (ClientError, WaiterError, EndpointConnectionError, ...)."""
    return type(exc).__module__.startswith(("botocore", "boto3"))


def hint(exc: BaseException, service: str = "ec2") -> str:
    """What to do about an API error, for the errors a user can fix: permissions and quotas."""
    code = code_of(exc)
    op = getattr(exc, "operation_name", "") or "this call"
    text = error_text(exc).lower()
    if code == "PendingVerification":
        return (" (verification: AWS is still verifying this account for the region, which can take "
                f"up to 4 hours; try again then, or in a region already in use; see the {DOCS})")
    if code == "OptInRequired":
        return (" (opt-in: the account is not subscribed to EC2 here, or the region is an opt-in one "
                f"not enabled for it: enable it under Account > AWS Regions; see the {DOCS})")
    if "free tier" in text or "free plan" in text:
        return (" (free plan: the account may launch only free-tier-eligible types, so the defaults "
                "are refused; start with scenarios/aws-smoke.yaml, or upgrade the plan to a paid one; "
                f"see the {DOCS})")
    if code == "VcpuLimitExceeded" or "vcpu limit" in text:
        return (" (quota: the account's Running On-Demand Standard instances vCPU quota, L-1216C47A, is "
                "below what the run needs; ask for more in Service Quotas, or start with "
                f"scenarios/aws-smoke.yaml, which fits 4 vCPUs; see the {DOCS})")
    if code in _IAM or code.endswith(("AccessDenied", "Unauthorized")):
        return f" (IAM: the credentials need {service}:{op}; see the {DOCS})"
    if code.endswith("LimitExceeded") and code != "RequestLimitExceeded":
        return f" (quota: ask for more in Service Quotas, or free some; see the {DOCS})"
    if code in CAPACITY:
        return " (capacity: try another instance type or region, or later)"
    if "EndpointConnection" in type(exc).__name__ or "ConnectTimeout" in type(exc).__name__:
        return " (network: the AWS endpoint cannot be reached from here)"
    return ""


@contextmanager
def step(name: str, *, service: str = "ec2", phase: str = "provision") -> Iterator[None]:
    """An API error inside becomes one RunFailed line naming `name`, with its hint."""
    try:
        yield
    except Exception as exc:
        if not is_aws_error(exc):
            raise
        raise RunFailed(f"aws {name}: {error_text(exc)}{hint(exc, service)}", phase=phase) from None


def retry(call: Callable[[], T], *, codes: tuple[str, ...], what: str) -> T:
    """`call()`, again with backoff while it answers one of `codes` (until BACKOFF's total)."""
    first, cap, total = BACKOFF
    deadline = time.monotonic() + total
    delay = first
    while True:
        try:
            return call()
        except Exception as exc:
            if code_of(exc) not in codes or time.monotonic() + delay > deadline:
                raise
            log.info("aws: %s: %s; again in %.1fs", what, code_of(exc), delay)
            time.sleep(delay)
            delay = min(delay * 2, cap)


def identity(session: Any, endpoint_url: str | None) -> str:
    """Who runs this, for the owner tag: the caller's ARN (an assumed role without its
    session name, so a CI role's nightly runs are one owner); the local user if STS fails."""
    try:
        arn = str(client(session, "sts", endpoint_url).get_caller_identity()["Arn"])
    except Exception as exc:
        if not is_aws_error(exc):
            raise
        local = f"local:{getpass.getuser()}@{socket.gethostname()}"
        log.warning("orchestrate: WARNING aws: cannot ask STS who is calling (%s); owner tag %s",
                    error_text(exc), local)
        return local
    if ":assumed-role/" in arn:
        arn = arn.rsplit("/", 1)[0]
    return arn


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
