"""EC2 as it really behaves, on top of moto: what the aws tests need and moto does not do.

Everything rides on botocore's own event hooks of the session the provider uses (client
side, so it works with moto in-process and with a moto server alike, and the provider
makes exactly the calls it makes against AWS):
- placement groups (moto has no API for them) and the SSM public parameters of the
  shipped Debian 12 images (moto reserves /aws/ names and has no Debian);
- injected errors (`fail[op]`), as EC2 answers them;
- real state transitions: instances `pending` for a few polls before `running`,
  `shutting-down` before `terminated`, and unknown to DescribeInstances right after launch.

`public_default_vpc` gives moto's default VPC the internet gateway and route a real account's
has (`no_internet_route` takes the route away again).

`LabInstances` puts netns lab hosts behind the instances moto "launches", for the end to
end test: the key pair moto makes is authorized on the lab, and each instance's console
shows its lab host's real SSH host key, as cloud-init prints it.
"""

from __future__ import annotations

import copy
from typing import Any

from orchestrator.hosts.aws.ec2 import boto_session

REGION = "eu-west-1"
DEBIAN = "resolve:ssm:/aws/service/debian/release/12/latest/amd64"  # the shipped image setting
DEBIAN_AMIS = {  # what the public parameters answer here: moto images of each architecture
    "/aws/service/debian/release/12/latest/amd64": "ami-04681a1dbd79675a5",
    "/aws/service/debian/release/12/latest/arm64": "ami-0e9271c829888680e",
}
# moto's images behind those ids are Amazon Linux: DescribeImages shows them as the Debian
# images they stand in for (name, description, owner as Debian publishes them).
DEBIAN_NAMES = {
    "ami-04681a1dbd79675a5": "debian-12-amd64-20240717-1811",
    "ami-0e9271c829888680e": "debian-12-arm64-20240717-1811",
}
UBUNTU_AMI = "ami-1e749f67"  # moto's own: ubuntu/images/hvm-ssd/ubuntu-trusty-14.04-amd64-server-...


def public_default_vpc(endpoint: str | None, region: str = REGION) -> str:
    """What a real account's default VPC has and moto's lacks: an internet gateway, attached, that
    its main route table sends 0.0.0.0/0 to (made outside the fakes, so no test counts it as the
    run's). Returns the main route table's id."""
    ec2 = boto_session(region).client("ec2", endpoint_url=endpoint)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    filters = [{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}]
    (main,) = ec2.describe_route_tables(Filters=filters)["RouteTables"]
    if not any(r.get("DestinationCidrBlock") == "0.0.0.0/0" for r in main["Routes"]):
        attached = ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])["InternetGateways"]
        igw = attached[0]["InternetGatewayId"] if attached else \
            ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        if not attached:
            ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        ec2.create_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    return str(main["RouteTableId"])


def no_internet_route(endpoint: str | None, region: str = REGION) -> None:
    """The default VPC as moto makes it: its main table routes nothing out of the VPC."""
    ec2 = boto_session(region).client("ec2", endpoint_url=endpoint)
    ec2.delete_route(RouteTableId=public_default_vpc(endpoint, region), DestinationCidrBlock="0.0.0.0/0")


class Http:
    def __init__(self, status: int):
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""
        self.raw = None


def ok(body: dict[str, Any]) -> tuple[Http, dict[str, Any]]:
    return Http(200), {**body, "ResponseMetadata": {"HTTPStatusCode": 200}}


def err(code: str, message: str, status: int = 400) -> tuple[Http, dict[str, Any]]:
    return Http(status), {"Error": {"Code": code, "Message": message},
                          "ResponseMetadata": {"HTTPStatusCode": status}}


