"""What an aws run would cost, and how long it would hold instances: no API calls.

Prices come from data/aws_prices.json, a hand-kept table whose own note says how it was
made; every figure shown from it is marked an estimate, with that provenance."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.hosts.aws.ec2 import config, instance_type, role_counts
from orchestrator.plan import expand, fmt_seconds
from orchestrator.scenario import Scenario

PRICES_FILE = Path(__file__).resolve().parents[2] / "data" / "aws_prices.json"
# Boot, SSH wait, deploy playbook and teardown are billed too (per second, 60 s minimum).
PROVISION_OVERHEAD_S = 600.0
# Each client host auto-scale adds: launch, boot, SSH wait, the deploy playbook on it alone.
GROW_OVERHEAD_S = 300.0


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
    count: int  # the most the run holds (auto-scale's max)
    hourly: float | None  # per instance, including its public IPv4; None: not in the table
    count_min: int | None = None  # auto-scale: the clients it starts with (and may keep)


@dataclass(frozen=True)
class CostEstimate:
    region: str
    hours: float
    roles: tuple[RoleCost, ...]
    total: float | None  # None when some instance type has no price in the table
    currency: str
    prices_as_of: str
    disclaimer: str
    # auto-scale: the least it costs (min clients, no point scaled, `hours_min`); `total` is then
    # the most (max clients for all of `hours`: later clients are billed less, so an upper bound)
    total_min: float | None = None
    hours_min: float | None = None

    @property
    def unpriced(self) -> list[str]:
        return [r.instance_type for r in self.roles if r.hourly is None]

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "estimate": True}


def estimate(scenario: Scenario, hours: float, *, prices: PriceTable | None = None,
             hours_min: float | None = None) -> CostEstimate:
    """What the scenario's instances cost for `hours` at list price (from the project's table).

    With client auto-scale it is a range: `total` holds max clients for `hours` (the most),
    `total_min` min clients for `hours_min` (default `hours`; the least: no point scaled)."""
    if hours <= 0:
        raise ValueError(f"hours must be > 0, got {hours}")
    aws, table = config(scenario), prices or load_prices()
    least = role_counts(scenario, start=True)
    scaled = scenario.hosts.roles.autoscale is not None
    hours_min = (hours if hours_min is None else hours_min) if scaled else None
    roles: list[RoleCost] = []
    total: float | None = 0.0
    total_min: float | None = 0.0 if scaled else None
    for role, count in role_counts(scenario).items():
        itype = instance_type(aws, role)
        price = table.hourly(aws.region, itype)
        hourly = None if price is None else price + table.public_ipv4_hourly
        scales = scaled and role == "client"
        roles.append(RoleCost(role, itype, count, hourly, least[role] if scales else None))
        total = total + hourly * count * hours if hourly is not None and total is not None else None
        if total_min is not None and hours_min is not None:
            total_min = total_min + hourly * least[role] * hours_min if hourly is not None else None
    disclaimer = (f"estimate only: on-demand list prices as of {table.as_of} kept in the project, "
                  f"per-second billing with a 60 s minimum; {table.note}")
    return CostEstimate(aws.region, hours, tuple(roles), total, table.currency, table.as_of, disclaimer,
                        total_min=total_min, hours_min=hours_min)


def worst_hourly(scenario: Scenario, *, prices: PriceTable | None = None) -> float | None:
    """What the run costs per hour at its largest (auto-scale's max clients); None: unpriced."""
    est = estimate(scenario, 1.0, prices=prices)
    return est.total


def check_spend(scenario: Scenario, max_hourly: float | None = None, *,
                prices: PriceTable | None = None) -> None:
    """Refuse (UserError, nothing started) a plan whose worst case costs more per hour than
    `max_hourly` (default hosts.aws.max_hourly); a limit that cannot be checked refuses too."""
    aws = config(scenario)
    limit = max_hourly if max_hourly is not None else aws.max_hourly
    if limit is None:
        return
    key = "--max-hourly" if max_hourly is not None else "hosts.aws.max_hourly"
    est = estimate(scenario, 1.0, prices=prices)
    if est.total is None:
        raise UserError(f"{key}: cannot check ${limit:g}/h: no price for {', '.join(est.unpriced)} in "
                        f"{aws.region} in the project's table (as of {est.prices_as_of})")
    if est.total > limit:
        what = ", ".join(f"{r.count} x {r.instance_type}" for r in est.roles)
        raise UserError(f"{key}: the plan costs up to ~${est.total:.3f}/h ({what}, auto-scale at its "
                        f"most; estimate as of {est.prices_as_of}), above the limit ${limit:g}/h")


def planned_seconds(scenario: Scenario, *, least: bool = False) -> float:
    """How long the instances live: the plan's runs and baseline plus provisioning and teardown.
    With auto-scale the most (every point scaled to max, one client added at a time), or with
    `least` the least (no point needs more than min)."""
    plan = expand(scenario)
    scale = scenario.hosts.roles.autoscale
    grow = 0.0 if scale is None or least else (plan.scale_runs_max * plan.per_run_s
                                               + (scale.max - scale.min) * GROW_OVERHEAD_S)
    return plan.expected_seconds + PROVISION_OVERHEAD_S + grow


def describe_plan(scenario: Scenario, *, hours: float | None = None,
                  prices: PriceTable | None = None) -> list[str]:
    """Lines for `orchestrate plan`: what would be created and what it should cost. No API calls."""
    aws = config(scenario)
    seconds = hours * 3600 if hours is not None else planned_seconds(scenario)
    least = hours * 3600 if hours is not None else planned_seconds(scenario, least=True)
    est = estimate(scenario, seconds / 3600, prices=prices, hours_min=least / 3600)
    where = f"region {aws.region}" + (f" via {aws.endpoint_url}" if aws.endpoint_url else "")
    group = "no placement group" if aws.placement == "none" else f"one {aws.placement} placement group"
    lines = [f"aws: {where}, {group}"]
    for r in est.roles:
        price = f"~${r.hourly:.4f}/h each, estimate" if r.hourly is not None else "price not in the table"
        count = f"{r.count_min}..{r.count}" if r.count_min is not None else f"{r.count}"
        scaled = (f"; auto-scale: {r.count_min} at first, one more while the client is the limit"
                  if r.count_min is not None else "")
        lines.append(f"  {r.role}: {count} x {r.instance_type} ({price}{scaled})")
    image = aws.image
    if image.startswith("resolve:ssm:"):
        image += " (looked up at run time)"
    user = aws.ssh_user or "the image's (admin on Debian, ubuntu on Ubuntu)"
    lines.append(f"  image: {image}, ssh user {user}")
    ssh_from = aws.ssh_cidr or ("the VPC's range" if aws.ssh_address == "private" else
                                "this machine's public address")
    lines.append(f"  subnet: {aws.subnet or 'a default subnet in a zone offering every type'}; SSH to the "
                 f"{aws.ssh_address} addresses, admitted only from {ssh_from}")
    lines.append(f"  expiry: {fmt_seconds(aws.expire_after)} after launch; instances power off "
                 "(terminate) by themselves then")
    if est.total is not None and est.total_min is not None:  # auto-scale: from none scaled to all
        lines.append(f"  estimated cost: ~${est.total_min:.2f}..${est.total:.2f} {est.currency} for "
                     f"~{fmt_seconds(least)}..{fmt_seconds(seconds)}, from min clients (no point needs more) "
                     "to max clients held throughout "
                     f"(ESTIMATE: hand-kept list prices as of {est.prices_as_of}, typed from memory, "
                     "not fetched; excludes EBS, data transfer, tax; check AWS's pricing page)")
    elif est.total is not None:
        lines.append(f"  estimated cost: ~${est.total:.2f} {est.currency} for ~{fmt_seconds(seconds)} "
                     f"(ESTIMATE: hand-kept list prices as of {est.prices_as_of}, typed from memory, "
                     "not fetched; excludes EBS, data transfer, tax; check AWS's pricing page)")
    else:
        lines.append(f"  estimated cost: unknown, no price for {', '.join(est.unpriced)} in {aws.region} "
                     f"(table as of {est.prices_as_of})")
    worst = worst_hourly(scenario, prices=prices)
    if worst is not None:
        limit = f" (limit ${aws.max_hourly:g}/h)" if aws.max_hourly is not None else ""
        most = sum(r.count for r in est.roles)
        scaled = ", auto-scale at its most" if any(r.count_min is not None for r in est.roles) else ""
        lines.append(f"  worst case per hour: ~${worst:.3f} ({most} instances{scaled}){limit}; "
                     f"~${worst * aws.expire_after / 3600:.2f} if they are held until they expire "
                     f"({fmt_seconds(aws.expire_after)}: a run that cannot tear down)")
    if seconds > aws.expire_after:
        lines.append(f"  WARNING: the run (~{fmt_seconds(seconds)}) outlasts hosts.aws.expire_after "
                     f"({fmt_seconds(aws.expire_after)}); the instances would power off mid-run")
    return lines




def held_cost(region: str, held: dict[str, tuple[str, float, float | None]], *, now: float,
              prices: PriceTable | None = None) -> dict[str, Any]:
    """What the run's instances cost, estimated: `held` is instance id -> (type, launched, ended or
    None: still held at `now`), epoch seconds. records.Cost's fields."""
    table = prices or load_prices()
    hours: dict[str, float] = {}
    for itype, start, end in held.values():
        billed = max(60.0, (end if end is not None else now) - start)  # per second, 60 s minimum
        hours[itype] = hours.get(itype, 0.0) + billed / 3600
    total: float | None = 0.0
    for itype, h in hours.items():
        price = table.hourly(region, itype)
        total = None if price is None or total is None else total + (price + table.public_ipv4_hourly) * h
    return {"estimate": True, "currency": table.currency,
            "total": None if total is None else round(total, 4),
            "instance_hours": {t: round(h, 4) for t, h in sorted(hours.items())},
            "prices_as_of": table.as_of,
            "note": f"ESTIMATE in {region}: on-demand list prices as of {table.as_of} kept in the project "
                    "(hand-kept, not fetched), each instance from launch to teardown, public IPv4 "
                    "included; excludes EBS, data transfer, tax"}
