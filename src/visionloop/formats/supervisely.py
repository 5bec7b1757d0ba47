"""Supervisely JSON project: `meta.json` + `<dataset>/ann/<image>.json` + `<dataset>/img/<image>`.

Reference: https://docs.supervisely.com/customization-and-integration/00_ann_format_navi (project
structure, meta.json, image annotation, objects, tags) and the SDK's geometry classes
(supervisely/geometry/rectangle.py, bitmap.py, graph.py).

Coordinates: ``points.exterior`` lists [x, y] (column, row) pairs. A rectangle's two points are
its top-left and bottom-right PIXELS, both inclusive (the SDK's width is right − left + 1, and
`Rectangle.from_size` is (0, 0, h−1, w−1)); canonical boxes are continuous, so

    read:  x0 = left, y0 = top, x1 = right + 1, y1 = bottom + 1        write: right = x1 − 1

Polygon, line, point and graph vertices are taken as continuous coordinates as they are (as COCO
and LabelMe do). A bitmap is a PNG (zlib-compressed, then base64) of the object's bounding
rectangle, placed at ``origin`` [x, y]; a pixel belongs to the object where the PNG's alpha (or
its value, for grey/palette PNGs without transparency) is non-zero.

What each object becomes
    rectangle                  Box
    polygon                    Polygon; with ``interior`` holes a Mask (rasterised exterior minus
                               holes, since our polygons have no holes: lossy on read)
    bitmap                     Mask
    point                      Keypoints, one visible point
    line                       Polyline (at least 2 points)
    graph                      Keypoints in the order of the class's nodes in meta.json (the class
                               gets the node labels as keypoint names and the edges as skeleton);
                               a missing node is (0, 0, v=0), a ``disabled`` one v=1
    others (cuboid, ...)       skipped and counted (`skipped`; --strict refuses)
Object tags become attributes (a tag without value → True). Image tags without a value become
whole-image Labels; image tags with a value are kept in ``ImageRef.metadata["sly_tags"]``.
Classes: meta.json in order, keeping its class ids when every class has one (else 0..n-1) and
its colours. Splits: the dataset folder name. An image without an annotation file is MISSING;
one with no objects NULL.

Writing: `out/meta.json` (written last: classes with the shape of their objects, or ``any`` when
mixed, and the tag metas used), `out/<split or "ds0">/img/<name>` and `.../ann/<name>.json` (one
file per image, written as it comes). Rotated boxes become polygons, multi-part polygons one
object per part (counted). Keypoints of a class with keypoint names become graphs, others points
(or a line with the marker). Attributes become object tags (``any_string`` / ``any_number``;
True → a tag without value; False and other values are counted as converted). Confidence,
crowd flags and track ids are dropped (counted).
"""

from __future__ import annotations

