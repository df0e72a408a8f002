"""EC2 basics shared by the aws provider, its cost estimate and its cleanup: the tags that
mark what a run created, sessions and clients from the standard credential chain, and
one-line error text (never a request, which carries headers)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

from orchestrator.errors import UserError
from orchestrator.scenario import Aws, Scenario

TAG_RUN = "orchestrate:run-id"
TAG_SCENARIO = "orchestrate:scenario"
TAG_EXPIRES = "orchestrate:expires"
ROLES = ("server", "client")
KINDS = ("instance", "placement-group", "security-group", "key-pair")  # the order cleanup removes them in
WAITER = {"Delay": 5, "MaxAttempts": 120}  # instance running/terminated: up to 10 minutes
ADDRESS_URL = "https://checkip.amazonaws.com"
LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")


def config(scenario: Scenario) -> Aws:
    return scenario.hosts.aws or Aws()


def instance_type(aws: Aws, role: str) -> str:
    # A scenario may set one role's type only; the other keeps the default.
    return aws.instance_type.get(role) or Aws().instance_type[role]  # type: ignore[call-overload,index]


def role_counts(scenario: Scenario) -> dict[str, int]:
    return {"server": scenario.hosts.roles.server, "client": scenario.hosts.roles.client}


def make_session(region: str) -> Any:
    """A boto3 session from the standard credential chain only; UserError when it finds none."""
    import boto3  # heavy import, only when AWS is used

    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:
        raise UserError("no AWS credentials found; configure them the standard way (AWS_PROFILE, "
                        "~/.aws/credentials, aws sso login, or an instance role)")
    return session


def client(session: Any, service: str, endpoint_url: str | None) -> Any:
    from botocore.config import Config

    # Standard retry mode backs off on throttling; ClientToken keeps run_instances retries single.
    cfg = Config(retries={"mode": "standard", "max_attempts": 8}, user_agent_extra="orchestrate")
    return session.client(service, endpoint_url=endpoint_url, config=cfg)


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
