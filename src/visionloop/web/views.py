"""What each page shows, as plain result objects (dicts): the HTML page and its JSON twin render the same one.

    page = dataset(store, split="train", cls="raccoon", sort="objects", page=1)   # one page of the grid
    img = image(store, 12)                                                         # one image, its boxes
    batch_id = relabel(store, annotation_id=7, class_name="dog")                   # an undoable batch
    undo(store, batch_id)

The grid reads one page of image rows (LIMIT/OFFSET on indexed columns) and the annotations of those rows
only, so a page costs the same at 100 images or 100,000.
"""

from __future__ import annotations

import colorsys
import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, func, insert, select

from visionloop.core.errors import NotFoundError, VisionLoopError
from visionloop.ingest import batches as ingest_batches
from visionloop.store import Store, batches
from visionloop.store import evaluations as evals
from visionloop.store import models as registry
from visionloop.store.batches import BatchKind, Op, RowChange
from visionloop.store.schema import (
    AnnotationRow,
    BatchRow,
    ChangeRow,
    ClassRow,
    ImageRow,
    VersionItemRow,
    VersionRow,
)

PER_PAGE = 48
MAX_PER_PAGE = 200
SORTS = {"id": ImageRow.id, "name": ImageRow.file_name, "size": ImageRow.width * ImageRow.height,
         "date": ImageRow.taken_at}
THUMB_HEIGHT = 160


