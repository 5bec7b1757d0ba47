"""DOTA / YOLOv5-OBB text labels: ``x1 y1 x2 y2 x3 y3 x4 y4 class difficult`` per object.

References: https://captain-whu.github.io/DOTA/dataset.html (annotation format) and
https://github.com/hukaixuan19970627/yolov5_obb (YOLOv5 OBB, which trains on DOTA labels as they are)::

    imagesource:GoogleEarth
    gsd:0.146343590398
    2753 2408 2861 2385 2888 2468 2805 2502 plane 0

Layout: ``images/P0001.png`` and ``labelTxt/P0001.txt`` (the download's ``labelTxt-v1.0/labelTxt/``
and other ``labelTxt*`` folders are found too), optionally under split folders ``train/``,
``val/``, ``test/``.

Conventions
    Coordinates are absolute pixels, continuous, (0, 0) the top-left corner of the first pixel (no
    offset). The four corners go clockwise on screen (y down), starting at the object's "head"
    corner (DOTA: the top-left corner of the object as it is oriented). They become a `RotatedBox`
    through `RotatedBox.from_corners`: width = |p1p2| (averaged with |p4p3|), height = |p1p4|
    (averaged with |p2p3|), angle = direction of p1 -> p2, so the head corner and the
    orientation survive. DOTA corners may describe any quadrilateral; one that is not a rectangle
    is fitted (the mean of opposite sides), which is what YOLOv5-OBB's training does too. The
    writer writes `RotatedBox.corners()`, the same clockwise order from the box's top-left corner,
    rounded to 6 decimals, so rotated boxes round-trip to 1e-6 px (angles normalised to
    (-180, 180]). ``difficult`` (0/1, default 0) becomes the attribute ``difficult``; a line
    of 9 tokens (no difficult) is accepted. ``imagesource:`` and ``gsd:`` header lines become
    ``ImageRef.metadata`` and are written back.

States: an image without a label file is MISSING; a label file with no object is NULL. Class ids
are 0, 1, ... in order of appearance (DOTA names classes only), or those of a ``data.yaml`` beside the
splits (or above the split folder read) when it has ``names``.

Roboflow's "YOLOv5 Oriented Bounding Boxes" export is this layout: ``data.yaml`` (``names``, ``train:
train/images``...), ``README.roboflow.txt`` and ``train/ valid/ test/`` each with ``images/`` and
``labelTxt/``; lines ``x1 y1 ... x4 y4 class 0`` with full-precision floats, no ``imagesource:``/``gsd:``
header (real export: Zenny00/REU-Oyster_Orientation @ b1d068c3, ``dataset/roboflow/``). Its corners may be
negative or ``-nan`` (that project's ``tools/RemoveNegative.sh`` rewrites both to 0): negative corners are
kept; an object with a non-finite corner is skipped (counted; ``--strict`` refuses it).

Writing: ``out/[<split>/]images/<name>`` and ``labelTxt/<stem>.txt``. Boxes become 4 corners
(angle 0, counted as a conversion because they read back as rotated boxes), polygons and masks
their minimum-area rectangle (OpenCV), keypoints and whole-image labels are dropped; all counted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, RotatedBox, kind, mask_to_polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._tabular import number, split_folder
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    iter_files,
    place_image,
    safe_name,
    skip,
)
from visionloop.formats.yolo import YAML_NAMES, NameBook, _classes_from_yaml, _load_yaml

log = logging.getLogger(__name__)

FORMAT = "dota"
LABELS = "labelTxt"
IMAGES = "images"
_HEADER_KEYS = ("imagesource", "gsd")


@dataclass(frozen=True)
class _Part:
    root: Path  # holds images/ and the labels folder
    labels: Path
    split: str | None


def _labels_dir(folder: Path) -> Path | None:
    if (folder / LABELS).is_dir():
        return folder / LABELS
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(LABELS)):
        if (d / LABELS).is_dir():
            return d / LABELS
        return d
    return None


def _parts(path: Path) -> list[_Part]:
    if not path.is_dir():
        return []
    labels = _labels_dir(path)
    if labels is not None:
        return [_Part(path, labels, None)]
    found = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        sub_labels = _labels_dir(sub)
        if sub_labels is not None:
            found.append(_Part(sub, sub_labels, sub.name))
    return found


# ------------------------------------------------------------------------------------- parse


def parse_label_file(path: Path, classes: ClassMap) -> tuple[list[Annotation], dict[str, Any]]:
    """Objects and header metadata of one DOTA label file."""
    anns: list[Annotation] = []
    meta: dict[str, Any] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError("not a UTF-8 text file", path=path) from None
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in _HEADER_KEYS and " " not in key.strip():
            value = value.strip()
            if key.strip().lower() == "gsd":
                try:
                    meta["gsd"] = float(value)
                except ValueError:
                    meta["gsd"] = value  # DOTA has "gsd:null"
            else:
                meta["imagesource"] = value
            continue
        ann = _parse_line(line, path, n, classes)
        if ann is not None:
            anns.append(ann)
    return anns, meta


def _parse_line(line: str, path: Path, n: int, classes: ClassMap) -> Annotation | None:
    where = f"line {n}"
    tokens = line.split()
    if len(tokens) not in (9, 10):
        raise FormatError(f"expected `x1 y1 x2 y2 x3 y3 x4 y4 class difficult`, got {len(tokens)} fields",
                          path=path, where=where)
    try:
        v = [float(t) for t in tokens[:8]]
    except ValueError:
        raise FormatError(f"corner coordinates must be numbers: {' '.join(tokens[:8])!r}", path=path,
                          where=where) from None
    if not all(math.isfinite(x) for x in v):
        # Roboflow's YOLOv5-OBB export writes `-nan` corners for some degenerate objects (see the module doc)
        skip("object", "a corner coordinate is not a number (nan/inf)", path=path, where=where)
        return None
    attributes: dict[str, Any] = {"difficult": False}
    if len(tokens) == 10:
        if tokens[9] not in ("0", "1"):
            raise FormatError(f"difficult must be 0 or 1, got {tokens[9]!r}", path=path, where=where)
        attributes["difficult"] = tokens[9] == "1"
    corners = list(zip(v[0::2], v[1::2], strict=True))
    return Annotation(classes.add(tokens[8]).name, RotatedBox.from_corners(corners), attributes=attributes)


# ------------------------------------------------------------------------------------ detect


def _looks_like_line(line: str) -> bool:
    tokens = line.split()
    if len(tokens) not in (9, 10):
        return False
    try:
        [float(t) for t in tokens[:8]]
    except ValueError:
        return False
    return len(tokens) == 9 or tokens[9] in ("0", "1")


def detect(path: Path) -> Detection:
    """DOTA when a labelTxt* folder holds .txt files whose first object line has 8 numbers + class."""
    path = Path(path)
    parts = _parts(path)
    if not parts:
        return Detection.no("no labelTxt/ folder here or in split folders")
    for part in parts:
        for f in sorted(part.labels.glob("*.txt"))[:5]:
            with open(f, encoding="utf-8-sig", errors="replace") as fh:
                for raw in fh:
                    line = raw.strip()
                    if not line or line.split(":", 1)[0].lower() in _HEADER_KEYS:
                        continue
                    if _looks_like_line(line):
                        return Detection(0.95, f"{f.name}: `x1 y1 ... x4 y4 class difficult` lines")
                    return Detection(0.1, f"{f.name} is in {part.labels.name}/ but its lines are not DOTA's")
    return Detection(0.5, f"{parts[0].labels.name}/ exists but holds no object line")


# -------------------------------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    parts = _parts(path)
    if not parts:
        raise FormatError("not a DOTA dataset: no labelTxt/ folder here or in split folders", path=path,
                          hint="expected images/ and labelTxt/")
    classes = _declared_classes(path, parts)

    def samples() -> Iterator[Sample]:
        for part in parts:
            yield from _read_part(part, path, split or part.split, classes)

    return Reader(classes, samples, source=path)


def _declared_classes(path: Path, parts: list[_Part]) -> ClassMap:
    """The classes of a `data.yaml` beside the splits (Roboflow's YOLOv5-OBB export writes one: `names` in id
    order, every class of the project, used or not), else none: then classes come in order of appearance."""
    folders = [path] + ([path.parent] if parts and parts[0].split is None else [])
    for folder in folders:
        for name in YAML_NAMES:
            f = folder / name
            if not f.is_file():
                continue
            try:
                data = _load_yaml(f)
                if isinstance(data, dict) and data.get("names") is not None:
                    return _classes_from_yaml(data, f)
            except FormatError as e:
                log.warning("%s: class names not used (%s); classes come in order of appearance", f, e.message)
            return ClassMap()
    return ClassMap()


def _read_part(part: _Part, root: Path, split: str | None, classes: ClassMap) -> Iterator[Sample]:
    images_dir = part.root / IMAGES
    stems: set[str] = set()
    if images_dir.is_dir():
        for image in iter_files(images_dir, suffixes=IMAGE_EXTENSIONS):
            rel = image.relative_to(images_dir)
            stems.add(str(rel.with_suffix("")))
            label = part.labels / rel.with_suffix(".txt")
            name = PurePosixPath(image.relative_to(root)).as_posix()
            if not label.is_file():
                yield Sample(ImageRef(name, path=str(image)), (), split=split, state=LabelState.MISSING)
                continue
            anns, meta = parse_label_file(label, classes)
            ref = ImageRef(name, path=str(image), metadata=meta)
            yield Sample(ref, tuple(anns), split=split)
    orphans = [f for f in iter_files(part.labels, suffixes=(".txt",))
               if str(f.relative_to(part.labels).with_suffix("")) not in stems]
    if orphans:  # DOTA gives no image size: a label file without its image cannot be read
        skip("label file", f"no image for it in {images_dir.name}/", path=part.labels,
             where=f"e.g. {orphans[0].name}", n=len(orphans))


# ------------------------------------------------------------------------------------- write


def _rotated(ann: Annotation, report: WriteReport) -> RotatedBox | None:
    g = ann.geometry
    if isinstance(g, RotatedBox):
        report.annotations["rotated_box"] += 1
        return g
    if isinstance(g, Label):
        report.drop("label", "DOTA cannot hold whole-image labels")
        return None
    if isinstance(g, Keypoints):
        report.drop("keypoints", "DOTA holds oriented boxes only")
        return None
    if isinstance(g, Box):
        report.converted["box -> rotated_box (angle 0)"] += 1
        report.annotations["rotated_box"] += 1
        return RotatedBox((g.x0 + g.x1) / 2, (g.y0 + g.y1) / 2, g.width, g.height, 0.0)
    poly = mask_to_polygon(g) if isinstance(g, Mask) else g
    if poly is None:
        report.drop("mask", "empty mask")
        return None
    assert isinstance(poly, Polygon)
    import cv2
    import numpy as np

    pts = np.asarray([p for i in range(len(poly.rings)) for p in poly.points(i)], dtype=np.float32)
    (cx, cy), (w, h), angle = cv2.minAreaRect(pts)
    report.converted[f"{'mask' if isinstance(g, Mask) else 'polygon'} -> rotated_box (minimum-area rectangle)"] += 1
    report.annotations["rotated_box"] += 1
    return RotatedBox(float(cx), float(cy), float(w), float(h), float(angle))


def _line(box: RotatedBox, label: str, difficult: bool) -> str:
    coords = " ".join(number(round(v, 6) + 0.0) for p in box.corners() for v in p)
    return f"{coords} {label} {int(difficult)}"


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """`out/[<split>/]images/` and `labelTxt/`, one label file per labelled image."""
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    names = NameBook()
    for sample in samples:
        base = out / split_folder(sample.split) if sample.split else out
        name = names.claim(str(base), PurePosixPath(safe_name(sample.image.file_name)).name, report)
        label = base / LABELS / f"{PurePosixPath(name).stem}.txt"
        if label.exists():
            raise FormatError("the label file already exists; refusing to overwrite it", path=label)
        if place_image(sample.image, base / IMAGES / name, images):
            report.files += 1
        report.images += 1
        if sample.state is LabelState.MISSING:
            continue
        lines = [f"{k}:{sample.image.metadata[k]}" for k in _HEADER_KEYS if k in sample.image.metadata]
        for ann in sample.annotations:
            if any(c.isspace() for c in ann.label):
                report.drop(kind(ann.geometry), f"class name {ann.label!r} has a space, which DOTA cannot hold")
                continue
            box = _rotated(ann, report)
            if box is not None:
                lines.append(_line(box, ann.label, bool(ann.attributes.get("difficult", False))))
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        report.files += 1
    return report

