"""Checks shared by the report tests: PNG validity and the HTML's structure."""

from __future__ import annotations

import io
import struct
from html.parser import HTMLParser

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the magic: a PNG that is really one."""
    assert data[:8] == PNG_MAGIC, "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_png(data: bytes, min_width: int = 400) -> None:
    from PIL import Image

    w, h = png_size(data)
    assert len(data) > 1024, "PNG suspiciously small"
    assert w >= min_width and h >= 200, (w, h)
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # decodes every pixel: a truncated or corrupt file fails here
        assert im.size == (w, h)


class Dom(HTMLParser):
    """Just enough of the DOM for the assertions: <img> attributes, table rows per table id, links."""

    def __init__(self, html: str):
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.rows: dict[str, int] = {}
        self.cells: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self.srcs: list[str] = []
        self._table: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        if "src" in a:
            self.srcs.append(a["src"] or "")
        if tag in ("a", "link") and a.get("href"):
            self.links.append(a["href"] or "")
        if tag == "table":
            self._table = a.get("id") or "?"
            self.rows[self._table] = 0
            self.cells[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._table and self._in_body:
            self.rows[self._table] += 1
            self.cells[self._table].append([])
        elif tag == "td" and self._table and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None and self._table:
            self.cells[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def md_table(md: str, header_start: str) -> list[list[str]]:
    """Rows (cells) of the Markdown table whose header line starts with header_start."""
    lines = md.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        # split on unescaped pipes only: evidence may contain an escaped \|
        cells, cur, esc = [], "", False
        for ch in line.strip()[1:-1]:
            if ch == "|" and not esc:
                cells.append(cur.strip())
                cur = ""
            else:
                cur += ch
            esc = ch == "\\" and not esc
        cells.append(cur.strip())
        rows.append(cells)
    return rows
