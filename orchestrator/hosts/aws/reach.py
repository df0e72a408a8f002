"""Port 22 reachable from here, for an aws scenario: the path SSH will take to the instances,
checked before anything exists (so, each piece of the path on its own). One module, two uses:
`orchestrate doctor` prints `outbound` and `checks` as lines; a run's provisioning calls
`ssh_path` right after the provider's pre-flight, before its first create, and is refused there.

- `outbound`: this network lets TCP to port 22 out (a real connection to a public SSH server,
  read up to its banner; corporate and hotel networks often block it);
- `ssh_rule`: the run's security group will admit this machine: its public address (as AWS
  sees it) inside `hosts.aws.ssh_cidr`, or, with `ssh_address: private`, its route to the VPC
  leaving from an address inside the VPC's range;
- `route`: with public addresses, each subnet the launch may use (pre-flight's `Checked.subnets`,
  zone after zone) has a route table that sends 0.0.0.0/0 to an internet gateway (a private
  subnet gives instances public addresses nothing can reach).

Network ACLs and firewalls inside the instance are not checked: the run's SSH wait names them.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any

from orchestrator.check import Check
from orchestrator.errors import RunFailed, UserError
from orchestrator.hosts.aws.ec2 import error_text, is_aws_error
from orchestrator.hosts.aws.preflight import Checked
from orchestrator.scenario import Aws

log = logging.getLogger(__name__)

# A public SSH server that answers on port 22 from anywhere: reaching its banner shows this
# network lets SSH out (no instance exists yet to try). --ssh-probe (doctor and run) changes it.
SSH_PROBE = ("github.com", 22)
PROBE_TIMEOUT_S = 5.0
_NO_WAY = ("open outbound TCP port 22 to the region in this network's firewall, or run orchestrate "
           "from inside the VPC (hosts.aws.ssh_address: private)")


def banner(host: str, port: int, timeout: float) -> str:
    """"" when an SSH server at host:port answered with its banner, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            first = s.recv(8)
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror}"
    except TimeoutError:
        return f"no answer within {timeout:g} s (dropped on the way)"
    except OSError as exc:
        return exc.strerror or str(exc)
    return "" if first.startswith(b"SSH-") else f"connected, but no SSH banner (got {first!r})"


def outbound(target: tuple[str, int] = SSH_PROBE, timeout: float = PROBE_TIMEOUT_S) -> Check:
    host, port = target
    why = banner(host, port, timeout)
    if not why:
        return Check("ssh out", "ok", f"TCP port {port} leaves this network: {host}:{port} answered SSH")
    if why.startswith("cannot resolve"):
        return Check("ssh out", "warn", f"cannot tell whether TCP port {port} leaves this network: {why}",
                     "check DNS, or name another public SSH server: --ssh-probe HOST[:PORT]")
    return Check("ssh out", "fail", f"TCP port {port} to {host} from here: {why}", _NO_WAY)


