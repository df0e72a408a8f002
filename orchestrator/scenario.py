"""Scenario files: the YAML schema, loading with file:line errors, and `--set` overrides.

Every problem in a file is reported at once, each as `FILE:LINE: key.path: message`,
so a user fixes a scenario in one pass. Nothing here starts anything.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PositiveFloat,
    PrivateAttr,
    Tag,
    ValidationError,
)

from orchestrator import bounded
from orchestrator.cpus import parse_list, ranges
from orchestrator.errors import Problem, UserError
from orchestrator.metrics import NAMES, same
from orchestrator.point import Axis, PointKey, Value

# --- value types -------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(value: Any) -> float:
    """'10s', '1m30s', '500ms', '2h' or a bare number of seconds -> seconds (float > 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 500ms or 1m30s")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        if text.startswith("-"):
            raise ValueError(f"duration must be positive, got {value!r}")
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"cannot read {value!r} as a duration; expected e.g. 10s, 500ms, 1m30s")
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        seconds = sum(float(n) * scale[u] for n, u in parts)
    else:
        raise ValueError(f"expected a duration such as 10s, 500ms or 1m30s, got {value!r}")
    if seconds <= 0 or (isinstance(value, str) and value.strip().startswith("-")):
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


CPU_KEYWORDS = ("even", "odd", "all")


def parse_cpus(value: Any) -> list[int] | str:
    """[0, 2, 4] or '0,2,4-6' -> CPU numbers; 'even', 'odd', 'all' stay symbolic.

    The keywords are resolved against the host that runs the process (see
    resolve_cpus), so one scenario fits a 2-core laptop and a 64-core server.
    """
    if isinstance(value, str) and value.strip() in CPU_KEYWORDS:
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, str):
        try:
            value = parse_list(value)
        except ValueError:
            raise ValueError(f"cannot read {value!r} as CPUs; expected e.g. [0, 2] or '0-3,8'") from None
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of CPU numbers, got {value!r}")
    for c in value:
        if not isinstance(c, int) or isinstance(c, bool) or c < 0:
            raise ValueError(f"CPU numbers are integers >= 0, got {c!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"CPU list has duplicates: {value}")
    return value


def parse_warmup(value: Any) -> float:
    """A warm-up may be 0 (none); otherwise a duration like any other."""
    return 0.0 if value in (0, "0", "0s") else parse_duration(value)


def _as_list(value: Any) -> Any:
    # A matrix axis may be written as one value or a list of values.
    return value if isinstance(value, list) else [value]


# What a user may write (the JSON Schema editors check against), before it is parsed.
_DURATION_TEXT = Annotated[str, Field(pattern=r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h)\s*)+$")]
_CPU_TEXT = Annotated[str, Field(pattern=r"^\s*(even|odd|all|\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*)\s*$")]

Duration = Annotated[float, BeforeValidator(parse_duration, json_schema_input_type=float | _DURATION_TEXT)]
Cpus = Annotated[list[int] | Literal["even", "odd", "all"],
                 BeforeValidator(parse_cpus, json_schema_input_type=list[int] | int | _CPU_TEXT)]


def resolve_cpus(spec: list[int] | str, available: list[int] | set[int]) -> list[int]:
    """A scenario's CPU set on a host with `available` CPUs (keywords resolved)."""
    cpus = sorted(available)
    if spec == "all":
        return cpus
    if spec == "even":
        return [c for c in cpus if c % 2 == 0] or cpus[:1]
    if spec == "odd":
        return [c for c in cpus if c % 2 == 1] or cpus[-1:]
    if isinstance(spec, str):  # validation lets only the keywords above through as text
        raise ValueError(f"unknown CPU keyword {spec!r}")
    return list(spec)
PositiveInt = Annotated[int, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]

ARCHES = ("reuseport", "main-sub", "uring")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# --- schema ------------------------------------------------------------------


class ClientRange(_Model):
    """Client auto-scale: start each point with `min` client hosts and add one while the
    client is the limit (client-bound, or an open-loop generator not sustaining its rate)."""

    min: Annotated[int, Field(ge=1, le=64)] = 1
    max: Annotated[int, Field(ge=1, le=64)]


# A union picked by the value's shape, so an error names one reading, not both; the tags
# are left out of the key path in messages (_UNION_TAGS).
_UNION_TAGS = {"client-count", "client-range"}
ClientCount = Annotated[
    Annotated[Annotated[int, Field(ge=1, le=64)], Tag("client-count")]
    | Annotated[ClientRange, Tag("client-range")],
    Discriminator(lambda v: "client-range" if isinstance(v, dict | ClientRange) else "client-count")]


class Roles(_Model):
    server: Annotated[int, Field(ge=1, le=1)] = 1
    client: ClientCount = 1  # a number of hosts, or {min, max} to auto-scale

    @property
    def clients(self) -> int:
        """Client hosts a provider makes ready: the count, or the auto-scale's max."""
        return self.client.max if isinstance(self.client, ClientRange) else self.client

    @property
    def autoscale(self) -> ClientRange | None:
        return self.client if isinstance(self.client, ClientRange) else None


_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}


def parse_rate(v: Any) -> Any:
    """A bit rate: a number of bits/s, or text like "100mbit" (tc's units: bit, kbit, mbit,
    gbit; decimal)."""
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)?\s*", v.lower())
        if not m:
            raise ValueError(f"not a bit rate: {v!r} (a number of bits/s, or e.g. 100mbit, 1gbit)")
        return int(float(m[1]) * _RATE_UNITS[m[2] or "bit"])
    return v


class Link(_Model):
    """netns only: a cap on every host's link, in each direction (a tbf qdisc at both ends of
    its veth): `pps` packets/s (each packet counted as at least 1500 bytes), or `rate` bits/s
    (bytes as they are, no packet-size floor); `queue`: the tbf's queue in bytes (default: what
    50 ms at the cap holds)."""

    pps: PositiveInt | None = None
    rate: Annotated[PositiveInt | None,
                    BeforeValidator(parse_rate, json_schema_input_type=int | str | None)] = None
    queue: PositiveInt | None = None


class Ssh(_Model):
    user: str = "root"
    port: Port = 22
    key: str | None = None  # private key file; default: the lab's or the ssh agent's
    host_key_checking: bool = True  # off only by explicit choice
    connect_timeout: Duration = 10.0


