"""Leftovers of aws runs: found by their run tag, removed in dependency order
(`orchestrate cleanup --provider aws`, and a warning before a run). Which regions to look in
comes from the local run records (`state`), so a run outside the profile's region is found."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from orchestrator.errors import UserError
from orchestrator.hosts.aws import ec2 as api  # attributes read at call time: tests patch them
from orchestrator.hosts.aws import state
from orchestrator.hosts.aws.ec2 import (
    LIVE_STATES,
    TAG_EXPIRES,
    TAG_OWNER,
    TAG_RUN,
    TAG_SCENARIO,
    client,
    code_of,
    error_text,
    parse_time,
    tags_of,
)
from orchestrator.signals import shielded

log = logging.getLogger(__name__)


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
    owner: str = ""  # the owner tag: who ran it ("" on resources of older versions)


@dataclass(frozen=True)
class CleanupReport:
    removed: tuple[Leftover, ...]
    failed: tuple[str, ...]  # "kind id: reason"
    others: int = 0  # matching resources of other owners, left alone (cleanup without all_users)
    region: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed


def scan(ec2: Any, *, now: datetime, run_id: str | None = None,
          errors: list[str] | None = None) -> list[Leftover]:
    """Every live resource carrying our run tag (optionally of one run).

    With `errors`, a kind that cannot be listed is noted there and the others are still
    listed (cleanup removes what it can); without, the first failure raises.
    """
    flt = [{"Name": f"tag:{TAG_RUN}", "Values": [run_id]}] if run_id else \
        [{"Name": "tag-key", "Values": [TAG_RUN]}]

    def mk(kind: str, rid: str, tags: dict[str, str], **kw: str) -> Leftover:
        expires = tags.get(TAG_EXPIRES, "")
        when = parse_time(expires)
        # A resource of ours with no readable expiry is treated as expired: a leak costs more.
        return Leftover(kind, rid, tags.get("Name", ""), tags.get(TAG_RUN, ""), tags.get(TAG_SCENARIO, ""),
                        expires, when is None or when <= now, owner=tags.get(TAG_OWNER, ""), **kw)

    def instances() -> list[Leftover]:
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=flt + [{"Name": "instance-state-name", "Values": list(LIVE_STATES)}])
        return [mk("instance", i["InstanceId"], tags_of(i), state=i["State"]["Name"],
                   instance_type=i.get("InstanceType", ""))
                for page in pages for res in page["Reservations"] for i in res["Instances"]]

    def placement_groups() -> list[Leftover]:
        return [mk("placement-group", pg["GroupName"], tags_of(pg))
                for pg in ec2.describe_placement_groups(Filters=flt).get("PlacementGroups", [])
                if pg.get("State") not in ("deleting", "deleted")]

    def security_groups() -> list[Leftover]:
        return [mk("security-group", sg["GroupId"], tags_of(sg))
                for page in ec2.get_paginator("describe_security_groups").paginate(Filters=flt)
                for sg in page["SecurityGroups"]]

    def key_pairs() -> list[Leftover]:
        return [mk("key-pair", kp["KeyName"], tags_of(kp))
                for kp in ec2.describe_key_pairs(Filters=flt).get("KeyPairs", [])]

    out: list[Leftover] = []
    for kind, lister in (("instance", instances), ("placement-group", placement_groups),
                         ("security-group", security_groups), ("key-pair", key_pairs)):
        try:
            out += lister()
        except Exception as exc:
            if errors is None:
                raise
            errors.append(f"could not list {kind}s: {error_text(exc)}")
    return out


def remove(ec2: Any, items: Sequence[Leftover], *,
           deadline: float | None = None) -> tuple[list[Leftover], list[str]]:
    """Delete `items`: instances first (terminated and waited for), then the rest. Tries every step,
    unless the endpoint cannot be reached or the `deadline` (time.monotonic()) has passed: then
    what is not yet removed is reported as such at once, rather than each step timing out."""
    removed: list[Leftover] = []
    failed: list[str] = []
    instances = [x for x in items if x.kind == "instance"]
    stop = ""
    if instances:
        try:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            alive = terminate(ec2, [x.id for x in instances], timeout=left)
        except Exception as exc:  # teardown goes on whatever failed
            alive = {x.id: error_text(exc) for x in instances}
            stop = "the endpoint cannot be reached" if api.offline(exc) else ""
        removed += [x for x in instances if x.id not in alive]
        failed += [f"instance {iid}: {why}" for iid, why in alive.items()]
    deletes: list[tuple[Leftover, Callable[[], Any]]] = []
    for item in items:
        if item.kind == "placement-group":
            deletes.append((item, partial(delete_when_free,
                                          partial(ec2.delete_placement_group, GroupName=item.id))))
    for item in items:
        if item.kind == "security-group":
            deletes.append((item, partial(delete_when_free,
                                          partial(ec2.delete_security_group, GroupId=item.id))))
    for item in items:
        if item.kind == "key-pair":
            deletes.append((item, partial(ec2.delete_key_pair, KeyName=item.id)))
    for item, delete in deletes:
        if not stop and deadline is not None and time.monotonic() > deadline:
            stop = "the teardown deadline passed"
        if stop:
            failed.append(f"{item.kind} {item.id}: not removed ({stop})")
            continue
        if _attempt(delete, item, removed, failed):
            stop = "the endpoint cannot be reached"
    return removed, failed


def _attempt(step: Callable[[], Any], item: Leftover, removed: list[Leftover], failed: list[str]) -> bool:
    """One delete; True when it failed because the endpoint cannot be reached."""
    try:
        step()
        removed.append(item)
    except Exception as exc:
        code = code_of(exc)
        if code.endswith("NotFound") or code == "InvalidPlacementGroup.Unknown":
            removed.append(item)  # already gone: the goal is reached
        else:
            failed.append(f"{item.kind} {item.id}: {error_text(exc)}")
            return api.offline(exc)
    return False


# A group is "in use" until the last instance's network interface is gone, which lags
# the instance's own `terminated` by seconds to minutes.
IN_USE = ("DependencyViolation", "InvalidGroup.InUse", "InvalidPlacementGroup.InUse")


def delete_when_free(delete: Callable[[], Any]) -> None:
    api.retry(delete, codes=IN_USE, what="delete (still in use)")


def terminate(ec2: Any, ids: Sequence[str], *, timeout: float | None = None) -> dict[str, str]:
    """Terminate `ids` and poll until each is `terminated`; returns those that are not, with why.

    Our own polling, not botocore's instance_terminated waiter, which gives up on an
    instance still `pending`. Terminate is sent again to any instance not yet shutting
    down: one launched seconds ago may answer InvalidInstanceID.NotFound and live on.
    """
    first, cap, total = api.BACKOFF
    deadline = time.monotonic() + (timeout if timeout is not None else
                                   api.STATE_TIMEOUT_S + total)
    left = dict.fromkeys(ids, "not seen yet")
    delay = first
    while True:
        _send_terminate(ec2, [i for i, st in left.items() if st not in ("shutting-down", "terminated")])
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-id", "Values": list(left)}])
        for page in pages:
            for res in page["Reservations"]:
                for inst in res["Instances"]:
                    if inst["InstanceId"] in left:
                        left[inst["InstanceId"]] = inst["State"]["Name"]
        left = {i: st for i, st in left.items() if st != "terminated"}
        if not left:
            return {}
        if time.monotonic() > deadline:
            return {i: f"still {st} after terminate" for i, st in left.items()}
        time.sleep(min(delay, api.POLL_S))
        delay = min(delay * 2, cap)


def _send_terminate(ec2: Any, ids: list[str]) -> None:
    if not ids:
        return
    try:
        ec2.terminate_instances(InstanceIds=ids)
        return
    except Exception as exc:
        if code_of(exc) != "InvalidInstanceID.NotFound":
            raise
    for iid in ids:  # one unknown id fails the whole call: send the others alone
        try:
            ec2.terminate_instances(InstanceIds=[iid])
        except Exception as exc:
            if code_of(exc) != "InvalidInstanceID.NotFound":
                raise
            log.info("aws: terminate %s: not known yet; sending again", iid)


def find_leftovers(region: str | None, *, all: bool = False, run_id: str | None = None,
                   endpoint_url: str | None = None, now: datetime | None = None,
                   session: Any = None, all_users: bool = False) -> list[Leftover]:
    """Resources tagged by orchestrate in `region`: expired ones, or every one with `all`/`run_id`;
    only the caller's own runs unless `all_users`."""
    session = session or api.make_session(region)
    ec2 = client(session, "ec2", endpoint_url)
    found = _find(ec2, all=all, run_id=run_id, now=now)
    if all_users:
        return found
    me = api.identity(session, endpoint_url)
    return [x for x in found if x.owner == me]


