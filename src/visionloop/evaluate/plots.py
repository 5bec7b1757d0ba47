"""PNG plots of an evaluation: PR curves per class and the detection confusion matrix (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from visionloop.evaluate.coco import CocoMetrics
from visionloop.evaluate.confusion import DetectionConfusion

MAX_CURVES = 20  # classes drawn one by one; beyond that only the mean curve


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure


def pr_curves(metrics: CocoMetrics, path: Path, *, iou: float = 0.5) -> Path:
    """Interpolated precision over COCO's 101 recall thresholds at one IoU (area all, 100 detections), one
    line per class with its AP in the legend, and the mean over classes."""
    Figure = _pyplot()
    t = int(np.argmin(np.abs(np.asarray(metrics.iou_thresholds) - iou)))
    rec = np.asarray(metrics.recall_thresholds)
    prec = metrics.precision[t, :, :, 0, -1]  # [R, K]
    fig = Figure(figsize=(7, 5.5), dpi=100)
    ax = fig.add_subplot()
    defined = [k for k in range(prec.shape[1]) if (prec[:, k] > -1).any()]
    if len(defined) <= MAX_CURVES:
        for k in defined:
            c = metrics.per_class[k]
            ax.plot(rec, np.clip(prec[:, k], 0, None), lw=1, label=f"{c.name} {np.mean(prec[:, k]):.3f}")
    if defined:
        mean = np.clip(prec[:, defined], 0, None).mean(axis=1)
        ax.plot(rec, mean, lw=3, color="black", label=f"all classes {mean.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"Precision–recall at IoU {metrics.iou_thresholds[t]:.2f} ({metrics.iou_type})")
    ax.grid(alpha=0.3)
    if defined:
        ax.legend(loc="lower left", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def confusion_png(confusion: DetectionConfusion, path: Path) -> Path:
    """The confusion matrix, counts in the cells, colour normalised per ground-truth row."""
    Figure = _pyplot()
    m = confusion.matrix
    n = m.shape[0]
    size = min(4 + 0.45 * n, 24)
    fig = Figure(figsize=(size, size * 0.85), dpi=100)
    ax = fig.add_subplot()
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros(m.shape, dtype=float), where=rows > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row")
    ax.set_xticks(range(n), confusion.classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), confusion.classes, fontsize=7)
    ax.set(xlabel="predicted", ylabel="ground truth",
           title=f"Confusion (IoU ≥ {confusion.iou_threshold:g}, score ≥ {confusion.score_threshold:g})")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
