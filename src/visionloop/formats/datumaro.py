"""Datumaro JSON: ``annotations/<subset>.json`` + ``images/<subset>/<path>``.

Reference: the format's reader and writer in openvinotoolkit/datumaro,
``src/datumaro/plugins/data_formats/datumaro/{format,base,exporter,importer}.py`` (format version
"1.0"), documented at https://openvinotoolkit.github.io/datumaro/latest/docs/data-formats/formats/datumaro.html

One JSON file per subset::

    {"dm_format_version": "1.0", "media_type": 2, "infos": {},
     "categories": {"label": {"labels": [{"name", "parent", "attributes": [names]}], "label_groups": [],
                              "attributes": []},
                    "mask": {"colormap": [{"label_id", "r", "g", "b"}]},
                    "points": {"items": [{"label_id", "labels": [keypoint names], "joints": [[a, b]]}]}},
     "items": [{"id", "annotations": [...], "attr": {...}, "image": {"path", "size": [h, w]}}]}

Coordinates are absolute pixels in the same continuous convention as ours (``bbox`` is [x, y, w, h],
``points`` a flat [x0, y0, x1, y1, ...]); masks are COCO compressed RLE ({"counts", "size": [h, w]}).
``label_id`` is the index into ``categories.label.labels``; the ClassMap keeps that index as the id.
A label's ``parent`` is the class's supercategory, the mask colormap its colour, the points category
its keypoint names and joints (kept as given: 1-based pairs when they came from COCO's skeleton).

Mapping of annotation types:

- ``bbox`` → Box; a bbox with a non-zero ``rotation`` attribute (CVAT's convention: degrees,
  clockwise, about the centre) → RotatedBox, and the writer writes a RotatedBox back that way.
- ``polygon`` → Polygon. Polygons with the same label, attributes and non-zero ``group`` are the
  parts of one object (how datumaro imports a multi-part COCO polygon) and become one multi-ring
  Polygon; the writer writes one polygon per ring in one group.
- ``mask`` → Mask (RLE kept bit for bit); ``points`` → Keypoints (``visibility`` 0/1/2 as COCO's v,
  all 2 when absent); ``polyline`` → Polyline (at least 2 points); ``label`` → Label.
- ``caption`` → a `Caption` annotation (label empty: a caption has no class), its ``attributes`` and
  non-zero ``group`` kept as the other types' (``score`` as confidence). ``ellipse``,
  ``cuboid_3d``, ``cuboid_2d`` and shapes without a label have no canonical geometry: they are kept verbatim (``label_id`` replaced by ``"label": name``) in
  ``ImageRef.metadata["datumaro_unsupported"]``, logged, and written back by this writer.

Attributes: datumaro's ``score`` becomes ``Annotation.confidence``, ``track_id`` (or the newer
``object_id`` field) ``Annotation.track_id`` and ``is_crowd: true`` ``Annotation.crowd``; a non-zero
``group`` and ``z_order`` are kept as attributes of those names (a clash with an attribute already so
named is a FormatError). The writer reverses all of this. An item's ``attr`` is the image's metadata.

Subset ``default`` (datumaro's name for "no subset") is split None, and the writer writes split None
as ``default``. Every item is listed, so an item without annotations is NULL.

Writing: ``annotations/<split>.json`` streamed (items to a temporary file, categories known at the
end), images to ``images/<split>/<name>``, where name is the sample's file_name less a leading
``images/<split>/`` or ``images/`` (sub-folders kept), made unique; the item id is that name without
its extension. Class ids become label indices in ClassMap order (sparse COCO ids are not kept).
A declared ``Annotation.bbox`` that differs from the geometry's bounds has no place and is counted
as dropped; MISSING samples are written as listed items (NULL), counted as converted.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

import orjson

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import (
    Box,
    Caption,
    Geometry,
    Keypoints,
    Label,
    Mask,
    Polygon,
    Polyline,
    RotatedBox,
    bounds,
    kind,
)
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._jsonstream import UniqueNames, first_item, head, iter_items, jsonable
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    place_image,
    relative_name,
    safe_name,
)

log = logging.getLogger(__name__)

FORMAT = "datumaro"
FORMAT_VERSION = "1.0"
MEDIA_TYPE_IMAGE = 2
DEFAULT_SUBSET = "default"
IMAGE_EXT = ".jpg"
UNSUPPORTED_KEY = "datumaro_unsupported"
ID_KEY = "datumaro_id"
_UNSUPPORTED_TYPES = ("ellipse", "cuboid_3d", "cuboid_2d")
_SNIFF = 65536
#: attributes that carry fields of the annotation, not declared in the label's attribute list
_STRUCTURAL = ("score", "track_id", "is_crowd", "rotation")
_CATEGORIES_OBJECT = re.compile(rb'"categories"\s*:\s*\{')
_VERSION = re.compile(rb'"dm_format_version"\s*:\s*"([^"]*)"')


# ---------------------------------------------------------------- detect


def _sources(path: Path) -> tuple[list[Path], Path]:
    """(annotation JSON files, dataset root) for a path, without reading anything."""
    if path.is_file():
        root = path.parent.parent if path.parent.name == "annotations" else path.parent
        return ([path] if path.suffix.lower() == ".json" else []), root
    if (path / "annotations").is_dir():
        return sorted((path / "annotations").glob("*.json")), path
    if path.name == "annotations" and path.is_dir():
        return sorted(path.glob("*.json")), path.parent
    return [], path


def _looks_datumaro(data: bytes) -> bool:
    return data.lstrip().startswith(b"{") and (b'"dm_format_version"' in data or (
        _CATEGORIES_OBJECT.search(data) is not None and b'"items"' in data))


def detect(path: Path) -> Detection:
    files, _ = _sources(Path(path))
    if not files:
        return Detection.no("no annotations/<subset>.json")
    data = head(files[0], _SNIFF)
    if not _looks_datumaro(data):
        return Detection.no(f"{files[0].name} has no dm_format_version nor a categories object with items")
    # above COCO's 0.95 for a JSON inside annotations/: Datumaro's categories are an object, COCO's a list
    return Detection(0.99, f"{files[0].name} is Datumaro JSON")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files, root = _sources(path)
    files = [f for f in files if _looks_datumaro(head(f, _SNIFF))]
    if not files:
        raise FormatError("no Datumaro annotation file here", path=path,
                          hint="expected annotations/<subset>.json with dm_format_version, categories and items")
    classes = ClassMap()
    label_names: dict[Path, list[str]] = {}
    for f in files:
        label_names[f] = _categories(f, classes)

    def samples() -> Iterator[Sample]:
        for f in files:
            subset = f.stem
            file_split = split or (None if subset == DEFAULT_SUBSET else subset)
            yield from _read_file(f, subset, file_split, root, label_names[f], classes)

    return Reader(classes, samples, source=path)


def _color(entry: dict[str, Any]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(entry[k]) for k in ("r", "g", "b")))


def _categories(path: Path, classes: ClassMap) -> list[str]:
    """Adds the file's labels to `classes`; returns label index -> name for this file."""
    found = _VERSION.search(head(path, _SNIFF))  # the writer puts it first; a full scan would cost a parse
    version = found.group(1).decode() if found else None
    if version is not None and version != FORMAT_VERSION:
        log.warning("%s: Datumaro format version %s, this reader knows %s; reading anyway",
                    path, version, FORMAT_VERSION)
    cats = first_item(path, "categories")
    if cats is None:
        return []
    if not isinstance(cats, dict):
        raise FormatError("`categories` must be an object", path=path, where="categories")
    names: list[str] = []
    colors: dict[int, str] = {}
    points: dict[int, tuple[tuple[str, ...], tuple[tuple[int, int], ...]]] = {}
    try:
        for c in (cats.get("mask") or {}).get("colormap") or []:
            colors[int(c["label_id"])] = _color(c)
        for c in (cats.get("points") or {}).get("items") or []:
            points[int(c["label_id"])] = (tuple(str(n) for n in c.get("labels") or ()),
                                          tuple((int(a), int(b)) for a, b in c.get("joints") or ()))
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"bad mask or points category: {e}", path=path, where="categories") from None
    for i, label in enumerate((cats.get("label") or {}).get("labels") or []):
        if not isinstance(label, dict) or not isinstance(label.get("name"), str) or not label["name"]:
            raise FormatError("a label needs a non-empty `name`", path=path, where=f"categories.label.labels[{i}]")
        name = label["name"]
        if name in names:
            raise FormatError(f"duplicate label {name!r}", path=path, where=f"categories.label.labels[{i}]")
        names.append(name)
        if name not in classes:
            kp, joints = points.get(i, ((), ()))
            new_id = i if classes.by_id(i) is None else max(c.id for c in classes) + 1
            classes._insert(ClassInfo(name, new_id, color=colors.get(i), supercategory=label.get("parent") or None,
                                      keypoints=kp, skeleton=joints))
    return names


