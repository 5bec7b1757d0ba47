"""preview_version: a PNG grid of a version's (augmented) training images with their annotations drawn."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from visionloop.core.classes import ClassMap
from visionloop.core.errors import ImageError
from visionloop.core.geometry import Box, Keypoints, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation
from visionloop.store import itemcodec
from visionloop.store.project import Store
from visionloop.store.schema import VersionItemRow
from visionloop.versions.api import _ready
from visionloop.versions.selection import classes_from_json


@dataclass
class Preview:
    path: str
    width: int
    height: int
    images: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "width": self.width, "height": self.height, "images": self.images}


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    r, g, b = int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    return (b, g, r)


def grid_size(n: int, cell: int) -> tuple[int, int]:
    """(width, height) of the grid for n images: ceil(sqrt(n)) columns of square cells."""
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    return cols * cell, rows * cell


def draw(image: np.ndarray, annotations: tuple[Annotation, ...], classes: ClassMap) -> np.ndarray:
    """Annotations drawn on a BGR image (boxes, rotated boxes, polygons, lines, mask outlines, keypoints)."""
    import cv2

    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    t = max(1, round(max(out.shape[:2]) / 300))
    for ann in annotations:
        if ann.is_caption:
            continue  # text about the whole image: nothing to draw
        colour = _bgr(classes.color(ann.label)) if ann.label in classes else (0, 255, 255)
        g = ann.geometry
        if isinstance(g, Box):
            cv2.rectangle(out, (round(g.x0), round(g.y0)), (round(g.x1) - 1, round(g.y1) - 1), colour, t)
        elif isinstance(g, RotatedBox):
            pts = np.round(np.asarray(g.corners())).astype(np.int32)
            cv2.polylines(out, [pts], True, colour, t)
        elif isinstance(g, Polygon):
            for i in range(len(g.rings)):
                pts = np.round(np.asarray(g.points(i))).astype(np.int32)
                cv2.polylines(out, [pts], True, colour, t)
        elif isinstance(g, Mask):
            m = np.ascontiguousarray(g.to_array())
            contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, colour, t)
        elif isinstance(g, Polyline):
            cv2.polylines(out, [np.round(np.asarray(g.xy())).astype(np.int32)], False, colour, t)
        elif isinstance(g, Keypoints):
            p = np.asarray(g.points).reshape(-1, 3)
            for x, y, v in p:
                if v > 0:
                    cv2.circle(out, (round(x), round(y)), 2 * t, colour, -1)
        b = ann.box
        if b is not None:
            cv2.putText(out, ann.label, (round(b.x0) + 2, max(12, round(b.y0) + 12)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * t, colour, 1, cv2.LINE_AA)
        else:  # whole-image label
            cv2.putText(out, ann.label, (4, 16 * t), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * t, colour, t, cv2.LINE_AA)
    return out


def preview_version(store: Store, version: str | int, out_png: str | Path, *, n: int = 16, cell: int = 256,
                    split: str | None = None) -> Preview:
    """A grid of n images (augmented training outputs first), evenly spread over the version."""
    import cv2

    info = _ready(store, version)
    classes = classes_from_json(info.classes)
    with store.session() as s:
        base = select(VersionItemRow.id).where(VersionItemRow.version_id == info.id)
        if split is not None:
            candidates = s.scalars(base.where(VersionItemRow.split == split)
                                   .order_by(VersionItemRow.position, VersionItemRow.out_index)).all()
        else:
            candidates = s.scalars(base.where(VersionItemRow.split == "train", VersionItemRow.out_index > 0)
                                   .order_by(VersionItemRow.position, VersionItemRow.out_index)).all()
            if len(candidates) < n:
                candidates = s.scalars(base.order_by(VersionItemRow.position, VersionItemRow.out_index)).all()
        ids = np.asarray(candidates, dtype=np.int64)
        if len(ids) > n:
            ids = ids[np.round(np.linspace(0, len(ids) - 1, n)).astype(np.int64)]
        rows = {r.id: r for r in s.scalars(select(VersionItemRow).where(VersionItemRow.id.in_(ids.tolist())))}
    count = max(1, len(ids))
    W, H = grid_size(count, cell)
    cols = W // cell
    canvas = np.full((H, W, 3), 32, dtype=np.uint8)
    names = []
    for k, iid in enumerate(ids.tolist()):
        r = rows[iid]
        img = cv2.imdecode(np.frombuffer(store.blobs.get(r.sha256), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ImageError("cannot decode the version's image", path=r.file_name, where=f"blob {r.sha256}")
        img = draw(img, itemcodec.loads(r.annotations), classes)
        h, w = img.shape[:2]
        s_ = min(cell / w, cell / h)
        nw, nh = max(1, round(w * s_)), max(1, round(h * s_))
        thumb = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        x0, y0 = (k % cols) * cell + (cell - nw) // 2, (k // cols) * cell + (cell - nh) // 2
        canvas[y0:y0 + nh, x0:x0 + nw] = thumb
        names.append(r.file_name)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", canvas)
    if not ok:
        raise RuntimeError("OpenCV could not encode the preview PNG")
    out_png.write_bytes(buf.tobytes())
    return Preview(str(out_png), W, H, names)
