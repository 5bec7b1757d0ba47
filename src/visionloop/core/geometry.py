"""Geometry types: absolute pixel coordinates in the image as stored (upright).

Pixel convention: continuous coordinates, (0, 0) is the top-left corner of the
top-left pixel and (width, height) the bottom-right corner of the last pixel. A
box covering exactly pixel column 0 is x0=0, x1=1. Formats with other
conventions (VOC's 1-based inclusive pixels, YOLO's normalised centres) convert
at their edge.

Each type validates itself once, at construction, and is immutable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def _finite(cls: str, **values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{cls}.{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box, corners (x0, y0) top-left and (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        # one isfinite on the sum: NaN and ±inf propagate (the hot path of every reader)
        if not math.isfinite(self.x0 + self.y0 + self.x1 + self.y1):
            _finite("Box", x0=self.x0, y0=self.y0, x1=self.x1, y1=self.y1)
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ValueError(
                f"Box corners are inverted: ({self.x0}, {self.y0}) to ({self.x1}, {self.y1})"
            )

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        return cls(x, y, x + w, y + h)

    @classmethod
    def from_cxcywh(cls, cx: float, cy: float, w: float, h: float) -> Box:
        return cls(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return self.width * self.height

    def xywh(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1 - self.x0, self.y1 - self.y0)

    def cxcywh(self) -> tuple[float, float, float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2, self.width, self.height)

    def clip(self, width: float, height: float) -> Box:
        return Box(
            min(max(self.x0, 0.0), width),
            min(max(self.y0, 0.0), height),
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
        )

    def inside(self, width: float, height: float) -> bool:
        return self.x0 >= 0 and self.y0 >= 0 and self.x1 <= width and self.y1 <= height


@dataclass(frozen=True, slots=True)
class RotatedBox:
    """Oriented box: centre, size, and angle in degrees, clockwise on screen (y points down)."""

    cx: float
    cy: float
    w: float
    h: float
    angle: float

    def __post_init__(self) -> None:
        _finite("RotatedBox", cx=self.cx, cy=self.cy, w=self.w, h=self.h, angle=self.angle)
        if self.w < 0 or self.h < 0:
            raise ValueError(f"RotatedBox size must not be negative, got {self.w}×{self.h}")

    @property
    def area(self) -> float:
        return self.w * self.h

    def corners(self) -> tuple[tuple[float, float], ...]:
        """Four corners, clockwise on screen, starting top-left of the unrotated box."""
        t = math.radians(self.angle)
        c, s = math.cos(t), math.sin(t)
        out = []
        for dx, dy in ((-self.w / 2, -self.h / 2), (self.w / 2, -self.h / 2),
                       (self.w / 2, self.h / 2), (-self.w / 2, self.h / 2)):
            out.append((self.cx + dx * c - dy * s, self.cy + dx * s + dy * c))
        return tuple(out)

    @classmethod
    def from_corners(cls, points: list[tuple[float, float]] | tuple[tuple[float, float], ...]) -> RotatedBox:
        """Best rectangle through four corners given in order (the DOTA / YOLO-OBB layout)."""
        if len(points) != 4:
            raise ValueError(f"a rotated box needs 4 corners, got {len(points)}")
        (x1, y1), (x2, y2), (x3, y3), (x4, y4) = points
        cx = (x1 + x2 + x3 + x4) / 4
        cy = (y1 + y2 + y3 + y4) / 4
        w = (math.hypot(x2 - x1, y2 - y1) + math.hypot(x3 - x4, y3 - y4)) / 2
        h = (math.hypot(x4 - x1, y4 - y1) + math.hypot(x3 - x2, y3 - y2)) / 2
        angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
        return cls(cx, cy, w, h, angle)

    def bounds(self) -> Box:
        xs = [p[0] for p in self.corners()]
        ys = [p[1] for p in self.corners()]
        return Box(min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True, slots=True)
class Polygon:
    """One or more rings, each a flat tuple (x0, y0, x1, y1, ...) of at least 3 points.

    Several rings describe one object split into parts (COCO's multi-part
    segmentation); they are not holes.
    """

    rings: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if not self.rings:
            raise ValueError("Polygon needs at least one ring")
        for i, ring in enumerate(self.rings):
            if len(ring) % 2:
                raise ValueError(f"Polygon ring {i} has an odd number of coordinates ({len(ring)})")
            if len(ring) < 6:
                raise ValueError(f"Polygon ring {i} has {len(ring) // 2} points; at least 3 are needed")
            # one isfinite on the sum (NaN and ±inf propagate); the loop only to name the culprit
            if not math.isfinite(sum(ring)):
                for v in ring:
                    if not math.isfinite(v):
                        raise ValueError(f"Polygon ring {i} has a non-finite coordinate {v!r}")

    @classmethod
    def from_points(cls, points: list[tuple[float, float]]) -> Polygon:
        return cls((tuple(float(c) for p in points for c in p),))

    def points(self, ring: int = 0) -> list[tuple[float, float]]:
        r = self.rings[ring]
        return list(zip(r[0::2], r[1::2], strict=True))

    @property
    def area(self) -> float:
        """Sum of the rings' shoelace areas (absolute)."""
        total = 0.0
        for r in self.rings:
            xs, ys = r[0::2], r[1::2]
            n = len(xs)
            s = 0.0
            for i in range(n):
                j = (i + 1) % n
                s += xs[i] * ys[j] - xs[j] * ys[i]
            total += abs(s) / 2
        return total

    def bounds(self) -> Box:
        xs = [v for r in self.rings for v in r[0::2]]
        ys = [v for r in self.rings for v in r[1::2]]
        return Box(min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True, slots=True)