def _read_file(path: Path, subset: str, split: str | None, root: Path, names: list[str],
               classes: ClassMap) -> Iterator[Sample]:
    images_dir = root / "images"
    skipped: Counter[str] = Counter()
    for i, item in enumerate(iter_items(path, "items.item")):
        yield _sample(item, i, path, subset, split, root, images_dir, names, skipped)
    if skipped:
        log.warning("%s: kept in ImageRef.metadata[%r] (no canonical geometry): %s", path, UNSUPPORTED_KEY,
                    ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())))


def _image_path(images_dir: Path, subset: str, name: str) -> Path:
    p = images_dir / subset / name
    if not p.is_file() and (images_dir / name).is_file():  # the legacy layout: images/<path>
        return images_dir / name
    return p


def _sample(item: Any, i: int, path: Path, subset: str, split: str | None, root: Path, images_dir: Path,
            names: list[str], skipped: Counter[str]) -> Sample:
    where = f"items[{i}]"
    if not isinstance(item, dict) or not isinstance(item.get("id"), str | int) or item.get("id") == "":
        raise FormatError("an item needs a non-empty `id`", path=path, where=where)
    item_id = str(item["id"])
    where = f"items[{i}] (id {item_id!r})"
    if item.get("point_cloud"):
        raise FormatError("point-cloud items are not supported (images only)", path=path, where=where)
    image = item.get("image") or {}
    if not isinstance(image, dict):
        raise FormatError("`image` must be an object", path=path, where=where)
    name = image.get("path") or (item.get("media") or {}).get("path") or item_id + IMAGE_EXT
    if not isinstance(name, str):
        raise FormatError("image `path` must be a string", path=path, where=where)
    absolute = _image_path(images_dir, subset, name)
    width = height = None
    size = image.get("size")
    if size is not None:
        if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int | float) and v > 0 for v in size):
            raise FormatError(f"image `size` must be [height, width], got {size!r}", path=path, where=where)
        height, width = int(size[0]), int(size[1])
    try:
        file_name = relative_name(absolute, root)
    except ValueError:
        file_name = PurePosixPath(name).as_posix()
    metadata: dict[str, Any] = dict(item.get("attr") or {})
    if item_id != PurePosixPath(name).with_suffix("").as_posix():
        metadata[ID_KEY] = item_id
    anns, unsupported = _annotations(item.get("annotations") or [], path, where, names, skipped)
    if unsupported:
        metadata[UNSUPPORTED_KEY] = unsupported
    ref = ImageRef(file_name, width=width, height=height, path=str(absolute.absolute()), metadata=metadata)
    return Sample(ref, tuple(anns), split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _annotations(raw: Any, path: Path, item_where: str, names: list[str],
                 skipped: Counter[str]) -> tuple[list[Annotation], list[dict[str, Any]]]:
    if not isinstance(raw, list):
        raise FormatError("`annotations` must be a list", path=path, where=item_where)
    out: list[Annotation] = []
    unsupported: list[dict[str, Any]] = []
    parts: dict[tuple[Any, ...], int] = {}  # (group, label, attributes) -> index in out of a polygon
    for j, ann in enumerate(raw):
        where = f"{item_where}.annotations[{j}]"
        if not isinstance(ann, dict) or not isinstance(ann.get("type"), str):
            raise FormatError("an annotation needs a `type`", path=path, where=where)
        ann_type = ann["type"]
        if ann_type == "hash_key":
            continue
        if ann_type == "caption":  # no label: a caption has no class
            try:
                out.append(_annotation(ann, ann_type, ""))
            except (TypeError, ValueError) as e:
                raise FormatError(f"bad caption annotation: {e}", path=path, where=where) from None
            except FormatError as e:
                raise FormatError(e.message, path=path, where=where) from None
            continue
        label_id = ann.get("label_id")
        if label_id is not None and (not isinstance(label_id, int) or not 0 <= label_id < len(names)):
            raise FormatError(f"label_id {label_id!r} is not one of the {len(names)} labels in categories",
                              path=path, where=where)
        if ann_type in _UNSUPPORTED_TYPES or label_id is None:
            raw_copy = {k: v for k, v in ann.items() if k != "label_id"}
            if label_id is not None:
                raw_copy["label"] = names[label_id]
            unsupported.append(raw_copy)
            skipped[ann_type if label_id is not None else f"unlabelled {ann_type}"] += 1
            continue
        try:
            annotation = _annotation(ann, ann_type, names[label_id])
        except (TypeError, ValueError, KeyError) as e:
            raise FormatError(f"bad {ann_type} annotation: {e}", path=path, where=where) from None
        except FormatError as e:
            raise FormatError(e.message, path=path, where=where) from None
        group = annotation.attributes.get("group")
        if isinstance(annotation.geometry, Polygon) and group:
            key = (group, annotation.label, orjson.dumps(dict(annotation.attributes), option=orjson.OPT_SORT_KEYS),
                   annotation.confidence, annotation.track_id, annotation.crowd)
            if key in parts:
                k = parts[key]
                first = out[k].geometry
                assert isinstance(first, Polygon)
                out[k] = replace(out[k], geometry=Polygon(first.rings + annotation.geometry.rings))
                continue
            parts[key] = len(out)
        out.append(annotation)
    return out, unsupported


def _floats(values: Any, what: str) -> tuple[float, ...]:
    if not isinstance(values, list) or not all(_number(v) for v in values):
        raise ValueError(f"`{what}` must be a list of numbers")
    return tuple(float(v) for v in values)


def _annotation(ann: dict[str, Any], ann_type: str, label: str) -> Annotation:
    attrs = dict(ann.get("attributes") or {})
    confidence = track_id = None
    if _number(attrs.get("score")) and 0 <= attrs["score"] <= 1:
        confidence = float(attrs.pop("score"))
    if isinstance(attrs.get("track_id"), int) and not isinstance(attrs["track_id"], bool):
        track_id = int(attrs.pop("track_id"))
    elif isinstance(ann.get("object_id"), int) and ann["object_id"] >= 0:
        track_id = int(ann["object_id"])
    crowd = attrs.get("is_crowd") is True
    if crowd:
        del attrs["is_crowd"]
    for key in ("group", "z_order"):
        value = ann.get(key) or 0
        if not isinstance(value, int):
            raise ValueError(f"`{key}` must be an integer, got {value!r}")
        if value:
            if key in attrs and attrs[key] != value:
                raise FormatError(f"the attribute {key!r} clashes with the annotation's {key} field")
            attrs[key] = value
    geometry: Geometry
    if ann_type == "bbox":
        bbox = _floats(ann.get("bbox"), "bbox")
        if len(bbox) != 4:
            raise ValueError(f"bbox needs 4 numbers [x, y, w, h], got {len(bbox)}")
        x, y, w, h = bbox
        rotation = attrs.get("rotation")
        if isinstance(rotation, int | float) and not isinstance(rotation, bool) and rotation % 360:
            del attrs["rotation"]
            geometry = RotatedBox(x + w / 2, y + h / 2, w, h, float(rotation))
        else:
            geometry = Box.from_xywh(x, y, w, h)
    elif ann_type == "polygon":
        geometry = Polygon((_floats(ann.get("points"), "points"),))
    elif ann_type == "mask":
        rle = ann.get("rle")
        if not isinstance(rle, dict) or not isinstance(rle.get("counts"), str):
            raise ValueError("`rle` must be {counts: compressed RLE string, size: [h, w]}")
        h, w = (int(v) for v in rle["size"])
        geometry = Mask(rle["counts"].encode("ascii"), h, w)
    elif ann_type == "points":
        pts = _floats(ann.get("points"), "points")
        if len(pts) % 2:
            raise ValueError("`points` must hold x, y pairs")
        vis = ann.get("visibility") or [2] * (len(pts) // 2)
        if len(vis) != len(pts) // 2:
            raise ValueError(f"{len(vis)} visibility values for {len(pts) // 2} points")
        geometry = Keypoints(tuple(v for k, (x, y) in enumerate(zip(pts[0::2], pts[1::2], strict=True))
                                   for v in (x, y, float(vis[k]))))
    elif ann_type == "polyline":
        pts = _floats(ann.get("points"), "points")
        if len(pts) % 2 or len(pts) < 4:
            raise ValueError(f"a polyline needs at least 2 x, y pairs, got {len(pts)} numbers")
        geometry = Polyline(pts)
    elif ann_type == "label":
        geometry = Label()
    elif ann_type == "caption":
        if not isinstance(ann.get("caption"), str):
            raise ValueError("`caption` must be a string")
        geometry = Caption(ann["caption"])
    else:
        raise FormatError(f"unknown annotation type {ann_type!r}")
    return Annotation(label, geometry, attributes=attrs, confidence=confidence, track_id=track_id, crowd=crowd)


# ---------------------------------------------------------------- write


class _SubsetFile:
    """One annotations/<subset>.json: items streamed to a temporary file, the head written at the end."""

    def __init__(self, out: Path, subset: str) -> None:
        self.subset = subset
        self.final = out / "annotations" / f"{subset}.json"
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.items: IO[bytes] = tempfile.TemporaryFile(dir=self.final.parent)
        self.count = 0
        self.names = UniqueNames()
        self.ids: set[str] = set()

    def add(self, entry: dict[str, Any]) -> None:
        self.items.write((b"," if self.count else b"") + orjson.dumps(entry))
        self.count += 1

    def close(self, categories: dict[str, Any]) -> None:
        partial = self.final.with_name(self.final.name + ".partial")
        with open(partial, "wb") as f:
            f.write(b'{"dm_format_version":' + orjson.dumps(FORMAT_VERSION) + b',"media_type":'
                    + orjson.dumps(MEDIA_TYPE_IMAGE) + b',"infos":{},"categories":' + orjson.dumps(categories)
                    + b',"items":[')
            self.items.seek(0)
            while chunk := self.items.read(1 << 20):
                f.write(chunk)
            f.write(b"]}")
        self.items.close()
        partial.replace(self.final)

    def abort(self) -> None:
        self.items.close()


def _relative_image(file_name: str, subset: str) -> str:
    name = safe_name(file_name)
    for prefix in (f"images/{subset}/", "images/"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def _claim(sf: _SubsetFile, ref: ImageRef) -> tuple[str, str]:
    """(image path relative to images/<subset>/, item id), both unique in the subset."""
    name = sf.names.claim(_relative_image(ref.file_name, sf.subset))
    wanted = ref.metadata.get(ID_KEY)
    if isinstance(wanted, str) and wanted and wanted not in sf.ids:
        sf.ids.add(wanted)
        return name, wanted
    while (item_id := PurePosixPath(name).with_suffix("").as_posix()) in sf.ids:
        name = sf.names.claim(name)
    sf.ids.add(item_id)
    return name, item_id


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    cmap = ClassMap(list(classes)) if classes is not None else ClassMap()
    report = WriteReport(FORMAT, str(out))
    label_attributes: dict[str, set[str]] = defaultdict(set)
    files: dict[str, _SubsetFile] = {}
    try:
        for sample in samples:
            subset = sample.split or DEFAULT_SUBSET
            sf = files.get(subset)
            if sf is None:
                sf = files[subset] = _SubsetFile(out, subset)
            ref = sample.image
            name, item_id = _claim(sf, ref)
            if place_image(ref, out / "images" / subset / name, images):
                report.files += 1
            image: dict[str, Any] = {"path": name}
            if ref.width is not None and ref.height is not None:
                image["size"] = [ref.height, ref.width]
            entry: dict[str, Any] = {"id": item_id, "annotations": _annotation_entries(sample, cmap, label_attributes,
                                                                                      report)}
            attr = jsonable({k: v for k, v in ref.metadata.items() if k not in (UNSUPPORTED_KEY, ID_KEY)})
            if attr:
                entry["attr"] = attr
            entry["image"] = image
            if sample.state is LabelState.MISSING:
                report.converted["missing -> null (Datumaro lists every item as labelled)"] += 1
            sf.add(entry)
            report.images += 1
        if not files:
            files[DEFAULT_SUBSET] = _SubsetFile(out, DEFAULT_SUBSET)
        categories = _categories_entry(cmap, label_attributes)
        for sf in files.values():
            sf.close(categories)
            report.files += 1
    except BaseException:
        for sf in files.values():
            sf.abort()
        raise
    return report


def _categories_entry(cmap: ClassMap, label_attributes: dict[str, set[str]]) -> dict[str, Any]:
    cats: dict[str, Any] = {"label": {
        "labels": [{"name": c.name, "parent": c.supercategory or "", "attributes": sorted(label_attributes[c.name])}
                   for c in cmap],
        "label_groups": [], "attributes": []}}
    colormap = []
    for i, c in enumerate(cmap):
        if c.color and re.fullmatch(r"#[0-9a-fA-F]{6}", c.color):
            colormap.append({"label_id": i, "r": int(c.color[1:3], 16), "g": int(c.color[3:5], 16),
                             "b": int(c.color[5:7], 16)})
    if colormap:
        cats["mask"] = {"colormap": colormap}
    points = [{"label_id": i, "labels": list(c.keypoints), "joints": [list(p) for p in c.skeleton]}
              for i, c in enumerate(cmap) if c.keypoints]
    if points:
        cats["points"] = {"items": points}
    return cats


def _label_index(cmap: ClassMap, label: str) -> int:
    if label not in cmap:
        cmap.add(label)
    return cmap.index(label)


def _annotation_entries(sample: Sample, cmap: ClassMap, label_attributes: dict[str, set[str]],
                        report: WriteReport) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    used_groups = {a.attributes["group"] for a in sample.annotations if isinstance(a.attributes.get("group"), int)}
    next_group = max(used_groups, default=0) + 1
    for ann in sample.annotations:
        attrs = dict(ann.attributes)
        group = attrs.pop("group") if isinstance(attrs.get("group"), int) else 0
        z_order = attrs.pop("z_order") if isinstance(attrs.get("z_order"), int) else 0
        if ann.confidence is not None:
            attrs["score"] = ann.confidence
        if ann.track_id is not None:
            attrs["track_id"] = ann.track_id
        if ann.crowd:
            attrs["is_crowd"] = True
        g = ann.geometry
        clean = jsonable(attrs)
        if isinstance(g, Caption):  # no label_id: a caption has no class (datumaro's Caption has no label)
            entries.append({"type": "caption", "attributes": clean, "group": group, "caption": g.text})
            report.annotations["caption"] += 1
            continue
        label_id = _label_index(cmap, ann.label)
        base: dict[str, Any] = {"type": "", "attributes": clean, "group": group, "label_id": label_id}
        shapes: list[dict[str, Any]] = []
        if isinstance(g, Box):
            shapes.append({**base, "type": "bbox", "bbox": list(g.xywh()), "z_order": z_order})
        elif isinstance(g, RotatedBox):
            rotated = dict(clean, rotation=g.angle)
            shapes.append({**base, "type": "bbox", "attributes": rotated, "z_order": z_order,
                           "bbox": [g.cx - g.w / 2, g.cy - g.h / 2, g.w, g.h]})
        elif isinstance(g, Polygon):
            if len(g.rings) > 1 and not group:
                base["group"], next_group = next_group, next_group + 1
            shapes += [{**base, "type": "polygon", "points": list(r), "z_order": z_order} for r in g.rings]
        elif isinstance(g, Mask):
            shapes.append({**base, "type": "mask", "rle": {"counts": g.counts.decode("ascii"),
                                                           "size": [g.height, g.width]}, "z_order": z_order})
        elif isinstance(g, Keypoints):
            shapes.append({**base, "type": "points", "points": [v for k, v in enumerate(g.points) if k % 3 != 2],
                           "visibility": [int(v) for v in g.points[2::3]], "z_order": z_order})
        elif isinstance(g, Polyline):
            shapes.append({**base, "type": "polyline", "points": list(g.points), "z_order": z_order})
        elif isinstance(g, Label):
            shapes.append({**base, "type": "label"})
        report.annotations[kind(g)] += 1
        if ann.bbox is not None and ann.bbox != bounds(g):
            report.drop("bbox", "a declared box beside the geometry has no place in Datumaro")
        label_attributes[ann.label].update(k for k in shapes[0]["attributes"] if k not in _STRUCTURAL)
        entries += shapes
    for raw in sample.image.metadata.get(UNSUPPORTED_KEY) or ():
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            continue
        entry = {k: v for k, v in raw.items() if k != "label"}
        if isinstance(raw.get("label"), str):
            entry["label_id"] = _label_index(cmap, raw["label"])
        entries.append(jsonable(entry))
        report.annotations[raw["type"]] += 1
    for k, entry in enumerate(entries, start=1):
        entry["id"] = k
    return entries

