"""Detection confusion matrix with a background row and column.

Per image, the predictions with score >= `score_threshold` and the non-crowd ground truth are paired
class-agnostically: all pairs with IoU >= `iou_threshold`, by descending IoU (ties: prediction, then
ground-truth order), each prediction and each ground truth at most once. A pair counts in
[ground-truth class, predicted class]; an unpaired ground truth in [its class, background] (missed); an
unpaired prediction in [background, its class] (a false alarm), unless it lies on a crowd region
(intersection / its area >= `iou_threshold`, COCO's crowd IoU), where it is not counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from visionloop.evaluate.inputs import CocoInputs
from visionloop.evaluate.matching import ImageMatch, match_images

BACKGROUND = "background"


@dataclass
class DetectionConfusion:
    """`matrix[i, j]`: ground truth of class i (row; last row: background) predicted as class j (column;
    last column: background). Classes in ground-truth order; `category_ids` align with the first rows."""

    category_ids: list[int]
    classes: list[str]  # names, then "background"
    matrix: np.ndarray  # int64 [K + 1, K + 1]
    iou_threshold: float
    score_threshold: float

    def to_json(self) -> dict[str, Any]:
        return {"iou_threshold": self.iou_threshold, "score_threshold": self.score_threshold,
                "category_ids": self.category_ids, "classes": self.classes, "matrix": self.matrix.tolist(),
                "rows": "ground truth", "columns": "prediction"}


def add_image(m: ImageMatch, index: dict[int, int], matrix: np.ndarray, iou_threshold: float,
              score_threshold: float) -> None:
    bg = matrix.shape[0] - 1
    keep = np.flatnonzero(m.score >= score_threshold)
    real = np.flatnonzero(~m.crowd)
    crowd = np.flatnonzero(m.crowd)
    iou = m.iou[np.ix_(keep, real)]
    pairs = np.argwhere(iou >= iou_threshold)
    dt_used = np.zeros(len(keep), dtype=bool)
    gt_used = np.zeros(len(real), dtype=bool)
    if len(pairs):
        order = np.lexsort((pairs[:, 1], pairs[:, 0], -iou[pairs[:, 0], pairs[:, 1]]))
        for r, c in pairs[order]:
            if dt_used[r] or gt_used[c]:
                continue
            dt_used[r] = gt_used[c] = True
            matrix[index[int(m.gt_cat[real[c]])], index[int(m.dt_cat[keep[r]])]] += 1
    for c in np.flatnonzero(~gt_used):
        matrix[index[int(m.gt_cat[real[c]])], bg] += 1
    for r in np.flatnonzero(~dt_used):
        if len(crowd) and (m.iou[keep[r], crowd] >= iou_threshold).any():
            continue
        matrix[bg, index[int(m.dt_cat[keep[r]])]] += 1


def detection_confusion(inputs: CocoInputs, *, iou_threshold: float = 0.5, score_threshold: float = 0.25,
                        matches: Iterable[ImageMatch] | None = None) -> DetectionConfusion:
    """The confusion matrix of validated inputs (see the module docstring); `matches` reuses the IoUs of
    a `match_images` pass (any matching threshold)."""
    ids = list(inputs.categories)
    index = {cid: i for i, cid in enumerate(ids)}
    matrix = np.zeros((len(ids) + 1, len(ids) + 1), dtype=np.int64)
    for m in matches if matches is not None else match_images(inputs, iou_threshold=iou_threshold):
        add_image(m, index, matrix, iou_threshold, score_threshold)
    return DetectionConfusion(ids, [inputs.categories[c] for c in ids] + [BACKGROUND], matrix, iou_threshold,
                              score_threshold)
