"""LabelMe JSON: one ``<image stem>.json`` per image, beside it, as the labelme app saves it.

Reference: https://github.com/wkentaro/labelme (``labelme/_label_file.py`` reads and writes the file,
``labelme/_utils/shape.py`` rasterises shapes; examples in ``examples/``)::

    {"version": "5.5.0", "flags": {"outdoor": true},
     "shapes": [{"label": "dog", "points": [[x, y], ...], "group_id": null, "description": "",
                 "shape_type": "polygon", "flags": {}, "mask": null}],
     "imagePath": "a.jpg", "imageData": null, "imageHeight": 480, "imageWidth": 640}

Coordinates are Qt scene coordinates of the image: continuous pixels, (0, 0) the top-left corner of
the first pixel -- our canonical space, no offset.

Shapes read
    ``rectangle`` (two opposite corners) -> Box; ``polygon`` -> Polygon; ``oriented_rectangle`` (4
    corners) -> RotatedBox via ``RotatedBox.from_corners``; ``circle`` (centre, a point on the
    circle) -> Polygon of 64 vertices on the circle (an approximation: the polygon's area is 0.16 %
    below the circle's); ``mask`` -> Mask (``points[0]`` rounded is the top-left pixel of the
    base64 PNG patch in ``mask``, ``points[1]`` its bottom-right pixel, inclusive); ``point`` ->
    Keypoints with one visible point; ``line`` (2 points) and ``linestrip`` (2 or more) -> Polyline. Shapes with the
    same label and
    ``group_id`` are one instance: their polygons become one multi-part Polygon; ``group_id``
    becomes ``Annotation.track_id``. A shape's ``flags``, ``description`` (when not empty) and any
    other keys become its attributes. Image-level ``flags`` that are true become Label annotations
    (false ones are not kept).

Images
    ``imagePath`` is relative to the JSON (Windows separators accepted). When that file is missing
    and ``imageData`` holds the image, its bytes are written to a temporary cache folder (removed
    at exit) and ``ImageRef.path`` points there. ``imageHeight``/``imageWidth`` give the size.

Layouts read
    a folder (walked recursively, sorted) of labelme JSON files -- images under it that no JSON
    names are read as MISSING (nobody labelled them) -- or one JSON file. A JSON whose first folder
    below the root is train/val/valid/test is in that split.

Writing
    ``out/[<split>/]<name>`` with ``<stem>.json`` beside it (imageData null, version 5.5.0). Box ->
    rectangle, Polygon -> one polygon per part sharing a group_id, RotatedBox -> oriented_rectangle,
    Mask -> mask (cropped to its bounds), Polyline -> line (2 points) or linestrip (more), Keypoints -> one point
    per labelled keypoint (sharing a
    group_id; more than one point is counted as a conversion), Label -> an image flag set to true.
    Empty masks and keypoints with no labelled point are dropped (counted). A MISSING image is
    written without a JSON, so it reads back MISSING.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Geometry, Keypoints, Label, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._tabular import SPLIT_WORDS, split_folder
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    extraction_folder,
    iter_files,
    place_image,
    safe_name,
    skip,
    strip_bom,
    with_size,
)
from visionloop.formats.yolo import NameBook

log = logging.getLogger(__name__)

FORMAT = "labelme"
VERSION = "5.5.0"
CIRCLE_VERTICES = 64
_SHAPE_KEYS = {"label", "points", "group_id", "shape_type", "flags", "description", "mask"}
_HEAD = 4096


# ------------------------------------------------------------------------------------ detect


def _is_labelme(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return False
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and b'"shapes"' in head and (b'"imagePath"' in head or b'"version"' in head)


def _first_jsons(root: Path, limit: int = 3) -> list[Path]:
    found = []
    for d in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        for f in sorted(d.glob("*.json")):
            found.append(f)
            if len(found) >= limit:
                return found
    return found


def detect(path: Path) -> Detection:
    """A JSON object with `shapes` and `imagePath`/`version` near its start (the first 4 KB)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".json":
            return Detection.no("not a .json file")
        if _is_labelme(path):
            return Detection(0.95, f"{path.name} is a LabelMe JSON (shapes, imagePath)")
        return Detection.no(f"{path.name} has no `shapes` with `imagePath`/`version` at its start")
    if not path.is_dir():
        return Detection.no("no such folder")
    jsons = _first_jsons(path)
    if not jsons:
        return Detection.no("no .json file here or one folder down")
    hits = [f for f in jsons if _is_labelme(f)]
    if hits:
        return Detection(0.9 if len(hits) == len(jsons) else 0.6, f"{hits[0].name} is a LabelMe JSON")
    return Detection.no(f"{jsons[0].name} is not a LabelMe JSON")


