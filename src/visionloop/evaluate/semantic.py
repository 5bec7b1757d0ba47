"""Semantic segmentation metrics from a pixel confusion matrix accumulated over label maps (numpy).

IoU_k = TP / (TP + FP + FN) per class; mIoU is the mean over classes that occur in the ground truth or
the predictions (a class absent from both has IoU None and does not count, as in mmseg/torchmetrics'
`nan` handling). Pixels whose ground truth is `ignore_index` count nowhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError


@dataclass
class SemanticMetrics:
    classes: list[str]
    iou: list[float | None]  # per class, None when the class is in neither ground truth nor predictions
    miou: float | None
    pixel_accuracy: float
    class_accuracy: list[float | None]  # recall per class, None without ground-truth pixels
    confusion: np.ndarray  # int64 [K, K]: ground truth (rows) × prediction (columns), in pixels

    def to_json(self) -> dict[str, Any]:
        return {"classes": self.classes, "iou": self.iou, "miou": self.miou, "pixel_accuracy": self.pixel_accuracy,
                "class_accuracy": self.class_accuracy, "confusion": self.confusion.tolist()}


class SemanticConfusion:
    """Accumulates a K×K pixel confusion over (ground truth, prediction) label maps."""

    def __init__(self, classes: Sequence[str] | int, *, ignore_index: int | None = 255) -> None:
        self.classes = [str(k) for k in range(classes)] if isinstance(classes, int) else list(classes)
        self.ignore_index = ignore_index
        k = len(self.classes)
        self.matrix = np.zeros((k, k), dtype=np.int64)

    def update(self, truth: Any, pred: Any) -> None:
        t = np.asarray(truth)
        p = np.asarray(pred)
        if t.shape != p.shape:
            raise VisionLoopError(f"label map {t.shape} and prediction {p.shape} differ in shape",
                                  hint="predict at the label map's size")
        k = len(self.classes)
        keep = t != self.ignore_index if self.ignore_index is not None else np.ones(t.shape, dtype=bool)
        t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
        if t.size and (t.min() < 0 or t.max() >= k):
            raise VisionLoopError(f"a ground-truth pixel is not a class in 0..{k - 1} nor {self.ignore_index}",
                                  hint="set ignore_index for void pixels")
        if p.size and (p.min() < 0 or p.max() >= k):
            raise VisionLoopError(f"a predicted pixel is not a class in 0..{k - 1}", hint="predict class indices")
        self.matrix += np.bincount(t * k + p, minlength=k * k).reshape(k, k)

    def result(self) -> SemanticMetrics:
        return semantic_metrics_from_confusion(self.matrix, self.classes)


def semantic_metrics_from_confusion(matrix: np.ndarray, classes: Sequence[str]) -> SemanticMetrics:
    m = np.asarray(matrix, dtype=np.int64)
    tp = np.diag(m).astype(np.float64)
    gt = m.sum(axis=1).astype(np.float64)
    pr = m.sum(axis=0).astype(np.float64)
    union = gt + pr - tp
    iou = [float(tp[k] / union[k]) if union[k] > 0 else None for k in range(len(tp))]
    present = [v for v in iou if v is not None]
    total = m.sum()
    return SemanticMetrics(
        classes=list(classes), iou=iou, miou=float(np.mean(present)) if present else None,
        pixel_accuracy=float(tp.sum() / total) if total else 0.0,
        class_accuracy=[float(tp[k] / gt[k]) if gt[k] > 0 else None for k in range(len(tp))], confusion=m)


def semantic_metrics(pairs: Iterable[tuple[Any, Any]], classes: Sequence[str] | int, *,
                     ignore_index: int | None = 255) -> SemanticMetrics:
    """Per-class IoU and mIoU over (ground truth, prediction) label-map pairs, streamed."""
    acc = SemanticConfusion(classes, ignore_index=ignore_index)
    for truth, pred in pairs:
        acc.update(truth, pred)
    return acc.result()