def _find(ec2: Any, *, all: bool, run_id: str | None, now: datetime | None,
          errors: list[str] | None = None) -> list[Leftover]:
    found = scan(ec2, now=now or datetime.now(UTC), run_id=run_id, errors=errors)
    return found if (all or run_id) else [x for x in found if x.expired]


def cleanup(region: str | None, *, all: bool = False, run_id: str | None = None,
            endpoint_url: str | None = None, now: datetime | None = None, session: Any = None,
            dry_run: bool = False, all_users: bool = False, profile: str | None = None) -> CleanupReport:
    """Remove what `find_leftovers` finds (instances first); returns what was removed and what failed.

    `region` None: the session's (profile or environment). Only this caller's runs (the owner
    tag) unless `all_users`; the report counts the others it left alone.
    With `dry_run`, `removed` lists what would be removed and nothing is touched.
    """
    session = session or api.make_session(region, profile)
    ec2 = client(session, "ec2", endpoint_url)
    unlisted: list[str] = []
    items = _find(ec2, all=all, run_id=run_id, now=now, errors=unlisted)
    others = 0
    if not all_users:
        me = api.identity(session, endpoint_url)
        mine = [x for x in items if x.owner == me]
        others, items = len(items) - len(mine), mine
    region = str(session.region_name)
    if dry_run or not items:
        return CleanupReport(tuple(items) if dry_run else (), tuple(unlisted), others, region)
    with shielded():
        removed, failed = remove(ec2, items)
    failed = unlisted + failed
    for line in failed:
        log.warning("cleanup: could not remove %s", line)
    return CleanupReport(tuple(removed), tuple(failed), others, region)


