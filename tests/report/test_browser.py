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


# Measured in the page after layout: every table fits its wrapper at desktop width (no
# horizontal scroll, no column off the right edge), and no cell's content spills out of its
# cell at either width (a narrow window may scroll a table inside its wrapper, never clip it).
LAYOUT_JS = """<script>
addEventListener('load', () => {
  const out = [];
  for (const t of document.querySelectorAll('table')) {
    const wrap = t.closest('.table-wrap') || t.parentElement;
    const scrolls = getComputedStyle(wrap).overflowX;
    out.push({table: t.id || '(anonymous)', width: t.scrollWidth, room: wrap.clientWidth, scrolls,
              spilled: [...t.querySelectorAll('td, th')].filter(c => c.scrollWidth > c.clientWidth + 1)
                        .map(c => c.textContent.trim().slice(0, 40))});
  }
  out.push({page: document.documentElement.scrollWidth, window: innerWidth});
  document.body.setAttribute('data-layout', JSON.stringify(out));
});
</script></body>"""


def layout(html: Path, tmp_path: Path, width: int) -> list[dict]:
    probe = html.with_name(f"layout-{width}.html")
    probe.write_text(html.read_text().replace("</body>", LAYOUT_JS))
    done = run_chromium(tmp_path, "--dump-dom", f"--window-size={width},1000", probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    import re

    found = re.search(r'data-layout="([^"]*)"', done.stdout)
    assert found, "the layout probe did not run"
    import html as html_mod

    return json.loads(html_mod.unescape(found.group(1)))


@pytest.mark.parametrize("width", [1300, 700])
def test_no_column_is_clipped_and_the_answer_comes_first(tmp_path: Path, width: int):
    import random
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_answer import factor_summary

    from orchestrator import store

    folder = tmp_path / "factor"
    store.ResultsDir(folder).save_summary(factor_summary(random.Random(4), 6, cpu_ratio=1.3))
    paths = render.build(folder)
    found = layout(paths.html, tmp_path, width)
    *tables, page = found
    assert page["page"] <= page["window"], page  # the page itself never scrolls sideways
    assert {t["table"] for t in tables} >= {"answer", "verdicts"}
    for t in tables:
        assert not t["spilled"], t
        if width >= 1300:
            assert t["width"] <= t["room"], t  # at desktop width every column is on screen
        else:
            assert t["width"] <= t["room"] or t["scrolls"] in ("auto", "scroll"), t
    html = paths.html.read_text()
    assert html.index('id="answer-section"') < html.index('id="verdict-section"')


def test_the_recorded_runs_report_fits_at_desktop_width(report: render.ReportPaths, tmp_path: Path):
    *tables, page = layout(report.html, tmp_path, 1300)
    assert page["page"] <= page["window"], page
    for t in tables:
        assert not t["spilled"] and t["width"] <= t["room"], t


@pytest.mark.parametrize("width", [1300, 700])
def test_a_search_answer_fits_and_comes_first(tmp_path: Path, width: int):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_search_answer import recorded_search_summary

    from orchestrator import store

    folder = tmp_path / "search"
    store.ResultsDir(folder).save_summary(recorded_search_summary())
    paths = render.build(folder)
    *tables, page = layout(paths.html, tmp_path, width)
    assert page["page"] <= page["window"], page
    assert [t["table"] for t in tables][:2] == ["search-answer", "verdicts"]
    for t in tables:
        assert not t["spilled"], t
        # the answer fits at desktop width; the detail tables below it may scroll in their frame
        strict = width >= 1300 and t["table"] in ("search-answer", "verdicts")
        assert t["width"] <= t["room"] or (not strict and t["scrolls"] in ("auto", "scroll")), t
