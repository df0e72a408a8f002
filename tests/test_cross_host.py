"""Cross-host runs on real SSH hosts (network namespaces with their own sshd), deployed with
the real playbooks, with packet-rate-capped links: the product's headline path, end to end.
The gate and `compare` on real capped-lab runs: tests/test_gate_nightly.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from orchestrator.hosts import netns

from testkit import REPO, orchestrate

pytestmark = pytest.mark.slow

# UDP only: the test reads the packet-rate ceilings; the TCP ones (1 s each way per client, 4 s
# of the baseline with their set-up: 20 s -> 16 s) only add byte-rate checks, far from
# what 64-byte requests use
FAST_BASELINE = ["--set", "baseline.iperf3.duration=2s", "--set", "baseline.iperf3.tcp=false"]


def links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def lab_traces(name: str) -> list[str]:
    """Anything of lab `name` left on the machine."""
    left = [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
            .stdout.split() if ns.startswith(f"orch-{name}-")]
    lab_dir = netns.LABS_ROOT / name
    sshd = subprocess.run(["pgrep", "-f", str(lab_dir)], capture_output=True, text=True).stdout.split()
    left += [f"sshd {p}" for p in sshd]
    if lab_dir.exists():
        left.append(str(lab_dir))
    return left


def only_results(root: Path) -> Path:
    (folder,) = [p for p in root.glob("*/*") if p.is_dir()]
    return folder


def test_capped_cross_host_run_is_network_bound_and_leaves_nothing(tmp_path, run_id):
    """3 hosts (1 server, 2 clients), deployed with Ansible, links capped at C packets/s."""
    # 12,000, not 20,000: on this 2-CPU machine the server's CPU also takes the lab's softirq
    # (56% of it at 20,000 pps), and at 20,000 it once read 92% busy against the 90% bar, so
    # the honest verdict was "both limit"; at 12,000 the cap is the only limit
    cap = 12_000
    lab = f"x{os.getpid() % 10000}"
    before_links = links()
    done = orchestrate("run", str(REPO / "scenarios" / "cross-host-capped.yaml"), "--results",
                       str(tmp_path), "--run-id", run_id, "--set", f"hosts.lab={lab}",
                       "--set", f"hosts.link.pps={cap}", "--set", "load.duration=4s", *FAST_BASELINE,
                       timeout=600)
    assert done.returncode == 0, done.stderr
    assert "deploying tools and the server with Ansible" in done.stderr
    folder = only_results(tmp_path)
    s = json.loads((folder / "summary.json").read_text())
    server = s["topology"]["server"]
    assert len(s["topology"]["clients"]) == 2 and s["topology"]["loopback"] is False

    # the baseline from every client to the server, both ways, is close to the cap
    assert len(s["baseline"]) == 2
    for entry in s["baseline"].values():
        for way in ("udp", "udp_reverse"):
            assert 0.95 * cap <= entry[way]["pps_delivered"] <= 1.05 * cap, entry[way]

    (run,) = s["runs"]
    a = run["analysis"]
    # both wrk started at once; the server's link carried C packets/s each way
    assert [c["host"] for c in run["clients"]] == s["topology"]["clients"]
    assert sum(c["requests"] for c in run["clients"]) == run["requests"]
    for way in ("rx", "tx"):
        assert 0.9 * cap <= a["packet_rate"][way] <= 1.05 * cap, a["packet_rate"]
        assert 0.9 * cap <= run["qps"] * a["packets_per_request"][way] <= 1.05 * cap
    assert a["verdict"] == "network-bound", a["evidence"]
    assert "of the" in a["evidence"][0] and "pps ceiling measured by iperf3" in a["evidence"][0]
    # merged latency lies within the clients' own (merged from histograms, not averaged)
    p99s = [c["latency_ms"]["p99"] for c in run["clients"]]
    assert min(p99s) <= run["latency_ms"]["p99"] <= max(p99s)
    # telemetry on every host, pinning honoured on every client
    assert set(run["telemetry"]["sar"]) == {server, *s["topology"]["clients"]}
    assert run["affinity"]["wrk_actual"] == {c: [1] for c in s["topology"]["clients"]}
    assert run["affinity"]["server_actual"] == [0]
    assert (folder / "raw" / "deploy.log").stat().st_size > 0
    from test_observer import assert_silent  # (it imports this module)

    assert_silent(folder)  # three hosts, and not one command reached them during the load
    # the run brought its lab up, so it took it down: nothing of it is left
    assert lab_traces(lab) == []
    assert links() - before_links == set()
