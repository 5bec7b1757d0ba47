"""Label Studio JSON export: a list of tasks with their annotations and predictions.

Specification: https://labelstud.io/guide/export.html#Label-Studio-JSON-format-of-annotated-tasks
and the task format https://labelstud.io/guide/task_format ; result values per tag:
https://labelstud.io/tags/rectanglelabels , /tags/polygonlabels , /tags/keypointlabels ,
/tags/brushlabels , /tags/ellipselabels , /tags/vectorlabels , /tags/choices .

Coordinates. Label Studio stores regions in PERCENT of the image (0..100):
``x`` of the width, ``y`` of the height, ``width`` of the width and ``height`` of the height,
whatever the rotation. ``original_width``/``original_height`` on each result give the pixel size.
A rectangle's ``x, y`` is its top-left corner BEFORE rotation and ``rotation`` (degrees,
clockwise on screen) turns it about that corner (the Konva anchor), so with c = cos θ,
s = sin θ, w and h in pixels:

    centre = (x + w/2·c − h/2·s,  y + w/2·s + h/2·c)      → RotatedBox(centre, w, h, θ)

and back, x, y = the first corner of `RotatedBox.corners()`. A zero rotation gives a Box.
Read values are snapped to 1e-9 px to remove the float noise of the percent round trip.

What each result becomes
    rectanglelabels / rectangle     Box or RotatedBox
    polygonlabels / polygon         Polygon
    keypointlabels / keypoint       Keypoints with one visible point
    ellipselabels / ellipse         Polygon of 64 points (lossy), attribute ``ls_shape: "ellipse"``
    vectorlabels / vector           open (``closed: false``): Polyline; closed: Polygon. The vertices are
                                    chained by ``prevPointId`` (array order when no vertex has one); a
                                    segment drawn as a Bezier curve (``isBezier`` with control points,
                                    drawn as Label Studio's KonvaVector draws it) becomes 16 straight
                                    pieces (counted as assumed); a branching vector (skeleton mode) is
                                    not one line: skipped and counted
    brushlabels / brush             Mask, decoded from Label Studio's RLE (the thi.ng rle-pack
                                    bit stream over the RGBA image, as label-studio-converter's
                                    ``decode_rle``; a pixel is set where its alpha is > 0)
    choices (not tied to a region)  one Label per choice
    textarea (not tied to a region) one Caption per text (the image captioning template's
                                    ``<TextArea name="caption" toName="image"/>``); a control
                                    named otherwise is kept as attribute ``ls_from_name``
    labels, choices, textarea,      per-region results sharing a region's ``id``: the label, or
    number, rating (same id)        attributes named by ``from_name`` (text: a string, or a list
                                    when several; choices: a list; number/rating: the number)
Regions with several labels keep the first as the class and the rest in attribute
``extra_labels``. Annotations are Source.HUMAN; predictions Source.MODEL with confidence = the
result's ``score``, else the prediction's. When a task has several annotations (several
annotators) or predictions, each annotation carries ``ls_annotation``/``ls_prediction`` = its
index, and a prediction's ``model_version`` is kept as an attribute. Cancelled annotations are
skipped. A keypoint region with ``hidden: true`` (label-studio-converter's COCO import writes COCO's
v < 2 so) is labelled but not visible (v = 1), at (0, 0) not labelled (v = 0). A task with no annotation
and no prediction is MISSING; one whose annotations are all empty is NULL. Other image-level results
(numbers, ratings...) are kept verbatim in ``ImageRef.metadata["ls_results"]`` and written back.

Images: ``data.image`` (else the first data value that names an image) — an upload path
``/data/upload/1/x.jpg``, a local-storage URL ``/data/local-files/?d=dir/x.jpg`` or a URL — is
looked up next to the JSON file (then in images/): by its path, shorter suffixes of it, then
its base name. The reference is kept in ``ImageRef.metadata["ls_image"]``.

Writing: `out/tasks.json` (streamed) with images in `out/images/` referenced as
``/data/local-files/?d=images/<name>`` (serve `out` as local storage), and `out/label_config.xml`,
a labelling config whose tag names match the results written. Masks are brush RLE; keypoints
with several points become one keypoint region per labelled point (counted), polygons with
several rings one region per ring (counted), polylines open ``vectorlabels`` regions. Attributes become per-region results: text →
textarea, numbers → number, lists of text → choices; booleans and other values are converted
(counted). Captions become one image-level textarea result per control (``caption``, or their
``ls_from_name``) holding their texts, and a ``<TextArea>`` in the config; other attributes of a caption have
no place (dropped, counted). Crowd flags, track ids and splits cannot be held (dropped, counted).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Caption, Keypoints, Label, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample, Source
from visionloop.formats._labeltools import (
    JsonArrayWriter,
    UniqueNames,
    basename,
    ellipse_polygon,
    find_local,
    head,
    iter_json,
    jsonable,
    relative_or_name,
    snap,
)
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    assume,
    image_size,
    place_image,
    safe_name,
    skip,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "labelstudio"
TASKS_NAME = "tasks.json"
_GEOMETRY_TYPES = {"rectanglelabels": "rectangle", "rectangle": "rectangle", "polygonlabels": "polygon",
                   "polygon": "polygon", "keypointlabels": "keypoint", "keypoint": "keypoint",
                   "brushlabels": "brush", "brush": "brush", "ellipselabels": "ellipse", "ellipse": "ellipse",
                   "vectorlabels": "vector", "vector": "vector"}
_LABEL_KEYS = ("rectanglelabels", "polygonlabels", "keypointlabels", "brushlabels", "ellipselabels", "vectorlabels",
               "labels")
#: straight pieces a Bezier segment of a vector region is read as
BEZIER_PIECES = 16
_INTERNAL = ("ls_annotation", "ls_prediction", "model_version", "extra_labels", "ls_shape", "ls_from_name")
#: the name of the image-level TextArea whose texts are captions, unless a caption says another (`ls_from_name`)
CAPTION_CONTROL = "caption"


# ---------------------------------------------------------------- brush RLE (thi.ng rle-pack)


class _Bits:
    def __init__(self, data: bytes, *, path: Path, where: str) -> None:
        self.bits = "".join(f"{b:08b}" for b in data)
        self.pos = 0
        self.path, self.where = path, where

    def read(self, n: int) -> int:
        chunk = self.bits[self.pos:self.pos + n]
        if len(chunk) < n:
            raise FormatError("brush RLE ends early", path=self.path, where=self.where)
        self.pos += n
        return int(chunk, 2)


def decode_brush(rle: list[int], width: int, height: int, *, path: Path, where: str) -> np.ndarray:
    """Label Studio's brush RLE → (height, width) 0/1 array (alpha channel > 0)."""
    try:
        data = bytes(int(v) for v in rle)
    except (TypeError, ValueError):
        raise FormatError("brush `rle` must be a list of bytes (0..255)", path=path, where=where) from None
    s = _Bits(data, path=path, where=where)
    num = s.read(32)
    word = s.read(5) + 1
    sizes = [s.read(4) + 1 for _ in range(4)]
    if num != width * height * 4:
        raise FormatError(f"brush RLE holds {num} values, but a {width}×{height} RGBA image has {width * height * 4}",
                          path=path, where=where)
    out: np.ndarray = np.zeros(num, dtype=np.uint32 if word > 8 else np.uint8)
    i = 0
    while i < num:
        repeat = s.read(1)
        j = min(i + 1 + s.read(sizes[s.read(2)]), num)
        if repeat:
            out[i:j] = s.read(word)
            i = j
        else:
            while i < j:
                out[i] = s.read(word)
                i += 1
    alpha: np.ndarray = out.reshape(height, width, 4)[:, :, 3]
    return (alpha > 0).astype(np.uint8)


