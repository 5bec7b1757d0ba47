"""Move annotations drawn on the raw pixel grid into the upright image (EXIF orientation)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from visionloop.core.geometry import Box, Geometry, Keypoints, Label, Mask, Polygon, RotatedBox
from visionloop.core.sample import Annotation

Point = Callable[[float, float], tuple[float, float]]


def point_map(orientation: int, raw_w: float, raw_h: float) -> Point:
    """Raw (x, y) → upright (x, y) for an EXIF orientation (continuous pixel coordinates)."""
    W, H = raw_w, raw_h
    maps: dict[int, Point] = {
        1: lambda x, y: (x, y),
        2: lambda x, y: (W - x, y),
        3: lambda x, y: (W - x, H - y),
        4: lambda x, y: (x, H - y),
        5: lambda x, y: (y, x),
        6: lambda x, y: (H - y, x),
        7: lambda x, y: (H - y, W - x),
        8: lambda x, y: (y, W - x),
    }
    return maps[orientation]


def _box(b: Box, f: Point) -> Box:
    (ax, ay), (bx, by) = f(b.x0, b.y0), f(b.x1, b.y1)
    return Box(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


def reorient(geometry: Geometry, orientation: int, raw_w: int, raw_h: int) -> Geometry:
    if orientation == 1 or isinstance(geometry, Label):
        return geometry
    f = point_map(orientation, raw_w, raw_h)
    if isinstance(geometry, Box):
        return _box(geometry, f)
    if isinstance(geometry, Polygon):
        rings = []
        for r in geometry.rings:
            pts = [f(x, y) for x, y in zip(r[0::2], r[1::2], strict=True)]
            rings.append(tuple(v for p in pts for v in p))
        return Polygon(tuple(rings))
    if isinstance(geometry, Keypoints):
        flat: list[float] = []
        for x, y, v in zip(geometry.points[0::3], geometry.points[1::3], geometry.points[2::3], strict=True):
            nx, ny = f(x, y) if v > 0 else (0.0, 0.0)
            flat += [nx, ny, v]
        return Keypoints(tuple(flat))
    if isinstance(geometry, RotatedBox):
        return RotatedBox.from_corners([f(x, y) for x, y in geometry.corners()])
    if isinstance(geometry, Mask):
        import numpy as np

        a = geometry.to_array()
        ops = {2: lambda m: m[:, ::-1], 3: lambda m: m[::-1, ::-1], 4: lambda m: m[::-1, :],
               5: lambda m: m.T, 6: lambda m: np.rot90(m, -1), 7: lambda m: np.rot90(m, 2).T,
               8: lambda m: np.rot90(m, 1)}
        return Mask.from_array(np.ascontiguousarray(ops[orientation](a)))
    raise TypeError(type(geometry).__name__)


def reorient_annotation(ann: Annotation, orientation: int, raw_w: int, raw_h: int) -> Annotation:
    bbox = _box(ann.bbox, point_map(orientation, raw_w, raw_h)) if ann.bbox is not None else None
    return replace(ann, geometry=reorient(ann.geometry, orientation, raw_w, raw_h), bbox=bbox)
