"""`orchestrate`: one cmd_X(args) per subcommand, reached from a dispatch table (pyperf's shape).

Heavy imports happen inside the commands so `validate` and `--help` stay fast.
Exit codes: 0 ok, 1 a run failed, 2 bad input (nothing started), 3 regression, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from orchestrator.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Interrupted,
    RunFailed,
    UserError,
)

DEFAULT_SCENARIO = "loopback"


def _scenario_path(arg: str | None) -> tuple[str, str | None]:
    """(name for messages, text) for a FILE argument; no argument = the embedded default."""
    if arg:
        return arg, None
    text = resources.files("orchestrator").joinpath("defaults", f"{DEFAULT_SCENARIO}.yaml").read_text()
    return f"<embedded {DEFAULT_SCENARIO}.yaml>", text


def _load(args: argparse.Namespace) -> Any:
    from orchestrator import scenario

    name, text = _scenario_path(args.file)
    return scenario.load(name, getattr(args, "set", None) or [], text=text)


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = _load(args)
    print(f"{loaded.source}: ok ({loaded.scenario.name})")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from orchestrator.plan import expand, fmt_seconds

    loaded = _load(args)
    sc = loaded.scenario
    plan = expand(sc)
    print(f"scenario {sc.name} ({loaded.source}): provider {sc.hosts.provider}, "
          f"{sc.hosts.roles.server} server + {sc.hosts.roles.client} client host(s)")
    if sc.baseline.enabled:
        b = sc.baseline.iperf3
        print(f"  baseline: iperf3 UDP {b.udp_length}-byte packets for {fmt_seconds(b.duration)}"
              + (f", TCP for {fmt_seconds(b.tcp_duration)}" if b.tcp else ""))
    print(f"  {'#':>3}  {'run id':<32} {'arch':<10} {'threads':>7} {'conns':>6} {'rep':>3}")
    for r in plan.runs:
        print(f"  {r.index:>3}  {r.run_id:<32} {r.arch:<10} {r.server_threads:>7} "
              f"{r.connections:>6} {r.repetition:>3}")
    print(f"{len(plan.runs)} runs of {fmt_seconds(sc.load.duration)} load each; "
          f"expected total {fmt_seconds(plan.expected_seconds)}")
    if sc.hosts.provider == "aws":
        from orchestrator.hosts import aws

        for line in aws.describe_plan(sc, plan.expected_seconds / 3600):
            print(line)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator import execute
    from orchestrator.report import table

    loaded = _load(args)
    outcome = execute.run(loaded, results_root=Path(args.results), run_id=args.run_id)
    print(table.render(outcome.summary))
    print(f"results: {outcome.results}")
    return EXIT_OK


def cmd_lab(args: argparse.Namespace) -> int:
    from orchestrator.hosts import netns

    if args.action == "up":
        state = netns.up(args.name, args.hosts, pps=args.pps)
        print(netns.describe(state))
    elif args.action == "down":
        removed = netns.down(args.name)
        print("\n".join(removed) if removed else f"lab {args.name}: nothing to remove")
    else:
        states = netns.status(args.name)
        print("\n".join(netns.describe(s) for s in states) if states else "no lab is up")
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    if args.provider == "aws":
        from orchestrator.hosts import aws

        done = aws.cleanup(args.region, all=args.all)
        print("\n".join(str(d) for d in done) if done else "nothing to clean up")
    else:
        from orchestrator.hosts import netns

        removed = netns.down_all()
        print("\n".join(removed) if removed else "no lab to remove")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate,
    "plan": cmd_plan,
    "run": cmd_run,
    "lab": cmd_lab,
    "cleanup": cmd_cleanup,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="orchestrate",
        description="Run a network-server benchmark end to end and explain the number.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def scenario_cmd(name: str, help: str, file_required: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("file", nargs=None if file_required else "?", metavar="FILE",
                        help="scenario YAML" + ("" if file_required else
                                                " (default: the embedded loopback scenario)"))
        sp.add_argument("--set", action="append", metavar="KEY.PATH=VALUE",
                        help="override a scenario key (validated like the file); repeatable")
        return sp

    scenario_cmd("validate", "check a scenario; exit 2 with FILE:LINE messages if it is wrong")
    scenario_cmd("plan", "show the runs a scenario expands to and the expected time", False)
    r = scenario_cmd("run", "run a scenario end to end", False)
    r.add_argument("--results", default="results", metavar="DIR", help="results root (default ./results)")
    r.add_argument("--run-id", help=argparse.SUPPRESS)

    lab = sub.add_parser("lab", help="a lab of SSH hosts in network namespaces on this machine")
    lab.add_argument("action", choices=["up", "down", "status"])
    lab.add_argument("--name", default="lab")
    lab.add_argument("--hosts", type=int, default=3, help="number of hosts (first one is the server)")
    lab.add_argument("--pps", type=int, default=None, help="packet-rate cap per link, each direction")

    c = sub.add_parser("cleanup", help="remove what a killed run left behind")
    c.add_argument("--provider", choices=["netns", "aws"], default="netns")
    c.add_argument("--region", default=None)
    c.add_argument("--all", action="store_true", help="aws: also resources that have not expired")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"orchestrate: {exc or 'interrupted'}; everything started was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RunFailed as exc:
        print(f"orchestrate: run failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
