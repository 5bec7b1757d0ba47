"""Polyline: an open line of at least 2 points, validated at construction; its bounds, length, kind, and the exact
cut at a rectangle's edges (what crops, tiles and the import checks use)."""

import math

import pytest

from visionloop.core import Box, Polyline, bounds, kind

LINE = Polyline((1.0, 2.0, 11.0, 2.0, 6.0, 9.5))


def test_clip_is_exact():
    assert LINE.clip(40, 30) == (LINE,)
    assert Polyline((-10, 5, 10, 5, 10, 20)).clip(20, 10) == (Polyline((0, 5, 10, 5, 10, 10)),)
    assert Polyline((5, 5, 25, 5, 25, 8, 5, 8)).clip(20, 10) == (Polyline((5, 5, 20, 5)), Polyline((20, 8, 5, 8)))
    assert Polyline((30, 30, 40, 40)).clip(20, 10) == ()
    assert Polyline((-5, 5, 0, 0, 5, -5)).clip(20, 10) == ()  # touches the corner only: no length inside
    assert Polyline((0, 0, 20, 0)).clip(20, 10) == (Polyline((0, 0, 20, 0)),)  # along an edge: inside
    (cut,) = Polyline((-1, -1, 21, 11)).clip(20, 10)  # diagonal through two corners' edges
    assert cut.points[1] == 0.0 and cut.points[3] == 10.0  # put exactly on the edges it crosses
    assert cut.points[0] == pytest.approx(5 / 6)


def test_validation_and_bounds():
    with pytest.raises(ValueError, match="1 point; at least 2"):
        Polyline((1, 2))
    with pytest.raises(ValueError, match="odd number"):
        Polyline((1, 2, 3))
    with pytest.raises(ValueError, match="non-finite"):
        Polyline((1, 2, float("nan"), 4))
    assert LINE.bounds() == Box(1, 2, 11, 9.5) and LINE.area == 0.0 and LINE.length == 10 + math.hypot(5, 7.5)
    assert Polyline([1, 2, 3, 4]).points == (1.0, 2.0, 3.0, 4.0)  # floats, a tuple


def test_kind_and_bounds_helpers():
    assert kind(LINE) == "polyline" and bounds(LINE) == Box(1, 2, 11, 9.5)
    assert Polyline.from_points([(1, 2), (3, 4)]).xy() == [(1.0, 2.0), (3.0, 4.0)] and LINE.count == 3