def encode_brush(mask: np.ndarray) -> list[int]:
    """(height, width) 0/1 array → Label Studio brush RLE: the RGBA pixels (255 where set, all
    four channels) packed exactly as label-studio-converter's ``encode_rle`` (word size 8,
    run-length sizes 3, 4, 8, 16 bits)."""
    arr = np.repeat((mask.astype(bool).astype(np.uint8) * 255).ravel(), 4)
    n = int(arr.size)
    parts = [f"{n:032b}", f"{8 - 1:05b}", "".join(f"{x - 1:04b}" for x in (3, 4, 8, 16))]
    if n:
        starts = np.concatenate(([0], np.flatnonzero(arr[1:] != arr[:-1]) + 1))
        lengths = np.diff(np.concatenate((starts, [n])))
        for length, value in zip(lengths.tolist(), arr[starts].tolist(), strict=True):
            v = f"{value:08b}"
            if length == 1:
                parts.append("000000" + v)
            elif length <= 8:
                parts.append(f"100{length - 1:03b}{v}")
            elif length <= 16:
                parts.append(f"101{length - 1:04b}{v}")
            elif length <= 256:
                parts.append(f"110{length - 1:08b}{v}")
            else:
                rest = length
                while rest > 2 ** 16:
                    parts.append(f"111{2 ** 16 - 1:016b}{v}")
                    rest -= 2 ** 16
                parts.append(f"111{rest - 1:016b}{v}")
    bits = "".join(parts)
    bits += "0" * (8 - len(bits) % 8)  # as the converter does (a whole zero byte when already aligned)
    return [int(bits[k:k + 8], 2) for k in range(0, len(bits), 8)]


