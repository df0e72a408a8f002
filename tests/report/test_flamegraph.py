"""Flame graph SVG: geometry, tooltips, colours, escaping, pruning and determinism, on hand-made
stacks and on the real capture of the project's server (tests/tools/data/perf/)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.report.flamegraph import render_svg
from orchestrator.tools import perf

NS = "{http://www.w3.org/2000/svg}"
CAPTURE = Path(__file__).resolve().parents[1] / "tools" / "data" / "perf" / "script_server.txt"
TIP = re.compile(r"^(.*) \(([\d,]+) samples, ([\d.]+)%\)$")

SMALL = {
    "srv;main;loop;epoll_wait;do_syscall_64_[k];do_epoll_wait_[k]": 60,
    "srv;main;loop;handle;parse": 25,
    "srv;main;loop;handle;send;do_syscall_64_[k];tcp_sendmsg_[k]": 14,
    "srv;[unknown];memcpy": 1,
}


def frames(svg: str) -> list[dict]:
    """One dict per frame: name, samples, pct (from the tooltip) and the rect's geometry and fill."""
    out = []
    for g in ET.fromstring(svg).iter(f"{NS}g"):
        name, samples, pct = TIP.match(g.findtext(f"{NS}title")).groups()
        rect = g.find(f"{NS}rect")
        out.append({"name": name, "samples": int(samples.replace(",", "")), "pct": float(pct),
                    "x": float(rect.get("x")), "y": float(rect.get("y")), "w": float(rect.get("width")),
                    "fill": rect.get("fill"), "label": g.findtext(f"{NS}text")})
    return out


def test_geometry_bottom_up_and_proportional():
    fs = frames(render_svg(SMALL, title="small", width=1010))
    by = {f["name"]: f for f in fs}
    root = max(fs, key=lambda f: f["w"])
    assert (root["name"], root["samples"], root["pct"], root["w"]) == ("all", 100, 100.0, 990.0)
    assert by["srv"]["w"] == root["w"] and by["srv"]["y"] < root["y"]  # callee drawn above caller
    assert by["loop"]["w"] == pytest.approx(990 * 99 / 100)
    assert by["handle"]["samples"] == 39 and by["handle"]["pct"] == 39.0
    assert by["epoll_wait"]["x"] < by["handle"]["x"]  # siblings sorted by name
    assert by["handle"]["x"] == pytest.approx(by["loop"]["x"] + by["epoll_wait"]["w"])
    assert by["tcp_sendmsg_[k]"]["y"] < by["send"]["y"] < by["handle"]["y"]
    # depth: all, srv, main, loop, handle, send, do_syscall_64, tcp_sendmsg = 8 levels
    assert len({f["y"] for f in fs}) == 8


def test_colours_by_kind():
    by = {f["name"]: f["fill"] for f in frames(render_svg(SMALL, title="t"))}

    def rgb(fill: str) -> tuple[int, ...]:
        return tuple(int(v) for v in re.findall(r"\d+", fill))

    r, g, b = rgb(by["do_syscall_64_[k]"])
    assert r > 240 and g > 160  # kernel: yellow-orange
    r, g, b = rgb(by["parse"])
    assert r > 210 and g < 135  # user: red
    r, g, b = rgb(by["[unknown]"])
    assert r == g == b  # unknown: grey
    r, g, b = rgb(by["srv"])
    assert b > r  # the process: blue


def test_narrow_frames_omitted_but_counted():
    folded = {"p;big": 99_940, "p;tiny": 50, "p;big;tinier": 10}
    by = {f["name"]: f for f in frames(render_svg(folded, title="t"))}
    assert "tiny" not in by and "tinier" not in by  # 0.05% and 0.01% < 0.1%
    assert by["p"]["samples"] == 100_000 and by["big"]["samples"] == 99_950
    assert by["p"]["w"] == by["all"]["w"]  # the omitted frame still widens its caller
    assert "tiny" in {f["name"] for f in frames(render_svg(folded, title="t", min_fraction=0))}


def test_escaping_and_labels():
    folded = {'a<b>&"c";std::vector<int>::push_back(int const&);bad\x01char': 3,
              "p;" + "x" * 400: 1}
    svg = render_svg(folded, title="<run & 'one'>")
    root = ET.fromstring(svg)  # well-formed despite <, &, quotes and a control character
    assert root.findtext(f"{NS}text") == "<run & 'one'>"
    names = {f["name"] for f in frames(svg)}
    assert {'a<b>&"c"', "std::vector<int>::push_back(int const&)", "bad?char"} <= names
    long = next(f for f in frames(svg) if f["name"].startswith("xxx"))
    assert long["label"].endswith("..") and len(long["label"]) * 6.6 <= long["w"]


def test_deterministic_and_order_independent():
    a = render_svg(SMALL, title="t")
    b = render_svg(dict(reversed(list(SMALL.items()))), title="t")
    assert a == b


def test_empty():
    svg = render_svg({}, title="nothing")
    root = ET.fromstring(svg)
    assert not root.findall(f"{NS}g")
    assert "no samples" in svg


def test_real_capture():
    folded = perf.fold(CAPTURE.read_text())
    svg = render_svg(folded, title="orchestrate-server under wrk")
    assert len(svg) < 200_000
    fs = frames(svg)
    root = max(fs, key=lambda f: f["w"])
    assert root["name"] == "all" and root["samples"] == sum(folded.values()) == 215
    names = {f["name"] for f in fs}
    assert {"epoll_wait", "do_epoll_wait_[k]", "tcp_sendmsg_[k]", "__send"} <= names
    # every drawn frame fits inside the plot
    assert all(f["x"] >= 10 and f["x"] + f["w"] <= 1190.01 for f in fs)
