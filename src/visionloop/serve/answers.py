"""A model's outputs as the API answers them: request parameters, the class filter, and the mapping of raw
outputs (in the model's input) back to the image's pixels — the same functions (`infer.post`, `infer.masks`)
that `visionloop predict` uses, so the server and the CLI answer alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from visionloop.infer.decoders import unletterbox_points
from visionloop.infer.masks import instance_masks, rle, semantic_map
from visionloop.infer.post import select, unletterbox
from visionloop.serve.errors import BadRequest


@dataclass
class Params:
    confidence: float = 0.25
    iou: float = 0.6
    max_detections: int = 100
    classes: list[str] | None = None
    tile: tuple[int, int] | None = None  # rows, cols: tiled inference of a detector (small objects, big images)
    overlap: float = 0.2


def class_filter(names: list[str], classes: list[str] | None) -> np.ndarray | None:
    """The classes a request asks for (names, or indices as digits) as a mask over the model's classes."""
    if not classes:
        return None
    keep = np.zeros(len(names), bool)
    for c in classes:
        if c in names:
            keep[names.index(c)] = True
        elif c.isdigit() and int(c) < len(names):
            keep[int(c)] = True
        else:
            raise BadRequest(f"unknown class {c[:64]!r} in `classes`", hint=f"classes: {', '.join(names)}")
    return keep


def answer(p: Any, outs: list[np.ndarray], matrix: np.ndarray, w: int, h: int, params: Params,
           keep: np.ndarray | None) -> list[dict[str, Any]]:
    """One image's raw outputs (`p` the model's `infer.Predictor`) as the API's predictions."""
    names = p.classes
    if p.task == "classify":
        probs = outs[0].astype(np.float64)
        order = [int(i) for i in np.argsort(-probs, kind="stable")
                 if probs[i] >= params.confidence and (keep is None or keep[i])][:params.max_detections]
        return [{"class": names[i], "class_id": i, "confidence": round(float(probs[i]), 6)} for i in order]
    if p.task == "semantic":
        label_map = semantic_map(outs[0], matrix, w, h)
        counts = np.bincount(label_map.reshape(-1), minlength=len(names) + 1)
        return [{"class": names[k - 1], "class_id": k - 1, "pixels": int(counts[k]),
                 "fraction": round(float(counts[k]) / max(1, label_map.size), 6), "mask": rle(label_map == k)}
                for k in range(1, len(names) + 1) if counts[k] and (keep is None or keep[k - 1])]
    scores = outs[1] if keep is None else outs[1] * keep[None, :]
    index, conf, labels = select(outs[0], scores, conf=params.confidence, iou=params.iou,
                                 max_det=params.max_detections)
    boxes = unletterbox(outs[0][index].reshape(-1, 4), matrix, w, h)
    out = detections(boxes, conf, labels, names)
    if p.task == "segment":
        for d, m in zip(out, instance_masks(outs[2][index], outs[3], boxes, matrix, w, h), strict=True):
            d["mask"] = rle(m)
    elif len(outs) > 2:  # a gallery detector's landmarks
        for d, pts in zip(out, unletterbox_points(outs[2][index], matrix, w, h), strict=True):
            d["keypoints"] = [[round(float(pts[i]), 2), round(float(pts[i + 1]), 2)] for i in range(0, len(pts), 2)]
    return out


def pipeline_predictions(pred: Any, keep: np.ndarray | None = None) -> list[dict[str, Any]]:
    """A pipeline's `infer.Prediction` as the API answers it: detections (box, class, class id, confidence), each
    OCR line with its `text` and `polygon` (4 [x, y] corners in the image's pixels, clockwise from top-left)."""
    out = detections(pred.boxes, pred.scores, pred.labels, pred.classes)
    if pred.texts is not None and pred.polygons is not None:
        for d, t, poly in zip(out, pred.texts, pred.polygons, strict=True):
            d["text"] = t
            d["polygon"] = [[round(float(x), 2), round(float(y), 2)] for x, y in poly]
    if keep is not None:
        out = [d for d in out if keep[d["class_id"]]]
    return out


def detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    """Detections as the API answers them (box in the image's pixels, class, class id, confidence)."""
    return [{"box": {"x0": round(float(b[0]), 2), "y0": round(float(b[1]), 2), "x1": round(float(b[2]), 2),
                     "y1": round(float(b[3]), 2)},
             "class": names[int(c)], "class_id": int(c), "confidence": round(float(s), 6)}
            for b, s, c in zip(boxes, scores, labels, strict=True)]


def ms(s: float) -> float:
    return round(s * 1000, 3)