class Polyline:
    """An open line of at least 2 points, a flat tuple (x0, y0, x1, y1, ...): a lane marking, a kerb, a wire.

    Open: the last point is not joined to the first (a closed outline is a `Polygon`), so it encloses nothing
    and its area is 0. Several separate lines are several annotations. Coordinates are kept as floats.
    """

    points: tuple[float, ...]

    def __post_init__(self) -> None:
        if not all(type(v) is float for v in self.points):
            object.__setattr__(self, "points", tuple(float(v) for v in self.points))  # 3 and 3.0 read alike
        n = len(self.points)
        if n % 2:
            raise ValueError(f"Polyline has an odd number of coordinates ({n})")
        if n < 4:
            raise ValueError(f"Polyline has {n // 2} point{'s' if n != 2 else ''}; at least 2 are needed")
        if not math.isfinite(sum(self.points)):
            for v in self.points:
                if not math.isfinite(v):
                    raise ValueError(f"Polyline has a non-finite coordinate {v!r}")

    @classmethod
    def from_points(cls, points: list[tuple[float, float]] | tuple[tuple[float, float], ...]) -> Polyline:
        return cls(tuple(float(c) for p in points for c in p))

    def xy(self) -> list[tuple[float, float]]:
        return list(zip(self.points[0::2], self.points[1::2], strict=True))

    @property
    def count(self) -> int:
        return len(self.points) // 2

    @property
    def length(self) -> float:
        p = self.points
        return sum(math.hypot(p[i + 2] - p[i], p[i + 3] - p[i + 1]) for i in range(0, len(p) - 2, 2))

    @property
    def area(self) -> float:
        return 0.0

    def bounds(self) -> Box:
        xs, ys = self.points[0::2], self.points[1::2]
        return Box(min(xs), min(ys), max(xs), max(ys))

    def clip(self, width: float, height: float) -> tuple[Polyline, ...]:
        """The parts of the line inside [0, width] × [0, height], in order along the line.

        (self,) when it lies inside (its edges included); () when no part of positive length does; several
        when it leaves the rectangle and comes back (each part is then an object of its own). A part that
        only touches an edge at one point is left out. Cut points lie exactly on the edge.
        """
        pts = self.xy()
        if all(0 <= x <= width and 0 <= y <= height for x, y in pts):
            return (self,)
        parts: list[list[tuple[float, float]]] = []
        cur: list[tuple[float, float]] = []
        joined = False  # the current part ends at an original point inside: the next segment continues it
        for (ax, ay), (bx, by) in zip(pts, pts[1:], strict=False):
            t = _clip_segment(ax, ay, bx, by, width, height)
            if t is None:
                joined = False
                continue
            (t0, e0), (t1, e1) = t
            start = (ax, ay) if t0 == 0 else _on_edge(ax + t0 * (bx - ax), ay + t0 * (by - ay), e0, width, height)
            end = (bx, by) if t1 == 1 else _on_edge(ax + t1 * (bx - ax), ay + t1 * (by - ay), e1, width, height)
            if joined and t0 == 0:
                cur.append(end)
            else:
                cur = [start, end]
                parts.append(cur)
            joined = t1 == 1
        kept = [Polyline.from_points(p) for p in parts]
        return tuple(p for p in kept if p.length > 0)


