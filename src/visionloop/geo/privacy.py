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

from dataclasses import dataclass, field
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


def _registry_detector(store: Any, name: str, *, role: str) -> tuple[Any, Any]:
    """(registry info, ONNX Predictor) of a detection model, or one error naming what is wrong."""
    from visionloop.core.errors import VisionLoopError
    from visionloop.infer import Predictor
    from visionloop.store import models as registry

    try:
        info = registry.get(store, name)
    except VisionLoopError:
        if name == "face-detector":
            raise VisionLoopError("this project has no face-detector",
                                  hint="visionloop gallery add face-detector") from None
        raise
    e = info.export("onnx")
    if info.task != "detect" or e is None:
        raise VisionLoopError(f"model {name} ({role}) is not a detector with an ONNX export",
                              hint="blur needs detection models")
    return info, Predictor(registry.blob_file(store, e.sha256))


@dataclass
class Detectors:
    """What finds the regions to blur: detectors whose boxes are blurred as they are (faces, plates), and vehicle
    detectors whose vehicles' plate bands are (`plate_bands`, until a plate detector is supplied)."""

    direct: list[tuple[str, Any]]
    vehicles: list[tuple[str, Any]]
    vehicle_classes: frozenset[str] = VEHICLE_CLASSES

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.direct] + [n for n, _ in self.vehicles]

    def find(self, rgb: np.ndarray, *, conf: float = 0.5, only: set[str] | None = None) -> list[Region]:
        """Every region to blur in `rgb` (of the detectors named in `only`, when given)."""
        direct = [(n, d) for n, d in self.direct if only is None or n in only]
        vehicles = [(n, d) for n, d in self.vehicles if only is None or n in only]
        out = find_regions(direct, rgb, conf=conf) if direct else []
        if vehicles:
            out += plate_bands(vehicles, rgb, conf=conf, classes=self.vehicle_classes)
        return out


def load_detectors(store: Any, *, faces: bool, plates: str | None, vehicles: str | None = None,
                   vehicle_classes: list[str] | None = None) -> Detectors:
    """The gallery's face-detector (when `faces`), a plate model and a vehicle model from the registry, checked:
    each must be an ONNX detector, and the vehicle model must detect one of `vehicle_classes` (default
    `VEHICLE_CLASSES`)."""
    from visionloop.core.errors import VisionLoopError

    if not faces and not plates and not vehicles:
        raise VisionLoopError("nothing to blur", hint="pass --faces, --plates MODEL and/or --vehicles MODEL")
    direct = []
    for name in (["face-detector"] if faces else []) + ([plates] if plates else []):
        direct.append((name, _registry_detector(store, name, role="faces" if name == "face-detector" and faces
                                                else "plates")[1]))
    wanted = frozenset(c.strip() for c in vehicle_classes or () if c.strip()) or VEHICLE_CLASSES
    found: list[tuple[str, Any]] = []
    if vehicles:
        info, predictor = _registry_detector(store, vehicles, role="vehicles")
        if not wanted & set(info.classes):
            raise VisionLoopError(f"model {vehicles} detects none of the vehicle classes "
                                  f"({', '.join(sorted(wanted))}); its classes: {', '.join(info.classes)}",
                                  hint="pass --vehicle-classes with the names it uses for vehicles")
        found.append((vehicles, predictor))
    return Detectors(direct, found, wanted)


@dataclass
class DetectReport:
    batch: int | None  # the batch of kind "blur" (None: nothing new was found)
    images: int  # images looked at
    skipped: int  # images every detector had already run on (a re-run adds nothing)
    regions: dict[str, int]  # regions stored, by class
    baked: int = 0  # images whose stored pixels became their blurred copy (the project keeps no originals)
    originals_discarded: int = 0  # original blobs removed from the blob store
    originals_kept: dict[str, str] = field(default_factory=dict)  # sha256 → the table that still uses it

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch, "images": self.images, "skipped": self.skipped, "regions": self.regions,
                "baked": self.baked, "originals_discarded": self.originals_discarded,
                "originals_kept": self.originals_kept}


def _upright_rgb(store: Any, sha: str, orientation: int, name: str) -> np.ndarray:
    import cv2

    from visionloop.core.errors import VisionLoopError
    from visionloop.transforms.redact import upright

    try:
        return cv2.cvtColor(upright(store.blobs.get(sha), int(orientation or 1)), cv2.COLOR_BGR2RGB)
    except ValueError:
        raise VisionLoopError("cannot decode the stored image", path=store.root, where=name) from None


def _bakes(store: Any, found: dict[int, list[Any]], image_ids: set[int]) -> dict[int, Any]:
    """The blurred PNG of each image in `image_ids` (its regions in state blur, then `found`'s), written to the blob
    store: image id → blur_regions.Bake. Images with nothing to blur are left out."""
    from sqlalchemy import select

    from visionloop.core.errors import VisionLoopError
    from visionloop.store import blur_regions
    from visionloop.store.schema import ImageRow
    from visionloop.transforms.redact import redact

    ids = sorted(image_ids)
    with store.engine.connect() as conn:
        existing = blur_regions.boxes_to_blur(conn, ids)
        meta = {int(r.id): r for r in conn.execute(
            select(ImageRow.id, ImageRow.sha256, ImageRow.orientation, ImageRow.file_name)
            .where(ImageRow.id.in_(ids)))} if ids else {}
    out: dict[int, Any] = {}
    for iid in ids:
        boxes = list(existing.get(iid, [])) + [f.box for f in found.get(iid, [])]
        if not boxes:
            continue
        r = meta[iid]
        try:
            data = redact(store.blobs.get(r.sha256), int(r.orientation or 1), boxes)
        except ValueError:
            raise VisionLoopError("cannot decode the stored image to blur it", path=store.root,
                                  where=r.file_name) from None
        out[iid] = blur_regions.Bake(store.blobs.put(data), len(data), blur_regions.digest(boxes))
    return out


