import pytest

from orchestrator.point import Axis, PointKey, by_all_but


def test_a_point_is_an_ordered_hashable_mapping():
    p = PointKey([("server.arch", "reuseport"), ("load.keepalive", False), ("load.rate", None)])
    assert list(p) == ["server.arch", "load.keepalive", "load.rate"]
    assert p == PointKey({"server.arch": "reuseport", "load.keepalive": False, "load.rate": None})
    assert p != PointKey({"load.keepalive": False, "server.arch": "reuseport", "load.rate": None})
    assert len({p, PointKey(p.items())}) == 1
    assert p.value("load.keepalive") is False and p.value("nope", 3) == 3
    assert p.label() == "server.arch=reuseport load.keepalive=false"
    assert p.short([Axis("load.keepalive", "ka"), Axis("server.arch", "")]) == "reuseport-kaoff"
    assert p.short([]) == "arch=reuseport-keepalive=off"  # undeclared: named in full
    assert p.without("server.arch") == PointKey({"load.keepalive": False, "load.rate": None})
    assert p.replace(**{"load.keepalive": True})["load.keepalive"] is True
    with pytest.raises(KeyError):
        p.replace(**{"server.work_us": 5})
    assert PointKey.of_record(p.as_json()) == p
    with pytest.raises(ValueError, match="twice"):
        PointKey([("a", 1), ("a", 2)])


def test_run_id_tags_are_short_and_path_safe():
    assert Axis("variant", "").tag("big buffers/v2") == "big-buffers-v2"
    assert Axis("load.rate", "q").tag(2000.0) == "q2000"


def test_by_all_but_pairs_points_on_a_factor():
    pts = [PointKey({"arch": a, "w": w}) for w in (0, 5) for a in ("rp", "ms")]
    groups = by_all_but(pts, "arch")
    assert list(groups) == [PointKey({"w": 0}), PointKey({"w": 5})]
    assert [p["arch"] for p in groups[PointKey({"w": 5})]] == ["rp", "ms"]
