"""Client auto-scale on a sized lab: real SSH hosts in namespaces, each client held to a quarter
of a CPU by its cgroup, orchestrate-load open loop at a rate one such client cannot offer.
The run adds client hosts until the client is no longer the limit, and says where it stopped."""

from __future__ import annotations

import json
import os
import signal

import pytest
from markupsafe import escape as html_text
from test_cross_host import lab_traces
from test_faults import Run
from test_lab_faults import lab_cgroups

from testkit import REPO, orchestrate

pytestmark = pytest.mark.slow

SCENARIO = str(REPO / "scenarios" / "autoscale.yaml")


def test_autoscale_adds_clients_until_the_client_is_not_the_limit(tmp_path, run_id):
    lab = f"as{os.getpid() % 10000}"
    done = orchestrate("run", SCENARIO, "--results", str(tmp_path), "--run-id", run_id,
                       "--set", f"hosts.lab={lab}", timeout=900)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "autoscale" / run_id
    s = json.loads((folder / "summary.json").read_text())
    (entry,) = s["autoscale"]
    path = entry["path"]
    counts = [p["clients"] for p in path]
    assert counts == list(range(1, len(path) + 1))  # from min, one host at a time
    # one client at a quarter CPU cannot offer the rate: that is what started the scaling
    assert path[0]["client_limited"], path[0]
    assert len(path) >= 2 and all(p["client_limited"] for p in path[:-1])
    assert entry["settled"] and entry["clients"] == counts[-1]
    if path[-1]["client_limited"] is None:  # the first count at which the client was not the limit
        assert entry["stopped"].startswith(f"not client-bound with {counts[-1]} client host(s): ")
        assert not entry["limited"]
    else:  # or max was reached, and the run says so
        assert counts[-1] == 4 and entry["limited"] and "still client-limited at max=4" in entry["stopped"]
    # the point's run is the final count's; the superseded runs stay on disk, out of the point
    (run,) = s["runs"]
    assert run["run_id"] == path[-1]["run_id"] and run["load"]["clients"] == counts[-1]
    assert len(run["clients"]) == counts[-1]
    for p in path[:-1]:
        assert (folder / "runs" / f"{p['run_id']}.json").is_file()
    # every client started within a few ms of the others, and the summary says by how much
    if counts[-1] > 1:
        assert run["start_skew_ms"] is not None and 0 <= run["start_skew_ms"] < 1000
    html = (folder / "report.html").read_text()
    assert "Client auto-scale" in html and html_text(entry["stopped"]) in html
    assert lab_traces(lab) == [] and lab_cgroups(lab) == []


def test_ctrl_c_while_scaling_leaves_nothing_and_keeps_the_path(tmp_path, run_id):
    lab = f"ai{os.getpid() % 10000}"
    r = Run(tmp_path, run_id, SCENARIO, "--set", f"hosts.lab={lab}", "--set", "hosts.deploy=false")
    r.wait_for("one more client host", timeout=600)
    r.proc.send_signal(signal.SIGINT)
    rc, err = r.finish()
    assert rc == 130, err
    assert "interrupted during" in err
    s = r.summary()
    assert s["status"] == "interrupted"
    (entry,) = s["autoscale"]
    assert entry["settled"] is False and entry["stopped"] == "interrupted while scaling"
    assert entry["path"][0]["clients"] == 1 and entry["path"][0]["client_limited"]
    assert (r.results / "autoscale" / run_id / "runs" / f"{entry['path'][0]['run_id']}.json").is_file()
    assert lab_traces(lab) == [] and lab_cgroups(lab) == []