def _clip_segment(x0: float, y0: float, x1: float, y1: float, w: float,
                  h: float) -> tuple[tuple[float, int], tuple[float, int]] | None:
    """Liang-Barsky: where the segment enters and leaves [0, w] × [0, h] as (t, edge) pairs, t in [0, 1] along
    it and edge 0..3 (x=0, x=w, y=0, y=h; -1 for the segment's own end); None when no part is inside."""
    dx, dy = x1 - x0, y1 - y0
    t0, e0, t1, e1 = 0.0, -1, 1.0, -1
    for edge, (p, q) in enumerate(((-dx, x0), (dx, w - x0), (-dy, y0), (dy, h - y0))):
        if p == 0:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            if t > t1:
                return None
            if t > t0:
                t0, e0 = t, edge
        else:
            if t < t0:
                return None
            if t < t1:
                t1, e1 = t, edge
    return (t0, e0), (t1, e1)


def _on_edge(x: float, y: float, edge: int, w: float, h: float) -> tuple[float, float]:
    """A cut point put exactly on the edge it was cut at (and within the rectangle despite rounding)."""
    x, y = min(max(x, 0.0), float(w)), min(max(y, 0.0), float(h))
    if edge in (0, 1):
        x = 0.0 if edge == 0 else float(w)
    elif edge in (2, 3):
        y = 0.0 if edge == 2 else float(h)
    return x, y


@dataclass(frozen=True, slots=True)
class Mask:
    """Binary mask as COCO compressed RLE (column-major, as pycocotools writes it).

    `counts` is the compressed RLE string as bytes; `height`, `width` the mask
    size, which equals the image size.
    """

    counts: bytes
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"Mask size must be positive, got {self.width}×{self.height}")
        if not isinstance(self.counts, bytes):
            raise TypeError("Mask.counts must be the compressed RLE as bytes")

    def rle(self) -> dict[str, object]:
        """The pycocotools RLE dict."""
        return {"size": [self.height, self.width], "counts": self.counts}

    @classmethod
    def from_array(cls, mask: np.ndarray) -> Mask:
        import numpy as np
        from pycocotools import mask as mask_utils

        m = np.asfortranarray(mask.astype(np.uint8))
        rle = mask_utils.encode(m)
        return cls(rle["counts"], int(rle["size"][0]), int(rle["size"][1]))

    @classmethod
    def from_uncompressed(cls, counts: list[int], height: int, width: int) -> Mask:
        """From COCO's uncompressed RLE (`{"counts": [..ints..], "size": [h, w]}`)."""
        from pycocotools import mask as mask_utils

        if sum(counts) != height * width:
            raise ValueError(
                f"uncompressed RLE counts sum to {sum(counts)}, but the size {height}×{width} "
                f"has {height * width} pixels"
            )
        rle = mask_utils.frPyObjects({"counts": list(counts), "size": [height, width]}, height, width)
        return cls(rle["counts"], height, width)

    def to_array(self) -> np.ndarray:
        from pycocotools import mask as mask_utils

        return mask_utils.decode(self.rle())

    def uncompressed_counts(self) -> list[int]:
        """The run lengths (COCO's uncompressed form), starting with a run of zeros."""
        import numpy as np

        flat = self.to_array().flatten(order="F")
        if flat.size == 0:
            return []
        change = np.flatnonzero(np.diff(flat)) + 1
        bounds = np.concatenate(([0], change, [flat.size]))
        runs = np.diff(bounds).tolist()
        if flat[0] == 1:
            runs = [0, *runs]
        return [int(r) for r in runs]

    @property
    def area(self) -> float:
        from pycocotools import mask as mask_utils

        return float(mask_utils.area(self.rle()))

    def bounds(self) -> Box:
        from pycocotools import mask as mask_utils

        x, y, w, h = (float(v) for v in mask_utils.toBbox(self.rle()))
        return Box(x, y, x + w, y + h)