def source_address(network: str) -> str:
    """The address this machine sends from towards `network` (its route's source; nothing is sent)."""
    net = ipaddress.ip_network(network, strict=False)
    probe = net.network_address + (1 if net.num_addresses > 1 else 0)
    with socket.socket(socket.AF_INET if net.version == 4 else socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.connect((str(probe), 22))
        return str(s.getsockname()[0])


def ssh_rule(aws: Any, vpc_cidr: str, my_address: Callable[[], str],
             source: Callable[[str], str] = source_address) -> Check:
    """Will the run's security group admit SSH from here? `aws` is the scenario's hosts.aws."""
    if aws.ssh_address == "private":  # SSH admitted from the VPC, unless ssh_cidr says otherwise
        try:
            here = source(vpc_cidr)
        except (OSError, ValueError) as exc:
            return Check("ssh rule", "fail", f"no route from here to the VPC {vpc_cidr}: {exc}",
                         "run orchestrate inside the VPC, or hosts.aws.ssh_address: public")
        admitted = str(aws.ssh_cidr or vpc_cidr)
        inside = ipaddress.ip_address(here) in ipaddress.ip_network(admitted, strict=False)
        by = "hosts.aws.ssh_cidr" if aws.ssh_cidr else "the VPC"
        return Check("ssh rule", "ok" if inside else "fail",
                     f"SSH admitted from {by} {admitted}; this machine reaches the VPC {vpc_cidr} from {here}"
                     + ("" if inside else ", outside it"),
                     "run orchestrate inside the VPC, or hosts.aws.ssh_address: public"
                     + (f", or --set hosts.aws.ssh_cidr={here}/32" if aws.ssh_cidr else ""))
    try:
        here = my_address()
    except UserError as exc:
        if aws.ssh_cidr:
            return Check("ssh rule", "warn", f"SSH admitted from {aws.ssh_cidr}; cannot tell if that is "
                         f"this machine: {exc}", "check that hosts.aws.ssh_cidr holds this machine's address")
        return Check("ssh rule", "fail", f"the run admits SSH from this machine's public address, and "
                     f"cannot find it: {exc}", "set hosts.aws.ssh_cidr to this machine's public address/32")
    if not aws.ssh_cidr:
        return Check("ssh rule", "ok", f"SSH will be admitted from this machine's public address {here}/32")
    inside = ipaddress.ip_address(here) in ipaddress.ip_network(aws.ssh_cidr, strict=False)
    return Check("ssh rule", "ok" if inside else "fail",
                 f"SSH admitted from hosts.aws.ssh_cidr {aws.ssh_cidr}; this machine is {here}"
                 + ("" if inside else ", outside it: the security group will drop its SSH"),
                 f"--set hosts.aws.ssh_cidr={here}/32 (or drop ssh_cidr: the run then admits this address)")


def route(ec2: Any, subnet_id: str, vpc_id: str) -> Check:
    """Does the launch subnet route the internet through a gateway (so public addresses answer)?"""
    tables = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
    if not tables:  # no table of its own: the VPC's main table routes it
        main = [{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "association.main", "Values": ["true"]}]
        tables = ec2.describe_route_tables(Filters=main)["RouteTables"]
    routes = [r for t in tables for r in t.get("Routes", [])]
    default = [r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"
               or r.get("DestinationIpv6CidrBlock") == "::/0"]
    via = [r.get("GatewayId", "") for r in default if str(r.get("GatewayId", "")).startswith("igw-")]
    if via:
        return Check("ssh route", "ok", f"subnet {subnet_id} routes the internet through {via[0]}")
    other = ", ".join(sorted({str(r.get("NatGatewayId") or r.get("GatewayId") or r.get("InstanceId") or "?")
                              for r in default}))
    return Check("ssh route", "fail",
                 f"subnet {subnet_id} has no route to an internet gateway"
                 + (f" (its default route goes to {other})" if other else "")
                 + ": its instances' public addresses cannot be reached from here",
                 "set hosts.aws.subnet to a public subnet, route 0.0.0.0/0 to an internet gateway, "
                 "or run from inside the VPC with hosts.aws.ssh_address: private")


def checks(ec2: Any, aws: Aws, checked: Checked, my_address: Callable[[], str],
           source: Callable[[str], str] | None = None) -> list[Check]:
    """The path past this network, once pre-flight has the VPC and its subnets: the SSH rule,
    then, with public addresses, the route of every subnet the launch may use (the run tries
    them zone after zone, and auto-scaling launches into the first one that had room)."""
    out = [ssh_rule(aws, checked.vpc_cidr, my_address, source or source_address)]
    if aws.ssh_address != "public":
        return out
    for subnet in checked.subnets:
        try:
            out.append(route(ec2, subnet.id, subnet.vpc_id))
        except Exception as exc:  # a denied DescribeRouteTables: said, the run may still work
            if not is_aws_error(exc):
                raise
            out.append(Check("ssh route", "warn", f"cannot read subnet {subnet.id}'s routes: "
                             f"{error_text(exc)}", "allow ec2:DescribeRouteTables, or check the subnet "
                             "is public by hand"))
            break
    return out


def ssh_path(ec2: Any, aws: Aws, checked: Checked, my_address: Callable[[], str], *,
             probe: tuple[str, int] | None = None, source: Callable[[str], str] | None = None) -> None:
    """A run's use, before anything is created: `outbound` and `checks`, each failing one refusing
    the run in one line (the check's name, what was seen, the fix). The SSH rule is the
    scenario's setting (UserError on its key, exit 2); a subnet without a route to an internet
    gateway is the account's network (RunFailed, phase provision, exit 1, like the vCPU quota).
    Only warned about: TCP port 22 out of this network (the probe's server, which a firewall or
    DNS here may block and not the instances), an address that cannot be looked up while
    ssh_cidr is set, and route tables we may not read."""
    if aws.ssh_address == "public":
        _warn(outbound(probe or SSH_PROBE))
    for check in checks(ec2, aws, checked, my_address, source):
        if check.status != "fail":
            _warn(check)
        elif check.name == "ssh rule":
            key = "hosts.aws.ssh_cidr" if aws.ssh_address == "public" or aws.ssh_cidr else \
                "hosts.aws.ssh_address"
            raise UserError(f"{key}: {check.name}: {check.detail}; fix: {check.fix}")
        else:
            raise RunFailed(f"aws pre-flight: {check.name}: {check.detail}; fix: {check.fix}",
                            phase="provision")


def _warn(check: Check) -> None:
    if check.status != "ok":
        log.warning("orchestrate: WARNING aws: %s: %s%s; going on", check.name, check.detail,
                    f"; {check.fix}" if check.fix else "")