def _cidr(value: Any) -> Any:
    if value is None:
        return None
    import ipaddress

    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise ValueError(f"expected a CIDR such as 203.0.113.7/32, got {value!r}") from None


class Aws(_Model):
    region: str = "us-east-1"
    instance_type: dict[Literal["server", "client"], str] = {
        "server": "c6i.2xlarge",
        "client": "c6i.2xlarge",
    }
    image: str = "resolve:ssm:/aws/service/debian/release/12/latest/amd64"
    subnet: str | None = None
    ssh_user: str | None = None  # default: the image's (Debian: admin, Ubuntu: ubuntu)
    # The instances' own dead-man switch; at most a day, so a forgotten run's bill is bounded.
    expire_after: Annotated[Duration, Field(gt=0, le=24 * 3600.0)] = 3 * 3600.0
    endpoint_url: str | None = None  # for moto or a private endpoint
    # cluster: one rack, comparable runs (not for burstable T or -flex types); spread; none.
    placement: Literal["cluster", "spread", "none"] = "cluster"
    max_hourly: PositiveFloat | None = None  # USD/h: refuse a plan whose worst case costs more
    # Who may SSH in (a CIDR); default: this machine's public address (a "what is my IP"
    # lookup, which a proxy or VPN gets wrong), or the VPC's range with ssh_address: private.
    ssh_cidr: Annotated[str | None, BeforeValidator(_cidr)] = None
    # Which instance address the orchestrator connects to: private when it runs in the VPC.
    ssh_address: Literal["public", "private"] = "public"


class Size(_Model):
    """netns only: what of this machine one lab host may use, like a cloud VM's size."""

    cpu: Annotated[float, Field(ge=0.01, le=4096)] | None = None  # CPUs' worth of time (cgroup quota)
    cpus: Cpus | None = None  # the CPUs it may run on at all (cgroup cpuset)


class Hosts(_Model):
    provider: Literal["local", "netns", "static", "aws"] = "local"
    roles: Roles = Roles()
    link: Link = Link()
    size: dict[Literal["server", "client"], Size] = {}  # netns: per role
    inventory: str | None = None  # static: an Ansible inventory (INI or YAML)
    lab: str | None = None  # netns: lab name (default: the scenario's)
    ssh: Ssh = Ssh()
    aws: Aws | None = None
    deploy: bool = True  # run playbooks/site.yml on remote hosts first
    # Ansible forks for the deploy: one per host of the run, at most this many.
    deploy_forks: PositiveInt = 50


class Server(_Model):
    arch: Annotated[list[str], BeforeValidator(
        _as_list, json_schema_input_type=str | list[str])] = ["reuseport"]
    threads: Annotated[list[PositiveInt], BeforeValidator(
        _as_list, json_schema_input_type=PositiveInt | list[PositiveInt])] = [1]
    cpus: Cpus = [0]
    port: Port = 8000
    bind: str | None = None  # default: 127.0.0.1 on one host, 0.0.0.0 across hosts
    body: str = "hello\n"
    # The built-in server's listen backlog (the kernel caps it at net.core.somaxconn); None: 4096.
    # A list is an axis.
    backlog: PositiveInt | list[PositiveInt] | None = None
    # A server of the user's own instead of server/: a shell command template with
    # {threads} {port} {cpus} {arch} {workdir} {config}; {config} is `config`
    # rendered with jinja2 into the run's work directory.
    command: str | None = None
    config: str | None = None
    # Where readiness is probed (must answer 2xx); {host} and {port} are filled in.
    # Default: the URL the load generator requests.
    ready_url: str | None = None
    # Log files a user's command writes (e.g. "{workdir}/error.log"): kept under raw/ with the
    # server's own output, for failed runs too.
    logs: list[str] = []
    ready_timeout: Duration = 20.0
    # Busy CPU per request in the server (server/ --work-us), simulating application work;
    # a list is an axis.
    work_us: Annotated[int, Field(ge=0, le=1_000_000)] | list[
        Annotated[int, Field(ge=0, le=1_000_000)]] = 0
    # The project's own server built at git refs (branches, tags, commit ids; refs.py): one, or
    # a list as an axis (versions side by side); `repo`: the git repository they are in
    # (default: this checkout).
    ref: Annotated[str, Field(min_length=1)] | list[Annotated[str, Field(min_length=1)]] | None = None
    repo: str | None = None


Rate = Annotated[float, Field(ge=1)]
MAX_BODY_BYTES = 64 * 1024  # a request body the server reads whole (its parser's own limit is higher)
SERVED_METHODS = ("GET", "HEAD", "POST", "PUT", "OPTIONS")  # server/src/HttpParser.cc kServed


def parse_percent(value: Any) -> float:
    """'2%' or 2 -> 2.0 (percent)."""
    if isinstance(value, bool):
        raise ValueError("expected a percentage such as 2% or 2")
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            value = float(value.strip()[:-1])
        except ValueError:
            raise ValueError(f"cannot read {value!r} as a percentage; expected e.g. 2%") from None
    if not isinstance(value, int | float):
        raise ValueError(f"expected a percentage such as 2% or 2, got {value!r}")
    return float(value)


Percent = Annotated[float, BeforeValidator(parse_percent, json_schema_input_type=float | Annotated[
    str, Field(pattern=r"^\s*\d+(\.\d+)?\s*%\s*$")])]


class Slo(_Model):
    """What a rate must meet to count as served: latency bounds on the corrected (from the
    intended send time) percentiles, and a ceiling on failed requests."""

    p50: Duration | None = None
    p90: Duration | None = None
    p99: Duration | None = None
    p99_9: Duration | None = None
    errors: Annotated[Percent, Field(ge=0, le=100)] = 0.1  # socket errors, timeouts, non-2xx

    def latency_bounds_ms(self) -> dict[str, float]:
        return {k: getattr(self, k) * 1000.0 for k in ("p50", "p90", "p99", "p99_9")
                if getattr(self, k) is not None}


