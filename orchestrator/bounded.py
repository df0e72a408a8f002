"""Every file the tool reads is refused in bounded time and memory when it is hostile.

Scenarios come from pull requests and shared repositories in scheduled CI, so a file is bad
input like any other: its size is checked before it is read, and YAML aliases (a "billion
laughs" document is a few lines of aliases of aliases) are bounded by the size the document
would have once expanded, counted on the composed node graph, which shares aliased nodes and
so costs nothing to build.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.errors import UserError

MiB = 1 << 20
MAX_NODES = 100_000  # a real scenario or inventory has hundreds


def read_text(path: str | Path, *, limit: int, what: str) -> str:
    """The file's text, after checking it is no bigger than `limit` bytes (UserError if it is)."""
    p = Path(path)
    size = p.stat().st_size
    if size > limit:
        raise UserError(f"{p}: {size:,} bytes; a {what} may have at most {limit:,}")
    return p.read_text()


def check_text(text: str, source: str, *, limit: int, what: str) -> None:
    if len(text) > limit:
        raise UserError(f"{source}: {len(text):,} characters; a {what} may have at most {limit:,}")


def expanded_nodes(node: yaml.Node, source: str, limit: int = MAX_NODES) -> int:
    """How many nodes `node` stands for with every alias expanded; UserError past `limit`
    (or for an alias of a node that contains it, which would never end)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise UserError(f"{source}:{n.start_mark.line + 1}: a YAML alias refers to a node "
                            "that contains it (a recursive document)")
        open_.add(key)
        if isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in n.value)
        else:
            total = 1
        open_.discard(key)
        if total > limit:
            raise UserError(f"{source}:{n.start_mark.line + 1}: this YAML expands to more than "
                            f"{limit:,} values once its aliases are followed (an alias bomb?)")
        sizes[key] = total
        return total

    return size(node)
