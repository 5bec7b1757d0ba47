"""VGG Image Annotator (VIA) JSON: a project (`_via_img_metadata` inside) or an annotation export.

Reference: https://www.robots.ox.ac.uk/~vgg/software/via/ (VIA 1.x and 2.x; the file layout is
that of `via.js`: `pack_via_metadata` writes the JSON export and the CSV, see `formats.via_csv`).

One entry per image, keyed ``<filename><file size in bytes>``::

    {"filename": "a.jpg", "size": 123456, "file_attributes": {...},
     "regions": [{"shape_attributes": {"name": "rect", "x": 10, "y": 20, "width": 30, "height": 40},
                  "region_attributes": {"class": "cat", "pose": "left"}}]}

VIA 1 writes `regions` as an object {"0": {...}}; both are read. A VIA 2 project wraps the entries
in ``_via_img_metadata`` (beside ``_via_settings`` and ``_via_attributes``); the export is the bare
object. Coordinates are image pixels (continuous, top-left origin), kept as they are.

Shapes
    rect {x, y, width, height}               Box
    polygon {all_points_x, all_points_y}      Polygon
    point {cx, cy}                            Keypoints, one visible point
    polyline {all_points_x, all_points_y}     Polyline (an open line, at least 2 points)
    circle {cx, cy, r}, ellipse {cx, cy,      Polygon of 64 points (lossy), attribute ``via_shape``
    rx, ry, theta (radians)}
Class of a region: VIA has no class field, only region attributes. The class is the value of the
attribute named by ``read(..., class_attribute=...)``; by default the first of ``class``, ``label``,
``name``, ``category``, ``type`` that the region has, else its first attribute. A checkbox-style
value ({"cat": true}) gives its first true key. A region without a class value is read as class
``unlabeled`` (logged). The other region attributes become annotation attributes.
File attributes: ``class`` (or the ``class_attribute`` given) gives whole-image Labels (a string,
or the true keys of {name: true}); the other file attributes are kept
in ``ImageRef.metadata["via_file_attributes"]`` and written back. Every listed image is labelled
(NULL without regions). Images are looked up beside the JSON (then `images/`).

Writing: `out/via_region_data.json` (the export layout, streamed), images beside it, or one such
folder per split (the layout of the Mask R-CNN balloon sample: `train/`, `val/`). The class goes
into region attribute ``class``; Labels into file attribute ``class`` (a string, or {name: true}
for several). Rotated boxes and masks become polygons (masks: outer contours, tolerance 0, holes
lost), multi-part polygons one region per part, multi-point keypoints one point per labelled
point: all counted as converted. Polylines are written as polylines. Confidence, crowd and track ids are dropped (counted).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import (
    Box,
    Keypoints,
    Label,
    Mask,
    Polygon,
    Polyline,
    RotatedBox,
    mask_to_polygon,
)
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._labeltools import (
    UniqueNames,
    ellipse_polygon,
    find_local,
    head,
    iter_json_object,
    jsonable,
    number,
    relative_or_name,
)
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
    place_image,
    safe_name,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "via"
JSON_NAME = "via_region_data.json"
CLASS_KEYS = ("class", "label", "name", "category", "type")
UNLABELED = "unlabeled"
SHAPE_ATTR = "via_shape"
WRITE_CLASS = "class"


# ---------------------------------------------------------------- shared with via_csv


def region_class(attrs: dict[str, Any], class_attribute: str | None) -> tuple[str | None, str | None]:
    """(class, the attribute it came from) of a region's attributes."""
    if class_attribute is not None:
        key: str | None = class_attribute if class_attribute in attrs else None
    else:
        key = next((k for k in CLASS_KEYS if k in attrs), next(iter(attrs), None))
    if key is None:
        return None, None
    value = attrs[key]
    if isinstance(value, dict):
        value = next((k for k, v in value.items() if v), None)
    if value is None or str(value) == "":
        return None, key
    return str(value), key


