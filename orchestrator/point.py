"""A matrix point: an ordered mapping from axis (a dotted scenario key, or `variant`) to value.

The one definition of "which point of the matrix" that plan, records, history, compare and the
report share. Which keys may be axes, and how each is written in a run id, is declared once in
scenario.AXES; this module knows nothing of scenarios.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

Value = str | int | float | bool | None


@dataclass(frozen=True)
class Axis:
    """A scenario key that may be written as a list to sweep it."""

    name: str  # dotted key path, e.g. "server.work_us"; "variant" for named variants
    short: str  # its prefix in run ids ("" for a name-like value such as an architecture)
    classic: bool = False  # one of the four axes every point has had since format 1

    def tag(self, value: Value) -> str:
        """The value as written in a run id: short and free of path separators."""
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif isinstance(value, float):
            text = f"{value:g}"
        else:
            text = str(value)
        text = "".join(c if c.isalnum() or c in "._" else "-" for c in text)
        return f"{self.short}{text}"


class PointKey(Mapping[str, Value]):
    """An ordered, hashable, immutable mapping axis -> value."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, Value]] | Mapping[str, Value] = ()) -> None:
        pairs = tuple(items.items() if isinstance(items, Mapping) else items)
        names = [a for a, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError(f"an axis appears twice in a point: {names}")
        self._items: tuple[tuple[str, Value], ...] = pairs

    def __getitem__(self, axis: str) -> Value:
        for a, v in self._items:
            if a == axis:
                return v
        raise KeyError(axis)

    def __iter__(self) -> Iterator[str]:
        return (a for a, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PointKey):
            return self._items == other._items
        return NotImplemented

    def __repr__(self) -> str:
        return f"PointKey({dict(self._items)!r})"

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(a for a, _ in self._items)

    def value(self, axis: str, default: Value = None) -> Value:
        return self.get(axis, default)

    def without(self, axis: str) -> PointKey:
        """The point with one axis left out (e.g. the factor a comparison pairs on)."""
        return PointKey((a, v) for a, v in self._items if a != axis)

    def replace(self, **values: Value) -> PointKey:
        """The point with some axes' values changed (dotted names given as a dict: `**{"a.b": 1}`)."""
        unknown = set(values) - set(self.axes)
        if unknown:
            raise KeyError(f"not axes of this point: {sorted(unknown)}")
        return PointKey((a, values.get(a, v)) for a, v in self._items)

    def with_axis(self, axis: str, value: Value) -> PointKey:
        """The point with one more axis at the end (or that axis's value replaced)."""
        if axis in self:
            return self.replace(**{axis: value})
        return PointKey((*self._items, (axis, value)))

    def label(self) -> str:
        """For people: `server.arch=reuseport load.keepalive=false` (unset values left out)."""
        return " ".join(f"{a}={text(v)}" for a, v in self._items if v is not None) or "(single point)"

    def compact(self) -> str:
        """For tables and lines: `reuseport threads=1 conns=64 rate=2000 work_us=5 keepalive=false`
        (the classic four as every format has written them, other axes by their last key part)."""
        get = self.get
        head = [f"{get('server.arch')} threads={get('server.threads')} conns={get('load.connections')}"] \
            if any(a in self for a in CLASSIC[:3]) else []
        if get("load.rate") is not None:
            head.append(f"rate={text(get('load.rate'))}")
        head += [f"{a.rsplit('.', 1)[-1]}={text(v)}" for a, v in self._items
                 if a not in CLASSIC and v is not None]
        return " ".join(head) or "(single point)"

    def short(self, axes: Iterable[Axis]) -> str:
        """For run ids: each set value by its axis's short prefix, `reuseport-t2-c64-w5-kaoff`."""
        by_name = {a.name: a for a in axes}
        parts = []
        for a, v in self._items:
            if v is None:
                continue
            axis = by_name.get(a) or Axis(a, a.rsplit(".", 1)[-1] + "=")
            parts.append(axis.tag(v))
        return "-".join(parts)

    def as_json(self) -> dict[str, Value]:
        """The versioned form (a JSON object keeps its keys' order)."""
        return dict(self._items)

    @classmethod
    def of_record(cls, data: Mapping[str, Value]) -> PointKey:
        return cls(data.items())


CLASSIC = ("server.arch", "server.threads", "load.connections", "load.rate")


def classic(arch: Value, threads: Value, conns: Value, rate: Value,
            axes: Mapping[str, Value] | None = None) -> PointKey:
    """A point from the four axes every point has had since format 1, then the others in the
    order they were recorded (how runs, points and history rows of every format are keyed)."""
    p = PointKey(zip(CLASSIC, (arch, threads, conns, rate), strict=True))
    for a, v in (axes or {}).items():
        p = p.with_axis(a, v)
    return p


def others(point: PointKey) -> PointKey:
    """The point without the classic four: what a record keeps as its `axes`."""
    return PointKey((a, v) for a, v in point.items() if a not in CLASSIC)


def by_all_but(points: Iterable[PointKey], axis: str) -> dict[PointKey, list[PointKey]]:
    """Points grouped by every axis except `axis`, in first-seen order (a factor's pairs)."""
    groups: dict[PointKey, list[PointKey]] = {}
    for p in points:
        groups.setdefault(p.without(axis), []).append(p)
    return groups


def text(v: Value) -> str:
    """A value as a person (or --set, or --baseline) writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