# -------------------------------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    if path.is_file():
        root, jsons = path.parent, [path]
    elif path.is_dir():
        root, jsons = path, []
    else:
        raise FormatError("no such file or folder", path=path)
    classes = ClassMap()
    cache: list[Path] = []

    def samples() -> Iterator[Sample]:
        seen: set[str] = set()
        files = jsons or (f for f in iter_files(root, suffixes=(".json",)) if _is_labelme(f))
        for f in files:
            sample = _read_file(f, root, split, classes, cache)
            seen.add(os.path.normcase(os.path.abspath(sample.image.path or "")))
            yield sample
        if jsons:
            return
        for image in iter_files(root, suffixes=IMAGE_EXTENSIONS):
            if os.path.normcase(os.path.abspath(image)) not in seen:
                name = PurePosixPath(image.relative_to(root)).as_posix()
                yield Sample(ImageRef(name, path=str(image)), (), split=split or _split_of(name),
                             state=LabelState.MISSING)

    return Reader(classes, samples, source=path)


def _split_of(relative: str) -> str | None:
    parts = PurePosixPath(relative).parts
    return parts[0] if len(parts) > 1 and parts[0].lower() in SPLIT_WORDS else None


def _load(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(strip_bom(path.read_bytes()))
    except orjson.JSONDecodeError as e:
        raise FormatError(f"malformed JSON: {e}", path=path) from None
    if not isinstance(data, dict):
        raise FormatError("expected a JSON object", path=path)
    return data


def _read_file(path: Path, root: Path, split: str | None, classes: ClassMap, cache: list[Path]) -> Sample:
    data = _load(path)
    shapes = data.get("shapes")
    if not isinstance(shapes, list):
        raise FormatError("`shapes` must be a list", path=path, where="shapes")
    image_path = data.get("imagePath")
    if not isinstance(image_path, str) or not image_path:
        raise FormatError("`imagePath` must name the image", path=path, where="imagePath")
    rel = PureWindowsPath(image_path).as_posix() if "\\" in image_path else image_path
    image = Path(os.path.normpath(path.parent / rel))
    if not image.is_file() and isinstance(data.get("imageData"), str) and data["imageData"]:
        image = _cached(data["imageData"], PurePosixPath(rel).name, path, cache)
    try:
        name = PurePosixPath(Path(os.path.normpath(path.parent / rel)).relative_to(root)).as_posix()
    except ValueError:
        name = PurePosixPath(rel).name
    width, height = _size(data, path)
    ref = ImageRef(name, width=width, height=height, path=str(image))
    anns = _shapes(shapes, path, ref, classes)
    flags = data.get("flags") or {}
    if not isinstance(flags, dict):
        raise FormatError("`flags` must be an object", path=path, where="flags")
    for flag, value in flags.items():
        if value is True:
            anns.append(Annotation(classes.add(str(flag)).name, Label()))
    state = LabelState.ANNOTATED if anns else LabelState.NULL
    return Sample(ref, tuple(anns), split=split or _split_of(PurePosixPath(path.relative_to(root)).as_posix()),
                  state=state)


def _size(data: dict[str, Any], path: Path) -> tuple[int | None, int | None]:
    out: list[int | None] = []
    for key in ("imageWidth", "imageHeight"):
        v = data.get(key)
        if v is None:
            out.append(None)
        elif isinstance(v, int | float) and v > 0 and float(v).is_integer():
            out.append(int(v))
        else:
            raise FormatError(f"`{key}` must be a positive integer, got {v!r}", path=path, where=key)
    return out[0], out[1]


def _cached(b64: str, name: str, path: Path, cache: list[Path]) -> Path:
    try:
        raw = base64.b64decode(b64, validate=False)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f"imageData is not base64 ({e})", path=path, where="imageData") from None
    if not cache:
        cache.append(extraction_folder("visionloop-labelme-"))
    target = cache[0] / f"{len(list(cache[0].iterdir())):06d}-{name}"
    target.write_bytes(raw)
    return target


def _points(raw: Any, where: str, path: Path) -> list[tuple[float, float]]:
    if not isinstance(raw, list) or not raw:
        raise FormatError("`points` must be a non-empty list of [x, y]", path=path, where=where)
    out = []
    for p in raw:
        if not isinstance(p, list | tuple) or len(p) != 2 or not all(isinstance(v, int | float) for v in p):
            raise FormatError(f"a point must be [x, y], got {p!r}", path=path, where=where)
        out.append((float(p[0]), float(p[1])))
    return out