class Search(_Model):
    """Capacity under an SLO: the highest rate whose achieved rate is at least 99% of target
    and whose latency meets the SLO, found by doubling from min_rate, then bisecting."""

    slo: Slo
    min_rate: Rate
    max_rate: Rate
    precision: Annotated[Percent, Field(gt=0, le=50)] = 2.0  # stop when the bracket is this narrow
    # A step is decided on all its runs' requests pooled. Near the knee (inside the bracket, and
    # the pass that bounds it) a step takes at least knee_runs runs: one short window's p99 says
    # little about the next. A step whose pooled figures fall within `noise` of a limit, or
    # whose latest run disagrees with them, is repeated, up to max_repeat runs.
    noise: Annotated[Percent, Field(ge=0, le=100)] = 10.0
    knee_runs: Annotated[int, Field(ge=1, le=9)] = 3
    max_repeat: Annotated[int, Field(ge=1, le=9)] = 5

    @property
    def runs_near_knee(self) -> int:
        """The runs a step near the knee takes at least: knee_runs, capped by max_repeat."""
        return min(self.knee_runs, self.max_repeat)


class Load(_Model):
    # wrk: closed loop only, the reference's tool. orchestrate-load (loadgen/): closed loop,
    # or open loop at `rate`, with latency measured from each request's intended send time.
    tool: Literal["wrk", "orchestrate-load"] = "wrk"
    # Requests/s in total over all client hosts (split evenly): the run is open loop.
    # A matrix axis; none: closed loop.
    rate: Annotated[list[Rate] | None, BeforeValidator(
        lambda v: v if v is None else _as_list(v), json_schema_input_type=Rate | list[Rate] | None)] = None
    warmup: Annotated[float, BeforeValidator(parse_warmup,
                                             json_schema_input_type=float | _DURATION_TEXT)] = 0.0
    threads: PositiveInt = 1
    connections: Annotated[list[PositiveInt], BeforeValidator(
        _as_list, json_schema_input_type=PositiveInt | list[PositiveInt])] = [64]
    duration: Duration = 10.0
    timeout: Duration = 2.0
    cpus: Cpus = [1]
    pipeline: Annotated[int, Field(ge=1, le=1024)] = 1
    path: str = "/"
    # The request's shape. keepalive false: a new connection per request (a list is an axis).
    keepalive: bool | list[bool] = True
    method: str = "GET"
    headers: dict[str, str] = {}
    body: Annotated[str, Field(max_length=MAX_BODY_BYTES)] | None = None
    # Capacity search instead of a fixed rate (orchestrate-load, open loop): see Search.
    search: Search | None = None


class Iperf3(_Model):
    udp_length: Annotated[int, Field(ge=16, le=65507)] = 64
    duration: Duration = 5.0
    bitrate: str = "0"  # 0 = as fast as the path allows
    tcp: bool = True
    tcp_duration: Duration = 3.0
    port: Port = 5201


class Baseline(_Model):
    enabled: bool = True
    iperf3: Iperf3 = Iperf3()


class Thresholds(_Model):
    """Verdict thresholds (percentages); defaults follow the reference's diagnosis."""

    ceiling_use: Annotated[float, Field(gt=0, le=200)] = 90.0
    server_busy: Annotated[float, Field(gt=0, le=100)] = 90.0
    client_busy: Annotated[float, Field(gt=0, le=100)] = 90.0
    packets_per_request: Annotated[float, Field(gt=0)] = 2.0  # when not measured


def _collectors_shorthand(value: Any) -> Any:
    # `telemetry: [pidstat, mpstat]` is short for `telemetry: {collectors: [pidstat, mpstat]}`.
    return {"collectors": value} if isinstance(value, list) else value


Collector = Literal["pidstat", "mpstat", "sar", "perf"]


class Telemetry(_Model):
    collectors: list[Collector] = ["pidstat", "mpstat", "sar"]
    # Where the collectors run on each host. Default: the CPUs no part of the run is pinned to
    # (on any host sharing that machine's kernel); with none spare, they share the measured
    # CPUs and the summary says so.
    cpus: Cpus | None = None


SYSCTL_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9_-]+)+$")


def _sysctl_value(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ValueError(f"a sysctl value is a number or a string such as '1024 65535', got {v!r}")
    if isinstance(v, str) and (not v.strip() or any(c in v for c in "\r\n\0")):
        raise ValueError(f"a sysctl value is one line, not empty, got {v!r}")
    return v


def _sysctls(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of sysctl name to value (a list of values is an axis)")
    for name, v in value.items():
        if not isinstance(name, str) or not SYSCTL_NAME.match(name):
            raise ValueError(f"{name!r} is not a sysctl name such as net.core.somaxconn")
        for x in v if isinstance(v, list) else [v]:
            _sysctl_value(x)
        if isinstance(v, list) and not v:
            raise ValueError(f"{name}: an axis needs at least one value")
    return value


SysctlValue = int | str
Sysctls = Annotated[dict[str, SysctlValue | list[SysctlValue]], BeforeValidator(
    _sysctls, json_schema_input_type=dict[str, SysctlValue | list[SysctlValue]])]
SYSCTL_SCOPES = ("sysctl", "server", "client")  # every host, the server host, the client hosts


class Kernel(_Model):
    """Kernel settings (sysctl names, `net.core.somaxconn`) applied on the hosts before each
    run and restored after it; a list of values is an axis. Multi-field values are strings."""

    sysctl: Sysctls = {}  # every host
    server: Sysctls = {}  # the server host only
    client: Sysctls = {}  # the client hosts only


PAIRED = tuple(n for n in NAMES if n != "capacity")  # figures of runs, what rounds pair


class Compare(_Model):
    """A factor compared side by side: every other value of `factor` (an axis this scenario
    sweeps) against `baseline`, at each combination of the other axes, round by round."""

    factor: str
    baseline: str | int | float | bool
    metric: Literal[PAIRED] = "qps"  # type: ignore[valid-type]  # `until` and the gate's


Order = Literal["alternate", "random"]
ORDERS: tuple[str, ...] = ("alternate", "random")


class RoundsRange(_Model):
    """Rounds until the interval is narrow enough: at least `min`, at most `max`; after each
    round from `min` on, stop once every variant's 95% interval on compare.metric has a
    half-width of `until` or less. Stopping is on width, never on significance."""

    min: Annotated[int, Field(ge=2, le=1000)] = 3
    max: Annotated[int, Field(ge=2, le=1000)]
    until: Annotated[Percent, Field(gt=0, le=100)] | None = None
    # the order of the factor's values in each round: alternate (round k starts at the k-th
    # value: A B, B A, ...) or random (a shuffle per round from `seed`, recorded)
    order: Order = "alternate"
    seed: int = 1


RoundsSpec = Annotated[
    Annotated[Annotated[int, Field(ge=2, le=1000)], Tag("round-count")]
    | Annotated[RoundsRange, Tag("round-range")],
    Discriminator(lambda v: "round-range" if isinstance(v, dict | RoundsRange) else "round-count")]
_UNION_TAGS |= {"round-count", "round-range"}


class Scenario(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    description: str = ""
    hosts: Hosts = Hosts()
    server: Server = Server()
    load: Load = Load()
    baseline: Baseline = Baseline()
    telemetry: Annotated[Telemetry, BeforeValidator(
        _collectors_shorthand, json_schema_input_type=Telemetry | list[Collector])] = Telemetry()
    repeat: Annotated[int, Field(ge=1, le=1000)] = 1
    # Read the pinned CPUs' foreign load and pauses before the first window and after the last
    # (the summary's host_noise; local and lab hosts only): about 1.7 s an invocation.
    host_noise: bool = True
    # A factor compared in paired rounds (each round runs every value of it once, the order
    # changing between rounds); rounds: N, or {min, max, until: 2%, order, seed}.
    compare: Compare | None = None
    rounds: RoundsSpec | None = None
    thresholds: Thresholds = Thresholds()
    kernel: Kernel = Kernel()
    max_runs: Annotated[int, Field(ge=1)] = 500  # guards against a mistyped matrix
    # Named variants: an axis whose values are whole blocks of overrides, each written as the
    # keys it changes (`{nginx-small: {server: {config: ...}}}`) and validated as if written in
    # place. A run of variant V uses the scenario with V's block merged in (variant_scenario).
    variants: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)],
                   dict[str, Any]] = {}
    _variant_cache: dict[str, Scenario] = PrivateAttr(default_factory=dict)


