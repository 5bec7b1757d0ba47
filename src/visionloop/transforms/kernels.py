"""Geometry kernels: one function per (operation, geometry type), found through a registry.

    kernels.affine(Box(10, 10, 50, 40), matrix=affine.hflip(640), size=(640, 480))
    → (Box(590, 10, 630, 40), 1.0)                      # new geometry, visible share

`affine` is the one kernel every geometric op uses: it maps a geometry by a
3x3 matrix onto a canvas of `size` (width, height), clips it to the canvas and
says which share of it is still visible (1.0 untouched, 0.0 gone, when the
geometry is None). `hflip`, `vflip` and `rot90` are named shortcuts.

Rules, per type:

- Box: the 4 corners are mapped and the new box is their bounds. Under a
  rotation or shear this box is larger than the object (it is the box around
  the turned box); an annotation that also has a polygon or mask gets its box
  from that instead (`Annotation.box` derives from the geometry). Then clipped.
- RotatedBox: the 4 corners are mapped; after a rotation, flip or uniform scale
  they are still a rectangle and the box is exact. After a shear or stretch the
  parallelogram is replaced by its minimum-area rectangle. Clipping clips the
  corner polygon, then takes the minimum-area rectangle of what is left.
- Polygon: every point is mapped, each ring is clipped to the canvas
  (Sutherland-Hodgman); rings left with no area are dropped.
- Mask: lattice maps (flips, quarter turns, crops, tiles) move the mask's
  pixels exactly; any other map resamples it (nearest neighbour, pixel centres).
- Keypoints: labelled points are mapped; points off the canvas become
  unlabelled (0, 0, 0). The instance is visible while any point remains.
- Polyline: every point is mapped and the line is cut at the canvas's edges
  (`Polyline.clip`, exact). A line that leaves the canvas and comes back is cut
  into several lines: `affine_pieces` gives each (ops and frames keep each as an
  annotation of its own, same class and attributes); `affine` gives the one
  piece and raises ValueError when there are several. Nothing left inside (or
  only a point on an edge): gone.
- Label, Caption: unchanged (they describe the whole image).

Visible share: clipped area / mapped area (for masks, pixels kept / pixels
expected from the map's area scale; for polylines, length kept / mapped length).

Register a kernel for a new type with `@register_kernel("affine", MyGeometry)`;
registering a (kernel, type) pair twice raises ValueError. Lookups follow the MRO.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from visionloop.core.geometry import (
    Box,
    Caption,
    Geometry,
    Keypoints,
    Label,
    Mask,
    Polygon,
    Polyline,
    RotatedBox,
)
from visionloop.transforms import affine as A

Kernel = Callable[..., Any]

_KERNELS: dict[str, dict[type, Kernel]] = {}


def register_kernel(name: str, geometry: type) -> Callable[[Kernel], Kernel]:
    """Decorator: `fn` is kernel `name` for `geometry`. Duplicates raise ValueError."""

    def deco(fn: Kernel) -> Kernel:
        table = _KERNELS.setdefault(name, {})
        if geometry in table:
            raise ValueError(f"kernel {name!r} for {geometry.__name__} is already registered "
                             f"({table[geometry].__module__}.{table[geometry].__qualname__})")
        table[geometry] = fn
        return fn

    return deco


def kernel(name: str, geometry: type) -> Kernel:
    table = _KERNELS.get(name)
    if table is None:
        raise KeyError(f"no kernel named {name!r}")
    for cls in geometry.__mro__:
        if cls in table:
            return table[cls]
    raise TypeError(f"kernel {name!r} does not handle {geometry.__name__}; register one with register_kernel")


def registered(name: str) -> tuple[type, ...]:
    return tuple(_KERNELS.get(name, {}))


Result = tuple[Geometry | None, float]


def affine(geometry: Geometry, *, matrix: np.ndarray, size: tuple[int, int]) -> Result:
    """Map `geometry` by `matrix` onto a canvas of `size` = (width, height); clip; visible share."""
    fn: Callable[..., Result] = kernel("affine", type(geometry))
    return fn(geometry, matrix=matrix, size=size)


Pieces = tuple[tuple[Geometry, ...], float]


def affine_pieces(geometry: Geometry, *, matrix: np.ndarray, size: tuple[int, int]) -> Pieces:
    """As `affine`, for any geometry: every piece the canvas leaves, and the visible share. A polyline cut into
    several lines gives each; any other geometry one piece, or none when it is gone."""
    table = _KERNELS.get("affine_pieces", {})
    for cls in type(geometry).__mro__:
        if cls in table:
            fn: Callable[..., Pieces] = table[cls]
            return fn(geometry, matrix=matrix, size=size)
    g, visible = affine(geometry, matrix=matrix, size=size)
    return ((g,) if g is not None else ()), visible


def hflip(geometry: Geometry, *, width: int, height: int) -> Result:
    return affine(geometry, matrix=A.hflip(width), size=(width, height))


def vflip(geometry: Geometry, *, width: int, height: int) -> Result:
    return affine(geometry, matrix=A.vflip(height), size=(width, height))


def rot90(geometry: Geometry, *, k: int, width: int, height: int) -> Result:
    """k quarter turns counter-clockwise, as np.rot90; the canvas becomes height×width for odd k."""
    size = (height, width) if k % 2 else (width, height)
    return affine(geometry, matrix=A.rot90(k, width, height), size=size)


# -- helpers ----------------------------------------------------------------------------------
def _clip_ring(xs: np.ndarray, ys: np.ndarray, w: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Sutherland-Hodgman clip of one closed ring to [0, w] × [0, h]."""
    pts = list(zip(xs.tolist(), ys.tolist(), strict=True))
    if all(0 <= x <= w and 0 <= y <= h for x, y in pts):
        return xs, ys
    for axis, bound, keep_less in ((0, 0.0, False), (0, float(w), True), (1, 0.0, False), (1, float(h), True)):
        if not pts:
            break
        out: list[tuple[float, float]] = []

        def inside(p: tuple[float, float], axis: int = axis, bound: float = bound,
                   keep_less: bool = keep_less) -> bool:
            return p[axis] <= bound if keep_less else p[axis] >= bound

        prev = pts[-1]
        for cur in pts:
            cin, pin = inside(cur), inside(prev)
            if cin != pin:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                ix = prev[0] + t * (cur[0] - prev[0])
                iy = prev[1] + t * (cur[1] - prev[1])
                if axis == 0:
                    ix = bound
                else:
                    iy = bound
                out.append((ix, iy))
            if cin:
                out.append(cur)
            prev = cur
        pts = out
    if not pts:
        return np.empty(0), np.empty(0)
    arr = np.asarray(pts, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def _area(xs: np.ndarray, ys: np.ndarray) -> float:
    if len(xs) < 3:
        return 0.0
    return abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))) / 2