# ---------------------------------------------------------------- detect


def _json_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() == ".json" else None
    if not path.is_dir():
        return None
    if (path / TASKS_NAME).is_file():
        return path / TASKS_NAME
    for f in sorted(path.glob("*.json"))[:5]:  # an export folder holds one or a few; stay cheap
        if _looks_like_ls(head(f)):
            return f
    return None


def _looks_like_ls(data: bytes) -> bool:
    text = data.lstrip()
    return (text.startswith(b"[") and b'"data"' in text
            and (b'"annotations"' in text or b'"predictions"' in text or b'"result"' in text
                 or b'"completions"' in text or text.rstrip() in (b"[]", b"[ ]")))


def detect(path: Path) -> Detection:
    f = _json_file(Path(path))
    if f is None:
        return Detection.no("no JSON file")
    if not _looks_like_ls(head(f)):
        return Detection.no(f"{f.name} is not a list of Label Studio tasks (no \"data\" and \"annotations\")")
    return Detection(0.9, f"{f.name} is a list of tasks with data and annotations/predictions")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    f = _json_file(path)
    if f is None:
        raise FormatError("no Label Studio JSON export here", path=path, hint="expected a .json list of tasks")
    classes = ClassMap()

    def samples() -> Iterator[Sample]:
        for i, task in enumerate(iter_json(f, "item")):
            yield _task(task, i, f, classes, split)

    return Reader(classes, samples, source=path)


def _image_ref(data: dict[str, Any]) -> str | None:
    value = data.get("image")
    if isinstance(value, str) and value:
        return value
    for v in data.values():
        if isinstance(v, str) and (v.lower().split("?")[0].endswith(IMAGE_EXTENSIONS) or "/data/" in v):
            return v
    return None


def _task(task: Any, index: int, json_path: Path, classes: ClassMap, split: str | None) -> Sample:
    where = f"task {index}" + (f" (id {task['id']})" if isinstance(task, dict) and "id" in task else "")
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise FormatError("a task must be an object with a `data` object", path=json_path, where=where)
    ref_text = _image_ref(task["data"])
    if ref_text is None:
        raise FormatError("the task's data names no image", path=json_path, where=where)
    root = json_path.parent
    local = find_local(root, ref_text)
    file_name = relative_or_name(local, root, basename(ref_text) or f"task_{index}")
    width = height = None
    groups = [("annotation", a) for a in task.get("annotations") or task.get("completions") or []] + \
             [("prediction", p) for p in task.get("predictions") or []]
    for _, g in groups:
        for r in (g.get("result") or []) if isinstance(g, dict) else []:
            if isinstance(r, dict) and r.get("original_width") and r.get("original_height"):
                width, height = int(r["original_width"]), int(r["original_height"])
                break
        if width:
            break
    meta: dict[str, Any] = {"ls_image": ref_text}
    if "id" in task:
        meta["ls_task_id"] = task["id"]
    ctx = _Ctx(json_path, where, local, width, height)
    anns: list[Annotation] = []
    n_human = sum(1 for kind, g in groups if kind == "annotation" and not g.get("was_cancelled"))
    n_model = sum(1 for kind, _ in groups if kind == "prediction")
    seen_human = seen_model = 0
    extra_results: list[Any] = []
    labelled = False
    for kind, g in groups:
        if not isinstance(g, dict):
            raise FormatError(f"an {kind} must be an object", path=json_path, where=where)
        if kind == "annotation":
            if g.get("was_cancelled"):
                continue
            labelled = True
            k, seen_human = seen_human, seen_human + 1
            base = {"ls_annotation": k} if n_human > 1 else {}
            source, score = Source.HUMAN, None
        else:
            k, seen_model = seen_model, seen_model + 1
            base = {"ls_prediction": k} if n_model > 1 else {}
            if g.get("model_version"):
                base["model_version"] = g["model_version"]
            source, score = Source.MODEL, _score(g.get("score"))
        results = g.get("result") or []
        if not isinstance(results, list):
            raise FormatError(f"the {kind}'s `result` must be a list", path=json_path, where=where)
        gwhere = f"{where} {kind} {k}"
        new, extra = _results(results, base, source, score, ctx, gwhere)
        if kind == "annotation":
            extra_results.extend(extra)
        anns.extend(new)
    for a in anns:
        if a.label not in classes and not a.is_caption:
            classes.add(a.label)
    if extra_results:
        meta["ls_results"] = extra_results
    state = LabelState.ANNOTATED if anns else (LabelState.NULL if labelled or groups else LabelState.MISSING)
    img = ImageRef(file_name, width=width, height=height, path=str(local or root / file_name), metadata=meta)
    return Sample(img, tuple(anns), split=split, state=state)


def _score(v: Any) -> float | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1:
        return float(v)
    return None


