"""Prediction: what a model says about one image (boxes, scores, labels; probabilities; masks; a label map)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Prediction:
    file_name: str
    width: int
    height: int
    task: str
    classes: list[str]
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # xyxy, image pixels
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    probabilities: np.ndarray | None = None  # classification
    masks: np.ndarray | None = None  # instance segmentation: bool (K, height, width), one per detection
    label_map: np.ndarray | None = None  # semantic: (height, width), 0 background, k + 1 = classes[k]
    keypoints: np.ndarray | None = None  # (K, P, 2) points per detection in image pixels (face landmarks)
    polygons: np.ndarray | None = None  # OCR: (K, 4, 2) text region corners in image pixels
    texts: list[str] | None = None  # OCR: the string read in each region

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file_name": self.file_name, "width": self.width, "height": self.height,
                               "task": self.task}
        if self.task == "classify" and self.probabilities is not None:
            order = np.argsort(-self.probabilities, kind="stable")
            out["classes"] = [{"class": self.classes[i], "score": round(float(self.probabilities[i]), 6)}
                              for i in order]
        elif self.task == "semantic" and self.label_map is not None:
            from visionloop.infer.masks import rle

            counts = np.bincount(self.label_map.reshape(-1), minlength=len(self.classes) + 1)
            total = max(1, self.label_map.size)
            out["segments"] = [{"class": self.classes[k - 1], "pixels": int(counts[k]),
                                "fraction": round(float(counts[k]) / total, 6), "mask": rle(self.label_map == k)}
                               for k in range(1, len(self.classes) + 1) if counts[k]]
        else:
            out["detections"] = [{"class": self.classes[int(c)], "score": round(float(s), 6),
                                  "box": [round(float(v), 2) for v in b]}
                                 for b, s, c in zip(self.boxes, self.scores, self.labels, strict=True)]
            if self.masks is not None:
                from visionloop.infer.masks import rle

                for d, m in zip(out["detections"], self.masks, strict=True):
                    d["mask"] = rle(m)
            if self.texts is not None and self.polygons is not None:
                for d, t, poly in zip(out["detections"], self.texts, self.polygons, strict=True):
                    d["text"] = t
                    d["polygon"] = [[round(float(x), 2), round(float(y), 2)] for x, y in poly]
            if self.keypoints is not None:
                for d, pts in zip(out["detections"], self.keypoints, strict=True):
                    d["keypoints"] = [[round(float(x), 2), round(float(y), 2)] for x, y in pts]
        return out
