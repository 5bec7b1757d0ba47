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
    the ellipses are untouched (byte-identical). The kernel is `transforms.redact.blur_boxes`, which exports use."""
    from visionloop.transforms.redact import blur_boxes

    return blur_boxes(rgb, [r.box for r in regions], grow=grow)


def load_detectors(store: Any, *, faces: bool, plates: str | None) -> list[tuple[str, Any]]:
    """(registry name, ONNX Predictor) for the gallery's face-detector (when `faces`) and a plate model."""
    from visionloop.core.errors import VisionLoopError
    from visionloop.infer import Predictor
    from visionloop.store import models as registry

    if not faces and not plates:
        raise VisionLoopError("nothing to blur", hint="pass --faces and/or --plates MODEL")
    detectors: list[tuple[str, Any]] = []
    for name in (["face-detector"] if faces else []) + ([plates] if plates else []):
        try:
            info = registry.get(store, name)
        except VisionLoopError:
            if name == "face-detector":
                raise VisionLoopError("this project has no face-detector",
                                      hint="visionloop gallery add face-detector") from None
            raise
        e = info.export("onnx")
        if info.task != "detect" or e is None:
            raise VisionLoopError(f"model {name} is not a detector with an ONNX export",
                                  hint="blur needs detection models")
        detectors.append((name, Predictor(registry.blob_file(store, e.sha256))))
    return detectors


@dataclass
class DetectReport:
    batch: int | None  # the undoable batch of kind "blur" (None: nothing new was found)
    images: int  # images looked at
    skipped: int  # images every detector had already run on (a re-run adds nothing)
    regions: dict[str, int]  # regions stored, by class

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch, "images": self.images, "skipped": self.skipped, "regions": self.regions}


def detect_project(store: Any, detectors: list[tuple[str, Any]], *, split: str | None = None,
                   conf: float = 0.5) -> DetectReport:
    """Find the regions to blur on the project's images (of `split`) and store them as one undoable batch;
    the stored image bytes do not change (exports blur them). An image a detector already ran on (its regions,
    rejected ones included, are stored) is not run again by that detector."""
    import cv2
    from sqlalchemy import select

    from visionloop.core.errors import VisionLoopError
    from visionloop.store import blur_regions, tags
    from visionloop.store.schema import ImageRow
    from visionloop.transforms.redact import upright

    images = [im for im in tags.images(store) if split is None or im.split == split]
    if not images:
        raise VisionLoopError("no images to look at" + (f" in split {split!r}" if split else ""), path=store.root)
    names = [n for n, _ in detectors]
    done = blur_regions.detected_by(store, names)
    with store.session() as s:
        orient = dict(s.execute(select(ImageRow.id, ImageRow.orientation)).all())
    found: dict[int, list[blur_regions.Found]] = {}
    skipped = 0
    for im in images:
        todo = [(n, d) for n, d in detectors if (im.id, n) not in done]
        if not todo:
            skipped += 1
            continue
        try:
            rgb = cv2.cvtColor(upright(store.blobs.get(im.sha256), int(orient[im.id] or 1)), cv2.COLOR_BGR2RGB)
        except ValueError:
            raise VisionLoopError("cannot decode the stored image", path=store.root, where=im.file_name) from None
        regs = find_regions(todo, rgb, conf=conf)
        found[im.id] = [blur_regions.Found(r.cls, r.box, r.score, r.source) for r in regs]
    by_class: dict[str, int] = {}
    for regs in found.values():
        for f in regs:
            by_class[f.cls] = by_class.get(f.cls, 0) + 1
    batch, _ = blur_regions.store_found(store, found, source="visionloop blur " + " ".join(names),
                                        summary={"images": len(found), "detectors": names, "conf": conf,
                                                 "split": split})
    return DetectReport(batch, len(images), skipped, by_class)
