"""KITTI object detection: `label_2/<id>.txt` beside `image_2/<id>.png`.

Documentation: the object development kit's readme.txt
(https://s3.eu-central-1.amazonaws.com/avg-kitti/devkit_object.zip, benchmark page
http://www.cvlibs.net/datasets/kitti/eval_object.php). One object a line, 15 values separated
by spaces, plus a 16th `score` in result files::

    type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]

`type` is Car, Van, Truck, Pedestrian, Person_sitting, Cyclist, Tram, Misc or DontCare;
`truncated` a float 0..1; `occluded` 0..3 (0 fully visible, 3 unknown); `alpha` the observation
angle; `x1 y1 x2 y2` the 2-D box (left, top, right, bottom) in 0-based pixel coordinates; `h w l`
the 3-D size in metres; `x y z` the 3-D location in camera coordinates; `rotation_y` the yaw.

Pixel convention
    The devkit's overlap code uses `x2 - x1` without +1, so the box values are continuous pixel
    coordinates, the same as ours: read and written unchanged.

Reading
    Layouts: `<split>/image_2` + `<split>/label_2` (`training` -> split "train", `testing` ->
    "test", another folder name is the split) or `image_2` + `label_2` in the root (no split).
    Every image is a sample; one without a label file is MISSING, an empty file NULL. Each
    line becomes a `Box`; the other values go to attributes: `truncated` (float), `occluded`
    (int), `alpha`, `dimensions` [h, w, l], `location` [x, y, z] and `rotation_y`, where the
    "unknown" sentinels of the format (alpha -10, dimensions -1, location -1000, rotation_y -10)
    are left out. The score becomes `confidence` when within 0..1, else attribute `score`.
    `DontCare` regions are kept as annotations of class "DontCare" (evaluation ignores
    detections inside them, so they are information, not noise). Classes are named in order of
    appearance (KITTI has no class ids).

Writing
    `out/<training|testing|split>/image_2/<stem><ext>` and `label_2/<stem>.txt` (the root when a
    sample has no split); numbers with two decimals as KITTI writes them, more only when needed
    to keep the value. Missing 3-D values get the sentinels above, missing `truncated` and
    `occluded` 0. Polygons, masks and rotated boxes are written as their bounds; keypoints and
    whole-image labels are dropped, as are attributes KITTI has no field for, the crowd flag,
    and spaces in class names become underscores (each counted in the report).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, RotatedBox, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import _seg
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    is_image,
    place_image,
    refuse_filled,
    relative_name,
)

log = logging.getLogger(__name__)

FORMAT = "kitti"
IMAGES, LABELS = "image_2", "label_2"
#: KITTI's split folders and the canonical split names
SPLIT_FOLDERS = {"training": "train", "testing": "test"}
FOLDER_OF_SPLIT = {v: k for k, v in SPLIT_FOLDERS.items()}
FIELDS = ("type", "truncated", "occluded", "alpha", "x1", "y1", "x2", "y2", "h", "w", "l", "x", "y", "z",
          "rotation_y", "score")
ALPHA_UNKNOWN = -10.0
ROTATION_UNKNOWN = -10.0
DIMENSIONS_UNKNOWN = (-1.0, -1.0, -1.0)
LOCATION_UNKNOWN = (-1000.0, -1000.0, -1000.0)
KNOWN_ATTRIBUTES = ("truncated", "occluded", "alpha", "dimensions", "location", "rotation_y", "score")


# ---------------------------------------------------------------- parsing


def parse_line(line: str, *, path: Path, number: int) -> Annotation:
    """One label line (pure)."""
    where = f"line {number}"
    values = line.split()
    if len(values) not in (15, 16):
        raise FormatError(f"a KITTI label line has 15 values (16 with a score), this one has {len(values)}",
                          path=path, where=where)
    name = values[0]
    nums = [_seg.number(v, path=path, where=f"{where}, {FIELDS[i + 1]}", what=FIELDS[i + 1])
            for i, v in enumerate(values[1:])]
    truncated, occluded, alpha, x1, y1, x2, y2, h, w, length, x, y, z, ry = nums[:14]
    try:
        box = Box(x1, y1, x2, y2)
    except ValueError as e:
        raise FormatError(f"impossible box ({e})", path=path, where=where) from None
    if not occluded.is_integer():
        raise FormatError(f"occluded must be an integer 0..3, got {values[2]!r}", path=path, where=where)
    attributes: dict[str, Any] = {"truncated": truncated, "occluded": int(occluded)}
    if alpha != ALPHA_UNKNOWN:
        attributes["alpha"] = alpha
    if (h, w, length) != DIMENSIONS_UNKNOWN:
        attributes["dimensions"] = [h, w, length]
    if (x, y, z) != LOCATION_UNKNOWN:
        attributes["location"] = [x, y, z]
    if ry != ROTATION_UNKNOWN:
        attributes["rotation_y"] = ry
    confidence = None
    if len(nums) == 15:
        score = nums[14]
        if 0.0 <= score <= 1.0:
            confidence = score
        else:
            attributes["score"] = score
    return Annotation(name, box, attributes=attributes, confidence=confidence)


def parse_file(path: Path) -> list[Annotation]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 text ({e.reason})", path=path, where=f"byte {e.start}") from None
    return [parse_line(line, path=path, number=n)
            for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Part:
    split: str | None
    folder: Path  # holds image_2/ and/or label_2/


def _parts(root: Path) -> list[_Part]:
    if (root / LABELS).is_dir() or (root / IMAGES).is_dir():
        return [_Part(None, root)]
    parts = []
    try:
        with os.scandir(root) as entries:
            subdirs = sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []
    for sub in subdirs:
        if (sub / LABELS).is_dir() or (sub / IMAGES).is_dir():
            parts.append(_Part(SPLIT_FOLDERS.get(sub.name, sub.name), sub))
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(parts, key=lambda p: (order.get(p.split or "", 1), p.folder.name))


def _first_line(labels: Path) -> tuple[Path, str] | None:
    try:
        with os.scandir(labels) as entries:
            for n, entry in enumerate(entries):
                if n > 200:
                    return None
                if entry.name.endswith(".txt") and entry.is_file() and entry.stat().st_size > 0:
                    with open(entry.path, encoding="utf-8-sig", errors="replace") as f:
                        for line in f:
                            if line.strip():
                                return Path(entry.path), line
    except OSError:
        return None
    return None


def _looks_like_kitti(line: str) -> bool:
    values = line.split()
    if len(values) not in (15, 16):
        return False
    try:
        float(values[0])
        return False  # a type name, not a number
    except ValueError:
        pass
    try:
        [float(v) for v in values[1:]]
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    parts = _parts(path)
    if not parts:
        return Detection.no("no label_2/ or image_2/ folder here or one level down")
    for part in parts:
        labels = part.folder / LABELS
        found = _first_line(labels) if labels.is_dir() else None
        if found is not None:
            file, line = found
            if _looks_like_kitti(line):
                return Detection(0.95, f"{file.relative_to(path).as_posix()} holds KITTI label lines")
            return Detection(0.05, f"{file.name} line 1 is not a KITTI label line")
    if any((p.folder / LABELS).is_dir() for p in parts):
        return Detection(0.4, "KITTI folders (label_2/) but no label line yet")
    return Detection(0.2, "image_2/ folders without label_2/")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    if not root.is_dir():
        raise FormatError("a KITTI dataset is a folder with image_2/ and label_2/", path=root)
    parts = _parts(root)
    if not parts:
        raise FormatError("no label_2/ or image_2/ folder here or one level down", path=root)
    classes = ClassMap()
    return Reader(classes, lambda: _samples(root, parts, classes, split), source=root)


def _samples(root: Path, parts: list[_Part], classes: ClassMap, forced: str | None) -> Iterator[Sample]:
    for part in parts:
        images_dir, labels_dir = part.folder / IMAGES, part.folder / LABELS
        seen: set[str] = set()
        images = sorted(p for p in images_dir.iterdir() if p.is_file() and is_image(p)) if images_dir.is_dir() else []
        for image in images:
            seen.add(image.stem)
            yield _sample(root, image, labels_dir / f"{image.stem}.txt", part, classes, forced)
        if labels_dir.is_dir():
            for label in sorted(labels_dir.glob("*.txt")):
                if label.stem not in seen:
                    yield _sample(root, images_dir / f"{label.stem}.png", label, part, classes, forced)


def _sample(root: Path, image: Path, label: Path, part: _Part, classes: ClassMap, forced: str | None) -> Sample:
    path = os.path.abspath(image) if image.is_file() else None
    ref = ImageRef(relative_name(image, root), path=path)
    split = forced or part.split
    if not label.is_file():
        return Sample(ref, split=split, state=LabelState.MISSING)
    anns = parse_file(label)
    for ann in anns:
        classes.add(ann.label)
    return Sample(ref, tuple(anns), split=split)


# ---------------------------------------------------------------- write


def format_number(value: float) -> str:
    """Two decimals as KITTI writes them; more (up to 6) only when two would change the value."""
    text = f"{value:.2f}"
    if abs(float(text) - value) > 1e-9:
        text = f"{value:.6f}".rstrip("0")
        if text.endswith("."):
            text += "0"
    return "0.00" if text == "-0.00" else text


def _triple(value: Any, default: tuple[float, float, float]) -> tuple[float, float, float]:
    if isinstance(value, list | tuple) and len(value) == 3:
        try:
            a, b, c = (float(v) for v in value)
            return (a, b, c)
        except (TypeError, ValueError):
            pass
    return default


def _float(value: Any, default: float) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        f = float(value)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def format_line(name: str, box: Box, attributes: dict[str, Any], confidence: float | None) -> str:
    truncated = _float(attributes.get("truncated"), 0.0)
    occluded = int(_float(attributes.get("occluded"), 0.0))
    alpha = _float(attributes.get("alpha"), ALPHA_UNKNOWN)
    dims = _triple(attributes.get("dimensions"), DIMENSIONS_UNKNOWN)
    loc = _triple(attributes.get("location"), LOCATION_UNKNOWN)
    ry = _float(attributes.get("rotation_y"), ROTATION_UNKNOWN)
    rest = [alpha, box.x0, box.y0, box.x1, box.y1, *dims, *loc, ry]
    texts = [format_number(truncated), str(occluded), *(format_number(v) for v in rest)]
    score = confidence if confidence is not None else attributes.get("score")
    if score is not None:
        texts.append(format_number(_float(score, 0.0)))
    return " ".join([name, *texts])


class _Writer:
    def __init__(self, out: Path, images: ImageMode) -> None:
        self.out = out
        self.images = images
        self.report = WriteReport(FORMAT, str(out))
        self.names = _seg.NameBook()

    def add(self, sample: Sample) -> None:
        report = self.report
        if sample.split is None:
            folder = self.out
        else:
            folder = self.out / FOLDER_OF_SPLIT.get(sample.split, _seg.folder_name(sample.split))
        stem, suffix = _seg.stem_and_suffix(sample.image.file_name)
        stem = self.names.unique(str(folder), stem)
        if place_image(sample.image, folder / IMAGES / f"{stem}{suffix or '.png'}", self.images):
            report.files += 1
        report.images += 1
        if sample.state is LabelState.MISSING and not sample.annotations:
            return
        lines = []
        for ann in sample.annotations:
            line = self._line(ann)
            if line is not None:
                lines.append(line)
        (folder / LABELS).mkdir(parents=True, exist_ok=True)
        (folder / LABELS / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        report.files += 1

    def _line(self, ann: Annotation) -> str | None:
        report = self.report
        g = ann.geometry
        if isinstance(g, (Keypoints, Label)):
            report.drop(kind(g), "KITTI holds 2-D boxes only")
            return None
        if isinstance(g, Box):
            box = g
        elif isinstance(g, (Polygon, Mask, RotatedBox)):
            bounds = ann.box if isinstance(g, (Polygon, Mask)) else g.bounds()
            assert bounds is not None
            box = bounds
            report.converted[f"{kind(g)} -> box"] += 1
        else:  # pragma: no cover
            report.drop(kind(g), "KITTI cannot hold it")
            return None
        name = re.sub(r"\s+", "_", ann.label.strip())
        if name != ann.label:
            report.converted["class name with spaces -> underscores"] += 1
        _seg.count_lost(report, ann, "KITTI", attributes=KNOWN_ATTRIBUTES, confidence=True)
        report.annotations["box"] += 1
        return format_line(name, box, dict(ann.attributes), ann.confidence)

    def finish(self) -> WriteReport:
        self.out.mkdir(parents=True, exist_ok=True)
        return self.report


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write KITTI detection folders under `out` (whose label_2/ folders must not exist yet)."""
    out = Path(out)
    refuse_filled(out, LABELS, *(Path(f) / LABELS for f in FOLDER_OF_SPLIT.values()))
    writer = _Writer(out, images)
    for sample in samples:
        writer.add(sample)
    return writer.finish()

