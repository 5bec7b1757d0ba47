"""Deterministic synthetic datasets: shapes with exact boxes, polygons and masks.

Three classes: `square` (a box), `triangle` (a polygon) and `disc` (an RLE
mask). Each image is a smooth gradient with 1–4 non-overlapping shapes drawn
in flat colours, so the annotations are exact by construction. Same seed,
same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from visionloop.core.classes import ClassMap
from visionloop.core.geometry import Box, Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, Sample

CLASSES = ("square", "triangle", "disc")


def shapes(n: int, *, seed: int = 0, size: tuple[int, int] = (320, 240), folder: Path,
           splits: tuple[tuple[str, float], ...] = (("train", 0.7), ("valid", 0.2), ("test", 0.1)),
           ) -> Iterator[Sample]:
    """Render `n` images into `folder` and yield their samples (with `path` set)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    W, H = size
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.cumsum([f for _, f in splits])
    yy, xx = np.mgrid[0:H, 0:W]  # pixel grid for the discs
    for i in range(n):
        # a random low-frequency colour field: each image distinct to a perceptual hash, as photos are
        field = rng.integers(30, 220, (6, 8, 3)).astype(np.uint8)
        img = Image.fromarray(field).resize((W, H), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(img)
        anns: list[Annotation] = []
        taken: list[Box] = []
        for _ in range(int(rng.integers(1, 5))):
            cls = CLASSES[int(rng.integers(0, 3))]
            s = int(rng.integers(24, 72))
            for _try in range(20):
                x0, y0 = int(rng.integers(0, W - s)), int(rng.integers(0, H - s))
                box = Box(x0, y0, x0 + s, y0 + s)
                if all(box.x1 + 2 < b.x0 or b.x1 + 2 < box.x0 or box.y1 + 2 < b.y0 or b.y1 + 2 < box.y0
                       for b in taken):
                    break
            else:
                continue
            taken.append(box)
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            if cls == "square":
                draw.rectangle([x0, y0, x0 + s - 1, y0 + s - 1], fill=colour)
                anns.append(Annotation("square", box))
            elif cls == "triangle":
                pts = [(x0 + s / 2, y0), (x0 + s, y0 + s), (x0, y0 + s)]
                draw.polygon(pts, fill=colour)
                anns.append(Annotation("triangle", Polygon.from_points(pts)))
            else:
                r = s / 2
                cx, cy = x0 + r, y0 + r
                m = ((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2) <= r * r
                arr = np.asarray(img).copy()
                arr[m] = colour
                img = Image.fromarray(arr)
                draw = ImageDraw.Draw(img)
                anns.append(Annotation("disc", Mask.from_array(m.astype(np.uint8))))
        u = (i + 0.5) / n
        split = splits[int(np.searchsorted(bounds, u))][0]
        name = f"shape_{i:04d}.jpg"
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        path = folder / name
        path.write_bytes(buf.getvalue())
        yield Sample(ImageRef(name, W, H, path=str(path)), tuple(anns), split=split)


def classes() -> ClassMap:
    return ClassMap.from_names(CLASSES, start=1)