def detect_project(store: Any, detectors: Detectors, *, split: str | None = None, conf: float = 0.5,
                   image_ids: list[int] | None = None, source: str | None = None) -> DetectReport:
    """Find the regions to blur on the project's images (of `split`, or the images `image_ids`) and store them as
    one batch of kind blur. While the project keeps originals (the default) the stored bytes do not change and
    every export blurs the regions; when it does not (`privacy.keep_originals: false`), the same batch replaces
    each image with regions by its blurred copy and removes the original blob (not undoable). An image a detector
    already ran on (its regions, rejected ones included, are stored) is not run again by that detector."""
    from sqlalchemy import select

    from visionloop.core.errors import VisionLoopError
    from visionloop.store import blur_regions, tags
    from visionloop.store.schema import ImageRow
    from visionloop.store.settings import privacy

    policy = privacy(store)
    wanted = set(image_ids) if image_ids is not None else None
    images = [im for im in tags.images(store) if (split is None or im.split == split)
              and (wanted is None or im.id in wanted)]
    if not images and image_ids is None:
        raise VisionLoopError("no images to look at" + (f" in split {split!r}" if split else ""), path=store.root)
    names = detectors.names
    done = blur_regions.detected_by(store, names)
    with store.session() as s:
        orient = dict(s.execute(select(ImageRow.id, ImageRow.orientation)).all())
    found: dict[int, list[blur_regions.Found]] = {}
    skipped = 0
    for im in images:
        todo = {n for n in names if (im.id, n) not in done}
        if not todo:
            skipped += 1
            continue
        rgb = _upright_rgb(store, im.sha256, orient[im.id], im.file_name)
        found[im.id] = [blur_regions.Found(r.cls, r.box, r.score, r.source)
                        for r in detectors.find(rgb, conf=conf, only=todo)]
    by_class: dict[str, int] = {}
    for regs in found.values():
        for f in regs:
            by_class[f.cls] = by_class.get(f.cls, 0) + 1
    bake = None
    if not policy.keep_originals:  # the new regions, and any found while the project still kept originals
        with store.engine.connect() as conn:
            pending = set(blur_regions.boxes_to_blur(conn, [im.id for im in images]))
        bake = _bakes(store, found, {i for i, v in found.items() if v} | pending)
    written = blur_regions.write(store, {i: v for i, v in found.items() if v},
                                 source=source or "visionloop blur " + " ".join(names), bake=bake,
                                 summary={"images": len(found), "detectors": names, "conf": conf, "split": split})
    return DetectReport(written.batch, len(images), skipped, by_class, written.baked, len(written.discarded),
                        written.kept)


def bake_pending(store: Any, *, source: str = "visionloop blur settings --discard-originals") -> DetectReport:
    """Blur in place every image that has regions in state blur (found while the project kept originals), in one
    batch that cannot be undone, and remove the originals no row still uses."""
    from visionloop.store import blur_regions

    with store.engine.connect() as conn:
        ids = set(blur_regions.boxes_to_blur(conn))
    written = blur_regions.write(store, {}, source=source, bake=_bakes(store, {}, ids),
                                 summary={"images": len(ids)})
    return DetectReport(written.batch, len(ids), 0, {}, written.baked, len(written.discarded), written.kept)


def blur_added(store: Any, image_id: int, box: tuple[float, float, float, float], *, cls: str) -> tuple[int, int]:
    """`blur regions add`: a region a user drew, in one batch: (batch id, region id). Where the project keeps no
    originals, the image becomes its blurred copy in the same batch."""
    from visionloop.store import blur_regions
    from visionloop.store.settings import privacy

    box = blur_regions.check_box(store, image_id, box)
    bake = None
    if not privacy(store).keep_originals:
        bake = _bakes(store, {image_id: [blur_regions.Found(cls, box, None, blur_regions.USER)]}, {image_id})
    return blur_regions.add(store, image_id, box, cls=cls, bake=bake.get(image_id) if bake else None)


def import_detectors(store: Any, *, blur: bool = False, plates: str | None = None,
                     vehicles: str | None = None) -> Detectors | None:
    """The detectors an import runs on the images it adds: faces, with the plate and vehicle models given or
    named by the project's settings, when asked (`blur`, a model) or when the project blurs at import
    (`privacy.blur_on_import`); None when the import does not blur. Loaded (and checked) before the import."""
    from visionloop.store.settings import privacy

    policy = privacy(store)
    if not (blur or plates or vehicles or policy.blur_on_import):
        return None
    return load_detectors(store, faces=True, plates=plates or policy.plates, vehicles=vehicles or policy.vehicles,
                          vehicle_classes=policy.vehicle_classes or None)


def blur_batch(store: Any, batch_id: int, detectors: Detectors, *, conf: float = 0.5) -> DetectReport:
    """Blur what an import added: the regions on the images of import batch `batch_id`, stored as a batch of its
    own right after it (kind blur; undo it before the import), baked in place where the project keeps no
    originals."""
    from sqlalchemy import select

    from visionloop.store.schema import ImageRow

    with store.session() as s:
        ids = [int(i) for i in s.scalars(select(ImageRow.id).where(ImageRow.batch_id == batch_id))]
    return detect_project(store, detectors, image_ids=ids, conf=conf,
                          source=f"visionloop import --blur (batch {batch_id}): " + " ".join(detectors.names))