# --- axes --------------------------------------------------------------------

# The keys that may be swept, in the order a point lists them. A key is an axis of a scenario
# when written as a list (the classic four always are: every point has had them since
# format 1). A new axis is one more entry here, with its key in the schema.
AXES: tuple[Axis, ...] = (
    Axis("server.arch", "", classic=True),
    Axis("server.threads", "t", classic=True),
    Axis("load.connections", "c", classic=True),
    Axis("load.rate", "q", classic=True),
    Axis("variant", ""),
    Axis("server.work_us", "w"),
    Axis("load.keepalive", "ka"),
    Axis("server.ref", "ref"),
    Axis("server.backlog", "b"),
)
AXIS_NAMES = tuple(a.name for a in AXES)
# Every sysctl a scenario sets is a key `kernel.<scope>.<sysctl name>`; written as a list, it
# is an axis after those above, in the file's order (run ids: `somaxconn8`).
SYSCTL_PREFIX = "kernel."


def sysctl_axis(name: str) -> Axis:
    """The axis of `kernel.<scope>.<sysctl>`: short tag from the sysctl's last part."""
    return Axis(name, name.rsplit(".", 1)[-1])


def axes_of(names: Any) -> tuple[Axis, ...]:
    """The declared axes plus those of any sysctl among `names` (for run ids)."""
    return AXES + tuple(sysctl_axis(n) for n in names if str(n).startswith(SYSCTL_PREFIX))


def setting(sc: Scenario, key: str) -> Any:
    """The value of a dotted key as validated (a list where the key is swept). Under a
    mapping (a sysctl's scope) the rest of the key is one name: `kernel.sysctl.net.core.somaxconn`."""
    if key == "variant":
        return list(sc.variants) or None
    node: Any = sc
    parts = key.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, dict):
            return node.get(".".join(parts[i:]))
        node = getattr(node, part)
    return node


def axis_values(sc: Scenario, axis: Axis) -> list[Value] | None:
    """The values a scenario sweeps on `axis`; None when the key is not swept here."""
    value = setting(sc, axis.name)
    if axis.classic:
        return list(value) if value is not None else [None]
    return list(value) if isinstance(value, list) else None


def sysctl_axes(sc: Scenario) -> tuple[Axis, ...]:
    """The sysctls this scenario sweeps (written as lists), in scope then file order."""
    return tuple(sysctl_axis(f"kernel.{scope}.{name}") for scope in SYSCTL_SCOPES
                 for name, v in getattr(sc.kernel, scope).items() if isinstance(v, list))


def swept(sc: Scenario) -> tuple[tuple[Axis, list[Value]], ...]:
    """The axes this scenario sweeps, each with its values, in AXES order, then its sysctls."""
    out = []
    for axis in AXES + sysctl_axes(sc):
        values = axis_values(sc, axis)
        if values is not None:
            out.append((axis, values))
    return tuple(out)


def points(sc: Scenario) -> list[PointKey]:
    """Every point of the matrix, the last axis varying fastest."""
    found = [PointKey()]
    for axis, values in swept(sc):
        found = [p.with_axis(axis.name, v) for p in found for v in values]
    return found


def at(sc: Scenario, point: PointKey, key: str) -> Any:
    """A setting as one run of `point` uses it: the point's value if `key` is one of its
    axes, else its variant's value (if it has one), else the scenario's own (single) value."""
    return point[key] if key in point else setting(for_point(sc, point), key)


def for_point(sc: Scenario, point: PointKey) -> Scenario:
    """The scenario a run of `point` uses: its variant's, or `sc` itself."""
    name = point.get("variant")
    return variant_scenario(sc, str(name)) if name is not None and sc.variants else sc


