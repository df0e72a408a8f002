"""A self-contained SVG flame graph from folded stacks ("comm;outer;...;inner" -> samples).

Laid out like Brendan Gregg's flamegraph.pl: the bottom bar ("all") is every sample, each
frame sits on its caller with a width proportional to its samples, siblings are sorted by
name (so the x axis is not time, and the same input gives the same bytes). Each frame is a
<g> with a <title> tooltip; no script, fonts or links, so it opens anywhere, offline.
Colours: kernel frames (`_[k]`, see tools/perf.fold) yellow-orange, `[unknown]` grey, the process
(comm) blue, user code red; the shade within a family is a hash of the name, so a
function keeps its colour across runs.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

KERNEL_SUFFIX = "_[k]"
FRAME_H = 16
PAD_TOP = 34
PAD_SIDE = 10
CHAR_W = 6.6  # mean glyph width of 11px Verdana/DejaVu: how much of a name fits a bar
_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0


@dataclass
class _Node:
    samples: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(folded: Mapping[str, int]) -> _Node:
    root = _Node()
    for stack, count in folded.items():
        if count <= 0:
            continue
        root.samples += count
        node = root
        for name in stack.split(";"):
            node = node.children.setdefault(name, _Node())
            node.samples += count
    return root


def _colour(name: str, depth: int) -> str:
    h = zlib.crc32(name.encode()) / 0xFFFFFFFF  # stable across processes, unlike hash()
    if depth == 0:
        return "rgb(200,200,200)"
    if name.endswith(KERNEL_SUFFIX):
        return f"rgb(245,{int(165 + 45 * h)},{int(50 + 30 * h)})"
    if name == "[unknown]":
        return f"rgb({int(170 + 30 * h)},{int(170 + 30 * h)},{int(170 + 30 * h)})"
    if depth == 1:
        return f"rgb(90,{int(140 + 40 * h)},220)"
    return f"rgb({int(215 + 30 * h)},{int(70 + 60 * h)},{int(50 + 30 * h)})"


def _clean(text: str) -> str:
    return _XML_BAD.sub("?", text)


def render_svg(folded: Mapping[str, int], *, title: str, width: int = 1200,
               min_fraction: float = 0.001) -> str:
    """The flame graph as SVG text; frames under `min_fraction` of all samples are omitted.

    An omitted frame's samples still count in its caller's width, so widths stay true.
    """
    root = _tree(folded)
    total = root.samples
    plot_w = width - 2 * PAD_SIDE
    min_samples = total * min_fraction
    bars: list[tuple[int, float, float, str, int]] = []  # depth, x, w, name, samples

    def place(name: str, node: _Node, depth: int, x: float) -> None:
        w = plot_w * node.samples / total
        bars.append((depth, x, w, name, node.samples))
        for child_name in sorted(node.children):
            child = node.children[child_name]
            if child.samples >= min_samples:
                place(child_name, child, depth + 1, x)
            x += plot_w * child.samples / total

    if total > 0:
        place("all", root, 0, PAD_SIDE)
    depth_max = max((b[0] for b in bars), default=0)
    height = PAD_TOP + (depth_max + 1) * FRAME_H + PAD_SIDE
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        "<style>text{font:11px Verdana,'DejaVu Sans',sans-serif;fill:#000}"
        "g:hover rect{stroke:#000;stroke-width:.8}rect{stroke:#fff;stroke-width:.3}</style>",
        f'<rect class="bg" width="{width}" height="{height}" fill="#fafaf5" stroke="none"/>',
        f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" style="font-size:15px">'
        f"{escape(_clean(title))}</text>",
    ]
    if total == 0:
        out.append(f'<text x="{width / 2:.0f}" y="{PAD_TOP + 10}" text-anchor="middle">no samples</text>')
    for depth, x, w, name, samples in bars:
        y = height - PAD_SIDE - (depth + 1) * FRAME_H
        shown = _clean(name)
        tip = f"{shown} ({samples:,} samples, {100 * samples / total:.2f}%)"
        fits = int((w - 4) / CHAR_W)
        label = shown if len(shown) <= fits else (shown[: fits - 2] + ".." if fits >= 3 else "")
        out.append(
            f"<g><title>{escape(tip)}</title>"
            f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{FRAME_H - 1}" '
            f'fill="{_colour(name, depth)}" rx="2"/>'
            + (f'<text x="{x + 3:.2f}" y="{y + FRAME_H - 4}">{escape(label)}</text>' if label else "")
            + "</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