def parse_region(shape: Any, attrs: Any, *, class_attribute: str | None, path: Path, where: str) -> Annotation:
    if not isinstance(shape, dict) or "name" not in shape:
        raise FormatError("`shape_attributes` must be an object with a `name`", path=path, where=where)
    if attrs is None or attrs == "":
        attrs = {}
    if not isinstance(attrs, dict):
        raise FormatError("`region_attributes` must be an object", path=path, where=where)
    label, key = region_class(attrs, class_attribute)
    if label is None:
        log.warning("%s (%s): region without a class value; read as %r", path, where, UNLABELED)
        label = UNLABELED
    attributes = {k: v for k, v in attrs.items() if k != key}
    kind = str(shape["name"]).lower()

    def num(k: str) -> float:
        return number(shape.get(k), path=path, where=where, what=f"`{k}`")

    def points() -> list[tuple[float, float]]:
        xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise FormatError("`all_points_x` and `all_points_y` must be lists of the same length", path=path,
                              where=where)
        return [(number(x, path=path, where=where, what="a point"), number(y, path=path, where=where, what="a point"))
                for x, y in zip(xs, ys, strict=True)]

    try:
        geometry: Box | Polygon | Polyline | Keypoints
        if kind == "rect":
            geometry = Box.from_xywh(num("x"), num("y"), num("width"), num("height"))
        elif kind == "polygon":
            pts = points()
            if len(pts) > 3 and pts[0] == pts[-1]:
                pts = pts[:-1]  # some tools close the ring explicitly
            if len(pts) < 3:
                raise FormatError(f"a polygon needs at least 3 points, got {len(pts)}", path=path, where=where)
            geometry = Polygon.from_points(pts)
        elif kind == "polyline":
            pts = points()
            if len(pts) < 2:
                raise FormatError(f"a polyline needs at least 2 points, got {len(pts)}", path=path, where=where)
            geometry = Polyline.from_points(pts)
        elif kind == "point":
            geometry = Keypoints((num("cx"), num("cy"), 2.0))
        elif kind == "circle":
            geometry = ellipse_polygon(num("cx"), num("cy"), num("r"), num("r"))
            attributes[SHAPE_ATTR] = "circle"
        elif kind == "ellipse":
            geometry = ellipse_polygon(num("cx"), num("cy"), num("rx"), num("ry"),
                                       math.degrees(float(shape.get("theta") or 0.0)))
            attributes[SHAPE_ATTR] = "ellipse"
        else:
            raise FormatError(f"unknown shape {shape['name']!r}", path=path, where=where)
    except ValueError as e:
        raise FormatError(f"impossible shape ({e})", path=path, where=where) from None
    return Annotation(label, geometry, attributes=attributes)


def file_labels(file_attributes: Any, class_attribute: str | None) -> tuple[list[Annotation], dict[str, Any]]:
    """Whole-image Labels from the file attributes, and the rest of them."""
    if not isinstance(file_attributes, dict):
        return [], {}
    key = class_attribute or WRITE_CLASS
    rest = {k: v for k, v in file_attributes.items() if k != key}
    if key is None or key not in file_attributes:
        return [], rest
    value = file_attributes[key]
    names = [k for k, v in value.items() if v] if isinstance(value, dict) else ([str(value)] if value != "" else [])
    return [Annotation(n, Label()) for n in names], rest


def make_sample(filename: str, size: Any, anns: list[Annotation], rest: dict[str, Any], root: Path,
                split: str | None) -> Sample:
    local = find_local(root, filename)
    file_name = relative_or_name(local, root, filename.replace("\\", "/").lstrip("/"))
    meta: dict[str, Any] = {}
    if rest:
        meta["via_file_attributes"] = rest
    if isinstance(size, int | float) and not isinstance(size, bool) and size >= 0:
        meta["via_size"] = int(size)
    ref = ImageRef(file_name, path=str(local or root / file_name), metadata=meta)
    return Sample(ref, tuple(anns), split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


def region_entries(ann: Annotation, report: WriteReport, *, width: int, height: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(shape_attributes, region_attributes) pairs for one annotation (not Labels)."""
    g = ann.geometry
    attrs: dict[str, Any] = {WRITE_CLASS: ann.label}
    drawn_as_polyline = isinstance(g, Keypoints) and ann.attributes.get(SHAPE_ATTR) == "polyline"
    attrs.update({k: jsonable(v) for k, v in ann.attributes.items()
                  if k != WRITE_CLASS and not (k == SHAPE_ATTR and drawn_as_polyline)})
    if ann.confidence is not None:
        report.drop("confidence", "VIA has no score field")
    if ann.crowd:
        report.drop("crowd flag", "VIA has no crowd flag")
    if ann.track_id is not None:
        report.drop("track id", "VIA has no tracks")

    def poly(ring: tuple[float, ...]) -> dict[str, Any]:
        return {"name": "polygon", "all_points_x": list(ring[0::2]), "all_points_y": list(ring[1::2])}

    if isinstance(g, Box):
        report.annotations["box"] += 1
        return [({"name": "rect", "x": g.x0, "y": g.y0, "width": g.width, "height": g.height}, attrs)]
    if isinstance(g, RotatedBox):
        report.converted["rotated_box -> polygon"] += 1
        report.annotations["polygon"] += 1
        return [(poly(Polygon.from_points(list(g.corners())).rings[0]), attrs)]
    if isinstance(g, Mask):
        p = mask_to_polygon(g)
        if p is None:
            report.drop("mask", "empty mask")
            return []
        report.converted["mask -> polygon (tolerance 0)"] += 1
        g = p
    if isinstance(g, Polygon):
        if len(g.rings) > 1:
            report.converted[f"polygon with {len(g.rings)} parts -> {len(g.rings)} polygons"] += 1
        report.annotations["polygon"] += len(g.rings)
        return [(poly(r), attrs) for r in g.rings]
    if isinstance(g, Polyline):
        report.annotations["polyline"] += 1
        return [({"name": "polyline", "all_points_x": list(g.points[0::2]), "all_points_y": list(g.points[1::2])},
                 attrs)]
    if isinstance(g, Keypoints):
        pts = [(x, y) for x, y, v in zip(g.points[0::3], g.points[1::3], g.points[2::3], strict=True) if v > 0]
        if len(pts) != g.count or any(v != 2 for v in g.points[2::3] if v > 0):
            report.converted["keypoints visibility -> visible points"] += 1
        if not pts:
            report.drop("keypoints", "no labelled points")
            return []
        report.annotations["keypoints"] += 1
        if ann.attributes.get(SHAPE_ATTR) == "polyline" and len(pts) >= 2:
            return [({"name": "polyline", "all_points_x": [p[0] for p in pts],
                      "all_points_y": [p[1] for p in pts]}, attrs)]
        if len(pts) > 1:
            report.converted[f"keypoints ({len(pts)} points) -> {len(pts)} points"] += 1
        return [({"name": "point", "cx": x, "cy": y}, attrs) for x, y in pts]
    report.drop(type(g).__name__, "unsupported geometry")  # pragma: no cover
    return []  # pragma: no cover


def file_attributes_out(sample: Sample, report: WriteReport) -> dict[str, Any]:
    out = dict(sample.image.metadata.get("via_file_attributes") or {})
    labels = [a.label for a in sample.annotations if isinstance(a.geometry, Label)]
    if labels:
        out[WRITE_CLASS] = labels[0] if len(labels) == 1 else {name: True for name in labels}
        report.annotations["label"] += len(labels)
    return out


def file_size(ref: ImageRef, placed: Path | None) -> int:
    for p in (placed, ref.path):
        if p is not None and "://" not in str(p) and os.path.isfile(p):
            return os.path.getsize(p)
    size = ref.metadata.get("via_size")
    return int(size) if isinstance(size, int) else -1


def split_files(path: Path, name: str, suffix: str) -> list[tuple[Path, str | None]]:
    """(annotation file, split) pairs: the file itself, `<dir>/<name>`, or `<dir>/<split>/<name>`."""
    if path.is_file():
        return [(path, None)] if path.suffix.lower() == suffix else []
    if not path.is_dir():
        return []
    if (path / name).is_file():
        return [(path / name, None)]
    found: list[tuple[Path, str | None]] = [(sub / name, sub.name) for sub in sorted(p for p in path.iterdir() if p.is_dir()) if (sub / name).is_file()]
    if found:
        return found
    loose: list[tuple[Path, str | None]] = [(f, None) for f in sorted(path.glob(f"*{suffix}"))]
    return loose[:1]


# ---------------------------------------------------------------- detect / read


def _looks_like_via(data: bytes) -> bool:
    return b"_via_img_metadata" in data or b"_via_settings" in data or (
        data.lstrip().startswith(b"{") and b'"filename"' in data and b'"regions"' in data)


def detect(path: Path) -> Detection:
    files = split_files(Path(path), JSON_NAME, ".json")
    if not files:
        return Detection.no("no via_region_data.json or .json file")
    if not _looks_like_via(head(files[0][0], 8192)):
        return Detection.no(f"{files[0][0].name} has no VIA keys (filename + regions, or _via_img_metadata)")
    return Detection(0.9, f"{files[0][0].name} holds VIA image entries")


def read(path: Path, *, split: str | None = None, class_attribute: str | None = None) -> Reader:
    path = Path(path)
    files = split_files(path, JSON_NAME, ".json")
    if not files:
        raise FormatError("no VIA JSON here", path=path, hint="expected via_region_data.json or a VIA project .json")
    classes = ClassMap()

    def samples() -> Iterator[Sample]:
        for f, file_split in files:
            prefix = "_via_img_metadata" if b"_via_img_metadata" in head(f, 1 << 16) else ""
            for key, entry in iter_json_object(f, prefix):
                if key.startswith("_via_") and not prefix:
                    continue
                sample = _entry(key, entry, f, class_attribute, split or file_split)
                for a in sample.annotations:
                    if a.label not in classes:
                        classes.add(a.label)
                yield sample

    return Reader(classes, samples, source=path)


def _entry(key: str, entry: Any, path: Path, class_attribute: str | None, split: str | None) -> Sample:
    where = f"entry {key!r}"
    if not isinstance(entry, dict) or not entry.get("filename"):
        raise FormatError("an image entry needs a `filename`", path=path, where=where)
    regions = entry.get("regions") or []
    if isinstance(regions, dict):  # VIA 1
        regions = [regions[k] for k in sorted(regions, key=lambda k: int(k) if str(k).isdigit() else 0)]
    if not isinstance(regions, list):
        raise FormatError("`regions` must be a list", path=path, where=where)
    anns, rest = file_labels(entry.get("file_attributes"), class_attribute)
    for i, r in enumerate(regions):
        if not isinstance(r, dict):
            raise FormatError("a region must be an object", path=path, where=f"{where} region {i}")
        anns.append(parse_region(r.get("shape_attributes"), r.get("region_attributes"),
                                 class_attribute=class_attribute, path=path, where=f"{where} region {i}"))
    return make_sample(str(entry["filename"]), entry.get("size"), anns, rest, path.parent, split)


# ---------------------------------------------------------------- write


class _Folder:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.final = folder / JSON_NAME
        self.partial = folder / (JSON_NAME + ".partial")
        self.out: IO[bytes] = open(self.partial, "wb")
        self.out.write(b"{")
        self.n = 0
        self.names = UniqueNames()
        self.keys: set[str] = set()

    def add(self, key: str, entry: dict[str, Any]) -> None:
        self.out.write((b",\n" if self.n else b"\n") + orjson.dumps(key) + b": " + orjson.dumps(entry))
        self.n += 1

    def close(self) -> None:
        self.out.write(b"\n}\n")
        self.out.close()
        self.partial.replace(self.final)

    def abort(self) -> None:
        self.out.close()
        self.partial.unlink(missing_ok=True)


def placed_samples(samples: Iterable[Sample], out: Path, images: ImageMode, report: WriteReport,
                   folders: dict[str | None, F], make: Callable[[Path], F],
                   ) -> Iterator[tuple[Sample, ImageRef, F, str, Path | None]]:
    """Each sample with its sized ImageRef, its split's output folder (made on first use), a unique image
    name there, and where its image was placed (None with ImageMode.NONE). Shared by the JSON and CSV writers."""
    for sample in samples:
        folder = folders.get(sample.split)
        if folder is None:
            folder = folders[sample.split] = make(out / sample.split if sample.split else out)
        ref = with_size(sample.image)
        name = folder.names(safe_name(ref.file_name))
        dest = folder.folder / name
        placed = dest if place_image(ref, dest, images) else None
        if placed is not None:
            report.files += 1
        yield sample, ref, folder, name, placed


class _OutputFolder(Protocol):
    folder: Path
    names: UniqueNames


F = TypeVar("F", bound=_OutputFolder)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    folders: dict[str | None, _Folder] = {}
    try:
        for sample, ref, folder, name, placed in placed_samples(samples, out, images, report, folders, _Folder):
            regions = []
            for ann in sample.annotations:
                if isinstance(ann.geometry, Label):
                    continue
                for shape, attrs in region_entries(ann, report, width=int(ref.width or 0), height=int(ref.height or 0)):
                    regions.append({"shape_attributes": shape, "region_attributes": attrs})
            size = file_size(ref, placed)
            key = f"{name}{size}"
            while key in folder.keys:
                key += "_"
            folder.keys.add(key)
            folder.add(key, {"filename": name, "size": size, "regions": regions,
                             "file_attributes": file_attributes_out(sample, report)})
            count_state_change(report, sample, becomes=LabelState.NULL, why="VIA lists every image as labelled")
            report.images += 1
        if not folders:
            folders[None] = _Folder(out)
        for f in folders.values():
            f.close()
    except BaseException:
        for f in folders.values():
            f.abort()
        raise
    return report
