"""`orchestrate publish --site DIR`: the dashboard of a 30-night history with one 8% drop,
opened in headless Chromium from the file system (no server): the series are drawn, the
step is marked at the night it happened, the gate's failure is red, every dot links to a
report inside the site, and nothing is fetched from anywhere else."""

from __future__ import annotations

import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from orchestrator import store
from orchestrator.history import open_history

from testkit import orchestrate, run_record, session

NIGHTS, STEP_AT = 30, 20
NOISE = 0.058  # this machine's single-measurement noise (tests/history/test_changepoint.py)
POINT = "reuseport threads=1 conns=64"
WIDTH, HEIGHT = 1000, 1400


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    names = ("chromium", "chromium-browser", "google-chrome")
    path = next((p for n in names if (p := shutil.which(n))), None)
    if path is None:
        pytest.fail("no Chromium: apt-get install -y chromium")
    argv = [path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)


class Elements(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def all(self, tag: str, class_: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.found
                if t == tag and (class_ is None or class_ in a.get("class", "").split())]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 nightly results folders (3 repetitions, 8% lower from night 20, p99 up with it), in a
    SQLite history; the gate failed night 20. Published once for the module: its tests only read
    the site (each browser keeps its profile in the test's own tmp_path)."""
    tmp_path = tmp_path_factory.mktemp("published")
    db = tmp_path / "history.sqlite"
    h = open_history(db)
    rng = np.random.default_rng(1)
    for night in range(NIGHTS):
        level = 100_000 * (0.92 if night >= STEP_AT else 1)
        runs = [run_record(run_id=f"00{rep}-reuseport-t1-c64-r{rep}", repetition=rep,
                           qps=float(level * (1 + NOISE * rng.standard_normal())),
                           latency_ms={"p50": 0.5, "p99": 1.0 + (0.2 if night >= STEP_AT else 0)},
                           errors={"connect": 0, "read": 0, "write": 0, "timeout": 0}) for rep in (1, 2, 3)]
        rid = f"night-{night:02d}"
        summary = session(scenario="nightly", run_id=rid, provider="netns",
                          started=f"2026-10-{night + 1:02d}T02:30:00Z", topology={"server": "h"},
                          hosts={"h": {"cpu_model": "cpu-x", "cpus": 2, "roles": ["server"]}}, runs=runs)
        folder = tmp_path / "results" / "nightly" / rid
        store.ResultsDir(folder).save_summary(summary)
        (folder / "report.html").write_text(f"<!doctype html><title>{rid}</title><h1>report of {rid}</h1>")
        h.record(store.load_summary(folder), folder)
    h.record_gate("night-20", {"threshold_pct": 5, "regressed": [POINT]})
    h.record_gate("night-19", {"threshold_pct": 5, "regressed": []})
    out = tmp_path / "site"
    done = orchestrate("publish", "--site", str(out), "--history", str(db))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"site: {out / 'index.html'}"
    return out


def test_the_dashboard_shows_the_series_with_the_step_marked(site: Path, tmp_path: Path):
    done = chromium(tmp_path, "--dump-dom", (site / "index.html").as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = Elements(done.stdout)
    charts = dom.all("svg", class_="chart")
    assert [(c["data-kind"], c["data-point"]) for c in charts] == [("qps", POINT), ("p99", POINT)]
    dots = dom.all("circle", class_="run")
    assert len(dots) == 2 * NIGHTS  # one per night on each chart
    # the change point: between night 19 and night 20, about -8%
    (shift,) = dom.all("line", class_="shift")
    assert shift["data-run"] == f"night-{STEP_AT}" and -11 < float(shift["data-change"]) < -5
    assert "change point at run night-20" in done.stdout
    # the gate's failure is marked where it happened, on both charts
    assert [d["data-run"] for d in dom.all("circle", class_="gate-failure")] == ["night-20"] * 2
    assert "REGRESSION: reuseport threads=1 conns=64" in done.stdout
    # every run links to its report, inside the site; nothing comes from elsewhere
    links = {a["href"] for a in dom.all("a")}
    assert len(links) == NIGHTS
    assert all((site / href).is_file() for href in links)
    assert "report of night-07" in (site / "runs/nightly/night-07/report.html").read_text()
    srcs = [a.get("src") or a.get("href") for _, a in dom.found if a.get("src") or a.get("href")]
    assert not [s for s in srcs if "://" in s], srcs


def test_the_step_and_the_failure_are_on_screen(site: Path, tmp_path: Path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    done = chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
                    (site / "index.html").as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    with Image.open(io.BytesIO(shot.read_bytes())) as im:
        rgb = im.convert("RGB")
    counts = rgb.getcolors(maxcolors=WIDTH * HEIGHT) or []

    def pixels(hex_colour: str) -> int:
        want = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        return sum(n for n, c in counts if all(abs(a - b) < 10 for a, b in zip(c, want, strict=True)))

    assert pixels("#dd6b20") > 200  # the dashed change-point lines and their labels
    assert pixels("#c53030") > 50  # the failed night's dots and the REGRESSION note
    assert pixels("#2b6cb0") > 500  # the series


def test_an_empty_history_gives_a_page_that_says_so(tmp_path: Path):
    done = orchestrate("publish", "--site", str(tmp_path / "s"), "--history", str(tmp_path / "none.sqlite"))
    assert done.returncode == 0, done.stderr
    assert "No runs recorded" in (tmp_path / "s" / "index.html").read_text()


def test_a_capacity_scenario_is_drawn_as_capacity_over_time(tmp_path: Path):
    """A scenario with load.search: each run's point is the capacity its searches found (its runs
    are at rates the search chose, so their QPS is no series); a 20% drop is a change point."""
    db = tmp_path / "history.sqlite"
    h = open_history(db)
    for night, cap in enumerate([50_000, 50_400, 49_700, 50_100, 49_900, 40_000, 40_300, 39_800, 40_100]):
        rid = f"cap-{night}"
        summary = session(scenario="capacity", run_id=rid, started=f"2026-10-{night + 1:02d}T02:30:00Z",
                          topology={"server": "h"},
                          hosts={"h": {"cpu_model": "cpu-x", "cpus": 2, "roles": ["server"]}},
                          runs=[run_record(run_id="001-reuseport-t1-c64-rate1000-r1",
                                           rate={"target": 1000.0, "achieved": 1000.0, "sustained": True})],
                          capacity=[{"arch": "reuseport", "server_threads": 1, "connections": 64,
                                     "capacity": float(cap), "bound": "found"}])
        folder = tmp_path / "results" / rid
        store.ResultsDir(folder).save_summary(summary)
        h.record(store.load_summary(folder), folder)
    done = orchestrate("publish", "--site", str(tmp_path / "site"), "--history", str(db))
    assert done.returncode == 0, done.stderr
    dom = Elements((tmp_path / "site" / "index.html").read_text())
    assert [c["data-kind"] for c in dom.all("svg", class_="chart")] == ["capacity"]
    (shift,) = dom.all("line", class_="shift")
    assert shift["data-run"] == "cap-5" and -21 < float(shift["data-change"]) < -19


def test_two_nights_within_the_noise_are_not_drawn_as_a_cliff(tmp_path: Path):
    """Two nights 1.2% apart, 3 repetitions each, and a floor measured on these hosts: each
    night has its interval bar, the floor is a band, and the dots are a few percent of the
    plot's height apart (the axis once spanned just their range: a full-height drop)."""
    db = tmp_path / "history.sqlite"
    h = open_history(db)
    for night, level in enumerate((100_000, 98_800)):
        runs = [run_record(run_id=f"00{rep}-reuseport-t1-c64-r{rep}", repetition=rep,
                           qps=level * (1 + 0.01 * (rep - 2)), latency_ms={"p99": 1.0}) for rep in (1, 2, 3)]
        rid = f"night-{night}"
        folder = tmp_path / "results" / "nightly" / rid
        store.ResultsDir(folder).save_summary(session(scenario="nightly", run_id=rid,
                                                      started=f"2026-10-0{night + 1}T02:30:00Z", runs=runs))
        h.record(store.load_summary(folder), folder)
    h.record_floor("aa-1", {"scenario": "nightly", "machine": "m", "results_id": "aa-1",
                            "started": "2026-10-01T01:00:00Z", "metric": "qps", "rounds": 5, "points": 1,
                            "sd_log": 0.02})
    out = tmp_path / "site"
    assert orchestrate("publish", "--site", str(out), "--history", str(db)).returncode == 0
    page = Elements((out / "index.html").read_text())
    qps = [a for a in page.all("circle", "run")][:2]
    ys = [float(a["cy"]) for a in qps]
    plot_height = 200 - 26 - 34
    assert abs(ys[0] - ys[1]) < 0.15 * plot_height, ys  # 1.2% is not a cliff
    assert ys[1] > ys[0]  # still drawn lower
    bars = page.all("line", "interval")
    assert [b["data-run"] for b in bars] == ["night-0", "night-1"]
    assert all(float(b["y1"]) > float(b["y2"]) for b in bars)  # low end below the high end
    (band,) = page.all("rect", "floor-band")
    assert float(band["height"]) > 0