def _shapes(shapes: list[Any], path: Path, ref: ImageRef, classes: ClassMap) -> list[Annotation]:
    out: list[Annotation] = []
    parts: dict[tuple[str, int], int] = {}  # (label, group_id) -> index in out of its polygon
    for i, s in enumerate(shapes):
        where = f"shapes[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("label"), str) or not s["label"]:
            raise FormatError("a shape needs a non-empty `label`", path=path, where=where)
        kind = s.get("shape_type") or "polygon"
        gid = s.get("group_id")
        if gid is not None and not isinstance(gid, int):
            raise FormatError(f"`group_id` must be an integer or null, got {gid!r}", path=path, where=where)
        pts = _points(s.get("points"), where, path)
        try:
            geometry = _geometry(kind, pts, s, ref, path, where)
        except ValueError as e:
            raise FormatError(f"bad {kind}: {e}", path=path, where=where) from None
        if geometry is None:
            skip(f"{kind} shape", "no such geometry in visionloop", path=path, where=where)
            continue
        label = classes.add(s["label"]).name
        attributes = _attributes(s)
        if isinstance(geometry, Polygon) and gid is not None and kind == "polygon":
            j = parts.get((label, gid))
            if j is not None and out[j].attributes == attributes:
                prev = out[j]
                merged = Polygon(prev.geometry.rings + geometry.rings)  # type: ignore[union-attr]
                out[j] = Annotation(label, merged, attributes=prev.attributes, track_id=gid)
                continue
            parts[(label, gid)] = len(out)
        out.append(Annotation(label, geometry, attributes=attributes, track_id=gid))
    return out


def _attributes(s: dict[str, Any]) -> dict[str, Any]:
    attributes = {k: v for k, v in s.items() if k not in _SHAPE_KEYS}
    if s.get("flags"):
        attributes["flags"] = dict(s["flags"])
    if s.get("description"):
        attributes["description"] = s["description"]
    return attributes


def _geometry(kind: str, pts: list[tuple[float, float]], s: dict[str, Any], ref: ImageRef, path: Path,
              where: str) -> Geometry | None:
    if kind == "rectangle":
        if len(pts) != 2:
            raise ValueError(f"a rectangle has 2 points, got {len(pts)}")
        (x0, y0), (x1, y1) = pts
        return Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    if kind == "polygon":
        return Polygon.from_points(pts)
    if kind == "oriented_rectangle":
        return RotatedBox.from_corners(pts)
    if kind == "circle":
        if len(pts) != 2:
            raise ValueError(f"a circle has 2 points (centre, edge), got {len(pts)}")
        (cx, cy), (px, py) = pts
        r = math.hypot(px - cx, py - cy)
        step = 2 * math.pi / CIRCLE_VERTICES
        return Polygon.from_points([(cx + r * math.cos(k * step), cy + r * math.sin(k * step))
                                    for k in range(CIRCLE_VERTICES)])
    if kind == "point":
        if len(pts) != 1:
            raise ValueError(f"a point has 1 point, got {len(pts)}")
        return Keypoints((pts[0][0], pts[0][1], 2.0))
    if kind == "mask":
        return _mask(s.get("mask"), pts, ref, path, where)
    if kind == "line":
        if len(pts) != 2:
            raise ValueError(f"a line has 2 points, got {len(pts)}")
        return Polyline.from_points(pts)
    if kind == "linestrip":
        if len(pts) < 2:
            raise ValueError(f"a linestrip needs at least 2 points, got {len(pts)}")
        return Polyline.from_points(pts)
    raise ValueError(f"unknown shape_type {kind!r}")


def _mask(b64: Any, pts: list[tuple[float, float]], ref: ImageRef, path: Path, where: str) -> Mask:
    import numpy as np
    from PIL import Image

    if not isinstance(b64, str) or not b64:
        raise ValueError("a mask shape needs `mask` (a base64 PNG)")
    try:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            patch = np.asarray(im.convert("L")) > 0
    except (binascii.Error, OSError) as e:
        raise ValueError(f"`mask` is not a base64 PNG ({e})") from None
    sized = with_size(ref)
    assert sized.width is not None and sized.height is not None
    full = np.zeros((sized.height, sized.width), dtype=bool)
    x, y = round(pts[0][0]), round(pts[0][1])
    h, w = patch.shape
    y0, y1, x0, x1 = max(y, 0), min(y + h, sized.height), max(x, 0), min(x + w, sized.width)
    if y0 < y1 and x0 < x1:
        full[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]
    return Mask.from_array(full)