def merged(base: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """`base` with `block`'s keys written over it, mappings merged key by key (a new dict)."""
    out = copy.deepcopy(base)
    for k, v in block.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# Keys about the whole matrix, not one run: a variant's own scenario leaves them out
_MATRIX_ONLY = ("variants", "compare", "rounds")


def variant_scenario(sc: Scenario, name: str) -> Scenario:
    """The scenario with variant `name`'s block merged in (and no variants of its own)."""
    got = sc._variant_cache.get(name)
    if got is None:
        if name not in sc.variants:
            raise KeyError(f"no variant {name!r} (the scenario has: {', '.join(sc.variants)})")
        base = sc.model_dump(mode="json", exclude=set(_MATRIX_ONLY))
        got = sc._variant_cache[name] = Scenario.model_validate(merged(base, sc.variants[name]))
    return got


# --- loading -----------------------------------------------------------------

MAX_SCENARIO_BYTES = bounded.MiB  # hand-written scenarios are a few KiB


@dataclass(frozen=True)
class Loaded:
    """A valid scenario with where it came from (for messages and the results folder)."""

    scenario: Scenario
    source: str
    raw: dict[str, Any]  # the document after --set overrides, as written
    lines: dict[tuple, int] = field(default_factory=dict, compare=False)  # key path -> line; 0: --set
    sets: tuple[str, ...] = ()

    def problem(self, path: tuple, message: str) -> Problem:
        """A problem found after loading (e.g. by a command's own rules), located like the others."""
        return _mark_set(Problem(self.source, _line_for(self.lines, path), _dotted(path), message),
                         list(self.sets))


def _compose(text: str, source: str) -> tuple[Any, dict[tuple, int], list[Problem]]:
    """Parse YAML into plain data plus a map from key path to 1-based line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        what = getattr(exc, "problem", None) or str(exc)
        ctx = getattr(exc, "context", None)
        msg = f"YAML syntax error: {what}" + (f" ({ctx})" if ctx else "")
        return None, {}, [Problem(source, line, "", msg)]
    if node is not None:
        bounded.expanded_nodes(node, source)  # before anything walks or builds it
    lines: dict[tuple, int] = {}
    problems: list[Problem] = []

    def walk(n: yaml.Node | None, path: tuple) -> None:
        if n is None:
            return
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in n.value:
                key = k.value
                if key in seen:
                    problems.append(Problem(source, k.start_mark.line + 1, _dotted(path + (key,)),
                                            "duplicate key; each key may appear once"))
                seen.add(key)
                lines[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, path + (i,))

    walk(node, ())
    data = yaml.safe_load(text) if node is not None else None
    return data, lines, problems


def _dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _line_for(lines: dict[tuple, int], path: tuple) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get((), 1)  # an empty document: point at its first line


def _model_at(path: tuple) -> type[BaseModel] | None:
    """The model class that holds the keys at `path` (for did-you-mean)."""
    cls: Any = Scenario
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return None
        field = cls.model_fields.get(str(part))
        if field is None:
            return None
        cls = _unwrap(field.annotation)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(tp):
            found = _unwrap(arg)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
    return tp


def _message(err: Mapping[str, Any], loc: tuple) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc[:-1])
        known = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown key '{key}'{hint} (expected one of: {', '.join(known)})"
    if kind == "missing":
        return "required key is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = err.get("input")
    if kind not in ("value_error",) and not isinstance(got, dict | list):
        msg += f", got {got!r}"
    return msg


def _validate(data: Any, source: str, lines: dict[tuple, int]
              ) -> tuple[Scenario | None, list[Problem], list[tuple]]:
    """Schema-check `data`; returns the scenario (if valid), problems and their paths."""
    if not isinstance(data, dict):
        return None, [Problem(source, _line_for(lines, ()), "",
                              "a scenario is a YAML mapping (name:, hosts:, server:, load: ...)")], [()]
    try:
        return Scenario.model_validate(data), [], []
    except ValidationError as exc:
        problems, locs = [], []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p not in _UNION_TAGS)
            if loc[:2] == ("telemetry", "collectors") and isinstance(data.get("telemetry"), list):
                loc = ("telemetry", *loc[2:])  # written in the list shorthand: point into the list
            # A matrix axis written as a scalar was wrapped in a list: point at the key.
            if loc and isinstance(loc[-1], int) and not isinstance(_get(data, loc[:-1]), list):
                loc = loc[:-1]
            locs.append(loc)
            problems.append(Problem(source, _line_for(lines, loc), _dotted(loc), _message(err, loc)))
        return None, problems, locs


def _get(data: Any, path: tuple) -> Any:
    for p in path:
        try:
            data = data[p]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _without(data: dict[str, Any], locs: list[tuple]) -> dict[str, Any]:
    """A copy of `data` with the keys at `locs` removed (so defaults stand in)."""
    out = copy.deepcopy(data)
    for loc in locs:
        key_path = loc
        while key_path and isinstance(key_path[-1], int):
            key_path = key_path[:-1]  # drop the whole list, not one item
        parent = _get(out, key_path[:-1])
        if isinstance(parent, dict):
            parent.pop(key_path[-1], None)
    return out


def _search_problems(sc: Scenario, add: Callable[[tuple, str], None]) -> None:
    search = sc.load.search
    assert search is not None
    key = ("load", "search")
    if sc.load.tool != "orchestrate-load":
        add(key, "a capacity search paces requests at chosen rates; it needs load.tool: orchestrate-load")
    if sc.load.rate is not None:
        add(("load", "rate"), "set either load.rate (fixed rates) or load.search (the rate is searched), "
            "not both")
    if sc.load.pipeline > 1:
        add(("load", "pipeline"), "a capacity search runs open loop; pipeline must be 1")
    if search.min_rate >= search.max_rate:
        add(key + ("max_rate",), f"must be above min_rate ({search.min_rate:g}); got {search.max_rate:g}")
    if not search.slo.latency_bounds_ms():
        add(key + ("slo",), "needs at least one latency bound, e.g. {p99: 2ms}")
    if search.min_rate / sc.hosts.roles.clients < 1:
        add(key + ("min_rate",), f"{search.min_rate:g} requests/s over {sc.hosts.roles.clients} client "
            "hosts is under 1 each")


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token: methods, header names


def _request_problems(sc: Scenario, add: Callable[[tuple, str], None]) -> None:
    """The request's shape: nothing that would split a request line or a header."""
    load = sc.load
    if not _TOKEN.match(load.method):
        add(("load", "method"), "a method is one token (letters, digits, !#$%&'*+.^_`|~-); "
            f"got {load.method!r}")
    elif sc.server.command is None and load.method not in SERVED_METHODS:
        add(("load", "method"), f"the built-in server answers 405 to {load.method!r} "
            f"(it serves: {', '.join(SERVED_METHODS)})")
    for name, value in load.headers.items():
        if not _TOKEN.match(name):
            add(("load", "headers", name), "a header name is one token (no spaces, colons or CR/LF)")
        elif any(c in value for c in "\r\n\0"):
            add(("load", "headers", name), "a header value may not hold CR, LF or NUL")
        elif name.lower() in ("content-length", "transfer-encoding", "connection", "host"):
            add(("load", "headers", name), "set by the load generator itself (load.body, "
                "load.keepalive, the target); leave it out")
    keepalive = load.keepalive if isinstance(load.keepalive, list) else [load.keepalive]
    if False in keepalive and load.pipeline > 1:
        add(("load", "pipeline"), "pipelining needs keep-alive connections; with load.keepalive "
            "false, pipeline must be 1")
    if any(c in load.path for c in "\r\n\0 "):
        add(("load", "path"), "a path may not hold spaces, CR, LF or NUL")


def axis_path(name: str) -> tuple[str, ...]:
    """An axis's key path in the file (a sysctl's name is one key: kernel.sysctl.<name>)."""
    if name.startswith(SYSCTL_PREFIX):
        _, scope, sysctl = name.split(".", 2)
        return ("kernel", scope, sysctl)
    return tuple(name.split("."))


# Under these a sysctl is per network namespace (when /proc/sys shows it writable there);
# kernel.*, vm.*, fs.* are the machine's whatever namespace writes them.
NAMESPACED_SYSCTLS = ("net.",)


def _kernel_problems(sc: Scenario, add: Callable[[tuple, str], None]) -> None:
    k = sc.kernel
    for role in ("server", "client"):
        for name in sorted(set(k.sysctl) & set(getattr(k, role))):
            add(("kernel", role, name), "also set in kernel.sysctl (every host); set it in one place")
    if sc.hosts.provider == "netns":
        for scope in SYSCTL_SCOPES:
            for name in getattr(k, scope):
                if not name.startswith(NAMESPACED_SYSCTLS):
                    add(("kernel", scope, name), "the lab's hosts are network namespaces of this "
                        "machine: only net.* settings are their own; this one is the machine's "
                        "(global), so the lab refuses to change it")
    if sc.server.backlog is not None and sc.server.command is not None:
        add(("server", "backlog"), "backlog is a flag of the built-in server (server/); a "
            "server.command sets its own listen backlog")


def _server_problems(sc: Scenario, add: Callable[[tuple, str], None]) -> None:
    """The server's keys against each other: arch names, and flags only the built-in server has."""
    if sc.server.command is None:
        for i, arch in enumerate(sc.server.arch):
            if arch not in ARCHES:
                close = difflib.get_close_matches(arch, ARCHES, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                add(("server", "arch", i) if len(sc.server.arch) > 1 else ("server", "arch"),
                    f"unknown architecture '{arch}'{hint} (expected one of: {', '.join(ARCHES)})")
    work = sc.server.work_us if isinstance(sc.server.work_us, list) else [sc.server.work_us]
    if sc.server.command is not None and any(work):
        add(("server", "work_us"), "simulated work is a flag of the built-in server (server/); "
            "a server.command does its own work")
    if sc.server.config is not None and sc.server.command is None:
        add(("server", "config"), "config is a template for a server command; set server.command too")


def _cpu_problems(sc: Scenario, add: Callable[[tuple, str], None], host_cpus: set[int] | None) -> None:
    """Host sizes and CPU pinning against the CPUs this machine (or the given host) has."""
    same_machine = sc.hosts.provider in ("local", "netns")
    if sc.hosts.size and sc.hosts.provider != "netns":
        add(("hosts", "size"), "only the netns provider sizes its hosts (cgroups on this machine); "
            "for other hosts pick machines of that size (e.g. hosts.aws.instance_type)")
    elif sc.hosts.size:
        avail = host_cpus if host_cpus is not None else local_cpus()
        for role, size in sc.hosts.size.items():
            where = ("hosts", "size", role)
            if size.cpus is None:
                continue
            cpuset = resolve_cpus(size.cpus, avail)
            missing = sorted(set(cpuset) - set(avail))
            if missing:
                add((*where, "cpus"), f"CPU(s) {missing} not available on this machine "
                    f"(it has {ranges(sorted(avail))})")
            if size.cpu is not None and size.cpu > len(cpuset):
                add((*where, "cpu"), f"{size.cpu:g} CPUs of time, but cpus gives the host only "
                    f"{len(cpuset)}: at most {len(cpuset)}")
            pinned = sc.server.cpus if role == "server" else sc.load.cpus
            outside = sorted(set(resolve_cpus(pinned, cpuset)) - set(cpuset))
            if outside:
                key = "server" if role == "server" else "load"
                add((*where, "cpus"), f"{key}.cpus pins to CPU(s) {outside}, outside this cpuset "
                    f"({ranges(cpuset)}): a {role} host may only run there")
    if same_machine:
        avail = host_cpus if host_cpus is not None else local_cpus()
        server_cpus = resolve_cpus(sc.server.cpus, avail)
        load_cpus = resolve_cpus(sc.load.cpus, avail)
        overlap = sorted(set(server_cpus) & set(load_cpus))
        if overlap:
            add(("load", "cpus"),
                f"overlaps server.cpus on CPU(s) {overlap}: server and load generator share "
                "this machine, so give them disjoint CPU sets")
        if host_cpus is not None:
            checked = [("server", server_cpus), ("load", load_cpus)]
            if sc.telemetry.cpus is not None:
                checked.append(("telemetry", resolve_cpus(sc.telemetry.cpus, avail)))
            for key, cpus in checked:
                missing = sorted(set(cpus) - host_cpus)
                if missing:
                    add((key, "cpus"),
                        f"CPU(s) {missing} not available on this host "
                        f"(it has {ranges(sorted(host_cpus))})")


def _hosts_problems(sc: Scenario, add: Callable[[tuple, str], None]) -> None:
    """The hosts section: inventory, client counts and link caps that only some providers honour."""
    if sc.hosts.provider == "static" and not sc.hosts.inventory:
        add(("hosts", "inventory"), "provider 'static' needs an Ansible inventory file")
    elif sc.hosts.provider == "static" and not Path(sc.hosts.inventory or "").expanduser().exists():
        add(("hosts", "inventory"), f"no such inventory file: {sc.hosts.inventory} (relative paths are "
            "from the current directory)")
    scale = sc.hosts.roles.autoscale
    if scale is not None and scale.min > scale.max:
        add(("hosts", "roles", "client", "min"), f"{scale.min} is above max {scale.max}")
    if sc.hosts.provider == "local" and sc.hosts.roles.clients != 1:
        add(("hosts", "roles", "client"), "provider 'local' has exactly one host; use netns or static")
    link = sc.hosts.link
    for key in ("pps", "rate", "queue"):
        if getattr(link, key) and sc.hosts.provider != "netns":
            add(("hosts", "link", key), "a link cap is only applied by provider 'netns'")
    if link.pps and link.rate:
        add(("hosts", "link", "rate"), "one cap per link: pps (a packet rate) or rate (bits/s), not both")
    if link.queue and not (link.pps or link.rate):
        add(("hosts", "link", "queue"), "a queue belongs to a cap: set pps or rate as well")


def _load_problems(sc: Scenario, add: Callable[[tuple, str], None]) -> None:
    """The load section: what each generator tool can do, and rates that leave a host nothing."""
    if sc.load.threads > min(sc.load.connections):
        add(("load", "threads"), "wrk needs at least one connection per thread "
            f"({sc.load.threads} threads, {min(sc.load.connections)} connections)")
    if sc.load.tool == "wrk":
        if sc.load.rate is not None:
            add(("load", "rate"), "wrk runs closed loop only; a rate needs load.tool: orchestrate-load")
        if sc.load.warmup:
            add(("load", "warmup"), "wrk has no warm-up; it needs load.tool: orchestrate-load")
    if sc.load.tool == "orchestrate-load" and sc.load.timeout > 60:
        add(("load", "timeout"), "orchestrate-load waits at most 60 s for a response; "
            f"got {sc.load.timeout:g}s")
    if sc.load.search is not None:
        _search_problems(sc, add)
    if sc.load.rate is not None:
        if sc.load.pipeline > 1:
            add(("load", "pipeline"), "an open-loop load paces each request by itself; with load.rate, "
                "pipeline must be 1")
        low = min(sc.load.rate) / sc.hosts.roles.clients
        if low < 1:
            add(("load", "rate"), f"{min(sc.load.rate):g} requests/s over {sc.hosts.roles.clients} client "
                f"hosts is {low:g} each; each host needs at least 1")
    for key in ("duration", "timeout"):
        value = getattr(sc.load, key)
        if sc.load.tool == "wrk" and value != int(value):
            add(("load", key), f"wrk takes whole seconds; got {value:g}s")


def semantic_problems(sc: Scenario, source: str, lines: dict[tuple, int],
                      host_cpus: set[int] | None = None) -> list[Problem]:
    """Checks across keys that the schema alone cannot express."""
    problems: list[Problem] = []

    def add(path: tuple, msg: str) -> None:
        problems.append(Problem(source, _line_for(lines, path), _dotted(path), msg))

    _server_problems(sc, add)
    _cpu_problems(sc, add, host_cpus)
    _hosts_problems(sc, add)
    _load_problems(sc, add)
    _request_problems(sc, add)
    _kernel_problems(sc, add)
    for axis, values in swept(sc):
        if not axis.classic and not values:
            add(axis_path(axis.name), "an axis needs at least one value")
        elif not axis.classic and len(set(map(repr, values))) != len(values):
            add(axis_path(axis.name), f"an axis lists each value once; got {values}")
    _compare_problems(sc, add)
    runs = len(points(sc)) * repetitions(sc)
    if runs > sc.max_runs:
        add(("repeat",), f"the matrix expands to {runs} runs, more than max_runs={sc.max_runs}; "
            "shrink the sweep or raise max_runs")
    return problems


def rounds_range(sc: Scenario) -> RoundsRange | None:
    """The rounds of a compared factor as a range (rounds: N is {min: N, max: N}); None: the
    scenario compares no factor."""
    if sc.compare is None:
        return None
    r = sc.rounds if sc.rounds is not None else sc.repeat
    return r if isinstance(r, RoundsRange) else RoundsRange.model_construct(min=r, max=r, until=None,
                                                                            order="alternate", seed=1)


def repetitions(sc: Scenario) -> int:
    """How many times the plan runs each point at most: rounds' max with a factor, else repeat."""
    r = rounds_range(sc)
    return r.max if r is not None else sc.repeat


# the way out for a user who narrows a compared factor to one value (the embedded default compares)
NO_COMPARE_HINT = " (or measure without the comparison: --set compare=null --set rounds=null)"


def _compare_problems(sc: Scenario, add: Callable[[tuple, str], None]) -> None:
    if sc.rounds is not None and sc.compare is None:
        add(("rounds",), "rounds pair the values of a compared factor; set compare: {factor: AXIS, "
            "baseline: VALUE} too (or use repeat)")
        return
    if sc.compare is None:
        return
    c = sc.compare
    axes = dict(swept(sc))
    by_name = {a.name: v for a, v in axes.items()}
    known = AXIS_NAMES + tuple(a.name for a in sysctl_axes(sc))
    if c.factor not in known:
        close = difflib.get_close_matches(c.factor, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        add(("compare", "factor"), f"unknown axis '{c.factor}'{hint} (axes: {', '.join(known)})")
    else:
        values = [v for v in by_name.get(c.factor) or [] if v is not None]
        if len(values) < 2:
            add(("compare", "factor"), f"{c.factor} is not swept here: write it as a list of 2 or more "
                f"values, the baseline among them{NO_COMPARE_HINT}")
        elif not any(same(v, c.baseline) for v in values):
            add(("compare", "baseline"), f"{c.baseline!r} is not a value of {c.factor} "
                f"({', '.join(map(str, values))})")
    if sc.load.search is not None:
        add(("compare",), "paired rounds compare runs' figures; a capacity search's runs are at "
            "rates it chose (compare capacities with `orchestrate compare A B --metric capacity`)")
    if sc.rounds is not None and sc.repeat > 1:
        add(("repeat",), f"with rounds, each round runs every point once; leave repeat out{NO_COMPARE_HINT}")
    elif sc.rounds is None and sc.repeat < 2:
        add(("compare",), "a comparison needs rounds: N (2 or more), or {min, max, until: 2%}")
    r = sc.rounds
    if isinstance(r, RoundsRange):
        if r.min > r.max:
            add(("rounds", "min"), f"{r.min} is above max {r.max}")
        if r.until is None and r.min != r.max:
            add(("rounds", "until"), "rounds from min to max stop on the interval's width: set "
                "until (e.g. 2%), or give one number of rounds")


def _apply_sets(data: dict[str, Any], sets: list[str]) -> list[Problem]:
    """Apply `key.path=value` overrides in place; values are read as YAML."""
    problems = []
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            problems.append(Problem("--set", None, item, "expected key.path=value"))
            continue
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        parts = key.split(".")
        node: Any = data
        for p in parts[:-1]:
            if not isinstance(node, dict):
                break
            node = node.setdefault(p, {})
        if not isinstance(node, dict):
            problems.append(Problem("--set", None, key, "cannot set a key inside a non-mapping value"))
            continue
        node[parts[-1]] = parsed
    return problems


def local_cpus() -> set[int]:
    return set(os.sched_getaffinity(0))


def load(path: str | os.PathLike[str], sets: list[str] | None = None, *,
         text: str | None = None, host_cpus: set[int] | None = None) -> Loaded:
    """Read and validate a scenario; raise UserError listing every problem found.

    `host_cpus` defaults to this machine's CPUs for providers that run on it.
    """
    source = str(path)
    if text is None:
        try:
            text = bounded.read_text(Path(path), limit=MAX_SCENARIO_BYTES, what="scenario")
        except FileNotFoundError:
            raise UserError(f"{source}: no such scenario file") from None
        except UnicodeDecodeError as exc:
            raw_bytes = Path(path).read_bytes()
            line = raw_bytes[: exc.start].count(b"\n") + 1
            raise UserError(f"{source}: not UTF-8 text", [Problem(
                source, line, "", f"not UTF-8 text (byte 0x{raw_bytes[exc.start]:02x}); a scenario is "
                "a UTF-8 YAML file")]) from None
        except OSError as exc:
            raise UserError(f"{source}: cannot read: {exc.strerror}") from None
    bounded.check_text(text, source, limit=MAX_SCENARIO_BYTES, what="scenario")
    data, lines, problems = _compose(text, source)
    if problems and data is None:
        raise UserError(f"{source}: invalid scenario", problems)
    if data is None:
        data = {}
    set_problems: list[Problem] = []
    if sets:
        data = copy.deepcopy(data) if isinstance(data, dict) else data
        if isinstance(data, dict):
            set_problems = _apply_sets(data, sets)
            for item in sets:  # errors in overridden keys point at the override
                lines[tuple(item.partition("=")[0].split("."))] = 0
    scenario, schema_problems, bad = _validate(data, source, lines)
    problems += set_problems + schema_problems
    checked = scenario
    if checked is None and isinstance(data, dict) and bad:
        # Cross-key checks still run on what was valid, so one pass shows everything.
        checked, _, _ = _validate(_without(data, bad), source, lines)
    if checked is not None:
        cpus = host_cpus
        if cpus is None and checked.hosts.provider in ("local", "netns"):
            cpus = local_cpus()
        reported = {p.path for p in problems}
        problems += [p for p in semantic_problems(checked, source, lines, cpus)
                     if p.path not in reported]
    if scenario is not None and not problems:
        problems += _variant_problems(data, source, lines, host_cpus)
    problems.sort(key=lambda p: (p.file, p.line or 0))
    problems = [_mark_set(p, sets or []) for p in problems]
    if problems:
        raise UserError(f"{source}: invalid scenario", problems)
    assert scenario is not None
    return Loaded(scenario=scenario, source=source, raw=data, lines=lines, sets=tuple(sets or ()))


def _variant_problems(data: dict[str, Any], source: str, lines: dict[tuple, int],
                      host_cpus: set[int] | None) -> list[Problem]:
    """Each variant's block validated as if written in place: the scenario with the block merged
    in, checked by the schema and the cross-key rules, each problem at the block's own line
    (`variants.NAME.server.config`) or, when it comes of the merge, at the base key's line with
    the variant named."""
    problems: list[Problem] = []
    base = {k: v for k, v in data.items() if k not in _MATRIX_ONLY}
    for name, block in (data.get("variants") or {}).items():
        here = ("variants", name)
        own = {p[2:]: n for p, n in lines.items() if p[:2] == here and len(p) > 2}
        vlines = {**lines, **own}
        written = {_dotted(p) for p in own if not isinstance(_get(block, p), dict)}  # its leaves

        def add(path: tuple, message: str, *, _here: tuple = here) -> None:
            problems.append(Problem(source, _line_for(lines, _here + path), _dotted(_here + path), message))

        for axis in AXES:
            parts = tuple(axis.name.split("."))
            got = _get(block, parts)
            # a variant may fix a key that could be an axis but is not swept here (somaxconn with
            # server.backlog, moved together); never one the matrix sweeps
            if got is not None and axis.name != "variant" and (
                    axis.classic or isinstance(got, list) or isinstance(_get(base, parts), list)):
                add(parts, f"{axis.name} is an axis of the matrix (every variant runs at each of its "
                    "values); set it at the top level, not in a variant")
        for scope in SYSCTL_SCOPES:
            for sysctl, got in (_get(block, ("kernel", scope)) or {}).items():
                if isinstance(got, list) or isinstance(_get(base, ("kernel", scope, sysctl)), list):
                    add(("kernel", scope, sysctl), f"kernel.{scope}.{sysctl} is an axis of the matrix "
                        "here, or written as one; a variant sets one value")
        for key in ("name", "repeat", "max_runs", *_MATRIX_ONLY):
            if key in block:
                add((key,), "a variant changes how a run is made; it cannot set " + key)
        if any(p.path.startswith(_dotted(here)) for p in problems):
            continue
        sc, found, _ = _validate(merged(base, block), source, vlines)
        if sc is not None:
            cpus = host_cpus
            if cpus is None and sc.hosts.provider in ("local", "netns"):
                cpus = local_cpus()
            found = semantic_problems(sc, source, vlines, cpus)
        for p in found:
            mine = any(p.path == w or p.path.startswith(w + ".") or p.path.startswith(w + "[")
                       for w in written)
            problems.append(Problem(p.file, p.line, f"variants.{name}.{p.path}" if mine else p.path,
                                    p.message if mine else f"{p.message} (with variant {name})"))
    return problems


def _mark_set(p: Problem, sets: list[str]) -> Problem:
    # Line 0 marks a key given with --set: say so instead of pointing into the file.
    if p.line != 0:
        return p
    given = next((s for s in sets if p.path.startswith(s.partition("=")[0])), "")
    return Problem(f"{p.file} (--set {given})", None, p.path, p.message)


def dump(sc: Scenario) -> str:
    """The resolved scenario as YAML (kept with every results folder)."""
    return yaml.safe_dump(sc.model_dump(mode="json"), sort_keys=False)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file, from the same models that validate it (what a user
    may write: durations as "10s", CPUs as "0-3" or "even", one value for a matrix axis)."""
    schema = Scenario.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "orchestrate scenario"
    return schema
