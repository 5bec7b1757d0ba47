"""Classification metrics in numpy: accuracy, per-class precision/recall/F1, confusion matrix.

Single-label: `y_true` int [N] class indices; `y_pred` int [N] indices, or scores [N, K] (argmax).
Multi-label: `y_true` {0, 1} [N, K]; `y_pred` {0, 1} [N, K], or scores [N, K] (>= `threshold`).
A ratio with a zero denominator is 0.0 (as scikit-learn's `zero_division=0`); `support` says when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError


@dataclass
class ClassScores:
    name: str
    precision: float
    recall: float
    f1: float
    support: int  # true instances of the class

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ClassificationMetrics:
    """`accuracy`: share of samples right (multi-label: every label right, i.e. subset accuracy).
    `confusion`: single-label [true, predicted] K×K; multi-label per class [[tn, fp], [fn, tp]] (K×2×2)."""

    multi_label: bool
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    micro_f1: float
    per_class: list[ClassScores]
    confusion: np.ndarray
    samples: int

    def to_json(self) -> dict[str, Any]:
        return {"multi_label": self.multi_label, "accuracy": self.accuracy, "macro_precision": self.macro_precision,
                "macro_recall": self.macro_recall, "macro_f1": self.macro_f1, "micro_f1": self.micro_f1,
                "samples": self.samples, "per_class": [c.to_json() for c in self.per_class],
                "confusion": self.confusion.tolist()}


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(np.shape(a), dtype=np.float64), where=np.asarray(b) > 0)


def _scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, names: Sequence[str]) -> list[ClassScores]:
    p, r = _div(tp, tp + fp), _div(tp, tp + fn)
    f1 = _div(2 * p * r, p + r)
    return [ClassScores(names[k], float(p[k]), float(r[k]), float(f1[k]), int(tp[k] + fn[k]))
            for k in range(len(names))]


def _names(classes: Sequence[str] | int) -> list[str]:
    return [str(k) for k in range(classes)] if isinstance(classes, int) else list(classes)


def classification_metrics(y_true: Any, y_pred: Any, classes: Sequence[str] | int) -> ClassificationMetrics:
    """Single-label metrics (see the module docstring). `classes`: names, or their number."""
    names = _names(classes)
    k = len(names)
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if p.ndim == 2:
        p = p.argmax(axis=1)
    if t.ndim != 1 or p.shape != t.shape:
        raise VisionLoopError(f"labels of shape {t.shape} and predictions of shape {np.shape(y_pred)} do not match",
                              hint="give one class index per sample (or [N, K] scores)")
    for what, a in (("label", t), ("prediction", p)):
        if len(a) and (a.min() < 0 or a.max() >= k or not np.issubdtype(a.dtype, np.integer)):
            raise VisionLoopError(f"a {what} is not a class index in 0..{k - 1}", hint="map class names to indices")
    cm = np.bincount(t.astype(np.int64) * k + p.astype(np.int64), minlength=k * k).reshape(k, k)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    per = _scores(tp, fp, fn, names)
    n = int(t.size)
    acc = float(tp.sum() / n) if n else 0.0
    return ClassificationMetrics(
        multi_label=False, accuracy=acc, macro_precision=float(np.mean([c.precision for c in per])) if k else 0.0,
        macro_recall=float(np.mean([c.recall for c in per])) if k else 0.0,
        macro_f1=float(np.mean([c.f1 for c in per])) if k else 0.0, micro_f1=acc, per_class=per, confusion=cm,
        samples=n)


def multilabel_metrics(y_true: Any, y_pred: Any, classes: Sequence[str] | int, *,
                       threshold: float = 0.5) -> ClassificationMetrics:
    """Multi-label metrics (see the module docstring); float `y_pred` are scores cut at `threshold`."""
    names = _names(classes)
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 2 or t.shape != p.shape or t.shape[1] != len(names):
        raise VisionLoopError(f"labels {t.shape} and predictions {p.shape} must both be [samples, {len(names)}]",
                              hint="one 0/1 column per class")
    if not np.isin(t, (0, 1)).all():
        raise VisionLoopError("multi-label ground truth must be 0 or 1", hint="one 0/1 column per class")
    t = t.astype(bool)
    p = p >= threshold if np.issubdtype(p.dtype, np.floating) else p.astype(bool)
    tp = (t & p).sum(axis=0)
    fp = (~t & p).sum(axis=0)
    fn = (t & ~p).sum(axis=0)
    tn = (~t & ~p).sum(axis=0)
    per = _scores(tp, fp, fn, names)
    cm = np.stack([np.stack([tn, fp], axis=1), np.stack([fn, tp], axis=1)], axis=1)  # [K, 2, 2]
    mp, mr = _div(tp.sum(), tp.sum() + fp.sum()), _div(tp.sum(), tp.sum() + fn.sum())
    micro_f1 = float(_div(2 * mp * mr, mp + mr))
    n = t.shape[0]
    return ClassificationMetrics(
        multi_label=True, accuracy=float((t == p).all(axis=1).mean()) if n else 0.0,
        macro_precision=float(np.mean([c.precision for c in per])), macro_recall=float(np.mean([c.recall for c in per])),
        macro_f1=float(np.mean([c.f1 for c in per])), micro_f1=micro_f1, per_class=per, confusion=cm, samples=n)