def colour(name: str, given: str | None = None) -> str:
    """The class's colour: its own when the project has one, else a stable hue from its name."""
    if given:
        return given
    h = int(hashlib.sha1(name.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.95)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def classes(store: Store) -> list[dict[str, Any]]:
    with store.session() as s:
        rows = s.execute(select(ClassRow.id, ClassRow.name, ClassRow.color).order_by(ClassRow.position)).all()
    return [{"id": r.id, "name": r.name, "colour": colour(r.name, r.color)} for r in rows]


def _caption(r: Any) -> dict[str, Any]:
    """A caption row (no class, no geometry): its text."""
    return {"id": r.id, "text": str((r.data or {}).get("text", "")), "confidence": r.confidence}


def _ann(r: Any, names: dict[int, dict[str, Any]]) -> dict[str, Any]:
    c = names.get(r.class_id, {"name": "?", "colour": "#ff00ff"})
    d: dict[str, Any] = {"id": r.id, "class": c["name"], "colour": c["colour"], "kind": r.kind,
                         "box": None if r.x0 is None else [r.x0, r.y0, r.x1, r.y1]}
    data = r.data or {}
    polys = data.get("polygons") or data.get("segmentation") or data.get("points")
    if r.kind == "polyline" and isinstance(data.get("points"), list):
        d["line"] = [float(v) for v in data["points"]]  # an open line: drawn as one, not as its box
    elif isinstance(polys, list) and polys and isinstance(polys[0], list):
        d["polygons"] = [[float(v) for v in p] for p in polys if isinstance(p, list) and len(p) >= 6]
    if r.confidence is not None:
        d["confidence"] = r.confidence
    return d


def dataset(store: Store, *, split: str | None = None, cls: str | None = None, tag: str | None = None,
            finding: str | None = None, finding_images: list[str] | None = None, sort: str = "id",
            desc: bool = False, page: int = 1, per_page: int = PER_PAGE) -> dict[str, Any]:
    """One page of the grid. `finding_images`: the file names a health finding names (the caller's report)."""
    if sort not in SORTS and sort != "objects":
        raise VisionLoopError(f"unknown sort {sort!r}", hint=f"sorts: {', '.join([*SORTS, 'objects'])}")
    page, per_page = max(1, page), min(max(1, per_page), MAX_PER_PAGE)
    cmap = classes(store)
    by_id = {c["id"]: c for c in cmap}
    q = select(ImageRow.id, ImageRow.file_name, ImageRow.split, ImageRow.width, ImageRow.height, ImageRow.sha256,
               ImageRow.tags, ImageRow.state)
    where = []
    if split:
        where.append(ImageRow.split == split)
    if cls:
        cid = next((c["id"] for c in cmap if c["name"] == cls), None)
        if cid is None:
            raise NotFoundError(f"no class {cls!r} in this project", hint="pick one of the listed classes")
        where.append(ImageRow.id.in_(select(AnnotationRow.image_id).where(AnnotationRow.class_id == cid)))
    if tag:
        where.append(cast(ImageRow.tags, String).like(f'%"{tag}"%'))
    if finding is not None:
        where.append(ImageRow.file_name.in_(finding_images or []))
    objects = (select(func.count()).where(AnnotationRow.image_id == ImageRow.id).scalar_subquery())
    order = objects if sort == "objects" else SORTS[sort]
    q = q.where(*where).order_by(order.desc() if desc else order, ImageRow.id)
    with store.session() as s:
        total = s.scalar(select(func.count()).select_from(ImageRow).where(*where)) or 0
        rows = s.execute(q.limit(per_page).offset((page - 1) * per_page)).all()
        ids = [r.id for r in rows]
        anns = s.execute(select(AnnotationRow.id, AnnotationRow.image_id, AnnotationRow.class_id, AnnotationRow.kind,
                                AnnotationRow.x0, AnnotationRow.y0, AnnotationRow.x1, AnnotationRow.y1,
                                AnnotationRow.data, AnnotationRow.confidence)
                         .where(AnnotationRow.image_id.in_(ids)).order_by(AnnotationRow.id)).all() if ids else []
        splits = [x for x in s.scalars(select(ImageRow.split).distinct()) if x]
    per: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    captions: dict[int, list[str]] = {i: [] for i in ids}
    for a in anns:
        if a.class_id is None:  # a caption: text, not a shape of a class
            captions[a.image_id].append(_caption(a)["text"])
        else:
            per[a.image_id].append(_ann(a, by_id))
    items = [{"id": r.id, "file_name": r.file_name, "split": r.split, "width": r.width, "height": r.height,
              "sha256": r.sha256, "tags": list(r.tags or []), "state": r.state, "annotations": per[r.id],
              "captions": captions[r.id]}
             for r in rows]
    return {"filters": {"split": split, "class": cls, "tag": tag, "finding": finding, "sort": sort, "desc": desc},
            "page": page, "per_page": per_page, "total": int(total), "pages": max(1, -(-int(total) // per_page)),
            "splits": sorted(splits), "classes": cmap, "images": items}


def image(store: Store, image_id: int) -> dict[str, Any]:
    """One image: its annotations, EXIF/GPS, the batches that touched it and the versions holding it."""
    cmap = {c["id"]: c for c in classes(store)}
    with store.session() as s:
        im = s.get(ImageRow, image_id)
        if im is None:
            raise NotFoundError(f"no image {image_id} in this project", hint="open it from the dataset page")
        anns = s.execute(select(AnnotationRow).where(AnnotationRow.image_id == image_id)
                         .order_by(AnnotationRow.id)).scalars().all()
        ann_ids = [a.id for a in anns]
        touched = set(s.scalars(select(ChangeRow.batch_id).where(
            ((ChangeRow.table_name == "image") & (ChangeRow.row_id == image_id))
            | ((ChangeRow.table_name == "annotation") & ChangeRow.row_id.in_(ann_ids or [-1])))))
        touched.add(im.batch_id)
        touched.update(a.batch_id for a in anns)
        brows = s.execute(select(BatchRow.id, BatchRow.kind, BatchRow.source, BatchRow.created_at, BatchRow.summary)
                          .where(BatchRow.id.in_(touched)).order_by(BatchRow.id)).all()
        vers = s.execute(select(VersionRow.id, VersionRow.name, VersionItemRow.split)
                         .join(VersionItemRow, VersionItemRow.version_id == VersionRow.id)
                         .where(VersionItemRow.source_image_id == image_id).distinct()
                         .order_by(VersionRow.id, VersionItemRow.split)).all()
        out = {"id": im.id, "file_name": im.file_name, "split": im.split, "width": im.width, "height": im.height,
               "sha256": im.sha256, "state": im.state, "format": im.format, "tags": list(im.tags or []),
               "taken_at": im.taken_at, "orientation": im.orientation,
               "gps": None if im.gps_lat is None else {"lat": im.gps_lat, "lon": im.gps_lon, "alt": im.gps_alt,
                                                       "heading": im.heading},
               "meta": dict(im.meta or {}),
               "annotations": [_ann(a, cmap) for a in anns if a.class_id is not None],
               "captions": [_caption(a) for a in anns if a.class_id is None]}
    out["batches"] = [{"id": b.id, "kind": b.kind, "source": b.source, "created_at": b.created_at.isoformat(),
                       "undone": bool((b.summary or {}).get("undone_at"))} for b in brows]
    out["versions"] = [{"id": v.id, "name": v.name, "split": v.split} for v in vers]
    out["classes"] = list(cmap.values())
    return out


def _class_id(conn: Any, class_name: str) -> int:
    cid = conn.scalar(select(ClassRow.id).where(ClassRow.name == class_name))
    if cid is None:
        raise NotFoundError(f"no class {class_name!r} in this project", hint="pick one of the listed classes")
    return int(cid)


def _annotation(conn: Any, annotation_id: int) -> dict[str, Any]:
    before = batches.jsonable(batches.rows(conn, "annotation", [annotation_id]).get(annotation_id))
    if before is None:
        raise NotFoundError(f"no annotation {annotation_id} in this project", hint="reload the image page")
    return before


def _image_change(conn: Any, image_id: int) -> RowChange | None:
    """The image row's update after its annotations changed (already run in `conn`): `ann_digest` recomputed
    from the annotations the store now holds (as `health.fix` and the importer compute it, so versions and
    duplicate checks see the edit) and the label state (annotated ⇄ null when the last box goes or the first
    comes). None when neither changed."""
    from types import SimpleNamespace

    from visionloop.store import codec

    img = batches.jsonable(batches.rows(conn, "image", [image_id]).get(image_id))
    if img is None:
        raise NotFoundError(f"no image {image_id} in this project")
    names = dict(conn.execute(select(ClassRow.id, ClassRow.name)).all())
    anns = batches.rows_where(conn, "annotation", "image_id", [image_id]).values()
    state = img["state"]
    if not anns and state == "annotated":
        state = "null"
    elif anns and state != "annotated":
        state = "annotated"
    digest = codec.annotations_digest([codec.annotation_from(SimpleNamespace(**a), codec.label_of(a["class_id"], names))
                                       for a in anns], state)
    if digest == img["ann_digest"] and state == img["state"]:
        return None
    return RowChange("image", image_id, Op.UPDATE, img, {**img, "ann_digest": digest, "state": state})


def _edit(conn: Any, summary: dict[str, Any], image_id: int, changes: list[RowChange],
          inserted: list[dict[str, Any]] | None = None) -> int:
    """One undoable batch (kind fix, source "visionloop ui"): the annotation changes, the rows `inserted`
    (written here, then logged with the ids the database gave them), and the image row's new digest/state."""
    batch_id = batches.open_batch(conn, BatchKind.FIX, source="visionloop ui", summary=summary)
    batches.apply(conn, batch_id, changes)
    added = []
    for row in inserted or []:
        new_id = conn.execute(insert(batches.table("annotation")).values({**row, "batch_id": batch_id})
                              ).inserted_primary_key[0]
        after = batches.jsonable(batches.rows(conn, "annotation", [int(new_id)])[int(new_id)])
        added.append(RowChange("annotation", int(new_id), Op.INSERT, None, after))
        summary = {**summary, "annotation": int(new_id)}
    batches.log(conn, batch_id, added)
    if added:
        batches.set_summary(conn, batch_id, summary)
    img = _image_change(conn, image_id)
    if img is not None:
        batches.apply(conn, batch_id, [img])
    return int(batch_id)


def relabel(store: Store, annotation_id: int, class_name: str) -> dict[str, Any]:
    """Change one annotation's class, as its own batch (kind fix, source "visionloop ui") that undo reverses;
    the image's annotation digest follows."""
    with store.engine.begin() as conn:
        cid = _class_id(conn, class_name)
        before = _annotation(conn, annotation_id)
        if before["class_id"] is None:
            raise VisionLoopError(f"annotation {annotation_id} is a caption, which has no class",
                                  hint="delete it instead, or pick an annotation of a class")
        if before["class_id"] == cid:
            raise VisionLoopError(f"annotation {annotation_id} is already {class_name!r}", hint="pick another class")
        after = {**before, "class_id": cid}
        batch_id = _edit(conn, {"relabelled": 1, "annotation": annotation_id, "to": class_name}, before["image_id"],
                         [RowChange("annotation", annotation_id, Op.UPDATE, before, after)])
    return {"batch": batch_id, "annotation": annotation_id, "class": class_name}


def delete_annotation(store: Store, annotation_id: int) -> dict[str, Any]:
    """Delete one annotation, as an undoable batch (undo puts it back, id included)."""
    with store.engine.begin() as conn:
        before = _annotation(conn, annotation_id)
        batch_id = _edit(conn, {"annotations_deleted": 1, "annotation": annotation_id}, before["image_id"],
                         [RowChange("annotation", annotation_id, Op.DELETE, before, None)])
    return {"batch": batch_id, "annotation": annotation_id, "image": before["image_id"]}


def add_box(store: Store, image_id: int, class_name: str, box: list[float]) -> dict[str, Any]:
    """Add one box (x0, y0, x1, y1 in the image's pixels, inside it, with an area), as an undoable batch."""
    if len(box) != 4:
        raise VisionLoopError("a box is four numbers: x0, y0, x1, y1", hint="draw it on the image or type them")
    x0, y0, x1, y1 = (float(v) for v in box)
    with store.engine.begin() as conn:
        cid = _class_id(conn, class_name)
        im = conn.execute(select(ImageRow.width, ImageRow.height).where(ImageRow.id == image_id)).first()
        if im is None:
            raise NotFoundError(f"no image {image_id} in this project", hint="open it from the dataset page")
        if not (0 <= x0 < x1 <= im.width and 0 <= y0 < y1 <= im.height):
            raise VisionLoopError(f"box {x0:g}, {y0:g}, {x1:g}, {y1:g} is not inside the {im.width}×{im.height} "
                                  "image with an area", hint="x0 < x1 and y0 < y1, within the image")
        row = {"image_id": image_id, "class_id": cid, "kind": "box", "x0": x0, "y0": y0, "x1": x1, "y1": y1,
               "area": (x1 - x0) * (y1 - y0), "bbox_declared": False, "area_declared": False, "data": {},
               "attributes": {}, "source": "human", "confidence": None, "track_id": None, "crowd": False}
        batch_id = _edit(conn, {"annotations_added": 1, "class": class_name}, image_id, [], inserted=[row])
        new_id = (batches.batch_row(conn, batch_id).summary or {}).get("annotation")
    return {"batch": batch_id, "annotation": new_id, "image": image_id, "class": class_name,
            "box": [x0, y0, x1, y1]}


def undo(store: Store, batch_id: int) -> dict[str, Any]:
    return ingest_batches.undo_batch(store, batch_id).to_json()


def health(report: Any) -> dict[str, Any]:
    """The report's findings, each with the images it names (ids resolved by the caller's store)."""
    return report.to_json()


def finding_images(report: Any, check: str) -> list[str]:
    f = report.finding(check)
    if f is None:
        pairs = [p for p in report.pairs if p.kind == check]
        return sorted({n for p in pairs for n in (p.a, p.b)})
    return list(f.images)


def models(store: Store) -> dict[str, Any]:
    out = []
    for m in registry.list_all(store):
        ev = evals.latest(store, model_id=m.id)
        out.append({"name": m.name, "task": m.task, "arch": m.arch, "status": m.status, "stage": m.stage,
                    "version": m.version, "classes": m.classes, "metrics": m.metrics,
                    "evaluation": None if ev is None else ev.to_json()})
    return {"models": out, "stages": list(registry.STAGES)}


def errors(store: Store, model: str, *, error: str | None = None, kind: str | None = None,
           category: str | None = None, evaluation: int | None = None, limit: int = 200) -> dict[str, Any]:
    """A model's error events (newest evaluation unless `evaluation`), filtered by error type/kind/class."""
    info = registry.get(store, model)
    ev = evals.get(store, evaluation) if evaluation is not None else evals.latest(store, model_id=info.id)
    if ev is None:
        raise NotFoundError(f"model {model} has no evaluation", hint=f"run `visionloop evaluate {model}` first")
    allev = evals.events(store, ev.id)
    counts: dict[str, int] = {}
    for e in allev:
        counts[e.error] = counts.get(e.error, 0) + 1
    chosen = [e for e in allev if (error is None or e.error == error) and (kind is None or e.kind == kind)
              and (category is None or category in (e.category, e.gt_category))]
    ids = {e.image_id for e in chosen[:limit]}
    with store.session() as s:
        dims = {r.id: (r.width, r.height) for r in s.execute(
            select(ImageRow.id, ImageRow.width, ImageRow.height).where(ImageRow.id.in_(ids or {-1})))}
    tiles = [{**e.to_json(), "width": dims.get(e.image_id, (0, 0))[0], "height": dims.get(e.image_id, (0, 0))[1]}
             for e in chosen[:limit]]
    return {"model": info.name, "evaluation": ev.to_json(), "filters": {"error": error, "kind": kind,
            "category": category}, "counts": counts, "total": len(chosen), "tiles": tiles}


def promote(store: Store, model: str, stage: str | None = None) -> dict[str, Any]:
    return registry.promote(store, model, stage).to_json()


# -- thumbnails: made once, kept as blobs; store/thumbs.py names the index (image sha + blur regions → thumb blob) --

def _regions(store: Store, sha256: str) -> tuple[list[Any], int, str]:
    """The blur regions (state blur) of every image over this blob — the same pixels, so a face one of them has
    is in all of them — with the blob's orientation and their digest ('' when there are none)."""
    from visionloop.store import blur_regions

    with store.engine.connect() as conn:
        rows = conn.execute(select(ImageRow.id, ImageRow.orientation).where(ImageRow.sha256 == sha256)).all()
        boxes = blur_regions.boxes_to_blur(conn, [r.id for r in rows])
    union = [b for r in rows for b in boxes.get(r.id, [])]
    orientation = int(rows[0].orientation or 1) if rows else 1
    return union, orientation, blur_regions.digest(union) if union else ""


def thumb_etag(store: Store, sha256: str) -> str:
    """What a thumbnail is made of: the blob and the blur regions drawn into it (changes when a region does)."""
    return f'"{sha256[:16]}-{_regions(store, sha256)[2] or "0"}"'


def thumbnail(store: Store, sha256: str) -> bytes:
    """The image at THUMB_HEIGHT px high (upright, no drawing: the page draws the boxes), JPEG; blurred where the
    project has blur regions on it (the thumbnail is made from the blurred copy, as every export is)."""
    from visionloop.store import thumbs
    from visionloop.transforms.redact import redact

    boxes, orientation, key = _regions(store, sha256)
    index = thumbs.index_path(store, sha256, key)
    if index.exists():
        thumb = index.read_text().strip()
        if store.blobs.exists(thumb):
            return store.blobs.get(thumb)
    data = store.blobs.get(sha256)
    data = _make_thumb(redact(data, orientation, boxes) if boxes else data)
    thumb = store.blobs.put(data)
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_suffix(".tmp")
    tmp.write_text(thumb)
    tmp.replace(index)
    return data


def _make_thumb(data: bytes) -> bytes:
    import io

    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (THUMB_HEIGHT * 4, THUMB_HEIGHT))
        im = ImageOps.exif_transpose(im).convert("RGB")
        w = max(1, round(im.width * THUMB_HEIGHT / im.height))
        im = im.resize((w, THUMB_HEIGHT), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=82)
        return buf.getvalue()


def full_image(store: Store, image_id: int) -> tuple[bytes, str]:
    """The image's bytes as they may leave the store: blurred (a PNG) where it has blur regions."""
    from visionloop.versions.redact import image_bytes

    with store.session() as s:
        r = s.execute(select(ImageRow.sha256, ImageRow.format).where(ImageRow.id == image_id)).first()
    if r is None:
        raise NotFoundError(f"no image {image_id} in this project")
    data, blurred = image_bytes(store, image_id)
    fmt = "png" if blurred else (r.format or "").lower()
    return data, {"png": "image/png", "webp": "image/webp"}.get(fmt, "image/jpeg")


def image_etag(store: Store, image_id: int) -> str:
    """What the image's bytes are made of: its blob and its blur regions."""
    from visionloop.store import blur_regions

    with store.engine.connect() as conn:
        sha = conn.scalar(select(ImageRow.sha256).where(ImageRow.id == image_id))
        boxes = blur_regions.boxes_to_blur(conn, [image_id]).get(image_id)
    if sha is None:
        raise NotFoundError(f"no image {image_id} in this project")
    return f'"{sha[:16]}-{blur_regions.digest(boxes) if boxes else "0"}"'


# -- evaluations ---------------------------------------------------------------------------------------------

PR_W, PR_H = 400, 300  # the PR chart's plot area, in SVG units (recall → x, precision → y, flipped)


def _summary(task: str, metrics: dict[str, Any]) -> dict[str, float | None]:
    from visionloop.evaluate.model import summary_metrics

    return summary_metrics(task, metrics)


def evaluations(store: Store) -> dict[str, Any]:
    """Every evaluation, newest first, with its headline numbers."""
    out = []
    for ev in reversed(evals.list_all(store)):
        out.append({**ev.to_json(), "summary": _summary(ev.task, ev.metrics)})
    return {"evaluations": out}


def evaluations_compare(store: Store, a: int, b: int) -> dict[str, Any]:
    """Two evaluations of one version split side by side (`evaluate.compare_evaluations`, as `visionloop
    evaluate --compare`): metrics with deltas, the images where the newer model makes more errors."""
    from visionloop.evaluate.model import compare_evaluations

    c = compare_evaluations(store, evals.get(store, a), evals.get(store, b))
    choices = [{"id": e.id, "label": f"#{e.id} {e.model} on {e.version}/{e.split}"}
               for e in reversed(evals.list_all(store))]
    return {**c.to_json(), "a": a, "b": b, "choices": choices}


def _points(recall: list[float], precision: list[float]) -> str:
    return " ".join(f"{r * PR_W:.1f},{(1 - p) * PR_H:.1f}" for r, p in zip(recall, precision, strict=True))


def evaluation(store: Store, evaluation_id: int) -> dict[str, Any]:
    """One evaluation: its metrics table, PR curves (as SVG polylines), confusion matrix with the background
    row and column, and the TIDE breakdown, all from what `evaluate` stored."""
    ev = evals.get(store, evaluation_id)
    m = ev.metrics
    out: dict[str, Any] = {**ev.to_json(), "summary": _summary(ev.task, m), "per_class": [], "pr": None,
                           "confusion": None, "tide": None, "classification": None}
    if "metrics" in m:  # detection / instance segmentation
        out["per_class"] = m["metrics"].get("per_class", [])
        curve = m.get("pr_curve")
        if curve and curve.get("recall"):
            cmap = {c["name"]: c["colour"] for c in classes(store)}
            lines = [{"name": c["name"], "ap": c["ap"], "colour": colour(c["name"], cmap.get(c["name"])),
                      "points": _points(curve["recall"], c["precision"])}
                     for c in curve["classes"] if c["precision"] is not None]
            mean = curve["mean"]
            out["pr"] = {"iou": curve["iou"], "width": PR_W, "height": PR_H, "lines": lines,
                         "mean": {"ap": sum(mean) / len(mean) if mean else None,
                                  "points": _points(curve["recall"], mean) if mean else ""}}
        conf = m.get("confusion")
        if conf:
            mat = conf["matrix"]
            out["confusion"] = {**conf, "max": max((v for row in mat for v in row), default=0),
                                "row_totals": [sum(r) for r in mat],
                                "col_totals": [sum(r[j] for r in mat) for j in range(len(mat))]}
        tide = m.get("tide")
        if tide:
            order = ["classification", "localization", "both", "duplicate", "background", "missed"]
            top = max([abs(tide["delta"].get(k) or 0.0) for k in order] + [1e-12])
            out["tide"] = {**tide, "rows": [{"error": k, "count": tide["counts"].get(k, 0),
                                             "delta": tide["delta"].get(k, 0.0),
                                             "bar": round(100 * abs(tide["delta"].get(k) or 0.0) / top, 1)}
                                            for k in order]}
    elif "classification" in m:
        c = m["classification"]
        names = [p.get("name", str(i)) for i, p in enumerate(c.get("per_class", []))]
        out["classification"] = c
        if not c.get("multi_label") and c.get("confusion"):
            mat = c["confusion"]
            out["confusion"] = {"classes": names, "matrix": mat, "rows": "ground truth", "columns": "prediction",
                                "max": max((v for row in mat for v in row), default=0),
                                "row_totals": [sum(r) for r in mat],
                                "col_totals": [sum(r[j] for r in mat) for j in range(len(mat))]}
    return out


# -- versions ------------------------------------------------------------------------------------------------

PREVIEW_N, PREVIEW_CELL = 9, 192


def versions(store: Store) -> dict[str, Any]:
    """Every version, newest first: status, recipe, image/annotation counts per split."""
    from visionloop.versions import list_versions

    out = []
    for v in reversed(list_versions(store)):
        by_split = v.counts.get("by_split") or {}
        out.append({"id": v.id, "name": v.name, "status": v.status, "parent": v.parent, "seed": v.seed,
                    "created_at": v.created_at, "images": v.images, "annotations": v.counts.get("annotations"),
                    "splits": {k: by_split[k] for k in sorted(by_split)}, "recipe": v.recipe,
                    "steps": _recipe_steps(v.recipe), "multiplier": (v.recipe.get("augment") or {}).get("multiplier") or 1,
                    "classes": [c["name"] for c in v.classes]})
    return {"versions": out}


def _recipe_steps(recipe: dict[str, Any]) -> dict[str, list[str]]:
    """The preprocessing and augmentation steps a recipe sets away from their defaults (what it does)."""
    from visionloop.versions.diff import recipe_changes
    from visionloop.versions.recipe import load_recipe

    default = load_recipe({"schema": recipe.get("schema", 1), "augment": {"multiplier": 2}}).to_json()
    if not recipe.get("augment"):
        default["augment"] = None
    out: dict[str, list[str]] = {"preprocess": [], "augment": []}
    for c in recipe_changes(default, recipe):
        part, _, rest = c["field"].partition(".")
        step = rest.split(".")[0]
        if part in out and step and step != "multiplier" and step not in out[part]:
            out[part].append(step)
    return out


def version(store: Store, name: str) -> dict[str, Any]:
    """One version: its recipe (as the file would spell it), counts and where its preview grid is."""
    from visionloop.versions import show_version

    v = show_version(store, name)
    import yaml

    return {**v.to_json(), "preview": f"/versions/{v.name}/preview.png", "splits": v.counts.get("by_split") or {},
            "recipe_yaml": yaml.safe_dump(v.recipe, sort_keys=False)}


def version_diff(store: Store, a: str, b: str) -> dict[str, Any]:
    """What changed from version a to b: images added/removed/changed (in total and per split), annotations,
    classes and recipe fields."""
    from visionloop.versions import diff_versions, list_versions

    d = diff_versions(store, a, b).to_json()
    return {**d, "names": [v.name for v in list_versions(store)]}


def version_preview(store: Store, name: str) -> bytes:
    """The version's augmentation preview grid (`versions.preview_version`: its stored, augmented training
    images with their annotations), PNG — drawn once per version (versions are immutable) and kept as
    <root>/cache/previews/<version id>-<n>x<cell>.png, like the thumbnails."""
    import tempfile

    from visionloop.versions import preview_version, show_version

    info = show_version(store, name)
    cached = Path(store.root) / "cache" / "previews" / f"{info.id}-{PREVIEW_N}x{PREVIEW_CELL}.png"
    if cached.is_file():
        return cached.read_bytes()
    with tempfile.TemporaryDirectory(prefix="vl-preview-") as tmp:
        out = Path(tmp) / "preview.png"
        preview_version(store, info.id, out, n=PREVIEW_N, cell=PREVIEW_CELL)
        data = out.read_bytes()
    cached.parent.mkdir(parents=True, exist_ok=True)
    part = cached.with_suffix(".part")
    part.write_bytes(data)
    part.replace(cached)
    return data


# -- production: the prediction log the server writes --------------------------------------------------------

LATEST = 12
BAR_W, BAR_H = 600, 120  # the volume chart's area, SVG units


def _bars(values: list[int], width: int = BAR_W, height: int = BAR_H) -> list[dict[str, Any]]:
    """Bars (x, y, w, h in SVG units, bottom-aligned) for counts, scaled to the largest."""
    top = max(values, default=0) or 1
    w = width / max(1, len(values))
    return [{"x": round(i * w, 2), "w": round(max(1.0, w - 1), 2), "h": round(height * v / top, 2),
             "y": round(height - height * v / top, 2), "value": v} for i, v in enumerate(values)]


def production(store: Store, *, model: str | None = None, bucket: str = "hour", bins: int = 10) -> dict[str, Any]:
    """The prediction log at a glance: volume per hour/day, confidence histograms (every prediction's and each
    image's top one), the class mix per bucket and the latest logged images with their predictions."""
    from visionloop.store import prediction_log as plog

    st = plog.stats(store, model=model, bucket=bucket, bins=bins)  # type: ignore[arg-type]
    js = st.to_json()
    latest = [e.to_json() for e in plog.query(store, model=model, limit=LATEST, newest_first=True)]
    edges = js["confidence_edges"]
    models = sorted({k.rsplit(" v", 1)[0] for k in st.by_model})
    return {**js, "model": model, "models": models, "classes": st.classes, "latest": latest,
            "selections": selections(store),
            "bins": [f"{edges[i]:.1f}–{edges[i + 1]:.1f}" for i in range(len(edges) - 1)],
            "charts": {"volume": _bars(list(st.volume.values())), "width": BAR_W, "height": BAR_H,
                       "confidence": _bars(js["confidence_hist"], 300, 100),
                       "top_confidence": _bars(js["top_confidence_hist"], 300, 100)}}


SELECTIONS = 10
SELECTION_THUMBS = 12


def selections(store: Store, *, limit: int = SELECTIONS) -> list[dict[str, Any]]:
    """The latest picks (`visionloop select`, `visionloop label-errors`: batches of kind select, not undone),
    newest first: tag, command, when, how many images hold the tag now, and the first few of them."""
    from visionloop.store import tags as tag_store

    with store.session() as s:
        rows = s.execute(select(BatchRow.id, BatchRow.source, BatchRow.created_at, BatchRow.summary)
                         .where(BatchRow.kind == BatchKind.SELECT).order_by(BatchRow.id.desc())).all()
    picks = [r for r in rows if not (r.summary or {}).get("undone_at") and (r.summary or {}).get("tag")][:limit]
    if not picks:
        return []
    images = tag_store.images(store)
    out = []
    for r in picks:
        tag = r.summary["tag"]
        tagged = [im for im in images if tag in im.tags]
        out.append({"batch": r.id, "tag": tag, "source": r.source, "created_at": r.created_at.isoformat(),
                    "strategy": r.summary.get("strategy") or ("label-errors" if r.summary.get("label_errors") else None),
                    "images": len(tagged),
                    "first": [{"id": im.id, "file_name": im.file_name, "sha256": im.sha256}
                              for im in tagged[:SELECTION_THUMBS]]})
    return out


def send_selection(store: Store, tag: str, url: str | None, api_key: str | None) -> dict[str, Any]:
    """Send the images of `tag` to Label Studio as `visionloop label send --tag TAG` does (the same function,
    the same LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY), with their current labels as pre-labels; the report
    and the Label Studio project's address."""
    from visionloop.loop.labelstudio import send_to_label_studio

    if not tag:
        raise VisionLoopError("no selection named", hint="pick one on the production page")
    if not url or not api_key:
        raise VisionLoopError("Label Studio is not configured for this server",
                              hint="set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY where `visionloop serve` runs")
    report = send_to_label_studio(store, url, api_key, tag=tag)
    return {**report.to_json(), "tag": tag, "project_url": f"{report.target.rstrip('/')}/projects/{report.ls_project}/data"}


def logged_image(store: Store, sha256: str) -> bytes:
    """A logged image's thumbnail (only for blobs the prediction log holds)."""
    from sqlalchemy import exists

    from visionloop.store.schema import PredictionLogRow

    with store.session() as s:
        if not s.scalar(select(exists().where(PredictionLogRow.sha256 == sha256))):
            raise NotFoundError("no such logged image")
    return thumbnail(store, sha256)


# -- map: the images' GPS positions and sequences (geo stage), drawn without tiles -----------------------------

UNLOCATED_SHOWN = 20


def has_gps(store: Store) -> bool:
    """Whether any image of the project has a GPS position (the nav shows the map then)."""
    with store.session() as s:
        return s.scalar(select(ImageRow.id).where(ImageRow.gps_lat.is_not(None)).limit(1)) is not None


def latest_map_features(store: Store) -> list[dict[str, Any]]:
    """The Point features of the project's latest `visionloop mapfeatures` run ([] when it has none)."""
    import json

    from visionloop.geo.mapfeatures import project_copy

    path = project_copy(Path(store.root))
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise VisionLoopError(f"cannot read the map features ({e})", path=path,
                              hint="run `visionloop mapfeatures` again") from None
    return [f for f in data.get("features", []) if (f.get("geometry") or {}).get("type") == "Point"]


def geo_map(store: Store, *, max_gap_s: float = 60.0, max_step_m: float = 50.0,
            features: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The project's located images as GeoJSON (a Point per image, its `image_id` and `href`; a LineString per
    sequence of two or more) with the coverage summary `visionloop geo stats` prints; `located` is 0 when no
    image has GPS. `features`: map features (GeoJSON Point features with a `class`) drawn over the track; each
    is marked `layer: "feature"`. By default, the project's latest `visionloop mapfeatures` result
    (`<project>/geo/mapfeatures.geojson`), when there is one."""
    from visionloop.geo.project import store_points
    from visionloop.geo.track import geojson, sequences, summary

    if not (max_gap_s > 0 and max_step_m > 0):  # NaN too
        raise VisionLoopError("max_gap and max_step must be positive", hint="seconds and metres, e.g. 60 and 50")
    with store.session() as s:
        rows = s.execute(select(ImageRow.id, ImageRow.file_name).order_by(ImageRow.id)).all()
    located = has_gps(store)
    points = store_points(store) if rows and located else []
    if points and [p.name for p in points] != [r.file_name for r in rows]:
        raise VisionLoopError("the project's images changed while the map was read", hint="reload the page")
    seqs = sequences(points, max_gap_s=max_gap_s, max_step_m=max_step_m)
    out = summary(points, seqs) if points else {**summary([], []), "images": len(rows)}
    unlocated = out.pop("unlocated") if points else [r.file_name for r in rows]
    ids = {id(p): r.id for p, r in zip(points, rows, strict=False)}  # by object: a name may repeat across splits
    fc = geojson(points, seqs)
    for f, image_id in zip((f for f in fc["features"] if f["geometry"]["type"] == "Point"),
                           (ids[id(p)] for p in points if p.located), strict=True):
        f["properties"].update(image_id=image_id, href=f"/images/{image_id}")
    for sq, pts in zip(out["sequences"], seqs, strict=True):
        sq["first_id"], sq["last_id"] = ids[id(pts[0])], ids[id(pts[-1])]
    if features is None:
        features = latest_map_features(store)
    feats = [{**f, "properties": {**(f.get("properties") or {}), "layer": "feature"}} for f in features]
    return {**out, "unlocated": len(unlocated), "unlocated_names": unlocated[:UNLOCATED_SHOWN],
            "max_gap_s": max_gap_s, "max_step_m": max_step_m, "geojson": fc, "features": feats}
