"""Client auto-scale on a sized lab: real SSH hosts in namespaces, each client held to a quarter
of a CPU by its cgroup, orchestrate-load open loop at a rate one such client cannot offer.
The run starts with one client host, the lab adds hosts while the client is the limit, and
the run says where it stopped. One interrupted session and its resumption share their runs
between the assertions (this file is among the slowest in CI)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml
from markupsafe import escape as html_text
from test_cross_host import lab_traces
from test_faults import Run
from test_lab_faults import lab_cgroups

from orchestrator.hosts import netns
from orchestrator.scenario import Size

from testkit import REPO, orchestrate

pytestmark = pytest.mark.slow

SCENARIO = str(REPO / "scenarios" / "autoscale.yaml")


def test_ctrl_c_while_adding_a_host_then_resume_grows_the_lab_until_the_client_is_not_the_limit(
        tmp_path, run_id):
    lab = f"as{os.getpid() % 10000}"
    # no Ansible here: on quarter-CPU hosts it takes ~15 s a host (test_deploy covers --limit,
    # test_aws_e2e a grown host deployed through the pipeline)
    args = ("--set", f"hosts.lab={lab}", "--set", "hosts.deploy=false")
    # Ctrl-C while the lab adds the second client host: nothing is left (the half-made host
    # included) and the first run, measured with one client host, is kept.
    r = Run(tmp_path, run_id, SCENARIO, *args)
    r.wait_for("adding 1 client host(s) to the netns lab", timeout=600)
    r.proc.send_signal(signal.SIGINT)
    rc, err = r.finish()
    assert rc == 130, err
    assert "interrupted during add client hosts" in err
    s = r.summary()
    assert s["status"] == "interrupted" and s["phase"] == "add client hosts"
    (entry,) = s["autoscale"]
    assert entry["settled"] is False and entry["stopped"] == "interrupted while scaling"
    first = entry["path"][0]
    assert first["clients"] == 1 and first["client_limited"]
    assert [run["run_id"] for run in s["runs"]] == [first["run_id"]]
    folder = r.results / "autoscale" / run_id
    assert (folder / "runs" / f"{first['run_id']}.json").is_file()
    assert lab_traces(lab) == [] and lab_cgroups(lab) == []

    # Resumed: the kept run stands for one client host; then the lab grows one host at a time.
    done = orchestrate("run", SCENARIO, "--results", str(r.results), "--resume", run_id, *args, timeout=900,
                       report=True)
    assert done.returncode == 0, done.stderr
    s = json.loads((folder / "summary.json").read_text())
    assert s["status"] == "complete" and s["resumed"] == 1
    (entry,) = s["autoscale"]
    path = entry["path"]
    counts = [p["clients"] for p in path]
    assert counts == list(range(1, len(path) + 1))  # from min, one host at a time
    assert path[0]["run_id"] == first["run_id"]  # measured by the first session, not again
    # one client at a quarter CPU cannot offer the rate: that is what started the scaling
    assert len(path) >= 2 and all(p["client_limited"] for p in path[:-1])
    assert entry["settled"] and entry["clients"] == counts[-1]
    if path[-1]["client_limited"] is None:  # the first count at which the client was not the limit
        assert entry["stopped"].startswith(f"not client-bound with {counts[-1]} client host(s): ")
        assert not entry["limited"]
    else:  # or max was reached, and the run says so
        assert counts[-1] == 4 and entry["limited"] and "still client-limited at max=4" in entry["stopped"]
    # the lab started with one client and added the others, sized like it (their facts say so)
    assert done.stderr.count("adding 1 client host(s) to the netns lab") == len(path) - 1
    clients = [f"orch-{lab}-{i}" for i in range(1, len(path) + 1)]
    assert s["topology"]["clients"] == clients
    hosts = json.loads((folder / "hosts.json").read_text())
    assert [hosts[c]["cpu_quota"] for c in clients] == [0.25] * len(clients)
    # the point's run is the final count's; the superseded runs stay on disk, out of the point
    (run,) = s["runs"]
    assert run["run_id"] == path[-1]["run_id"] and run["load"]["clients"] == counts[-1]
    assert len(run["clients"]) == counts[-1]
    for p in path[:-1]:
        assert (folder / "runs" / f"{p['run_id']}.json").is_file()
    # every client started within a few ms of the others, and the summary says by how much
    assert run["start_skew_ms"] is not None and 0 <= run["start_skew_ms"] < 1000
    html = (folder / "report.html").read_text()
    assert "Client auto-scale" in html and html_text(entry["stopped"]) in html
    assert lab_traces(lab) == [] and lab_cgroups(lab) == []


def test_a_static_client_group_smaller_than_max_is_where_it_stops(tmp_path, run_id):
    """A static inventory with one client host (a sized lab's, brought up here): one client at a
    quarter CPU is the limit, the group has no more, and the run stops there saying so."""
    name = f"ast{os.getpid() % 10000}"
    st = netns.up(name, 2, size={"client": Size(cpu=0.25)})
    try:
        doc = yaml.safe_load(Path(SCENARIO).read_text())
        doc["hosts"] = {"provider": "static", "inventory": st.inventory, "deploy": False,
                        "roles": {"server": 1, "client": {"min": 1, "max": 4}}}
        sc = tmp_path / "autoscale-static.yaml"
        sc.write_text(yaml.safe_dump(doc))
        done = orchestrate("run", str(sc), "--results", str(tmp_path), "--run-id", run_id, timeout=600)
    finally:
        netns.down(name)
    assert done.returncode == 0, done.stderr
    s = json.loads((tmp_path / "autoscale" / run_id / "summary.json").read_text())
    (entry,) = s["autoscale"]
    assert [p["clients"] for p in entry["path"]] == [1] and entry["path"][0]["client_limited"]
    assert entry["settled"] and entry["limited"] and entry["clients"] == 1
    assert entry["stopped"].startswith("still client-limited at 1 client host(s), all the static lab has "
                                       "(max is 4) ("), entry["stopped"]
    assert s["topology"]["clients"] == [f"orch-{name}-1"]
    # issue 22: the quota-held client's cgroup (cpu.stat, read either side of the window) is in
    # the summary for its host, and the client-bound verdict's evidence names its throttling
    (run,) = s["runs"]
    host = f"orch-{name}-1"
    p = run["client_proc"][host]
    assert p["periods"] > 0 and 0 < p["throttled_periods"] <= 100 and 0 <= p["throttled"] <= 100, p
    assert run["analysis"]["verdict"] == "client-bound"
    assert any(e.startswith(f"load generator on {host}: its CPU quota throttled it in ")
               for e in run["analysis"]["evidence"]), run["analysis"]["evidence"]
    assert lab_traces(name) == [] and lab_cgroups(name) == []