class _Ctx:
    def __init__(self, path: Path, where: str, local: Path | None, width: int | None, height: int | None) -> None:
        self.path, self.where, self.local = path, where, local
        self.width, self.height = width, height

    def size(self, result: dict[str, Any], where: str) -> tuple[int, int]:
        w, h = result.get("original_width"), result.get("original_height")
        if w and h:
            return int(w), int(h)
        if self.width and self.height:
            return self.width, self.height
        if self.local is not None:
            self.width, self.height = image_size(self.local)
            return self.width, self.height
        raise FormatError("no original_width/original_height and no image file to read the size from",
                          path=self.path, where=where)


def _results(results: list[Any], base: dict[str, Any], source: Source, score: float | None, ctx: _Ctx,
             where: str) -> tuple[list[Annotation], list[Any]]:
    """Annotations of one annotation/prediction's results, and the image-level results kept raw."""
    by_id: dict[Any, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    order: list[Any] = []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or "type" not in r or not isinstance(r.get("value"), dict):
            raise FormatError("a result needs `type` and a `value` object", path=ctx.path, where=f"{where} result {i}")
        key = r.get("id", f"#{i}")
        if key not in by_id:
            order.append(key)
        by_id[key].append((i, r))
    out: list[Annotation] = []
    extra: list[Any] = []
    for key in order:
        group = by_id[key]
        geo = [(i, r) for i, r in group if str(r["type"]).lower() in _GEOMETRY_TYPES]
        if not geo:
            for i, r in group:
                t = str(r["type"]).lower()
                if t == "choices":
                    for choice in r["value"].get("choices") or []:
                        out.append(Annotation(str(choice), Label(), attributes=dict(base), source=source,
                                              confidence=_score(r.get("score")) or score))
                elif t == "textarea":
                    out.extend(_captions(r, base, source, score, ctx, f"{where} result {i}"))
                elif t == "relation":
                    skip("relation", "relations between regions are not held", path=ctx.path,
                         where=f"{where} result {i}")
                else:
                    extra.append(r)
            continue
        i, r = geo[0]
        rwhere = f"{where} result {i} ({r['type']})"
        labels: list[str] = []
        attributes: dict[str, Any] = dict(base)
        for _, other in group:
            value = other["value"]
            for k in _LABEL_KEYS:
                if isinstance(value.get(k), list):
                    labels.extend(str(x) for x in value[k])
            t = str(other["type"]).lower()
            if other is not r and t not in _GEOMETRY_TYPES and t != "labels":
                name = str(other.get("from_name") or t)
                attributes[name] = _attribute(t, value)
        if not labels:
            raise FormatError("the region has no label", path=ctx.path, where=rwhere)
        if len(labels) > 1:
            attributes["extra_labels"] = labels[1:]
        geometry = _geometry(r, ctx, rwhere)
        if geometry is None:
            continue
        if isinstance(geometry, Polygon) and _GEOMETRY_TYPES[str(r["type"]).lower()] == "ellipse":
            attributes["ls_shape"] = "ellipse"
        out.append(Annotation(labels[0], geometry, attributes=attributes, source=source,
                              confidence=_score(r.get("score")) if _score(r.get("score")) is not None else score))
    return out, extra


def _captions(r: dict[str, Any], base: dict[str, Any], source: Source, score: float | None, ctx: _Ctx,
              where: str) -> list[Annotation]:
    """An image-level textarea result: one Caption per text."""
    texts = r["value"].get("text")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise FormatError("a textarea's `value.text` must be a list of strings", path=ctx.path, where=where)
    attributes = dict(base)
    name = str(r.get("from_name") or CAPTION_CONTROL)
    if name != CAPTION_CONTROL:
        attributes["ls_from_name"] = name
    own = _score(r.get("score"))
    return [Annotation("", Caption(t), attributes=attributes, source=source,
                       confidence=own if own is not None else score) for t in texts]


def _attribute(t: str, value: dict[str, Any]) -> Any:
    if t == "textarea":
        text = value.get("text") or []
        return text[0] if isinstance(text, list) and len(text) == 1 else text
    if t == "choices":
        return list(value.get("choices") or [])
    if t in value:
        return value[t]
    return jsonable(value)


def _pct(value: dict[str, Any], key: str, *, ctx: _Ctx, where: str) -> float:
    v = value.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise FormatError(f"`value.{key}` must be a number, got {v!r}", path=ctx.path, where=where)
    return float(v)


def _geometry(r: dict[str, Any], ctx: _Ctx, where: str) -> Box | RotatedBox | Polygon | Polyline | Keypoints | Mask | None:
    kind = _GEOMETRY_TYPES[str(r["type"]).lower()]
    value = r["value"]
    W, H = ctx.size(r, where)
    if r.get("image_rotation"):
        log.warning("%s (%s): image_rotation %s is ignored", ctx.path, where, r["image_rotation"])
    try:
        if kind == "keypoint" and value.get("hidden") is True:
            # label-studio-converter's COCO import (imports/coco.py, create_keypoints) marks COCO's v < 2 `hidden`:
            # labelled but not visible (v = 1), or not labelled (v = 0) where COCO puts those, at (0, 0)
            x, y = _pct(value, "x", ctx=ctx, where=where) * W / 100, _pct(value, "y", ctx=ctx, where=where) * H / 100
            return Keypoints((snap(x), snap(y), 0.0 if x == 0 and y == 0 else 1.0))
        if kind == "rectangle":
            x, y = _pct(value, "x", ctx=ctx, where=where) * W / 100, _pct(value, "y", ctx=ctx, where=where) * H / 100
            w = _pct(value, "width", ctx=ctx, where=where) * W / 100
            h = _pct(value, "height", ctx=ctx, where=where) * H / 100
            angle = float(value.get("rotation") or 0.0)
            if angle % 360 == 0:
                return Box(snap(x), snap(y), snap(x + w), snap(y + h))
            t = math.radians(angle)
            c, s = math.cos(t), math.sin(t)
            return RotatedBox(snap(x + w / 2 * c - h / 2 * s), snap(y + w / 2 * s + h / 2 * c), snap(w), snap(h), angle)
        if kind == "polygon":
            pts = value.get("points")
            if not isinstance(pts, list) or len(pts) < 3:
                raise FormatError("a polygon needs at least 3 points", path=ctx.path, where=where)
            return Polygon.from_points([(snap(float(p[0]) * W / 100), snap(float(p[1]) * H / 100)) for p in pts])
        if kind == "keypoint":
            x, y = _pct(value, "x", ctx=ctx, where=where) * W / 100, _pct(value, "y", ctx=ctx, where=where) * H / 100
            return Keypoints((snap(x), snap(y), 2.0))
        if kind == "vector":
            return _vector(value, W, H, ctx=ctx, where=where)
        if kind == "ellipse":
            return ellipse_polygon(_pct(value, "x", ctx=ctx, where=where) * W / 100,
                                   _pct(value, "y", ctx=ctx, where=where) * H / 100,
                                   _pct(value, "radiusX", ctx=ctx, where=where) * W / 100,
                                   _pct(value, "radiusY", ctx=ctx, where=where) * H / 100,
                                   float(value.get("rotation") or 0.0))
        rle = value.get("rle")
        if value.get("format", "rle") != "rle" or not isinstance(rle, list):
            raise FormatError("a brush region needs `format: rle` and an `rle` list", path=ctx.path, where=where)
        return Mask.from_array(decode_brush(rle, W, H, path=ctx.path, where=where))
    except (TypeError, ValueError, IndexError) as e:
        raise FormatError(f"bad region ({e})", path=ctx.path, where=where) from None


def _vector(value: dict[str, Any], W: int, H: int, *, ctx: _Ctx, where: str) -> Polygon | Polyline | None:
    """A vector region (Label Studio's VectorRegion.serialize: vertices in percent, chained by prevPointId):
    Polyline when open, Polygon when closed; None (skipped, counted) when it branches."""
    vertices = value.get("vertices")
    if not isinstance(vertices, list) or not all(isinstance(v, dict) for v in vertices):
        raise FormatError("a vector region needs a `vertices` list of {x, y} objects", path=ctx.path, where=where)
    chain = _vector_chain(vertices)
    if chain is None:
        skip("branching vector", "a vector whose points branch (skeleton mode) is not one line", path=ctx.path,
             where=where)
        return None

    def px(p: Any, what: str) -> tuple[float, float]:
        if not isinstance(p, dict):
            raise FormatError(f"`{what}` must be an {{x, y}} object", path=ctx.path, where=where)
        return _pct(p, "x", ctx=ctx, where=where) * W / 100, _pct(p, "y", ctx=ctx, where=where) * H / 100

    closed = value.get("closed") is True
    pts = [px(chain[0], "vertices")]
    curved = 0
    pairs = list(zip(chain, chain[1:], strict=False)) + ([(chain[-1], chain[0])] if closed and len(chain) > 2 else [])
    for a, b in pairs:
        pa, pb = px(a, "vertices"), px(b, "vertices")
        c1 = px(a["controlPoint2"], "controlPoint2") if a.get("isBezier") and a.get("controlPoint2") else None
        c2 = px(b["controlPoint1"], "controlPoint1") if b.get("isBezier") and b.get("controlPoint1") else None
        if c1 is None and c2 is None:
            pts.append(pb)
            continue
        curved += 1
        if c1 is None:  # KonvaVector's partial curves: the missing control point 30 % along the chord
            c1 = (pa[0] + 0.3 * (pb[0] - pa[0]), pa[1] + 0.3 * (pb[1] - pa[1]))
        if c2 is None:
            c2 = (pb[0] - 0.3 * (pb[0] - pa[0]), pb[1] - 0.3 * (pb[1] - pa[1]))
        for k in range(1, BEZIER_PIECES + 1):
            t = k / BEZIER_PIECES
            u = 1 - t
            pts.append((u ** 3 * pa[0] + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t ** 3 * pb[0],
                        u ** 3 * pa[1] + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t ** 3 * pb[1]))
    if closed and len(chain) > 2:
        pts.pop()  # the closing segment ends where the ring starts
    if curved:
        assume("curved vector segment", f"{BEZIER_PIECES} straight pieces", path=ctx.path, n=curved)
    pts = [(snap(x), snap(y)) for x, y in pts]
    if closed:
        if len(pts) < 3:
            raise FormatError(f"a closed vector needs at least 3 points, got {len(pts)}", path=ctx.path, where=where)
        return Polygon.from_points(pts)
    if len(pts) < 2:
        raise FormatError(f"an open vector (a line) needs at least 2 points, got {len(pts)}", path=ctx.path,
                          where=where)
    return Polyline.from_points(pts)


def _vector_chain(vertices: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The vertices in drawing order (each one's `prevPointId` is the one before), or None when they branch."""
    if not any("prevPointId" in v for v in vertices):
        return vertices
    ids = [v.get("id") for v in vertices]
    if len(set(ids)) != len(ids):
        return None
    after: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    roots = []
    for v in vertices:
        prev = v.get("prevPointId")
        if prev is None or prev not in ids or prev == v.get("id"):
            roots.append(v)
        else:
            after[prev].append(v)
    if len(roots) > 1 or any(len(c) > 1 for c in after.values()):
        return None
    chain = [roots[0] if roots else vertices[0]]
    seen = {id(chain[0])}
    while (nxt := after.get(chain[-1].get("id"))) and id(nxt[0]) not in seen:
        chain.append(nxt[0])
        seen.add(id(nxt[0]))
    return chain if len(chain) == len(vertices) else None


# ---------------------------------------------------------------- write


_CONTROL = {"rectanglelabels": ("RectangleLabels", "label"), "polygonlabels": ("PolygonLabels", "polygon"),
            "keypointlabels": ("KeyPointLabels", "keypoint"), "brushlabels": ("BrushLabels", "brush"),
            "vectorlabels": ("VectorLabels", "vector"), "choices": ("Choices", "choice")}


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    names = UniqueNames()
    labels_by_control: dict[str, dict[str, None]] = defaultdict(dict)
    per_region: dict[str, str] = {}
    writer = JsonArrayWriter(out / TASKS_NAME)
    try:
        for n, sample in enumerate(samples, start=1):
            ref = with_size(sample.image)
            name = names(safe_name(ref.file_name))
            if place_image(ref, out / "images" / name, images):
                report.files += 1
            if sample.split:
                report.drop("split", "a Label Studio export has no splits")
            task = _task_entry(sample, ref, name, n, report, labels_by_control, per_region)
            writer.add(task)
            report.images += 1
        writer.close()
    except BaseException:
        writer.abort()
        raise
    _write_config(out / "label_config.xml", classes, labels_by_control, per_region)
    return report


def _task_entry(sample: Sample, ref: ImageRef, name: str, n: int, report: WriteReport,
                labels_by_control: dict[str, dict[str, None]], per_region: dict[str, str]) -> dict[str, Any]:
    W, H = int(ref.width or 0), int(ref.height or 0)
    human: dict[Any, list[Any]] = defaultdict(list)
    model: dict[Any, list[Any]] = defaultdict(list)
    scores: dict[Any, list[float]] = defaultdict(list)
    region = 0
    captions: dict[tuple[Any, ...], dict[str, Any]] = {}  # (source key, control, score) -> its textarea result
    for ann in sample.annotations:
        if ann.is_caption:
            region = _caption_result(ann, captions, human, model, scores, region, report)
            labels_by_control["textarea"][str(ann.attributes.get("ls_from_name") or CAPTION_CONTROL)] = None
            continue
        if ann.crowd:
            report.drop("crowd flag", "Label Studio has no crowd flag")
        if ann.track_id is not None:
            report.drop("track id", "Label Studio image tasks have no tracks")
        results: list[dict[str, Any]] = []
        for value_type, value in _values(ann, W, H, report):
            region += 1
            rid = f"r{region}"
            control = _CONTROL[value_type][1]
            entry: dict[str, Any] = {"id": rid, "type": value_type, "from_name": control, "to_name": "image",
                                     "original_width": W, "original_height": H, "image_rotation": 0,
                                     "value": value}
            if ann.confidence is not None:
                entry["score"] = ann.confidence
            results.append(entry)
            for label in value.get(value_type, []):
                labels_by_control[value_type][label] = None
            if value_type != "choices":
                results.extend(_attribute_results(ann, rid, report, per_region))
        if ann.source is Source.MODEL:
            key = (ann.attributes.get("ls_prediction"), ann.attributes.get("model_version"))
            model[key].extend(results)
            if ann.confidence is not None:
                scores[key].append(ann.confidence)
        else:
            human[ann.attributes.get("ls_annotation")].extend(results)
    extra = list(sample.image.metadata.get("ls_results") or [])
    annotations: list[dict[str, Any]] = []
    if human or extra or sample.state is LabelState.NULL:
        keys = sorted(human, key=lambda k: (k is None, k if isinstance(k, int) else 0)) or [None]
        for i, k in enumerate(keys, start=1):
            result = human.get(k, []) + (extra if i == 1 else [])
            annotations.append({"id": n * 1000 + i, "result": result, "was_cancelled": False,
                                "ground_truth": False})
    predictions = []
    for k, result in model.items():
        p: dict[str, Any] = {"result": result}
        if k[1] is not None:
            p["model_version"] = k[1]
        if scores[k]:
            p["score"] = sum(scores[k]) / len(scores[k])
        predictions.append(p)
    return {"id": n, "data": {"image": f"/data/local-files/?d=images/{name}"}, "annotations": annotations,
            "predictions": predictions}


def _caption_result(ann: Annotation, captions: dict[tuple[Any, ...], dict[str, Any]], human: dict[Any, list[Any]],
                    model: dict[Any, list[Any]], scores: dict[Any, list[float]], region: int,
                    report: WriteReport) -> int:
    """A caption into the image-level textarea result of its control (one result per control and score, holding
    every text, as Label Studio writes one TextArea's answers); returns the regions numbered so far."""
    assert isinstance(ann.geometry, Caption)
    name = str(ann.attributes.get("ls_from_name") or CAPTION_CONTROL)
    lost = [k for k in ann.attributes if k not in _INTERNAL]
    if lost:
        report.drop("caption attribute", "a Label Studio textarea holds text only", len(lost))
    if ann.source is Source.MODEL:
        owner: Any = (ann.attributes.get("ls_prediction"), ann.attributes.get("model_version"))
        results = model[owner]
    else:
        owner = ann.attributes.get("ls_annotation")
        results = human[owner]
    key = (ann.source is Source.MODEL, owner, name, ann.confidence)
    entry = captions.get(key)
    if entry is None:
        region += 1
        entry = captions[key] = {"id": f"r{region}", "type": "textarea", "from_name": name, "to_name": "image",
                                 "value": {"text": []}}
        if ann.confidence is not None:
            entry["score"] = ann.confidence
            if ann.source is Source.MODEL:
                scores[owner].append(ann.confidence)
        results.append(entry)
    entry["value"]["text"].append(ann.geometry.text)
    report.annotations["caption"] += 1
    return region


def _labels(ann: Annotation) -> list[str]:
    extra = ann.attributes.get("extra_labels")
    return [ann.label] + ([str(x) for x in extra] if isinstance(extra, list) else [])


def _pct_out(v: float, size: int) -> float:
    return v / size * 100 if size else 0.0


def _values(ann: Annotation, W: int, H: int, report: WriteReport) -> list[tuple[str, dict[str, Any]]]:
    g = ann.geometry
    labels = _labels(ann)
    if isinstance(g, Label):
        report.annotations["label"] += 1
        return [("choices", {"choices": [ann.label]})]
    if isinstance(g, Box):
        report.annotations["box"] += 1
        return [("rectanglelabels", {"x": _pct_out(g.x0, W), "y": _pct_out(g.y0, H), "width": _pct_out(g.width, W),
                                     "height": _pct_out(g.height, H), "rotation": 0, "rectanglelabels": labels})]
    if isinstance(g, RotatedBox):
        x, y = g.corners()[0]
        report.annotations["rotated_box"] += 1
        return [("rectanglelabels", {"x": _pct_out(x, W), "y": _pct_out(y, H), "width": _pct_out(g.w, W),
                                     "height": _pct_out(g.h, H), "rotation": g.angle % 360,
                                     "rectanglelabels": labels})]
    if isinstance(g, Polygon):
        if len(g.rings) > 1:
            report.converted[f"polygon with {len(g.rings)} parts -> {len(g.rings)} polygons"] += 1
        out = []
        for ring in g.rings:
            pts = [[_pct_out(x, W), _pct_out(y, H)] for x, y in zip(ring[0::2], ring[1::2], strict=True)]
            out.append(("polygonlabels", {"points": pts, "closed": True, "polygonlabels": labels}))
            report.annotations["polygon"] += 1
        return out
    if isinstance(g, Keypoints):
        triplets = list(zip(g.points[0::3], g.points[1::3], g.points[2::3], strict=True))
        kept = [(x, y) for x, y, v in triplets if v > 0]
        if len(kept) != len(triplets) or any(v != 2 for _, _, v in triplets if v > 0):
            report.converted["keypoints visibility -> visible points"] += 1
        if len(kept) > 1:
            report.converted[f"keypoints ({len(kept)} points) -> {len(kept)} keypoint regions"] += 1
        if not kept:
            report.drop("keypoints", "no labelled points")
        report.annotations["keypoints"] += len(kept)
        return [("keypointlabels", {"x": _pct_out(x, W), "y": _pct_out(y, H), "width": 0.5,
                                    "keypointlabels": labels}) for x, y in kept]
    if isinstance(g, Polyline):
        report.annotations["polyline"] += 1
        vertices = [{"id": f"p{k}", "x": _pct_out(x, W), "y": _pct_out(y, H), "prevPointId": f"p{k - 1}" if k else None,
                     "isBezier": False} for k, (x, y) in enumerate(g.xy())]
        return [("vectorlabels", {"vertices": vertices, "closed": False, "vectorlabels": labels})]
    if isinstance(g, Mask):
        if (g.width, g.height) != (W, H):
            report.drop("mask", f"mask size {g.width}×{g.height} is not the image's {W}×{H}")
            return []
        report.annotations["mask"] += 1
        return [("brushlabels", {"format": "rle", "rle": encode_brush(g.to_array()), "brushlabels": labels})]
    report.drop(type(g).__name__, "unsupported geometry")  # pragma: no cover
    return []  # pragma: no cover


def _attribute_results(ann: Annotation, rid: str, report: WriteReport,
                       per_region: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for key, v in ann.attributes.items():
        if key in _INTERNAL:
            continue
        value: dict[str, Any]
        if isinstance(v, bool):
            report.converted["attribute bool -> number"] += 1
            t, value = "number", {"number": int(v)}
        elif isinstance(v, int | float):
            t, value = "number", {"number": v}
        elif isinstance(v, str):
            t, value = "textarea", {"text": [v]}
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            t, value = "choices", {"choices": list(v)}
        else:
            report.converted[f"attribute {type(v).__name__} -> text"] += 1
            t, value = "textarea", {"text": [orjson.dumps(jsonable(v)).decode()]}
        per_region.setdefault(str(key), t)
        out.append({"id": rid, "type": t, "from_name": str(key), "to_name": "image", "value": value})
    return out


def _write_config(path: Path, classes: ClassMap | None, used: dict[str, dict[str, None]],
                  per_region: dict[str, str]) -> None:
    """A labelling config matching the written results (paste it into the project settings)."""
    path.write_text(label_config_xml(classes, used, per_region), encoding="utf-8")


def label_config_xml(classes: ClassMap | None, used: Mapping[str, Iterable[str]], per_region: Mapping[str, str], *,
                     every_class: bool = False) -> str:
    """The labelling config for results of the control types in `used` (value type → labels written) and the
    per-region attributes in `per_region` (name → number | textarea | choices). `every_class`: each control
    offers every class of `classes` (a labeller may add any class), not only the labels written."""
    lines = ["<View>", '  <Image name="image" value="$image"/>']
    for name in dict.fromkeys(used.get("textarea", ())):  # image-level text: captions
        lines.append(f'  <TextArea name={quoteattr(name)} toName="image"/>')
    for value_type, (tag, name) in _CONTROL.items():
        if value_type not in used:
            continue
        written = list(dict.fromkeys(used[value_type]))
        labels = written
        if classes is not None:
            labels = [c.name for c in classes if every_class or c.name in written] + \
                [x for x in written if x not in classes]
        if not labels:
            continue
        child = "Choice" if tag == "Choices" else "Label"
        extra = ' choice="multiple"' if tag == "Choices" else ""
        lines.append(f'  <{tag} name="{name}" toName="image"{extra}>')
        for label in labels:
            color = f" background={quoteattr(classes.color(label))}" if classes is not None and label in classes \
                and child == "Label" else ""
            lines.append(f"    <{child} value={quoteattr(label)}{color}/>")
        lines.append(f"  </{tag}>")
    for key, t in per_region.items():
        tag = {"number": "Number", "textarea": "TextArea", "choices": "Choices"}[t]
        lines.append(f"  <{tag} name={quoteattr(key)} toName=\"image\" perRegion=\"true\"/>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"
