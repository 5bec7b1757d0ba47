"""Labelbox NDJSON export (export v2: one JSON object per data row).

Reference: https://docs.labelbox.com/reference/label-export and
https://docs.labelbox.com/reference/export-image-annotations (export v2 format:
``data_row``, ``media_attributes``, ``projects.<id>.labels[].annotations`` with ``objects``,
``classifications`` and ``relationships``).

Coordinates are image pixels (continuous, top-left origin), kept as they are:

    ImageBoundingBox        ``bounding_box`` {top, left, height, width}   → Box
    ImagePolygon            ``polygon`` [{x, y}, ...], closed (the first   → Polygon
                            point repeated last, dropped on read)
    ImagePoint              ``point`` {x, y}                               → Keypoints, one point
    ImagePolyline           ``line`` [{x, y}, ...]                         → Polyline (≥ 2 points)
    ImageSegmentationMask   ``mask`` {url}                                 → not read: the mask is a
                            PNG behind an authenticated URL (network), so it is skipped, with a
                            count in the report's `skipped` (--strict refuses)
The class is the object's ``name``. Nested classifications of an object become its attributes
(radio → the answer's name, checklist → list of names, text → the text). Whole-image
classifications: each radio / checklist answer becomes a Label (class = the answer's name,
attribute ``question`` = the classification's name); a free-text answer is a Caption (attribute
``question`` unless the classification is named ``caption``). Every label of every project is read; when a data row has
more than one, annotations carry ``labelbox_label`` = the label's index. A data row without labels
is MISSING, one whose labels are empty NULL. Images: ``external_id`` (else the base name of
``row_data``) looked up next to the NDJSON file (then in images/); ``row_data``, the data row id
and global key are kept in metadata.

Writing: `out/export.ndjson` (a line per image, streamed) with images in `out/images/`; one
project "visionloop" with one label per image (or one per ``labelbox_label``). Rotated boxes and
masks become polygons (masks: outer contours, tolerance 0; Labelbox masks need hosted PNGs),
multi-part polygons one object per part, multi-point keypoints one point each (counted).
Labels become radio (one answer) or checklist (several) classifications grouped by their
``question`` attribute (default "class"); captions free-text classifications named by theirs (default
"caption"; other attributes of a caption are dropped, counted). Attributes become nested classifications: text → radio
answer, list of text → checklist, other values → text (counted). Confidence, crowd flags, track
ids and splits are dropped (counted).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

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
    mask_to_polygon,
)
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._labeltools import (
    UniqueNames,
    basename,
    find_local,
    head,
    iter_json_lines,
    jsonable,
    number,
    relative_or_name,
)
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    place_image,
    safe_name,
    skip,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "labelbox"
NDJSON = "export.ndjson"
SHAPE_ATTR = "labelbox_shape"
QUESTION = "question"
INDEX = "labelbox_label"
DEFAULT_QUESTION = "class"
CAPTION_QUESTION = "caption"  # the free-text classification a caption without a `question` is written as


def _file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() in (".ndjson", ".jsonl", ".json") else None
    if not path.is_dir():
        return None
    found = sorted(path.glob("*.ndjson"))
    return found[0] if found else None


def detect(path: Path) -> Detection:
    f = _file(Path(path))
    if f is None:
        return Detection.no("no .ndjson file")
    first = head(f, 1 << 16).split(b"\n", 1)[0]
    if not first.lstrip().startswith(b"{") or b'"data_row"' not in first:
        return Detection.no(f"{f.name} does not start with a Labelbox data row")
    return Detection(0.95 if b'"projects"' in first or b'"media_attributes"' in first else 0.6,
                     f"{f.name} is a Labelbox NDJSON export")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    f = _file(path)
    if f is None:
        raise FormatError("no Labelbox NDJSON export here", path=path, hint="expected an .ndjson export")
    classes = ClassMap()

    def samples() -> Iterator[Sample]:
        for lineno, row in iter_json_lines(f):
            sample = _row(row, f, lineno, split)
            for a in sample.annotations:
                if a.label not in classes and not a.is_caption:
                    classes.add(a.label)
            yield sample

    return Reader(classes, samples, source=path)


def _row(row: Any, path: Path, lineno: int, split: str | None) -> Sample:
    where = f"line {lineno}"
    if not isinstance(row, dict) or not isinstance(row.get("data_row"), dict):
        raise FormatError("a line needs a `data_row` object", path=path, where=where)
    dr = row["data_row"]
    ext = dr.get("external_id") or dr.get("global_key")
    row_data = dr.get("row_data")
    root = path.parent
    local = (find_local(root, str(ext)) if ext else None) or (find_local(root, str(row_data)) if row_data else None)
    fallback = str(ext) if ext else (basename(str(row_data)) if row_data else f"row_{lineno}")
    file_name = relative_or_name(local, root, fallback)
    media: dict[str, Any] = row["media_attributes"] if isinstance(row.get("media_attributes"), dict) else {}
    w, h = media.get("width"), media.get("height")
    meta: dict[str, Any] = {k: v for k, v in (("labelbox_row_data", row_data), ("labelbox_id", dr.get("id")),
                                              ("labelbox_global_key", dr.get("global_key"))) if v}
    labels: list[tuple[str, Any]] = []
    for pid, project in (row.get("projects") or {}).items():
        for i, label in enumerate((project or {}).get("labels") or []):
            labels.append((f"{where} projects[{pid!r}] labels[{i}]", label))
    anns: list[Annotation] = []
    for k, (lwhere, label) in enumerate(labels):
        if not isinstance(label, dict):
            raise FormatError("a label must be an object", path=path, where=lwhere)
        base = {INDEX: k} if len(labels) > 1 else {}
        content = label.get("annotations") or {}
        for i, obj in enumerate(content.get("objects") or []):
            a = _object(obj, base, path=path, where=f"{lwhere} objects[{i}]")
            if a is not None:
                anns.append(a)
        for i, c in enumerate(content.get("classifications") or []):
            cwhere = f"{lwhere} classifications[{i}]"
            if not isinstance(c, dict) or not c.get("name"):
                raise FormatError("a classification needs a `name`", path=path, where=cwhere)
            question = str(c["name"])
            if isinstance(c.get("radio_answer"), dict):
                anns.append(Annotation(_answer(c["radio_answer"], path, cwhere), Label(),
                                       attributes={**base, QUESTION: question}))
            elif isinstance(c.get("checklist_answers"), list):
                for ans in c["checklist_answers"]:
                    anns.append(Annotation(_answer(ans, path, cwhere), Label(), attributes={**base, QUESTION: question}))
            elif isinstance(c.get("text_answer"), dict):
                text = c["text_answer"].get("content")
                if not isinstance(text, str):
                    raise FormatError("a text answer's `content` must be a string", path=path, where=cwhere)
                anns.append(Annotation("", Caption(text), attributes={
                    **base, **({QUESTION: question} if question != CAPTION_QUESTION else {})}))
    state = LabelState.ANNOTATED if anns else (LabelState.NULL if labels else LabelState.MISSING)
    ref = ImageRef(file_name, width=int(w) if w else None, height=int(h) if h else None,
                   path=str(local or root / file_name), metadata=meta)
    return Sample(ref, tuple(anns), split=split, state=state)


def _answer(ans: Any, path: Path, where: str) -> str:
    if not isinstance(ans, dict) or not (ans.get("name") or ans.get("value")):
        raise FormatError("an answer needs a `name`", path=path, where=where)
    return str(ans.get("name") or ans.get("value"))


def _xy(p: Any, *, path: Path, where: str) -> tuple[float, float]:
    if not isinstance(p, dict):
        raise FormatError(f"a point must be {{x, y}}, got {p!r}", path=path, where=where)
    return number(p.get("x"), path=path, where=where, what="x"), number(p.get("y"), path=path, where=where, what="y")


def _object(obj: Any, base: dict[str, Any], *, path: Path, where: str) -> Annotation | None:
    if not isinstance(obj, dict) or not (obj.get("name") or obj.get("value")):
        raise FormatError("an object needs a `name`", path=path, where=where)
    label = str(obj.get("name") or obj.get("value"))
    where = f"{where} ({obj.get('annotation_kind')} {label!r})"
    attributes: dict[str, Any] = dict(base)
    for c in obj.get("classifications") or []:
        if not isinstance(c, dict) or not c.get("name"):
            continue
        if isinstance(c.get("radio_answer"), dict):
            attributes[str(c["name"])] = _answer(c["radio_answer"], path, where)
        elif isinstance(c.get("checklist_answers"), list):
            attributes[str(c["name"])] = [_answer(a, path, where) for a in c["checklist_answers"]]
        elif isinstance(c.get("text_answer"), dict):
            attributes[str(c["name"])] = c["text_answer"].get("content")
    try:
        if isinstance(obj.get("bounding_box"), dict):
            bb = obj["bounding_box"]
            x, y, w, h = (number(bb.get(k), path=path, where=where, what=f"bounding_box.{k}")
                          for k in ("left", "top", "width", "height"))
            return Annotation(label, Box.from_xywh(x, y, w, h), attributes=attributes)
        if isinstance(obj.get("polygon"), list):
            pts = [_xy(p, path=path, where=where) for p in obj["polygon"]]
            if len(pts) > 3 and pts[0] == pts[-1]:
                pts = pts[:-1]
            if len(pts) < 3:
                raise FormatError(f"a polygon needs at least 3 points, got {len(pts)}", path=path, where=where)
            return Annotation(label, Polygon.from_points(pts), attributes=attributes)
        if isinstance(obj.get("point"), dict):
            x, y = _xy(obj["point"], path=path, where=where)
            return Annotation(label, Keypoints((x, y, 2.0)), attributes=attributes)
        if isinstance(obj.get("line"), list):
            pts = [_xy(p, path=path, where=where) for p in obj["line"]]
            if len(pts) < 2:
                raise FormatError(f"a line needs at least 2 points, got {len(pts)}", path=path, where=where)
            return Annotation(label, Polyline.from_points(pts), attributes=attributes)
    except ValueError as e:
        raise FormatError(f"impossible geometry ({e})", path=path, where=where) from None
    if isinstance(obj.get("mask"), dict) or isinstance(obj.get("composite_mask"), dict):
        skip("mask", "a PNG behind a Labelbox URL (network)", path=path, where=where)
        return None
    skip(f"annotation kind {obj.get('annotation_kind')!r}", "not supported", path=path, where=where)
    return None


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
    final, partial = out / NDJSON, out / (NDJSON + ".partial")
    handle: IO[bytes] = open(partial, "wb")
    try:
        for sample in samples:
            ref = with_size(sample.image)
            name = names(safe_name(ref.file_name))
            if place_image(ref, out / "images" / name, images):
                report.files += 1
            if sample.split:
                report.drop("split", "a Labelbox export has no splits")
            handle.write(orjson.dumps(_row_out(sample, ref, name, report)) + b"\n")
            report.images += 1
        handle.close()
        partial.replace(final)
    except BaseException:
        handle.close()
        partial.unlink(missing_ok=True)
        raise
    return report


def _row_out(sample: Sample, ref: ImageRef, name: str, report: WriteReport) -> dict[str, Any]:
    groups: dict[Any, dict[str, list[Any]]] = defaultdict(lambda: {"objects": [], "classifications": []})
    answers: dict[Any, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    texts: dict[Any, list[dict[str, Any]]] = defaultdict(list)  # captions: free-text classifications, after the rest
    for ann in sample.annotations:
        key = ann.attributes.get(INDEX)
        if ann.confidence is not None:
            report.drop("confidence", "Labelbox exports hold no score")
        if ann.crowd:
            report.drop("crowd flag", "Labelbox has no crowd flag")
        if ann.track_id is not None:
            report.drop("track id", "Labelbox image exports have no tracks")
        if isinstance(ann.geometry, Label):
            answers[key][str(ann.attributes.get(QUESTION, DEFAULT_QUESTION))].append(ann.label)
            report.annotations["label"] += 1
            continue
        if isinstance(ann.geometry, Caption):
            question = str(ann.attributes.get(QUESTION, CAPTION_QUESTION))
            lost = [k for k in ann.attributes if k not in (INDEX, QUESTION)]
            if lost:
                report.drop("caption attribute", "a Labelbox text answer holds text only", len(lost))
            texts[key].append({"name": question, "value": question, "text_answer": {"content": ann.geometry.text}})
            report.annotations["caption"] += 1
            continue
        nested = _nested(ann, report)
        for obj in _objects(ann, report):
            groups[key]["objects"].append({"name": ann.label, "value": ann.label, "classifications": nested, **obj})
    for key, by_question in answers.items():
        for question, answered in by_question.items():
            c: dict[str, Any] = {"name": question, "value": question}
            if len(answered) == 1:
                c["radio_answer"] = {"name": answered[0], "value": answered[0]}
            else:
                c["checklist_answers"] = [{"name": x, "value": x} for x in answered]
            groups[key]["classifications"].append(c)
    for key, entries in texts.items():
        groups[key]["classifications"].extend(entries)
    if not groups and sample.state is not LabelState.MISSING:
        groups[None]  # noqa: B018 - an empty label: labelled, nothing in it
    keys = sorted(groups, key=lambda k: (k is None, k if isinstance(k, int) else 0))
    labels: list[dict[str, Any]] = [{"label_kind": "Default", "annotations": {**groups[k], "relationships": []}}
                                    for k in keys]
    row_data = ref.metadata.get("labelbox_row_data")
    dr: dict[str, Any] = {"external_id": name,
                          "row_data": row_data if isinstance(row_data, str) and basename(row_data) == Path(name).name
                          else f"images/{name}"}
    media = {"height": ref.height, "width": ref.width, "mime_type": _mime(name)}
    return {"data_row": dr, "media_attributes": media,
            "projects": {"visionloop": {"name": "visionloop", "labels": labels}} if labels else {}}


def _mime(name: str) -> str:
    ext = Path(name).suffix.lower().lstrip(".")
    return {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
            "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff", "gif": "image/gif"}.get(ext, "image/jpeg")


def _nested(ann: Annotation, report: WriteReport) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k, v in ann.attributes.items():
        if k in (INDEX, QUESTION, SHAPE_ATTR):
            continue
        c: dict[str, Any] = {"name": k, "value": k}
        if isinstance(v, str):
            c["radio_answer"] = {"name": v, "value": v}
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            c["checklist_answers"] = [{"name": x, "value": x} for x in v]
        else:
            report.converted[f"attribute {type(v).__name__} -> text"] += 1
            c["text_answer"] = {"content": orjson.dumps(jsonable(v)).decode() if not isinstance(v, str) else v}
        out.append(c)
    return out


def _points(pts: list[tuple[float, float]]) -> list[dict[str, float]]:
    return [{"x": x, "y": y} for x, y in pts]


def _objects(ann: Annotation, report: WriteReport) -> list[dict[str, Any]]:
    g = ann.geometry
    if isinstance(g, Box):
        report.annotations["box"] += 1
        return [{"annotation_kind": "ImageBoundingBox",
                 "bounding_box": {"top": g.y0, "left": g.x0, "height": g.height, "width": g.width}}]
    if isinstance(g, RotatedBox):
        report.converted["rotated_box -> polygon"] += 1
        g = Polygon.from_points(list(g.corners()))
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
        rings = [list(zip(r[0::2], r[1::2], strict=True)) for r in g.rings]
        return [{"annotation_kind": "ImagePolygon", "polygon": _points(pts + pts[:1])} for pts in rings]
    if isinstance(g, Polyline):
        report.annotations["polyline"] += 1
        return [{"annotation_kind": "ImagePolyline", "line": _points(g.xy())}]
    if isinstance(g, Keypoints):
        pts = [(x, y) for x, y, v in zip(g.points[0::3], g.points[1::3], g.points[2::3], strict=True) if v > 0]
        if len(pts) != g.count or any(v != 2 for v in g.points[2::3] if v > 0):
            report.converted["keypoints visibility -> visible points"] += 1
        if not pts:
            report.drop("keypoints", "no labelled points")
            return []
        report.annotations["keypoints"] += 1
        if ann.attributes.get(SHAPE_ATTR) == "line" and len(pts) >= 2:
            return [{"annotation_kind": "ImagePolyline", "line": _points(pts)}]
        if len(pts) > 1:
            report.converted[f"keypoints ({len(pts)} points) -> {len(pts)} points"] += 1
        return [{"annotation_kind": "ImagePoint", "point": {"x": x, "y": y}} for x, y in pts]
    report.drop(kind(g), "unsupported geometry")  # pragma: no cover
    return []  # pragma: no cover
