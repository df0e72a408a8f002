"""What the aws provider checks before it creates anything: that some zone offers every
role's instance type (and a subnet is there), an image of each type's architecture and of
an apt-based OS (Debian, Ubuntu: what the playbooks install with; its SSH user follows), the
vCPU quota, and the launch itself (a DryRun with the real launch arguments, placement aside,
so an organisation policy refuses it here). Failing here leaves nothing to remove.

A scenario that cannot work (a type no zone offers, an image of the wrong architecture)
is a UserError on its key; a permission or quota the account lacks is a RunFailed naming
the check, with what to ask for.

The path SSH will take (this machine's address against the SSH rule, each subnet's route to an
internet gateway) is checked next, from what this returns: hosts.aws.reach.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import RunFailed, UserError
from orchestrator.hosts.aws.ec2 import (
    DOCS,
    client,
    code_of,
    error_text,
    hint,
    instance_type,
    is_aws_error,
    step,
)
from orchestrator.hosts.aws.launch import run_args
from orchestrator.scenario import Aws

log = logging.getLogger(__name__)

# "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", counted in vCPUs.
STANDARD_QUOTA = ("ec2", "L-1216C47A")
_NOT_STANDARD = ("inf", "dl", "hpc", "mac", "trn", "u-", "vt")
_SSM_ARCH = {"x86_64": "amd64", "arm64": "arm64"}  # EC2's architecture -> the image path's


@dataclass(frozen=True)
class Subnet:
    id: str
    zone: str
    vpc_id: str


@dataclass(frozen=True)
class RolePlan:
    role: str
    count: int
    instance_type: str
    arch: str  # x86_64 | arm64
    image: str  # ami-...
    vcpus: int
    os_family: str = "debian"  # debian | ubuntu (apt-based: what the playbooks support)
    ssh_user: str = "admin"  # hosts.aws.ssh_user, else the image's default user


@dataclass(frozen=True)
class Checked:
    roles: tuple[RolePlan, ...]
    subnets: tuple[Subnet, ...]  # usable ones, in the order zones are tried
    vpc_cidr: str
    notes: tuple[str, ...]  # checks that could not be made, said plainly


def standard(itype: str) -> bool:
    return itype[:1] in "acdhimrtz" and not itype.startswith(_NOT_STANDARD)


def placement_refuses(placement: str, itype: str, described: dict[str, Any]) -> str:
    """Why `placement` cannot take `itype` ("" if it can). EC2 answers such a launch with a
    capacity-like error; said here, before anything exists, it names the real reason."""
    family = itype.split(".")[0]
    burstable = bool(described.get("BurstablePerformanceSupported")) or family.startswith("t")
    if placement == "cluster" and (burstable or family.endswith("-flex")):
        kind = "burstable (T)" if burstable else "flex"
        return (f"a cluster placement group does not take {itype} ({kind} types are not supported "
                "there, and EC2 would answer as if it had no capacity); use placement: none or spread, "
                "or a non-burstable type such as c6i.large")
    return ""


# The apt-based families the playbooks support, and each one's default SSH user.
APT_FAMILIES = {"debian": "admin", "ubuntu": "ubuntu"}
_NOT_APT = re.compile(r"\b(al20\d\d|amzn\d?|amazon linux|rhel|red hat|centos|rocky|alma ?linux|fedora|"
                      r"suse|sles|bottlerocket|windows|freebsd|flatcar)", re.I)


def os_family(image: dict[str, Any], setting: str = "") -> tuple[str | None, str]:
    """(family, why): an apt family the playbooks support (why ""), "other" (an OS they do not
    support) or None (cannot be told from the image's name and description), with why."""
    text = " ".join(str(image.get(k) or "") for k in ("Name", "Description", "ImageLocation"))
    if str(image.get("Platform") or "").lower() == "windows":
        return "other", "it is a Windows image; the playbooks install with apt, so use Debian or Ubuntu"
    if m := _NOT_APT.search(text):
        return "other", (f"it is not an apt-based OS ({m[1]!r} in {image.get('Name') or text!r}); the "
                      "playbooks install with apt, so use Debian or Ubuntu")
    for family in APT_FAMILIES:
        if re.search(rf"\b{family}\b", f"{text} {setting}", re.I):
            return family, ""
    return None, (f"its OS cannot be told from its name {image.get('Name')!r}; the playbooks need "
                  "Debian or Ubuntu (apt)")


def image_for(image: str, arch: str) -> str:
    """The image setting for `arch`: an SSM path ending in /amd64 or /arm64 follows the type."""
    if image.startswith("resolve:ssm:"):
        head, _, tail = image.rpartition("/")
        if tail in _SSM_ARCH.values():
            return f"{head}/{_SSM_ARCH.get(arch, tail)}"
    return image


def _instance_types(ec2: Any, aws: Aws, types: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each role's instance type as EC2 describes it; refused if unknown here or the placement refuses it."""
    wanted = sorted(set(types.values()))
    with step("pre-flight: describe instance types"):
        try:
            found = {t["InstanceType"]: t for t in ec2.describe_instance_types(InstanceTypes=wanted)
                     ["InstanceTypes"]}
        except Exception as exc:
            if code_of(exc) != "InvalidInstanceType":
                raise
            raise UserError(f"hosts.aws.instance_type: {error_text(exc)}") from None
    for role, itype in types.items():
        if itype not in found:
            raise UserError(f"hosts.aws.instance_type.{role}: {itype} is not an instance type "
                            f"in {aws.region}")
    for itype in types.values():
        why = placement_refuses(aws.placement, itype, found[itype])
        if why:
            raise UserError(f"hosts.aws.placement: {why}")
    return found


def _images(ec2: Any, aws: Aws, roles: list[RolePlan]) -> dict[str, dict[str, Any]]:
    """Each role's image as EC2 describes it; refused if missing or of another architecture."""
    with step("pre-flight: describe images"):
        try:
            # every resolved image is some role's: the same set the resolving loop built
            ids = sorted({r.image for r in roles})
            described = {i["ImageId"]: i for i in ec2.describe_images(ImageIds=ids)["Images"]}
        except Exception as exc:
            if not code_of(exc).startswith("InvalidAMIID"):
                raise
            raise UserError(f"hosts.aws.image: {error_text(exc)}") from None
    for r in roles:
        img = described.get(r.image)
        if img is None:
            raise UserError(f"hosts.aws.image: {r.image} is not an image in {aws.region}")
        if img.get("Architecture") and img["Architecture"] != r.arch:
            raise UserError(f"hosts.aws.image: {r.image} is {img['Architecture']}, but {r.instance_type} "
                            f"({r.role}) runs {r.arch}; use an image of that architecture, or an SSM "
                            "path ending in /amd64 or /arm64 (it follows each role's type)")
    return described


def check(session: Any, aws: Aws, counts: dict[str, int], resolve: Any, *,
          tags: dict[str, str] | None = None, base: str = "orchestrate-preflight",
          expires: str = "1970-01-01T00:00:00Z") -> Checked:
    """Everything above, in that order; `resolve(ssm, image)` turns an image setting into an AMI id.
    `tags`, `base` and `expires` are the run's, for the DryRun."""
    ec2 = client(session, "ec2", aws.endpoint_url)
    types = {role: instance_type(aws, role) for role in counts}
    found = _instance_types(ec2, aws, types)

    ssm = client(session, "ssm", aws.endpoint_url)
    roles: list[RolePlan] = []
    images: dict[str, str] = {}
    for role, count in counts.items():
        itype = types[role]
        archs = found[itype].get("ProcessorInfo", {}).get("SupportedArchitectures", [])
        arch = "x86_64" if "x86_64" in archs else "arm64" if "arm64" in archs else (archs or ["?"])[0]
        setting = image_for(aws.image, arch)
        if setting not in images:
            images[setting] = resolve(ssm, setting)
        vcpus = int(found[itype].get("VCpuInfo", {}).get("DefaultVCpus", 0))
        roles.append(RolePlan(role, count, itype, arch, images[setting], vcpus))

    described = _images(ec2, aws, roles)
    for i, r in enumerate(roles):
        family, why = os_family(described[r.image], aws.image)
        if family == "other" or (family is None and not aws.ssh_user):
            raise UserError(f"hosts.aws.image: {r.image} ({r.role}) is refused: {why}"
                            + ("" if family else "; or set hosts.aws.ssh_user if it is apt-based"))
        if family is None:  # the user named the image and its user: trusted to be apt-based
            log.warning("orchestrate: WARNING aws: %s: %s; going on as hosts.aws.ssh_user is set",
                        r.image, why)
        roles[i] = dataclasses.replace(r, os_family=family or "unknown",
                                       ssh_user=aws.ssh_user or APT_FAMILIES[family or "debian"])

    subnets, vpc_cidr = _subnets(ec2, aws, roles)
    notes = _quota(session, ec2, aws, roles)
    _dry_run(ec2, aws, roles, subnets[0], tags or {}, base, expires)
    return Checked(tuple(roles), tuple(subnets), vpc_cidr, tuple(notes))


def _subnets(ec2: Any, aws: Aws, roles: list[RolePlan]) -> tuple[list[Subnet], str]:
    """The subnets in zones that offer every role's type, zones in name order."""
    with step("pre-flight: describe subnets"):
        if aws.subnet:
            try:
                raw = ec2.describe_subnets(SubnetIds=[aws.subnet])["Subnets"]
            except Exception as exc:
                if not code_of(exc).startswith("InvalidSubnetID"):
                    raise
                raise UserError(f"hosts.aws.subnet: {error_text(exc)}") from None
        else:
            raw = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
            if not raw:
                raise UserError(f"hosts.aws.subnet: no default VPC subnet in {aws.region}; set one")
    all_subnets = sorted((Subnet(s["SubnetId"], s["AvailabilityZone"], s["VpcId"]) for s in raw),
                         key=lambda s: s.zone)
    wanted = sorted({r.instance_type for r in roles})
    with step("pre-flight: describe instance type offerings"):
        zones: dict[str, set[str]] = {t: set() for t in wanted}
        pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": wanted}])
        for page in pages:
            for o in page["InstanceTypeOfferings"]:
                zones.setdefault(o["InstanceType"], set()).add(o["Location"])
    usable = [s for s in all_subnets if all(s.zone in zones[t] for t in wanted)]
    if not usable:
        offered = "; ".join(f"{t} in {', '.join(sorted(zones[t])) or 'no zone'}" for t in wanted)
        where = ", ".join(f"{s.id} ({s.zone})" for s in all_subnets)
        key = "hosts.aws.subnet" if aws.subnet else "hosts.aws.instance_type"
        raise UserError(f"{key}: no subnet is in a zone that offers every role's type in {aws.region}: "
                        f"{offered}; subnets: {where}")
    with step("pre-flight: describe the VPC"):
        vpc = ec2.describe_vpcs(VpcIds=[usable[0].vpc_id])["Vpcs"][0]
    return [s for s in usable if s.vpc_id == usable[0].vpc_id], str(vpc.get("CidrBlock", ""))


def _quota(session: Any, ec2: Any, aws: Aws, roles: list[RolePlan]) -> list[str]:
    """The standard-instance vCPU quota against what the run adds to what already runs."""
    need = sum(r.vcpus * r.count for r in roles if standard(r.instance_type))
    if not need:
        return []
    try:
        quotas = client(session, "service-quotas", aws.endpoint_url)
        limit = float(quotas.get_service_quota(ServiceCode=STANDARD_QUOTA[0], QuotaCode=STANDARD_QUOTA[1])
                      ["Quota"]["Value"])
    except Exception as exc:  # no permission, or no service-quotas endpoint (moto, some partitions)
        if not is_aws_error(exc):
            raise
        note = (f"vCPU quota not checked (service-quotas {STANDARD_QUOTA[1]}: {error_text(exc)}); "
                f"the run needs {need} standard vCPUs")
        log.warning("orchestrate: WARNING aws: %s", note)
        return [note]
    with step("pre-flight: describe running instances"):
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
        live = [i for p in pages for res in p["Reservations"] for i in res["Instances"]
                if standard(i.get("InstanceType", ""))]
    unknown = sorted({i["InstanceType"] for i in live if not (i.get("CpuOptions") or {}).get("CoreCount")})
    by_type: dict[str, int] = {}
    if unknown:
        with step("pre-flight: describe instance types"):
            by_type = {t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"])
                       for t in ec2.describe_instance_types(InstanceTypes=unknown)["InstanceTypes"]}
    used = 0
    for i in live:
        cpu = i.get("CpuOptions") or {}
        used += (int(cpu["CoreCount"]) * int(cpu.get("ThreadsPerCore", 1)) if cpu.get("CoreCount")
                 else by_type.get(i["InstanceType"], 0))
    if used + need > limit:
        raise RunFailed(f"aws pre-flight: vCPU quota: the run needs {need} standard vCPUs, {used} of "
                        f"{limit:g} are in use in {aws.region} (quota {STANDARD_QUOTA[1]}, Running "
                        "On-Demand Standard instances; ask for more in Service Quotas, or stop some"
                        + ("; or start with scenarios/aws-smoke.yaml, which fits 4 vCPUs" if limit - used >= 4
                           else "") + f"; see the {DOCS})", phase="provision")
    return []


def _dry_run(ec2: Any, aws: Aws, roles: list[RolePlan], subnet: Subnet, tags: dict[str, str], base: str,
             expires: str) -> None:
    """A DryRun launch per role with the launch's own arguments (network interface, tags, metadata
    options, shutdown behaviour, user data), less what does not exist yet (key, security and
    placement group): the permissions and any policy on them are checked, nothing started."""
    for r in roles:
        kw = run_args(aws, role=r.role, image=r.image, instance_type=r.instance_type, count=r.count,
                      subnet_id=subnet.id, tags=tags, base=base, expires=expires)
        try:
            ec2.run_instances(DryRun=True, **kw)
        except Exception as exc:
            if code_of(exc) == "DryRunOperation":
                continue
            if not is_aws_error(exc):
                raise
            raise RunFailed(f"aws pre-flight: DryRun launch of {r.instance_type} ({r.role}): "
                            f"{error_text(exc)}{hint(exc)}", phase="provision") from None
        raise RunFailed(f"aws pre-flight: DryRun launch of {r.instance_type} ({r.role}) answered "
                        "without DryRunOperation; not continuing", phase="provision")