def _visible(kept: float, full: float) -> float:
    if full <= 0:
        return 1.0 if kept >= 0 else 0.0
    return max(0.0, min(1.0, kept / full))


def min_area_rect(xs: np.ndarray, ys: np.ndarray) -> RotatedBox:
    """Smallest rectangle around the points (rotating calipers over the convex hull's edges)."""
    import cv2

    pts = np.stack([xs, ys], axis=1)
    hull = cv2.convexHull(pts.astype(np.float64)).reshape(-1, 2) if len(pts) >= 3 else pts
    best: tuple[float, float, float, float, float, float] | None = None
    n = len(hull)
    for i in range(n):
        dx, dy = hull[(i + 1) % n] - hull[i]
        length = math.hypot(dx, dy)
        if length == 0:
            continue
        ux, uy = dx / length, dy / length
        u = hull[:, 0] * ux + hull[:, 1] * uy
        v = -hull[:, 0] * uy + hull[:, 1] * ux
        w, h = float(u.max() - u.min()), float(v.max() - v.min())
        if best is None or w * h < best[0] - 1e-9:
            cu, cv = (u.max() + u.min()) / 2, (v.max() + v.min()) / 2
            cx, cy = cu * ux - cv * uy, cu * uy + cv * ux
            best = (w * h, float(cx), float(cy), w, h, math.degrees(math.atan2(uy, ux)))
    if best is None:
        return RotatedBox(float(xs.mean()), float(ys.mean()), 0.0, 0.0, 0.0)
    return RotatedBox(*best[1:])


# -- kernels ----------------------------------------------------------------------------------
@register_kernel("affine", Label)
def _affine_label(g: Label, *, matrix: np.ndarray, size: tuple[int, int]) -> Result:
    return g, 1.0


@register_kernel("affine", Caption)
def _affine_caption(g: Caption, *, matrix: np.ndarray, size: tuple[int, int]) -> Result:
    return g, 1.0


@register_kernel("affine", Box)
def _affine_box(g: Box, *, matrix: np.ndarray, size: tuple[int, int]) -> Result:
    xs, ys = A.apply(matrix, np.array([g.x0, g.x1, g.x1, g.x0]), np.array([g.y0, g.y0, g.y1, g.y1]))
    x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())
    w, h = float(size[0]), float(size[1])
    cx0, cy0, cx1, cy1 = min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h)
    full = (x1 - x0) * (y1 - y0)
    kept = (cx1 - cx0) * (cy1 - cy0)
    if cx1 <= cx0 or cy1 <= cy0:
        return None, 0.0
    return Box(cx0, cy0, cx1, cy1), _visible(kept, full)


