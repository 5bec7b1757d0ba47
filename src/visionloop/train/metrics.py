"""Validation metrics during training: COCO mAP (pycocotools) for detection, accuracy for classification."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np


def detection_metrics(dets: list[tuple[np.ndarray, np.ndarray, np.ndarray]], targets: list[dict[str, Any]], *,
                      num_classes: int) -> dict[str, float]:
    """COCO bbox mAP@[.5:.95] and mAP@.5 of detections (boxes xyxy, scores, labels) against targets."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, results = [], [], []
    for i, ((boxes, scores, labels), t) in enumerate(zip(dets, targets, strict=True)):
        images.append({"id": i + 1})
        for b, lab in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(lab) + 1,
                         "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
        for b, s, lab in zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True):
            results.append({"image_id": i + 1, "category_id": int(lab) + 1,
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)})
    if not anns:
        return {"map": 0.0, "map50": 0.0}
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not results:
            return {"map": 0.0, "map50": 0.0}
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map": round(float(ev.stats[0]), 6), "map50": round(float(ev.stats[1]), 6),
            "map75": round(float(ev.stats[2]), 6)}


def classification_metrics(probs: np.ndarray, targets: np.ndarray, *, multi_label: bool) -> dict[str, float]:
    if multi_label:
        pred = probs >= 0.5
        exact = float(np.mean(np.all(pred == (targets > 0.5), axis=1)))
        return {"accuracy": round(exact, 6), "label_accuracy": round(float(np.mean(pred == (targets > 0.5))), 6)}
    return {"accuracy": round(float(np.mean(probs.argmax(1) == targets)), 6)}
