"""Detection post-processing in numpy: score threshold, top-k, class-wise NMS, mapping back to the image.

The exported detector returns decoded boxes (in the letterboxed input's pixels) and per-class
scores for every grid point; this is the only place that turns them into detections, for ONNX
Runtime inference and for the validation metrics during training alike.
"""

from __future__ import annotations

import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS: indices kept, highest score first (ties: the lower index first)."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]))
        h = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]))
        inter = w * h
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


def postprocess(boxes: np.ndarray, scores: np.ndarray, *, conf: float = 0.05, iou: float = 0.6,
                max_det: int = 100, pre_nms: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, 4) boxes and (A, C) scores of one image → boxes (K, 4), scores (K,), labels (K,), best first."""
    index, s, c = select(boxes, scores, conf=conf, iou=iou, max_det=max_det, pre_nms=pre_nms)
    return boxes[index].astype(np.float32).reshape(-1, 4), s, c


def select(boxes: np.ndarray, scores: np.ndarray, *, conf: float = 0.05, iou: float = 0.6, max_det: int = 100,
           pre_nms: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold, top-k and class-wise NMS: the kept points' indices (K,), scores (K,) and labels (K,)."""
    a, c = np.nonzero(scores > conf)
    s = scores[a, c]
    if len(s) > pre_nms:
        top = np.argsort(-s, kind="stable")[:pre_nms]
        a, c, s = a[top], c[top], s[top]
    if len(s) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    b = boxes[a].astype(np.float64)
    offset = c[:, None].astype(np.float64) * (float(np.abs(b).max()) + 1.0)  # class-wise NMS in one pass
    keep = nms(b + offset, s.astype(np.float64), iou)[:max_det]
    return a[keep].astype(np.int64), s[keep].astype(np.float32), c[keep].astype(np.int64)


def unletterbox(boxes: np.ndarray, matrix: np.ndarray, width: int, height: int) -> np.ndarray:
    """Map boxes from the model's input back to the original image (inverse of the letterbox matrix), clipped."""
    m = np.asarray(matrix, dtype=np.float64)
    sx, sy, tx, ty = m[0, 0], m[1, 1], m[0, 2], m[1, 2]
    out = np.empty_like(boxes, dtype=np.float64)
    out[:, [0, 2]] = (boxes[:, [0, 2]] - tx) / sx
    out[:, [1, 3]] = (boxes[:, [1, 3]] - ty) / sy
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out.astype(np.float32)
