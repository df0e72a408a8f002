"""report.html opened in a real browser (headless Chromium): it renders, and shows the table and plots."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from report_checks import Dom, png_size

from orchestrator.report import plots, render

WIDTH, HEIGHT = 1280, 2400


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium: apt-get install -y chromium")


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    # Flags for a sandboxless root container; no network side traffic (updates, sync, QUIC).
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.fixture
def report(analysed_folder: Path) -> render.ReportPaths:
    return render.build(analysed_folder)


def test_screenshot_is_a_rendered_page(report: render.ReportPaths, tmp_path: Path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    done = run_chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
                        report.html.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert png_size(data) == (WIDTH, HEIGHT)
    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
    counts = rgb.getcolors(maxcolors=WIDTH * HEIGHT) or []  # [(pixel count, (r, g, b))]
    non_white = sum(n for n, c in counts if min(c) < 240) / (WIDTH * HEIGHT)
    colours = len(counts)
    # a blank or error page is nearly all white with a handful of colours; the report has text,
    # tables, coloured verdict badges and (within 2400 px) the first charts
    assert non_white > 0.05, non_white
    assert colours > 200, colours
    # the recorded run's verdict badges' colours are on screen (server-bound #c05621,
    # latency-bound teal #2c7a7b)
    seen = [c for _, c in counts]
    assert any(abs(r - 0xC0) < 12 and abs(g - 0x56) < 12 and abs(b - 0x21) < 12 for r, g, b in seen)
    assert any(abs(r - 0x2C) < 8 and abs(g - 0x7A) < 8 and abs(b - 0x7B) < 8 for r, g, b in seen)


def test_dom_has_verdict_table_and_every_plot(report: render.ReportPaths, tmp_path: Path):
    done = run_chromium(tmp_path, "--dump-dom", report.html.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = Dom(done.stdout)
    runs = json.loads((report.html.parent / "summary.json").read_text())["runs"]
    assert dom.rows.get("verdicts") == len(runs)
    assert [row[0] for row in dom.cells["verdicts"]] == [r["run_id"] for r in runs]
    assert [i.get("data-chart") for i in dom.imgs] == [key for key, *_ in plots.CHARTS
                                                       if key not in plots.OPEN_LOOP_CHARTS]
    assert all((i.get("src") or "").startswith("data:image/png;base64,") for i in dom.imgs)
