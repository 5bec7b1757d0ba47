"""Annotation ⇄ row payloads, and a stable digest of an image's annotations."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

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
    kind,
)
from visionloop.core.sample import Annotation, Source


def geometry_payload(geometry: Geometry) -> dict[str, Any]:
    if isinstance(geometry, Caption):
        return {"text": geometry.text}
    if isinstance(geometry, Box):
        return {}
    if isinstance(geometry, RotatedBox):
        return {"cx": geometry.cx, "cy": geometry.cy, "w": geometry.w, "h": geometry.h, "angle": geometry.angle}
    if isinstance(geometry, Polygon):
        return {"rings": [list(r) for r in geometry.rings]}
    if isinstance(geometry, Mask):
        return {"counts": geometry.counts.decode("ascii"), "size": [geometry.height, geometry.width]}
    if isinstance(geometry, Keypoints):
        return {"points": list(geometry.points)}
    if isinstance(geometry, Label):
        return {}
    if isinstance(geometry, Polyline):
        return {"points": list(geometry.points)}
    raise TypeError(f"unknown geometry {type(geometry).__name__}")


def geometry_from(kind_name: str, box: tuple[float | None, ...], data: dict[str, Any]) -> Geometry:
    if kind_name == "caption":
        return Caption(data["text"])
    if kind_name == "box":
        x0, y0, x1, y1 = box
        return Box(x0, y0, x1, y1)  # type: ignore[arg-type]
    if kind_name == "rotated_box":
        return RotatedBox(data["cx"], data["cy"], data["w"], data["h"], data["angle"])
    if kind_name == "polygon":
        return Polygon(tuple(tuple(r) for r in data["rings"]))
    if kind_name == "mask":
        h, w = data["size"]
        return Mask(data["counts"].encode("ascii"), h, w)
    if kind_name == "keypoints":
        return Keypoints(tuple(data["points"]))
    if kind_name == "label":
        return Label()
    if kind_name == "polyline":
        return Polyline(tuple(data["points"]))
    raise ValueError(f"unknown annotation kind {kind_name!r} in the store")


def label_of(class_id: int | None, names: Mapping[int, str]) -> str:
    """The label of an annotation row: its class's name, empty for a caption (whose class_id is NULL: it has none)."""
    return "" if class_id is None else names[class_id]


def annotation_row(ann: Annotation) -> dict[str, Any]:
    """Column values for one annotation (without image, class and batch ids)."""
    box = ann.box
    # floats always: the store's REAL columns give floats back, and the digest must not see 3 vs 3.0
    return {
        "kind": kind(ann.geometry),
        "x0": float(box.x0) if box else None,
        "y0": float(box.y0) if box else None,
        "x1": float(box.x1) if box else None,
        "y1": float(box.y1) if box else None,
        "area": float(ann.area if ann.area is not None else ann.geometry.area),
        "bbox_declared": ann.bbox is not None,
        "area_declared": ann.area is not None,
        "data": geometry_payload(ann.geometry),
        "attributes": dict(ann.attributes),
        "source": ann.source.value,
        "confidence": ann.confidence,
        "track_id": ann.track_id,
        "crowd": ann.crowd,
    }


def annotation_from(row: Any, label: str, *, data: dict[str, Any] | None = None,
                    attributes: dict[str, Any] | None = None) -> Annotation:
    """An annotation row as an Annotation; `data` / `attributes` when the caller decoded those columns itself."""
    box = (row.x0, row.y0, row.x1, row.y1)
    geometry = geometry_from(row.kind, box, row.data if data is None else data)
    return Annotation(
        label=label,
        geometry=geometry,
        attributes=(row.attributes if attributes is None else attributes) or {},
        source=Source(row.source),
        confidence=row.confidence,
        track_id=row.track_id,
        crowd=bool(row.crowd),
        bbox=Box(*box) if row.bbox_declared else None,  # type: ignore[arg-type]
        area=row.area if row.area_declared else None,
    )


def annotations_digest(annotations: tuple[Annotation, ...] | list[Annotation], state: str) -> str:
    """Order-independent digest of what an image's annotations say."""
    parts = sorted(
        orjson.dumps({"label": a.label, **annotation_row(a)}, option=orjson.OPT_SORT_KEYS)
        for a in annotations
    )
    h = hashlib.sha256(state.encode())
    for p in parts:
        h.update(p)
    return h.hexdigest()


def stored_digest(conn: Any, annotation: Any, klass: Any, image_id: int, state: str) -> str:
    """What an import computes (`annotations_digest`) for one image's annotation rows as they are now, read
    through `conn` from the tables `annotation` and `klass` (a migration's own `sa.table`s: id, name, ...)."""
    import sqlalchemy as sa

    names = dict(conn.execute(sa.select(klass.c.id, klass.c.name)).all())
    rows = conn.execute(sa.select(annotation).where(annotation.c.image_id == image_id)
                        .order_by(annotation.c.id)).all()
    return annotations_digest([annotation_from(r, label_of(r.class_id, names)) for r in rows], state)