# ------------------------------------------------------------------------------------- write


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """One `<stem>.json` beside each image, in `out/` or `out/<split>/`."""
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    names = NameBook()
    for sample in samples:
        folder = out / split_folder(sample.split) if sample.split else out
        name = names.claim(str(folder), PurePosixPath(safe_name(sample.image.file_name)).name, report)
        target = folder / f"{PurePosixPath(name).stem}.json"
        if target.exists():
            raise FormatError("the JSON already exists; refusing to overwrite it", path=target)
        folder.mkdir(parents=True, exist_ok=True)
        if place_image(sample.image, folder / name, images):
            report.files += 1
        report.images += 1
        if sample.state is LabelState.MISSING:
            continue
        ref = with_size(sample.image)
        shapes, flags = _to_shapes(sample.annotations, report)
        doc = {"version": VERSION, "flags": flags, "shapes": shapes, "imagePath": name, "imageData": None,
               "imageHeight": ref.height, "imageWidth": ref.width}
        target.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        report.files += 1
    return report


def _pt(x: float, y: float) -> list[float | int]:
    return [int(x) if float(x).is_integer() else x, int(y) if float(y).is_integer() else y]


def _to_shapes(annotations: Iterable[Annotation], report: WriteReport) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    anns = list(annotations)
    next_gid = max((a.track_id for a in anns if a.track_id is not None), default=0) + 1
    shapes: list[dict[str, Any]] = []
    flags: dict[str, bool] = {}
    for ann in anns:
        g = ann.geometry
        if isinstance(g, Label):
            flags[ann.label] = True
            report.annotations["label"] += 1
            continue
        gid = ann.track_id
        items: list[tuple[str, list[list[float | int]], str | None]] = []
        if isinstance(g, Box):
            items.append(("rectangle", [_pt(g.x0, g.y0), _pt(g.x1, g.y1)], None))
        elif isinstance(g, Polygon):
            if len(g.rings) > 1 and gid is None:
                gid, next_gid = next_gid, next_gid + 1
            items += [("polygon", [_pt(x, y) for x, y in g.points(i)], None) for i in range(len(g.rings))]
        elif isinstance(g, RotatedBox):
            items.append(("oriented_rectangle", [_pt(x, y) for x, y in g.corners()], None))
        elif isinstance(g, Mask):
            item = _mask_item(g)
            if item is None:
                report.drop("mask", "empty mask: LabelMe cannot place it")
                continue
            items.append(item)
        elif isinstance(g, Polyline):
            items.append(("line" if g.count == 2 else "linestrip", [_pt(x, y) for x, y in g.xy()], None))
        elif isinstance(g, Keypoints):
            pts = [(x, y) for x, y, v in zip(g.points[0::3], g.points[1::3], g.points[2::3], strict=True) if v > 0]
            if not pts:
                report.drop("keypoints", "no labelled point")
                continue
            if len(pts) > 1:
                if gid is None:
                    gid, next_gid = next_gid, next_gid + 1
                report.converted["keypoints -> points (one shape each, shared group_id; visibility lost)"] += 1
            items += [("point", [_pt(x, y)], None) for x, y in pts]
        for kind, points, mask in items:
            shape: dict[str, Any] = {
                "label": ann.label, "points": points, "group_id": gid,
                "description": str(ann.attributes.get("description", "")), "shape_type": kind,
                "flags": dict(ann.attributes.get("flags") or {}), "mask": mask,
            }
            for k, v in ann.attributes.items():
                if k not in _SHAPE_KEYS:
                    shape[k] = v
            shapes.append(shape)
        report.annotations[{"rectangle": "box", "oriented_rectangle": "rotated_box", "point": "keypoints",
                            "line": "polyline", "linestrip": "polyline"}.get(items[0][0], items[0][0])] += 1
    return shapes, flags


def _mask_item(mask: Mask) -> tuple[str, list[list[float | int]], str] | None:
    import numpy as np
    from PIL import Image

    arr = mask.to_array().astype(bool)
    ys, xs = np.nonzero(arr)
    if not len(xs):
        return None
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    buf = io.BytesIO()
    Image.fromarray(arr[y0:y1 + 1, x0:x1 + 1]).save(buf, format="PNG")
    return "mask", [[x0, y0], [x1, y1]], base64.b64encode(buf.getvalue()).decode("ascii")
