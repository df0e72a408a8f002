"""CPU lists in the kernel's format ("0-3,8,10-11"), read and written in one place."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PART = re.compile(r"(\d+)(?:-(\d+))?")


def parse_list(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5] in the order written ('' -> []); ValueError on anything else,
    naming the text. The kernel writes such lists sorted; a user's order may mean something
    (server thread i goes on the i-th CPU), so it is kept, duplicates too, for the caller."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        m = _PART.fullmatch(part)
        if not m or int(m[2] or m[1]) < int(m[1]):
            raise ValueError(f"cannot read {text.strip()!r} as CPUs; expected e.g. '0-3,8'")
        cpus.extend(range(int(m[1]), int(m[2] or m[1]) + 1))
    return cpus


def ranges(cpus: Iterable[int]) -> str:
    """[0, 1, 2, 3, 8] -> '0-3,8' (the inverse of parse_list)."""
    out: list[str] = []
    ordered = sorted(set(cpus))
    start = None
    for i, c in enumerate(ordered):
        if start is None:
            start = c
        if i + 1 == len(ordered) or ordered[i + 1] != c + 1:
            out.append(str(start) if start == c else f"{start}-{c}")
            start = None
    return ",".join(out)