def matches(obj: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
    tags = {t["Key"]: t["Value"] for t in obj.get("Tags", [])}
    for f in filters:
        if f["Name"] == "tag-key" and not set(f["Values"]) & set(tags):
            return False
        if f["Name"].startswith("tag:") and tags.get(f["Name"][4:]) not in f["Values"]:
            return False
    return True


class Fakes:
    """Placement groups, Debian parameters, a call log, injected errors and EC2's state
    transitions; one per test.

    boot_polls: each instance shows `pending` (no public address) in this many
      DescribeInstances answers after its launch; unseen_polls: it is missing from this many
      first (the API does not know it yet); shutdown_polls: `shutting-down` this many times
      after terminate before `terminated`.
    """

    def __init__(self, endpoint: str | None, *, boot_polls: int = 0, unseen_polls: int = 0,
                 shutdown_polls: int = 0):
        self.endpoint = endpoint
        self.groups: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, Any] = {}  # operation -> callable(params, nth) -> error response or None
        self.count: dict[str, int] = {}
        self.boot_polls, self.unseen_polls, self.shutdown_polls = boot_polls, unseen_polls, shutdown_polls
        self.seen: dict[str, int] = {}  # instance id -> DescribeInstances answers it was in (running)
        self.dying: dict[str, int] = {}  # instance id -> answers since terminated
        self.states: list[dict[str, str]] = []  # per DescribeInstances answer: id -> state shown
        self.tokens: dict[str, list[str]] = {}  # ClientToken -> the instances its launch made
        self.untagged: set[str] = set()  # instances a tag filter does not find yet (EC2's lag)

    def install(self, session: Any) -> Any:
        ev = session.events
        for service in ("ec2", "ssm", "service-quotas", "sts"):
            ev.register(f"before-parameter-build.{service}", self._record)
        ev.register("before-call.ec2", self._call)
        ev.register("before-call.service-quotas", self._call)
        ev.register("before-call.ssm.GetParameter", self._parameter)
        ev.register("after-call.ec2.DescribeInstances", self._transitions)
        ev.register("after-call.ec2.DescribeImages", self._debian)
        ev.register("after-call.ec2.RunInstances", self._launched)
        if self.endpoint:
            ev.register("before-send", self._local_only)
        return session

    def _record(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["orch_params"] = copy.deepcopy(params)
        self.calls.append((model.name, copy.deepcopy(params)))
        if model.name == "DescribeInstances":  # moto has no client-token filter: by the ids it made
            flt = params.get("Filters") or []
            for f in flt:
                if f["Name"] == "client-token":
                    ids = [i for t in f["Values"] for i in self.tokens.get(t, [])]
                    f.update(Name="instance-id", Values=ids or ["i-0000000000000000"])

    def _launched(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        token = context.get("orch_params", {}).get("ClientToken")
        if token:
            self.tokens.setdefault(token, []).extend(i["InstanceId"] for i in parsed.get("Instances", []))

    def _local_only(self, request: Any, **_: Any) -> None:
        assert request.url.startswith(self.endpoint), f"request left the test endpoint: {request.url}"

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]

    def params(self, op: str) -> list[dict[str, Any]]:
        return [p for o, p in self.calls if o == op]

    def _parameter(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        name = context.get("orch_params", {}).get("Name", "")
        if name in DEBIAN_AMIS:
            return ok({"Parameter": {"Name": name, "Type": "String", "Value": DEBIAN_AMIS[name]}})
        return None

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
                return err("InvalidPlacementGroup.Duplicate", f"{name} exists")
            tags = [t for s in params.get("TagSpecifications", []) for t in s["Tags"]]
            self.groups[name] = {"GroupName": name, "Strategy": params["Strategy"], "State": "available",
                                 "GroupId": f"pg-{len(self.groups):017x}", "Tags": tags}
            return ok({"PlacementGroup": self.groups[name]})
        if op == "DescribePlacementGroups":
            return ok({"PlacementGroups": [g for g in self.groups.values()
                                           if matches(g, params.get("Filters", []))]})
        if op == "DeletePlacementGroup":
            if self.groups.pop(params["GroupName"], None) is None:
                return err("InvalidPlacementGroup.Unknown", "no such group")
            return ok({})
        return None

    def _debian(self, parsed: dict[str, Any], **_: Any) -> None:
        for img in parsed.get("Images", []):
            if img["ImageId"] in DEBIAN_NAMES:
                name = DEBIAN_NAMES[img["ImageId"]]
                img.update(Name=name, Description=f"Debian 12 ({name})", OwnerId="136693071363",
                           ImageLocation=f"136693071363/{name}")

    def _transitions(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        shown: dict[str, str] = {}
        by_tag = any(f["Name"].startswith("tag") for f in context.get("orch_params", {}).get("Filters") or [])
        for res in parsed.get("Reservations", []):
            keep = []
            for inst in res["Instances"]:
                iid, state = inst["InstanceId"], inst["State"]["Name"]
                if by_tag and iid in self.untagged:
                    continue
                if state == "terminated":
                    n = self.dying.get(iid, 0)
                    self.dying[iid] = n + 1
                    if n < self.shutdown_polls:
                        inst["State"] = {"Code": 32, "Name": "shutting-down"}
                else:
                    n = self.seen.get(iid, 0)
                    self.seen[iid] = n + 1
                    if n < self.unseen_polls:
                        continue
                    if state == "running" and n < self.unseen_polls + self.boot_polls:
                        inst["State"] = {"Code": 0, "Name": "pending"}
                        inst.pop("PublicIpAddress", None)
                        inst.pop("PublicDnsName", None)
                keep.append(inst)
                shown[iid] = inst["State"]["Name"]
            res["Instances"] = keep
        parsed["Reservations"] = [r for r in parsed.get("Reservations", []) if r["Instances"]]
        self.states.append(shown)


class LabInstances:
    """Lab hosts standing in for the instances: moto's private address N is the lab host with
    address N. Authorizes each new key pair on the lab and shows each instance's host key on
    its console; nothing else differs from AWS (the API is moto's)."""

    def __init__(self, lab_dir: str, hosts: dict[str, str]):
        self.lab_dir = lab_dir
        self.hosts = hosts  # address -> lab host (namespace) name
        self.address: dict[str, str] = {}  # instance id -> private address

    def install(self, session: Any) -> Any:
        ev = session.events
        ev.register("after-call.ec2.CreateKeyPair", self._authorize)
        ev.register("after-call.ec2.RunInstances", self._launched)
        ev.register("before-call.ec2.GetConsoleOutput", self._console)
        ev.register("before-parameter-build.ec2.GetConsoleOutput", self._params)
        return session

    def _authorize(self, parsed: dict[str, Any], **_: Any) -> None:
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_ssh_private_key(parsed["KeyMaterial"].encode(), password=None)
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
        with open(f"{self.lab_dir}/authorized_keys", "a") as f:
            f.write(f"{public} {parsed['KeyName']}\n")

    def _launched(self, parsed: dict[str, Any], **_: Any) -> None:
        for inst in parsed.get("Instances", []):
            address = inst["PrivateIpAddress"]
            assert address in self.hosts, f"moto gave {address}, which no lab host has: {sorted(self.hosts)}"
            self.address[inst["InstanceId"]] = address

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["console_of"] = params.get("InstanceId")

    def _console(self, context: dict[str, Any], **_: Any) -> Any:
        import base64

        iid = context.get("console_of", "")
        host = self.hosts[self.address[iid]]
        with open(f"{self.lab_dir}/hosts/{host}/ssh_host_ed25519_key.pub") as f:
            key = f.read().split()
        text = (f"[   10.1] cloud-init[500]: Cloud-init v. 22.4.2 running 'modules:final'\n"
                f"-----BEGIN SSH HOST KEY KEYS-----\n{key[0]} {key[1]} root@{host}\n"
                "-----END SSH HOST KEY KEYS-----\n")
        return ok({"InstanceId": iid, "Output": base64.b64encode(text.encode()).decode()})
