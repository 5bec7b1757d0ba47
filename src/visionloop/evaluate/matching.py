"""Per-image IoU and COCO's own greedy matching, for error analysis and the confusion matrix.

`match_images` reproduces pycocotools' `evaluateImg` for the area range "all" at one IoU threshold:
per image and category, predictions by descending score (stable, so ties keep the results' order) and
only the best `max_dets`; each takes the unmatched non-crowd ground truth of highest IoU >= the threshold,
else a crowd region (then it is ignored, neither right nor wrong). So a prediction that is a false
positive here is one in the COCO metric too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from visionloop.evaluate.inputs import CocoInputs, IouType

TP, FP, IGNORED, SKIPPED = 1, 0, 2, 3  # prediction status; SKIPPED: beyond max_dets of its class in its image


@dataclass
class ImageMatch:
    image_id: int
    gts: list[dict[str, Any]]  # the image's ground-truth annotations, in file order
    dts: np.ndarray  # int [D]: indices into inputs.predictions, in results order
    iou: np.ndarray  # float [D, G]; crowd columns hold COCO's crowd IoU (intersection / prediction area)
    crowd: np.ndarray  # bool [G]
    gt_cat: np.ndarray  # int [G]
    dt_cat: np.ndarray  # int [D]
    score: np.ndarray  # float [D]
    status: np.ndarray  # int8 [D]: TP, FP, IGNORED or SKIPPED
    dt_gt: np.ndarray  # int [D]: column matched (TP or IGNORED), else -1
    gt_dt: np.ndarray  # int [G]: row matched, else -1


def gt_geometry(ann: dict[str, Any], iou_type: IouType, size: tuple[int, int] | None) -> Any:
    """The ground truth's geometry as COCO's IoU sees it: the box, or the mask as a compressed RLE."""
    if iou_type is IouType.BBOX:
        return ann["bbox"]
    from faster_coco_eval.core import mask as mask_utils

    assert size is not None
    h, w = size
    seg = ann["segmentation"]
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    if isinstance(seg["counts"], list):
        return mask_utils.frPyObjects(seg, h, w)
    return seg


def _iou(inputs: CocoInputs, dts: list[int], gts: list[dict[str, Any]], sizes: dict[int, Any]) -> np.ndarray:
    if not dts or not gts:
        return np.zeros((len(dts), len(gts)))
    from faster_coco_eval.core import mask as mask_utils

    crowd = [int(g["iscrowd"]) for g in gts]
    preds = inputs.predictions
    if inputs.iou_type is IouType.BBOX:
        d = np.array([preds[i]["bbox"] for i in dts], dtype=np.float64)
        g = np.array([a["bbox"] for a in gts], dtype=np.float64)
    else:
        size = sizes[gts[0]["image_id"]]
        d = [preds[i]["segmentation"] for i in dts]
        g = [gt_geometry(a, IouType.SEGM, size) for a in gts]
    return np.asarray(mask_utils.iou(d, g, crowd), dtype=np.float64).reshape(len(dts), len(gts))


def match_images(inputs: CocoInputs, *, iou_threshold: float = 0.5, max_dets: int = 100) -> Iterator[ImageMatch]:
    """Every ground-truth image (in file order) with its predictions, IoUs and COCO matching."""
    gts_of: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for a in inputs.ground_truth["annotations"]:
        gts_of[a["image_id"]].append(a)
    dts_of: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(inputs.predictions):
        dts_of[p["image_id"]].append(i)
    sizes = {im["id"]: (im.get("height"), im.get("width")) for im in inputs.ground_truth["images"]}
    preds = inputs.predictions
    for im in inputs.ground_truth["images"]:
        img = im["id"]
        gts, dts = gts_of.get(img, []), dts_of.get(img, [])
        iou = _iou(inputs, dts, gts, sizes)
        crowd = np.array([bool(g["iscrowd"]) for g in gts], dtype=bool)
        gt_cat = np.array([g["category_id"] for g in gts], dtype=np.int64)
        dt_cat = np.array([preds[i]["category_id"] for i in dts], dtype=np.int64)
        score = np.array([preds[i]["score"] for i in dts], dtype=np.float64)
        status = np.full(len(dts), FP, dtype=np.int8)
        dt_gt = np.full(len(dts), -1, dtype=np.int64)
        gt_dt = np.full(len(gts), -1, dtype=np.int64)
        for cat in np.unique(dt_cat):
            rows = np.flatnonzero(dt_cat == cat)
            rows = rows[np.argsort(-score[rows], kind="mergesort")]
            status[rows[max_dets:]] = SKIPPED
            rows = rows[:max_dets]
            cols = np.flatnonzero(gt_cat == cat)
            cols = cols[np.argsort(crowd[cols], kind="mergesort")]  # non-crowd first, as pycocotools
            _greedy(rows, cols, iou, crowd, iou_threshold, status, dt_gt, gt_dt)
        yield ImageMatch(img, gts, np.asarray(dts, dtype=np.int64), iou, crowd, gt_cat, dt_cat, score, status,
                         dt_gt, gt_dt)


def _greedy(rows: np.ndarray, cols: np.ndarray, iou: np.ndarray, crowd: np.ndarray, t: float,
            status: np.ndarray, dt_gt: np.ndarray, gt_dt: np.ndarray) -> None:
    """pycocotools' evaluateImg inner loop for one threshold (cocoeval.py), on one image and category."""
    if len(cols) == 0:
        return
    taken = np.zeros(len(cols), dtype=bool)
    col_crowd = crowd[cols]
    for r in rows:
        best = min(t, 1 - 1e-10)
        m = -1
        ious = iou[r, cols]
        for k in range(len(cols)):
            if taken[k] and not col_crowd[k]:
                continue
            if m > -1 and not col_crowd[m] and col_crowd[k]:
                break
            if ious[k] < best:
                continue
            best = ious[k]
            m = k
        if m == -1:
            continue
        taken[m] = True
        dt_gt[r] = cols[m]
        if col_crowd[m]:
            status[r] = IGNORED
        else:
            status[r] = TP
            gt_dt[cols[m]] = r