@register_kernel("affine", Polygon)
def _affine_polygon(g: Polygon, *, matrix: np.ndarray, size: tuple[int, int]) -> Result:
    w, h = size
    rings: list[tuple[float, ...]] = []
    full = kept = 0.0
    for ring in g.rings:
        r = np.asarray(ring, dtype=np.float64)
        xs, ys = A.apply(matrix, r[0::2], r[1::2])
        full += _area(xs, ys)
        cx, cy = _clip_ring(xs, ys, w, h)
        a = _area(cx, cy)
        if len(cx) >= 3 and a > 0:
            kept += a
            rings.append(tuple(float(v) for v in np.stack([cx, cy], axis=1).reshape(-1)))
    if not rings:
        return None, 0.0
    return Polygon(tuple(rings)), _visible(kept, full)


@register_kernel("affine", RotatedBox)
def _affine_rotated(g: RotatedBox, *, matrix: np.ndarray, size: tuple[int, int]) -> Result:
    corners = np.asarray(g.corners(), dtype=np.float64)
    xs, ys = A.apply(matrix, corners[:, 0], corners[:, 1])
    w, h = size
    full = _area(xs, ys)
    cx, cy = _clip_ring(xs, ys, w, h)
    if len(cx) < 3:
        return None, 0.0
    kept = _area(cx, cy)
    if kept <= 0 and full > 0:
        return None, 0.0
    a = matrix[:2, :2]
    similarity = abs(a[0, 0] - a[1, 1] * np.sign(A.det(matrix))) < 1e-9 and \
        abs(a[0, 1] + a[1, 0] * np.sign(A.det(matrix))) < 1e-9
    if len(cx) == 4 and similarity and np.array_equal(cx, xs) and np.array_equal(cy, ys):
        return RotatedBox.from_corners(list(zip(xs.tolist(), ys.tolist(), strict=True))), 1.0
    return min_area_rect(cx, cy), _visible(kept, full)


@register_kernel("affine", Keypoints)
def _affine_keypoints(g: Keypoints, *, matrix: np.ndarray, size: tuple[int, int]) -> Result:
    p = np.asarray(g.points, dtype=np.float64).reshape(-1, 3)
    if len(p) == 0:
        return g, 1.0
    xs, ys = A.apply(matrix, p[:, 0], p[:, 1])
    w, h = size
    labelled = p[:, 2] > 0
    inside = labelled & (xs >= 0) & (xs <= w) & (ys >= 0) & (ys <= h)
    out = np.zeros_like(p)
    out[inside, 0], out[inside, 1], out[inside, 2] = xs[inside], ys[inside], p[inside, 2]
    if labelled.any() and not inside.any():
        return None, 0.0
    return Keypoints(tuple(float(v) for v in out.reshape(-1))), 1.0


@register_kernel("affine_pieces", Polyline)
def _affine_polyline_pieces(g: Polyline, *, matrix: np.ndarray, size: tuple[int, int]) -> Pieces:
    p = np.asarray(g.points, dtype=np.float64)
    xs, ys = A.apply(matrix, p[0::2], p[1::2])
    mapped = Polyline(tuple(float(v) for v in np.stack([xs, ys], axis=1).reshape(-1)))
    parts = mapped.clip(size[0], size[1])
    if not parts:
        return (), 0.0
    if parts == (mapped,):
        return parts, 1.0
    return parts, _visible(sum(q.length for q in parts), mapped.length)


@register_kernel("affine", Polyline)
def _affine_polyline(g: Polyline, *, matrix: np.ndarray, size: tuple[int, int]) -> Result:
    parts, visible = _affine_polyline_pieces(g, matrix=matrix, size=size)
    if len(parts) > 1:
        raise ValueError(f"the canvas cuts this polyline into {len(parts)} lines: use kernels.affine_pieces")
    return (parts[0] if parts else None), visible


@register_kernel("affine", Mask)
def _affine_mask(g: Mask, *, matrix: np.ndarray, size: tuple[int, int]) -> Result:
    arr = g.to_array()
    out = warp_mask(arr, matrix, size)
    before = float(arr.sum()) * abs(A.det(matrix))
    kept = float(out.sum())
    if kept == 0:
        return None, 0.0
    return Mask.from_array(out), _visible(kept, before)


def warp_mask(arr: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A binary (h, w) array mapped onto a (size[1], size[0]) canvas; exact for lattice maps."""
    w, h = size
    if A.is_lattice(matrix):
        idx = A.to_index(matrix)
        ys, xs = np.nonzero(arr)
        a = np.round(idx[:2, :2]).astype(np.int64)
        t = np.round(idx[:2, 2]).astype(np.int64)
        nx = a[0, 0] * xs + a[0, 1] * ys + t[0]
        ny = a[1, 0] * xs + a[1, 1] * ys + t[1]
        keep = (nx >= 0) & (nx < w) & (ny >= 0) & (ny < h)
        out = np.zeros((h, w), dtype=np.uint8)
        out[ny[keep], nx[keep]] = 1
        return out
    import cv2

    m = A.to_index(matrix)[:2].astype(np.float64)
    warped: np.ndarray = cv2.warpAffine(np.ascontiguousarray(arr, dtype=np.uint8), m, (int(w), int(h)),
                                        flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped
