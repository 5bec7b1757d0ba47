"""Segment Anything SA-1B: one ``sa_<id>.json`` beside each ``sa_<id>.jpg``.

Reference: https://github.com/facebookresearch/segment-anything#dataset (the "Dataset" section of the
README gives the schema) and https://ai.meta.com/datasets/segment-anything/ ::

    {"image": {"image_id": int, "width": int, "height": int, "file_name": "sa_1.jpg"},
     "annotations": [{"id": int, "segmentation": {"size": [h, w], "counts": "<COCO compressed RLE>"},
                      "bbox": [x, y, w, h], "area": int, "predicted_iou": float, "stability_score": float,
                      "crop_box": [x, y, w, h], "point_coords": [[x, y]]}]}

Coordinates are COCO's: absolute pixels, continuous, (0, 0) the top-left corner of the first pixel, the
same as ours. Masks are kept bit for bit (the RLE string is not re-encoded).

Reading: every ``*.json`` under the folder (recursively, sorted; the released tars unpack to
``sa_000000/`` ... folders), one file and so one image at a time. Each annotation becomes a Mask of class
``object`` (SA-1B is class-agnostic), its declared ``bbox`` and ``area`` kept as ``Annotation.bbox`` /
``area``, and every other key (``predicted_iou``, ``stability_score``, ``point_coords``, ``crop_box`` and
anything else) in ``attributes``, the annotation ``id`` as ``attributes["sa1b_id"]``. Three optional keys that SA-1B does not define but this writer adds, so
that a round trip keeps them, are read back: ``label`` (a class other than ``object``), ``score``
(``Annotation.confidence``) and ``iscrowd``. The ``image_id`` goes to ``ImageRef.metadata["sa1b_id"]``.
An image whose JSON has no annotations is NULL; an image without a JSON is not listed (SA-1B has none).

Writing: flat, ``<stem>.jpg`` + ``<stem>.json`` (the image's base name, made unique). Masks are written
as they are; boxes, rotated boxes and polygons are rasterised into masks (pycocotools, as COCO does) and
counted as converted; keypoints and whole-image labels cannot be held and are counted as dropped. The
class is written as ``label`` only when it is not ``object``. Image and annotation ids are the read ones
(``sa1b_id``) when they are integers not used yet in this output, else the lowest free 1, 2, ...
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import (
    Box,
    Caption,
    Keypoints,
    Label,
    Mask,
    Polygon,
    Polyline,
    RotatedBox,
    kind,
    polygon_to_mask,
)
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._jsonstream import UniqueNames, head, jsonable, load_small
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    iter_files,
    place_image,
    relative_name,
    safe_name,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "sa1b"
CLASS = "object"
ID_KEY = "sa1b_id"
_NAME = re.compile(r"sa_\d+\.json$", re.IGNORECASE)
_STANDARD = {"id", "segmentation", "bbox", "area", "label", "score", "iscrowd"}


# ---------------------------------------------------------------- detect


def _looks_sa1b(data: bytes) -> bool:
    return data.lstrip().startswith(b"{") and b'"image"' in data and b'"annotations"' in data


def _first_json(folder: Path) -> Path | None:
    """The first sa_<n>.json in the folder or one level down, looking at few entries."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)[:5000]
    except OSError:
        return None
    for e in entries:
        if e.is_file() and _NAME.match(e.name):
            return Path(e.path)
    for e in entries[:20]:
        if e.is_dir() and re.fullmatch(r"sa_\d+", e.name):
            found = _first_json(Path(e.path))
            if found:
                return found
    names = {e.name.lower() for e in entries}
    for e in entries:  # otherwise a JSON beside the image of its stem (how visionloop's writer keeps the names)
        if e.is_file() and e.name.lower().endswith(".json") and _sibling_image(e.name[:-5], names):
            return Path(e.path)
    return None


def _sibling_image(stem: str, names: set[str]) -> str | None:
    return next((stem + ext for ext in (".jpg", ".jpeg", ".png") if (stem + ext).lower() in names), None)


def detect(path: Path) -> Detection:
    path = Path(path)
    candidate = path if path.is_file() and path.suffix.lower() == ".json" else (
        _first_json(path) if path.is_dir() else None)
    if candidate is None:
        return Detection.no("no sa_<id>.json file")
    data = head(candidate)
    if not _looks_sa1b(data):
        return Detection.no(f"{candidate.name} has no top-level image and annotations")
    if not _NAME.match(candidate.name) and b'"predicted_iou"' not in data:
        image = _sibling_image(candidate.stem, {p.name.lower() for p in candidate.parent.iterdir()})
        if image is not None and f'"file_name":"{image.lower()}"'.encode() in data.replace(b'": "', b'":"').lower():
            return Detection(0.9, f"{candidate.name} holds the image object and annotations of {image} beside it "
                                  "(SA-1B's layout)")
        return Detection(0.3, f"{candidate.name} has image and annotations but no SA-1B name or fields")
    # above COCO's 0.8 for a single JSON in a folder: SA-1B's "image" is one object, not a list
    return Detection(0.97, f"{candidate.name} is an SA-1B annotation file")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    if path.is_file():
        root, files = path.parent, [path]
    elif path.is_dir():
        root, files = path, []
    else:
        raise FormatError("no such file or folder", path=path)
    classes = ClassMap()
    classes.add(CLASS)

    def json_files() -> Iterator[Path]:
        if files:
            yield from files
        else:
            yield from iter_files(root, suffixes=(".json",))

    def samples() -> Iterator[Sample]:
        for f in json_files():
            sample = _read_file(f, root, split)
            for ann in sample.annotations:
                classes.add(ann.label)
            yield sample

    return Reader(classes, samples, source=path)


def _read_file(path: Path, root: Path, split: str | None) -> Sample:
    doc = load_small(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("image"), dict):
        raise FormatError("not an SA-1B file: no top-level `image` object", path=path, where="image")
    info = doc["image"]
    name = info.get("file_name")
    if not isinstance(name, str) or not name:
        raise FormatError("image needs a `file_name`", path=path, where="image")
    sizes = []
    for key in ("width", "height"):
        v = info.get(key)
        if v is not None and (not isinstance(v, int) or v <= 0):
            raise FormatError(f"image `{key}` must be a positive integer, got {v!r}", path=path, where="image")
        sizes.append(v)
    width, height = sizes
    image = path.parent / name
    metadata: dict[str, Any] = {k: v for k, v in info.items() if k not in ("image_id", "width", "height",
                                                                           "file_name")}
    if "image_id" in info:
        metadata[ID_KEY] = info["image_id"]
    ref = ImageRef(relative_name(image, root) if image.is_relative_to(root) else PurePosixPath(name).as_posix(),
                   width=width, height=height, path=str(image.absolute()), metadata=metadata)
    raw = doc.get("annotations")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise FormatError("`annotations` must be a list", path=path, where="annotations")
    anns = [_annotation(a, i, path, width, height) for i, a in enumerate(raw)]
    return Sample(ref, tuple(anns), split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


def _annotation(a: Any, i: int, path: Path, width: int | None, height: int | None) -> Annotation:
    where = f"annotations[{i}]" + (f" (id {a['id']})" if isinstance(a, dict) and "id" in a else "")
    if not isinstance(a, dict):
        raise FormatError("an annotation must be an object", path=path, where=where)
    seg = a.get("segmentation")
    if not isinstance(seg, dict) or not isinstance(seg.get("counts"), str) or not isinstance(seg.get("size"), list):
        raise FormatError("`segmentation` must be a COCO compressed RLE {size: [h, w], counts: string}",
                          path=path, where=where)
    try:
        h, w = (int(v) for v in seg["size"])
        mask = Mask(seg["counts"].encode("ascii"), h, w)
        bbox = a.get("bbox")
        declared = None
        if bbox is not None:
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise ValueError(f"bbox needs 4 numbers [x, y, w, h], got {bbox!r}")
            declared = Box.from_xywh(*(float(v) for v in bbox))
        area = float(a["area"]) if a.get("area") is not None else None
        score = float(a["score"]) if a.get("score") is not None else None
        label = a.get("label", CLASS)
        if not isinstance(label, str) or not label:
            raise ValueError(f"`label` must be a non-empty string, got {label!r}")
        if (width, height) != (None, None) and (w, h) != (width, height):
            raise ValueError(f"mask size {w}×{h} differs from the image's {width}×{height}")
        attrs = {k: v for k, v in a.items() if k not in _STANDARD}
        if "id" in a:
            attrs[ID_KEY] = a["id"]
        return Annotation(label, mask, attributes=attrs, confidence=score, crowd=bool(a.get("iscrowd", 0)),
                          bbox=declared, area=area)
    except (TypeError, ValueError, UnicodeEncodeError) as e:
        raise FormatError(f"bad annotation: {e}", path=path, where=where) from None


# ---------------------------------------------------------------- write


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = WriteReport(FORMAT, str(out))
    names = UniqueNames()
    stems: set[str] = set()
    used_ids: set[int] = set()
    next_image_id = 1
    next_ann_id = 1
    used_ann_ids: set[int] = set()
    for sample in samples:
        ref = with_size(sample.image)
        assert ref.width is not None and ref.height is not None
        name = names.claim(PurePosixPath(safe_name(ref.file_name)).name)
        while (stem := PurePosixPath(name).stem) in stems:  # a.jpg and a.png would share a.json
            name = names.claim(name)
        stems.add(stem)
        if place_image(ref, out / name, images):
            report.files += 1
        image_id = ref.metadata.get(ID_KEY)
        if not isinstance(image_id, int) or isinstance(image_id, bool) or image_id in used_ids:
            while next_image_id in used_ids:
                next_image_id += 1
            image_id = next_image_id
        used_ids.add(image_id)
        info = {"image_id": image_id, "width": ref.width, "height": ref.height, "file_name": name}
        info.update(jsonable({k: v for k, v in ref.metadata.items() if k != ID_KEY and k not in info}))
        entries = []
        for ann in sample.annotations:
            entry = _entry(ann, ref.width, ref.height, report)
            if entry is None:
                continue
            ann_id = ann.attributes.get(ID_KEY)
            if not isinstance(ann_id, int) or isinstance(ann_id, bool) or ann_id in used_ann_ids:
                while next_ann_id in used_ann_ids:
                    next_ann_id += 1
                ann_id = next_ann_id
            used_ann_ids.add(ann_id)
            entries.append({"id": ann_id, **entry})
        if sample.state is LabelState.MISSING:
            report.converted["missing -> null (SA-1B has a JSON for every image)"] += 1
        partial = out / f"{stem}.json.partial"
        partial.write_bytes(orjson.dumps({"image": info, "annotations": entries}))
        partial.replace(out / f"{stem}.json")
        report.files += 1
        report.images += 1
    return report


def _entry(ann: Annotation, width: int, height: int, report: WriteReport) -> dict[str, Any] | None:
    g = ann.geometry
    if isinstance(g, Keypoints | Label | Polyline | Caption):  # (captions and lines are left out before: base.UNHELD)
        report.drop(kind(g), "SA-1B holds masks only")
        return None
    if isinstance(g, Mask):
        mask = g
        if (g.width, g.height) != (width, height):
            report.drop("mask", f"mask size {g.width}×{g.height} differs from the image's {width}×{height}")
            return None
    else:
        if isinstance(g, Box):
            poly = Polygon(((g.x0, g.y0, g.x1, g.y0, g.x1, g.y1, g.x0, g.y1),))
        elif isinstance(g, RotatedBox):
            poly = Polygon.from_points(list(g.corners()))
        else:
            poly = g
        mask = polygon_to_mask(poly, height, width)
        report.converted[f"{kind(g)} -> mask (rasterised)"] += 1
    report.annotations["mask"] += 1
    declared = ann.bbox if isinstance(g, Mask) else None
    area = ann.area if isinstance(g, Mask) and ann.area is not None else mask.area
    box = declared if declared is not None else mask.bounds()
    entry: dict[str, Any] = {
        "segmentation": {"size": [mask.height, mask.width], "counts": mask.counts.decode("ascii")},
        "bbox": [_num(v) for v in box.xywh()],
        "area": _num(area),
    }
    for k, v in jsonable(ann.attributes).items():
        if k == ID_KEY:
            continue
        if k in _STANDARD:
            report.drop("attribute", f"{k!r} is an SA-1B field name")
            continue
        entry[k] = v
    if ann.label != CLASS:
        entry["label"] = ann.label
    if ann.confidence is not None:
        entry["score"] = ann.confidence
    if ann.crowd:
        entry["iscrowd"] = 1
    return entry


def _num(v: float) -> float | int:
    return int(v) if math.isfinite(v) and float(v).is_integer() else v