def warn_expired(region: str, *, endpoint_url: str | None = None, now: datetime | None = None,
                 session: Any = None) -> list[str]:
    """Warnings for `run` about this caller's expired leftovers in `region` (asked of the API) and
    in other regions (from the local run records, no call); never raises."""
    when = now or datetime.now(UTC)
    elsewhere = sorted({r.region for r in state.load_all() if r.region != region
                        and (parse_time(r.expires) or when) <= when})
    lines = [f"local records name expired run(s) in {', '.join(elsewhere)} that may have left resources; "
             "check with `orchestrate cleanup --provider aws --dry-run`"] if elsewhere else []
    try:
        items = find_leftovers(region, endpoint_url=endpoint_url, now=now, session=session)
    except Exception as exc:
        return lines + [f"could not check {region} for leftover orchestrate resources: {error_text(exc)}"]
    if not items:
        return lines
    running = [x for x in items if x.kind == "instance"]
    runs = sorted({x.run_id or "?" for x in items})
    what = f"{len(items)} expired orchestrate resource(s) in {region} from run(s) {', '.join(runs)}"
    if running:
        types = ", ".join(sorted({x.instance_type for x in running if x.instance_type}))
        what += f", including {len(running)} instance(s) still billed ({types})"
    return lines + [f"{what}; remove them with `orchestrate cleanup --provider aws --region {region}`"]


def cleanup_everywhere(region: str | None, *, profile: str | None = None, endpoint_url: str | None = None,
                       **kw: Any) -> list[CleanupReport]:
    """`cleanup` in `region`, or with none in every region the local run records name plus the
    profile's (or AWS_REGION's) own; one report per region. A record whose run has nothing
    left in its region is removed (not with dry_run)."""
    records = [r for r in state.load_all() if not kw.get("run_id") or r.run_id == kw["run_id"]]
    where: dict[str, str | None] = {}
    if region:
        where[region] = endpoint_url
    else:
        for r in records:
            where.setdefault(r.region, endpoint_url or r.endpoint_url)
        if home := _home_region(profile):
            where.setdefault(home, endpoint_url)
    if not where:
        raise UserError("aws: no region: pass --region, or set one in the profile or AWS_REGION")
    reports = []
    for reg, ep in sorted(where.items()):
        session = api.make_session(reg, profile)
        reports.append(cleanup(reg, endpoint_url=ep, session=session, **kw))
        if not kw.get("dry_run"):
            _forget_finished(client(session, "ec2", ep), [r for r in records if r.region == reg])
    return reports


def _home_region(profile: str | None) -> str | None:
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.session.Session(profile_name=profile).region_name
    except BotoCoreError as exc:  # ProfileNotFound and friends
        raise UserError(f"aws: {exc}") from None


def _forget_finished(ec2: Any, records: list[state.RunState]) -> None:
    """Remove the records of runs with nothing left (a kind that could not be listed counts as
    empty only if the record names none of it)."""
    for rec in records:
        errors: list[str] = []
        try:
            found = scan(ec2, now=datetime.now(UTC), run_id=rec.run_id, errors=errors)
        except Exception as exc:  # the record stays; the next cleanup looks again
            log.info("aws: could not check run %s: %s", rec.run_id, error_text(exc))
            continue
        unlisted = any(f"could not list {kind}s" in e for kind, ids in rec.ids.items() if ids for e in errors)
        if not found and not unlisted:
            rec.path.unlink(missing_ok=True)
