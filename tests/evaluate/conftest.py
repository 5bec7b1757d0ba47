"""Deterministic COCO fixtures for the evaluation tests.

`raccoon_gt`: the 200 raccoon photos and 217 VOC boxes (read with visionloop.formats), spread over three
categories with sparse ids (1, 5, 9) by annotation order, plus a crowd region on every tenth image; each
box also carries a mask (an octagon inside the box: polygons, every fourth one as a compressed RLE; the
crowd regions as uncompressed RLE, as COCO stores them). `raccoon_preds(kind)`: seeded perturbations of
that ground truth — jittered boxes, class flips, duplicates, misses, background boxes, predictions on the
crowd regions — as COCO results with boxes (`bbox`) or RLE masks (`segm`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from visionloop.formats import voc

CATEGORIES = [{"id": 1, "name": "raccoon"}, {"id": 5, "name": "dog"}, {"id": 9, "name": "cat"}]


def octagon(x: float, y: float, w: float, h: float) -> list[float]:
    """An octagon inscribed in the box, as one COCO polygon."""
    a, b = w * 0.3, h * 0.3
    pts = [(x + a, y), (x + w - a, y), (x + w, y + b), (x + w, y + h - b), (x + w - a, y + h), (x + a, y + h),
           (x, y + h - b), (x, y + b)]
    return [float(v) for p in pts for v in p]


def uncompressed_rle(m: np.ndarray) -> dict[str, Any]:
    flat = m.flatten(order="F").astype(np.uint8)
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return {"size": list(m.shape), "counts": counts}


def compressed(rle: dict[str, Any]) -> dict[str, Any]:
    return {"size": list(rle["size"]), "counts": rle["counts"].decode() if isinstance(rle["counts"], bytes)
            else rle["counts"]}


def build_gt(raccoon: Path) -> dict[str, Any]:
    samples = sorted(voc.read(raccoon), key=lambda s: s.image.file_name)
    images, anns = [], []
    for i, s in enumerate(samples):
        w, h = s.image.width, s.image.height
        images.append({"id": i + 1, "file_name": s.image.file_name, "width": w, "height": h})
        for a in s.annotations:
            b = a.box
            x, y, bw, bh = b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0
            k = len(anns)
            poly = octagon(x, y, bw, bh)
            seg: Any = [poly]
            if k % 4 == 3:
                seg = compressed(mask_utils.merge(mask_utils.frPyObjects([poly], h, w)))
            anns.append({"id": 1000 + k, "image_id": i + 1, "category_id": CATEGORIES[k % 3]["id"],
                         "bbox": [x, y, bw, bh], "area": float(mask_utils.area(mask_utils.merge(
                             mask_utils.frPyObjects([poly], h, w)))), "iscrowd": 0, "segmentation": seg})
        if i % 10 == 0:
            m = np.zeros((h, w), dtype=np.uint8)
            m[: h // 4, : w // 4] = 1
            anns.append({"id": 1000 + len(anns), "image_id": i + 1, "category_id": 1,
                         "bbox": [0.0, 0.0, float(w // 4), float(h // 4)], "area": float(m.sum()), "iscrowd": 1,
                         "segmentation": uncompressed_rle(m)})
    return {"images": images, "categories": copy.deepcopy(CATEGORIES), "annotations": anns}


def build_preds(gt: dict[str, Any], kind: str, seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    size = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    out: list[dict[str, Any]] = []

    def emit(img: int, cat: int, box: list[float], score: float) -> None:
        h, w = size[img]
        x, y, bw, bh = box
        x, y = min(max(x, 0.0), w - 2.0), min(max(y, 0.0), h - 2.0)
        bw, bh = max(min(bw, w - x), 1.0), max(min(bh, h - y), 1.0)
        d: dict[str, Any] = {"image_id": img, "category_id": cat, "score": round(float(score), 6)}
        if kind == "bbox":
            d["bbox"] = [round(float(v), 2) for v in (x, y, bw, bh)]
        else:
            d["segmentation"] = compressed(mask_utils.merge(mask_utils.frPyObjects([octagon(x, y, bw, bh)], h, w)))
        out.append(d)

    cat_ids = [c["id"] for c in gt["categories"]]
    for a in gt["annotations"]:
        x, y, bw, bh = a["bbox"]
        if a["iscrowd"]:
            emit(a["image_id"], 1, [x + bw * 0.2, y + bh * 0.2, bw * 0.3, bh * 0.3], rng.uniform(0.2, 0.9))
            continue
        if rng.random() < 0.12:
            continue  # missed
        j = rng.normal(0, 0.12, 4)
        cat = a["category_id"] if rng.random() > 0.12 else int(rng.choice(cat_ids))
        emit(a["image_id"], cat, [x + j[0] * bw, y + j[1] * bh, bw * (1 + j[2]), bh * (1 + j[3])],
             rng.uniform(0.05, 1.0))
        if rng.random() < 0.2:  # a duplicate
            emit(a["image_id"], a["category_id"], [x + 2, y + 2, bw - 1, bh + 1], rng.uniform(0.05, 0.6))
    for im in gt["images"]:
        h, w = size[im["id"]]
        for _ in range(int(rng.integers(0, 3))):  # background boxes
            bw, bh = rng.uniform(8, w / 3), rng.uniform(8, h / 3)
            emit(im["id"], int(rng.choice(cat_ids)), [rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh],
                 rng.uniform(0.01, 0.8))
    return out


@pytest.fixture(scope="session")
def raccoon_gt(raccoon: Path) -> dict[str, Any]:
    return build_gt(raccoon)


@pytest.fixture(scope="session")
def raccoon_preds(raccoon_gt: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {kind: build_preds(raccoon_gt, kind) for kind in ("bbox", "segm")}