import base64
import io
import logging
import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import (
    Box,
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
from visionloop.formats._labeltools import UniqueNames, hex_color, image_files, load_json, number
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
    open_text_bytes,
    place_image,
    relative_name,
    safe_name,
    skip,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "supervisely"
SHAPE_ATTR = "sly_shape"
DEFAULT_DATASET = "ds0"


# ---------------------------------------------------------------- bitmaps


def decode_bitmap(data: str, *, path: Path, where: str) -> np.ndarray:
    """Supervisely bitmap data → 0/1 array of the bitmap's rectangle."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = zlib.decompress(base64.b64decode(data))
    except (ValueError, zlib.error) as e:
        raise FormatError(f"bitmap data is not base64 zlib ({e})", path=path, where=where) from None
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            if im.mode == "P":
                arr = np.array(im.convert("RGBA"))[:, :, 3] if "transparency" in im.info else np.array(im)
            elif im.mode in ("RGBA", "LA", "PA"):
                arr = np.array(im)[:, :, -1]
            else:
                arr = np.array(im.convert("L"))
    except (UnidentifiedImageError, OSError) as e:
        raise FormatError(f"bitmap data is not a PNG ({e})", path=path, where=where) from None
    return (arr > 0).astype(np.uint8)


def encode_bitmap(arr: np.ndarray) -> str:
    """0/1 array → Supervisely bitmap data (palette PNG, index 0 transparent, as the SDK writes it)."""
    from PIL import Image

    im = Image.fromarray(arr.astype(np.uint8), mode="L").convert("P")
    im.putpalette([0, 0, 0, 255, 255, 255])
    buf = io.BytesIO()
    im.save(buf, format="PNG", transparency=0, optimize=False)
    return base64.b64encode(zlib.compress(buf.getvalue())).decode("ascii")


# ---------------------------------------------------------------- detect / layout


def _datasets(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "ann").is_dir()) if root.is_dir() else []


def detect(path: Path) -> Detection:
    root = Path(path)
    if root.is_file() and root.name == "meta.json":
        root = root.parent
    meta = root / "meta.json"
    if not meta.is_file():
        return Detection.no("no meta.json")
    with open_text_bytes(meta) as f:
        head = f.read(4096)
    if b'"classes"' not in head and b'"tags"' not in head:
        return Detection.no("meta.json has no classes/tags")
    if not _datasets(root):
        return Detection(0.3, "meta.json with classes but no <dataset>/ann/ folder")
    return Detection(0.9, "meta.json and <dataset>/ann/ folders (Supervisely project)")


# ---------------------------------------------------------------- read


def _classes(meta: Any, path: Path) -> tuple[ClassMap, dict[str, list[str]]]:
    """The ClassMap and, per graph class, its node ids in order."""
    classes_raw = meta.get("classes") or [] if isinstance(meta, dict) else []
    keep_ids = bool(classes_raw) and all(isinstance(c, dict) and isinstance(c.get("id"), int) for c in classes_raw)
    out = ClassMap()
    nodes: dict[str, list[str]] = {}
    for i, c in enumerate(classes_raw):
        if not isinstance(c, dict) or not c.get("title"):
            raise FormatError("a class needs a `title`", path=path, where=f"classes[{i}]")
        title = str(c["title"])
        rgb = hex_color(c.get("color")) if isinstance(c.get("color"), str) else None
        color = "#{:02x}{:02x}{:02x}".format(*rgb) if rgb else None
        names: tuple[str, ...] = ()
        skeleton: tuple[tuple[int, int], ...] = ()
        if c.get("shape") == "graph" and isinstance(c.get("geometry_config"), dict):
            cfg = c["geometry_config"]
            ids = list((cfg.get("nodes") or {}).keys())
            nodes[title] = ids
            names = tuple(str((cfg["nodes"][k] or {}).get("label", k)) for k in ids)
            skeleton = tuple((ids.index(e["src"]) + 1, ids.index(e["dst"]) + 1) for e in cfg.get("edges") or []
                             if isinstance(e, dict) and e.get("src") in ids and e.get("dst") in ids)
        out.add(title, id=c["id"] if keep_ids else None, color=color, keypoints=names, skeleton=skeleton)
    return out, nodes


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    if root.is_file() and root.name == "meta.json":
        root = root.parent
    if not (root / "meta.json").is_file():
        raise FormatError("no Supervisely project here", path=root, hint="expected meta.json and <dataset>/ann/")
    meta = load_json(root / "meta.json")
    classes, nodes = _classes(meta, root / "meta.json")

    def samples() -> Iterator[Sample]:
        for ds in _datasets(root):
            yield from _dataset(ds, classes, nodes, split or ds.name)

    return Reader(classes, samples, source=root)


def _dataset(ds: Path, classes: ClassMap, nodes: dict[str, list[str]], split: str) -> Iterator[Sample]:
    img_dir, ann_dir = ds / "img", ds / "ann"
    seen: set[str] = set()
    for img in image_files(img_dir):
        rel = relative_name(img, img_dir)
        seen.add(rel)
        ann = ann_dir / f"{rel}.json"
        if not ann.is_file():
            yield Sample(ImageRef(rel, path=str(img)), (), split=split, state=LabelState.MISSING)
            continue
        yield _annotation(ann, rel, img, classes, nodes, split)
    for ann in sorted(ann_dir.rglob("*.json")):
        rel = relative_name(ann, ann_dir)[: -len(".json")]
        if rel not in seen:  # annotation whose image is elsewhere (or missing)
            yield _annotation(ann, rel, img_dir / rel, classes, nodes, split)


def _annotation(ann_path: Path, rel: str, img: Path, classes: ClassMap, nodes: dict[str, list[str]],
                split: str) -> Sample:
    doc = load_json(ann_path)
    if not isinstance(doc, dict):
        raise FormatError("an annotation file must hold an object", path=ann_path)
    size = doc.get("size") or {}
    w, h = (size.get("width"), size.get("height")) if isinstance(size, dict) else (None, None)
    dims = (int(w), int(h)) if w and h else None
    anns: list[Annotation] = []
    tags_meta: dict[str, Any] = {}
    for i, tag in enumerate(doc.get("tags") or []):
        if not isinstance(tag, dict) or not tag.get("name"):
            raise FormatError("a tag needs a `name`", path=ann_path, where=f"tags[{i}]")
        if tag.get("value") is None:
            anns.append(Annotation(str(tag["name"]), Label()))
        else:
            tags_meta[str(tag["name"])] = tag["value"]
    for i, obj in enumerate(doc.get("objects") or []):
        a = _object(obj, classes, nodes, dims, path=ann_path, where=f"objects[{i}]")
        if a is not None:
            anns.append(a)
    for a in anns:
        if a.label not in classes:
            classes.add(a.label)
    meta: dict[str, Any] = {"sly_tags": tags_meta} if tags_meta else {}
    if doc.get("description"):
        meta["sly_description"] = doc["description"]
    ref = ImageRef(rel, width=dims[0] if dims else None, height=dims[1] if dims else None, path=str(img),
                   metadata=meta)
    return Sample(ref, tuple(anns), split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


def _pairs(raw: Any, *, path: Path, where: str) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        raise FormatError("points must be a list of [x, y]", path=path, where=where)
    out = []
    for p in raw:
        if not isinstance(p, list | tuple) or len(p) != 2:
            raise FormatError(f"a point must be [x, y], got {p!r}", path=path, where=where)
        out.append((number(p[0], path=path, where=where, what="x"), number(p[1], path=path, where=where, what="y")))
    return out


def _object(obj: Any, classes: ClassMap, nodes: dict[str, list[str]], dims: tuple[int, int] | None, *,
            path: Path, where: str) -> Annotation | None:
    if not isinstance(obj, dict) or not obj.get("classTitle"):
        raise FormatError("an object needs a `classTitle`", path=path, where=where)
    label = str(obj["classTitle"])
    shape = str(obj.get("geometryType") or "")
    attributes: dict[str, Any] = {}
    for t in obj.get("tags") or []:
        if isinstance(t, dict) and t.get("name"):
            attributes[str(t["name"])] = True if t.get("value") is None else t["value"]
    points: dict[str, Any] = obj["points"] if isinstance(obj.get("points"), dict) else {}
    where = f"{where} ({shape} {label!r})"
    try:
        geometry: Box | Polygon | Polyline | Mask | Keypoints
        if shape == "rectangle":
            pts = _pairs(points.get("exterior"), path=path, where=where)
            if len(pts) != 2:
                raise FormatError(f"a rectangle needs 2 points, got {len(pts)}", path=path, where=where)
            (xa, ya), (xb, yb) = pts
            geometry = Box(min(xa, xb), min(ya, yb), max(xa, xb) + 1, max(ya, yb) + 1)
        elif shape == "polygon":
            ext = _pairs(points.get("exterior"), path=path, where=where)
            if len(ext) < 3:
                raise FormatError(f"a polygon needs at least 3 points, got {len(ext)}", path=path, where=where)
            holes = [_pairs(r, path=path, where=where) for r in points.get("interior") or []]
            poly = Polygon.from_points(ext)
            if holes and any(len(r) >= 3 for r in holes):
                if dims is None:
                    raise FormatError("a polygon with holes needs the image size", path=path, where=where)
                arr = polygon_to_mask(poly, dims[1], dims[0]).to_array()
                for r in holes:
                    if len(r) >= 3:
                        arr[polygon_to_mask(Polygon.from_points(r), dims[1], dims[0]).to_array() > 0] = 0
                geometry = Mask.from_array(arr)
            else:
                geometry = poly
        elif shape == "bitmap":
            bm = obj.get("bitmap")
            if not isinstance(bm, dict) or not isinstance(bm.get("data"), str):
                raise FormatError("a bitmap needs `bitmap.data`", path=path, where=where)
            if dims is None:
                raise FormatError("a bitmap needs the image size (`size`)", path=path, where=where)
            roi = decode_bitmap(bm["data"], path=path, where=where)
            ox, oy = (int(v) for v in (bm.get("origin") or [0, 0]))
            W, H = dims
            if ox < 0 or oy < 0 or ox + roi.shape[1] > W or oy + roi.shape[0] > H:
                raise FormatError(f"the bitmap at {ox},{oy} ({roi.shape[1]}×{roi.shape[0]}) leaves the {W}×{H} image",
                                  path=path, where=where)
            full = np.zeros((H, W), dtype=np.uint8)
            full[oy:oy + roi.shape[0], ox:ox + roi.shape[1]] = roi
            geometry = Mask.from_array(full)
        elif shape == "line":
            pts = _pairs(points.get("exterior"), path=path, where=where)
            if len(pts) < 2:
                raise FormatError(f"a line needs at least 2 points, got {len(pts)}", path=path, where=where)
            geometry = Polyline.from_points(pts)
        elif shape == "point":
            pts = _pairs(points.get("exterior"), path=path, where=where)
            if not pts:
                raise FormatError("no points", path=path, where=where)
            geometry = Keypoints(tuple(v for x, y in pts for v in (x, y, 2.0)))
        elif shape == "graph":
            graph = obj.get("nodes")
            if not isinstance(graph, dict):
                raise FormatError("a graph needs `nodes`", path=path, where=where)
            order = nodes.get(label) or list(graph)
            values: list[float] = []
            for node in order:
                n = graph.get(node)
                if not isinstance(n, dict) or "loc" not in n:
                    values += [0.0, 0.0, 0.0]
                    continue
                (x, y), = _pairs([n["loc"]], path=path, where=f"{where} node {node}")
                values += [x, y, 1.0 if n.get("disabled") else 2.0]
            geometry = Keypoints(tuple(values))
        else:
            skip(f"geometry {shape!r}", "not supported", path=path, where=where)
            return None
    except ValueError as e:
        raise FormatError(f"impossible geometry ({e})", path=path, where=where) from None
    return Annotation(label, geometry, attributes=attributes)


# ---------------------------------------------------------------- write


class _Book:
    def __init__(self, classes: ClassMap | None) -> None:
        self.classes = ClassMap(list(classes)) if classes is not None else ClassMap()
        self.shapes: dict[str, set[str]] = defaultdict(set)
        self.tags: dict[str, str] = {}
        self.node_ids: dict[str, list[str]] = {}

    def nodes(self, info: ClassInfo) -> list[str]:
        if info.name not in self.node_ids:
            self.node_ids[info.name] = [uuid.uuid5(uuid.NAMESPACE_URL, f"{info.name}/{k}").hex[:20]
                                        for k in info.keypoints]
        return self.node_ids[info.name]

    def tag(self, name: str, value_type: str) -> None:
        old = self.tags.get(name)
        self.tags[name] = value_type if old in (None, value_type) else "any_string"

    def meta(self) -> dict[str, Any]:
        classes = []
        for c in self.classes:
            shapes = self.shapes.get(c.name, set())
            shape = next(iter(shapes)) if len(shapes) == 1 else "any"
            entry: dict[str, Any] = {"title": c.name, "shape": shape, "color": self.classes.color(c.name).upper(),
                                     "geometry_config": {}}
            if shape == "graph":
                ids = self.nodes(c)
                entry["geometry_config"] = {
                    "nodes": {k: {"label": n, "loc": [0, 0], "color": "#0000FF"} for k, n in zip(ids, c.keypoints,
                                                                                                 strict=True)},
                    "edges": [{"src": ids[a - 1], "dst": ids[b - 1], "color": "#00FF00"} for a, b in c.skeleton
                              if 1 <= a <= len(ids) and 1 <= b <= len(ids)]}
            classes.append(entry)
        tags = [{"name": n, "value_type": t, "color": "#FF0000"} for n, t in self.tags.items()]
        return {"classes": classes, "tags": tags, "projectType": "images"}


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
    book = _Book(classes)
    names: dict[str, UniqueNames] = defaultdict(UniqueNames)
    for sample in samples:
        ds = sample.split or DEFAULT_DATASET
        ref = with_size(sample.image)
        name = names[ds](safe_name(ref.file_name))
        if place_image(ref, out / ds / "img" / name, images):
            report.files += 1
        doc = _ann_doc(sample, ref, book, report)
        ann_path = out / ds / "ann" / f"{name}.json"
        ann_path.parent.mkdir(parents=True, exist_ok=True)
        ann_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        count_state_change(report, sample, becomes=LabelState.NULL, why="every image gets an annotation file")
        report.images += 1
    (out / "meta.json").write_bytes(orjson.dumps(book.meta(), option=orjson.OPT_INDENT_2))
    return report


def _ann_doc(sample: Sample, ref: ImageRef, book: _Book, report: WriteReport) -> dict[str, Any]:
    W, H = int(ref.width or 0), int(ref.height or 0)
    tags: list[dict[str, Any]] = [{"name": n, "value": v} for n, v in (ref.metadata.get("sly_tags") or {}).items()]
    for n, v in (ref.metadata.get("sly_tags") or {}).items():
        book.tag(n, "any_number" if isinstance(v, int | float) and not isinstance(v, bool) else "any_string")
    objects: list[dict[str, Any]] = []
    for ann in sample.annotations:
        if ann.label not in book.classes:
            book.classes.add(ann.label)
        if isinstance(ann.geometry, Label):
            tags.append({"name": ann.label, "value": None})
            book.tag(ann.label, "none")
            report.annotations["label"] += 1
            continue
        if ann.confidence is not None:
            report.drop("confidence", "Supervisely objects have no score field")
        if ann.crowd:
            report.drop("crowd flag", "Supervisely has no crowd flag")
        if ann.track_id is not None:
            report.drop("track id", "Supervisely image projects have no tracks")
        obj_tags = _object_tags(ann, book, report)
        for shape, fields in _geometries(ann, book, report):
            book.shapes[ann.label].add(shape)
            objects.append({"classTitle": ann.label, "description": "", "geometryType": shape, "tags": obj_tags,
                            **fields})
    return {"description": ref.metadata.get("sly_description", ""), "tags": tags,
            "size": {"height": H, "width": W}, "objects": objects}


def _object_tags(ann: Annotation, book: _Book, report: WriteReport) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k, v in ann.attributes.items():
        if k == SHAPE_ATTR:
            continue
        if v is True:
            out.append({"name": k, "value": None})
            book.tag(k, "none")
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out.append({"name": k, "value": v})
            book.tag(k, "any_number")
        elif isinstance(v, str):
            out.append({"name": k, "value": v})
            book.tag(k, "any_string")
        elif v is False or v is None:
            report.converted["attribute false -> absent tag"] += 1
        else:
            report.converted[f"attribute {type(v).__name__} -> text tag"] += 1
            out.append({"name": k, "value": orjson.dumps(v, default=str).decode()})
            book.tag(k, "any_string")
    return out


def _geometries(ann: Annotation, book: _Book, report: WriteReport) -> list[tuple[str, dict[str, Any]]]:
    g = ann.geometry
    if isinstance(g, Box):
        report.annotations["box"] += 1
        return [("rectangle", {"points": {"exterior": [[g.x0, g.y0], [g.x1 - 1, g.y1 - 1]], "interior": []}})]
    if isinstance(g, RotatedBox):
        report.converted["rotated_box -> polygon"] += 1
        g = Polygon.from_points(list(g.corners()))
    if isinstance(g, Polygon):
        if len(g.rings) > 1:
            report.converted[f"polygon with {len(g.rings)} parts -> {len(g.rings)} polygons"] += 1
        report.annotations["polygon"] += len(g.rings)
        return [("polygon", {"points": {"exterior": [[x, y] for x, y in zip(r[0::2], r[1::2], strict=True)],
                                        "interior": []}}) for r in g.rings]
    if isinstance(g, Mask):
        arr = g.to_array()
        ys, xs = np.nonzero(arr)
        if ys.size == 0:
            report.drop("mask", "empty mask")
            return []
        top, left = int(ys.min()), int(xs.min())
        roi = arr[top:int(ys.max()) + 1, left:int(xs.max()) + 1]
        report.annotations["mask"] += 1
        return [("bitmap", {"bitmap": {"data": encode_bitmap(roi), "origin": [left, top]}})]
    if isinstance(g, Polyline):
        report.annotations["polyline"] += 1
        return [("line", {"points": {"exterior": [[x, y] for x, y in g.xy()], "interior": []}})]
    if isinstance(g, Keypoints):
        info = book.classes.get(ann.label)
        marker = ann.attributes.get(SHAPE_ATTR)
        if marker is None and info is not None and info.keypoints and len(info.keypoints) == g.count:
            ids = book.nodes(info)
            graph: dict[str, Any] = {}
            for nid, x, y, v in zip(ids, g.points[0::3], g.points[1::3], g.points[2::3], strict=True):
                if v > 0:
                    graph[nid] = {"loc": [x, y], **({"disabled": True} if v == 1 else {})}
            report.annotations["keypoints"] += 1
            return [("graph", {"nodes": graph})]
        pts = [[x, y] for x, y, v in zip(g.points[0::3], g.points[1::3], g.points[2::3], strict=True) if v > 0]
        if len(pts) != g.count or any(v != 2 for v in g.points[2::3] if v > 0):
            report.converted["keypoints visibility -> visible points"] += 1
        if not pts:
            report.drop("keypoints", "no labelled points")
            return []
        report.annotations["keypoints"] += 1
        if marker == "line" and len(pts) >= 2:
            return [("line", {"points": {"exterior": pts, "interior": []}})]
        if len(pts) > 1:
            report.converted[f"keypoints ({len(pts)} points) -> {len(pts)} points"] += 1
        return [("point", {"points": {"exterior": [p], "interior": []}}) for p in pts]
    report.drop(kind(g), "unsupported geometry")  # pragma: no cover
    return []  # pragma: no cover
