"""Privacy blurring: faces (and plates, with a detector the user supplies) found by ONNX detectors from the
registry, blurred in place; every other pixel stays exactly as it was.

    regions = find_regions([face_predictor], rgb, conf=0.5)      # [Region(class, box, score, source)]
    regions += plate_bands([("my-cars", car_predictor)], rgb)    # no plate detector yet: vehicles' plate bands
    out = blur(rgb, regions)                                     # a copy; only the regions' ellipses change

Detectors are plug-ins: anything with `predict(rgb, conf=...) -> Prediction` (the gallery's face-detector,
a user's plate detector added with `visionloop gallery add --onnx`). Regions are plain data so a caller can
store them, and a user can add or reject one before the blur is applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Region:
    cls: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels
    score: float
    source: str  # which detector found it (model name), or "user"

    def to_json(self) -> dict[str, Any]:
        return {"class": self.cls, "box": [round(v, 2) for v in self.box], "score": round(self.score, 4),
                "source": self.source}


def find_regions(detectors: list[tuple[str, Any]], rgb: np.ndarray, *, conf: float = 0.5,
                 classes: set[str] | None = None) -> list[Region]:
    """Regions to blur: every detection of every (name, detector) above `conf` (of `classes`, when given)."""
    out: list[Region] = []
    for name, det in detectors:
        pred = det.predict(rgb, conf=conf)
        for b, s, c in zip(pred.boxes, pred.scores, pred.labels, strict=True):
            cls = pred.classes[int(c)]
            if classes is None or cls in classes:
                out.append(Region(cls, tuple(float(v) for v in b), float(s), name))  # type: ignore[arg-type]
    return out


#: the classes a vehicle detector may call a vehicle (COCO's, Cityscapes', Mapillary's and the generic names)
VEHICLE_CLASSES = frozenset({"car", "truck", "bus", "van", "motorcycle", "motorbike", "vehicle", "caravan",
                             "trailer", "pickup"})
#: where a plate sits on a vehicle seen from the front or the back, as fractions of its box (x0, y0, x1, y1)
PLATE_BAND = (0.15, 0.55, 0.85, 0.95)


def plate_bands(detectors: list[tuple[str, Any]], rgb: np.ndarray, *, conf: float = 0.5,
                classes: frozenset[str] = VEHICLE_CLASSES, min_width: float = 24.0) -> list[Region]:
    """The fallback until a plate detector is supplied: for every vehicle a detector finds, the band where a
    licence plate sits (`PLATE_BAND` of its box: the lower 40 %, without the outer 15 % on each side), as a
    region of class `plate` whose source names the vehicle detector. Vehicles narrower than `min_width` px are
    too far for a readable plate and are left alone. Coarser than a plate detector — it blurs bumpers and
    lights too — but no plate of a detected vehicle stays sharp."""
    fx0, fy0, fx1, fy1 = PLATE_BAND
    out: list[Region] = []
    for vehicle in find_regions(detectors, rgb, conf=conf, classes=set(classes)):
        x0, y0, x1, y1 = vehicle.box
        w, h = x1 - x0, y1 - y0
        if w < min_width:
            continue
        band = (x0 + fx0 * w, y0 + fy0 * h, x0 + fx1 * w, y0 + fy1 * h)
        out.append(Region("plate", band, vehicle.score, f"{vehicle.source} ({vehicle.cls} band)"))
    return out


def blur(rgb: np.ndarray, regions: list[Region], *, grow: float = 0.15) -> np.ndarray:
    """A copy of `rgb` with an ellipse over each region (its box grown by `grow` per side) replaced by a strong
    Gaussian blur of the neighbourhood (sigma a quarter of the box's shorter side, at least 4 px). Pixels outside
    the ellipses are untouched (byte-identical)."""
    import cv2

    out = rgb.copy()
    h, w = rgb.shape[:2]
    for r in regions:
        x0, y0, x1, y1 = r.box
        gx, gy = (x1 - x0) * grow, (y1 - y0) * grow
        x0, y0, x1, y1 = max(0, int(x0 - gx)), max(0, int(y0 - gy)), min(w, int(np.ceil(x1 + gx))), min(h, int(np.ceil(y1 + gy)))
        if x1 <= x0 or y1 <= y0:
            continue
        sigma = max(4.0, min(x1 - x0, y1 - y0) / 4)
        pad = int(3 * sigma)
        px0, py0, px1, py1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        blurred = cv2.GaussianBlur(out[py0:py1, px0:px1], (0, 0), sigmaX=sigma, sigmaY=sigma)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.ellipse(mask, (((x1 - x0) / 2, (y1 - y0) / 2), (float(x1 - x0), float(y1 - y0)), 0.0), 1, -1)
        inner = blurred[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
        region = out[y0:y1, x0:x1]
        region[mask.astype(bool)] = inner[mask.astype(bool)]
    return out
