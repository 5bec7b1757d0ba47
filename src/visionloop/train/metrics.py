"""Validation metrics during training: COCO mAP (pycocotools) for detection and instance masks, mIoU for
semantic segmentation, accuracy for classification."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np


def detection_metrics(dets: list[tuple[np.ndarray, ...]], targets: list[dict[str, Any]], *, num_classes: int,
                      masks: bool = False) -> dict[str, float]:
    """COCO bbox mAP@[.5:.95], mAP@.5 and mAP@.75 of detections (boxes xyxy, scores, labels[, bool masks
    (K, H, W)]) against targets; with `masks`, also the mask (segm) mAPs as mask_map, mask_map50, mask_map75
    (targets then carry "masks" (N, H, W) at the same size)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from visionloop.infer.masks import rle

    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for i, (det, t) in enumerate(zip(dets, targets, strict=True)):
        boxes, scores, labels = det[:3]
        gt_masks = np.asarray(t["masks"]) if masks else None
        image: dict[str, Any] = {"id": i + 1}
        if gt_masks is not None:
            image["height"], image["width"] = int(t["masks"].shape[-2]), int(t["masks"].shape[-1])
        images.append(image)
        for j, (b, lab) in enumerate(zip(np.asarray(t["boxes"]).tolist(), np.asarray(t["labels"]).tolist(),
                                         strict=True)):
            w, h = b[2] - b[0], b[3] - b[1]
            ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": int(lab) + 1,
                   "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0}
            if gt_masks is not None:
                ann["segmentation"] = rle(gt_masks[j] > 0)
                ann["area"] = float((gt_masks[j] > 0).sum())
            anns.append(ann)
        for j, (b, s, lab) in enumerate(zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True)):
            r = {"image_id": i + 1, "category_id": int(lab) + 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                 "score": float(s)}
            if masks:
                r["segmentation"] = rle(det[3][j])
            results.append(r)
    keys = ["map", "map50", "map75"] + (["mask_map", "mask_map50", "mask_map75"] if masks else [])
    if not anns or not results:
        return dict.fromkeys(keys, 0.0)
    out: dict[str, float] = {}
    for iou_type, prefix in [("bbox", "")] + ([("segm", "mask_")] if masks else []):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            dt = gt.loadRes([dict(r) for r in results])
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        out.update({f"{prefix}map": round(float(ev.stats[0]), 6), f"{prefix}map50": round(float(ev.stats[1]), 6),
                    f"{prefix}map75": round(float(ev.stats[2]), 6)})
    return out


def semantic_metrics(pred_maps: list[np.ndarray], truth_maps: list[np.ndarray], *, num_classes: int) -> dict[str, Any]:
    """mIoU (background included, as mmseg), pixel accuracy and per-class IoU of label maps."""
    from visionloop.evaluate.semantic import SemanticConfusion

    conf = SemanticConfusion(num_classes + 1, ignore_index=255)
    for p, t in zip(pred_maps, truth_maps, strict=True):
        conf.update(t, p)
    m = conf.result()
    return {"miou": round(float(m.miou or 0.0), 6), "pixel_accuracy": round(float(m.pixel_accuracy), 6),
            "iou": [None if v is None else round(float(v), 6) for v in m.iou]}


def classification_metrics(probs: np.ndarray, targets: np.ndarray, *, multi_label: bool) -> dict[str, float]:
    if multi_label:
        pred = probs >= 0.5
        exact = float(np.mean(np.all(pred == (targets > 0.5), axis=1)))
        return {"accuracy": round(exact, 6), "label_accuracy": round(float(np.mean(pred == (targets > 0.5))), 6)}
    return {"accuracy": round(float(np.mean(probs.argmax(1) == targets)), 6)}