@dataclass(frozen=True, slots=True)
class Keypoints:
    """Flat (x, y, v) triplets in the order the class's keypoint names give.

    v follows COCO: 0 not labelled (x = y = 0), 1 labelled but not visible, 2 visible.
    """

    points: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.points) % 3:
            raise ValueError(f"Keypoints need (x, y, v) triplets, got {len(self.points)} numbers")
        for v in self.points:
            if not math.isfinite(v):
                raise ValueError(f"Keypoints have a non-finite value {v!r}")

    @property
    def count(self) -> int:
        return len(self.points) // 3

    @property
    def labelled(self) -> int:
        return sum(1 for v in self.points[2::3] if v > 0)

    @property
    def area(self) -> float:
        return 0.0

    def bounds(self) -> Box | None:
        pts = [(x, y) for x, y, v in zip(self.points[0::3], self.points[1::3], self.points[2::3], strict=True) if v > 0]
        if not pts:
            return None
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return Box(min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True, slots=True)
class Label:
    """A whole-image class (classification). An image may carry several."""

    @property
    def area(self) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class Caption:
    """A text that describes the whole image (COCO captions, Datumaro's `caption`). An image may carry several.

    A caption is not a class: its annotation's label is empty (`Annotation("", Caption(...))`), and it never
    enters a ClassMap, class counts or a model's classes. The text is kept as given (an empty one too).
    """

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"Caption.text must be a string, got {type(self.text).__name__}")

    @property
    def area(self) -> float:
        return 0.0


Geometry = Box | RotatedBox | Polygon | Mask | Keypoints | Label | Polyline | Caption

#: stable names of the geometry kinds, as stored and as printed
KIND: dict[type, str] = {
    Caption: "caption",
    Box: "box",
    RotatedBox: "rotated_box",
    Polygon: "polygon",
    Mask: "mask",
    Keypoints: "keypoints",
    Label: "label",
    Polyline: "polyline",
}


def kind(geometry: Geometry) -> str:
    return KIND[type(geometry)]


def bounds(geometry: Geometry) -> Box | None:
    """The axis-aligned box around a geometry, None for whole-image labels, captions or empty keypoints."""
    if isinstance(geometry, Box):
        return geometry
    if isinstance(geometry, Label | Caption):
        return None
    return geometry.bounds()


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when both are empty)."""
    iw = min(a.x1, b.x1) - max(a.x0, b.x0)
    ih = min(a.y1, b.y1) - max(a.y0, b.y0)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy arrays, vectorised."""
    import numpy as np

    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def polygon_to_mask(polygon: Polygon, height: int, width: int) -> Mask:
    """Rasterise a polygon the way COCO does (pycocotools.frPyObjects + merge)."""
    from pycocotools import mask as mask_utils

    rles = mask_utils.frPyObjects([list(r) for r in polygon.rings], height, width)
    rle = mask_utils.merge(rles)
    return Mask(rle["counts"], height, width)


def mask_to_polygon(mask: Mask, *, tolerance: float = 0.0) -> Polygon | None:
    """Outer contours of a mask as a polygon, one ring per connected part (OpenCV).

    With `tolerance` > 0 rings are simplified (Douglas-Peucker, in pixels).
    Holes are lost: a caller that must not lose them keeps the mask. Parts
    smaller than 3 points are dropped. Returns None for an empty mask.
    """
    import cv2
    import numpy as np

    arr = np.ascontiguousarray(mask.to_array().astype(np.uint8))
    contours, _ = cv2.findContours(arr, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    for contour in contours:
        if tolerance > 0:
            contour = cv2.approxPolyDP(contour, tolerance, True)
        if len(contour) >= 3:
            rings.append(tuple(float(v) for v in contour.reshape(-1)))
    return Polygon(tuple(rings)) if rings else None


#: the label-map value of pixels that count nowhere (crowd regions, void)
IGNORE = 255


def label_map(masks: np.ndarray, labels: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """Per-object masks (N, H, W) → one (H, W) uint8 map: 0 background, label + 1 per object, larger
    objects painted first so a small object on a large one stays visible; crowd regions `IGNORE`."""
    import numpy as np

    n, h, w = masks.shape if masks.ndim == 3 else (0, 0, 0)
    out = np.zeros((h, w), np.uint8)
    if n == 0:
        return out
    if int(np.max(labels)) + 1 >= IGNORE:
        from visionloop.core.errors import VisionLoopError

        raise VisionLoopError(f"a label map holds at most {IGNORE - 1} classes (background is 0, {IGNORE} is "
                              f"ignored); this one has class {int(np.max(labels))}",
                              hint="merge classes in the version's recipe")
    areas = masks.reshape(n, -1).sum(1)
    for i in np.argsort(-areas, kind="stable"):
        out[masks[i] > 0] = IGNORE if crowd is not None and crowd[i] else int(labels[i]) + 1
    return out
