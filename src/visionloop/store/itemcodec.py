"""A version item's annotations as compact JSON (one text column per generated image).

One JSON document per item keeps `version export` a single streaming query
and lets workers serialise once; the store's `codec` payloads are reused so a
geometry reads back exactly as the annotation table would give it.

    [{"label": "raccoon", "kind": "box", "box": [80.0, 87.0, 522.0, 408.0]}, ...]

Optional keys appear only when they say something: data (geometry payload),
attributes, source (when not "imported"), confidence, track_id, crowd, bbox
and area (declared values, kept only while no op moved the geometry).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from visionloop.core.geometry import Box, Geometry, Label, bounds, kind
from visionloop.core.sample import Annotation, Source
from visionloop.store import codec


def annotation_to_json(ann: Annotation) -> dict[str, Any]:
    g = ann.geometry
    out: dict[str, Any] = {"label": ann.label, "kind": kind(g)}
    b = bounds(g)
    if b is not None:
        out["box"] = [b.x0, b.y0, b.x1, b.y1]
    if not isinstance(g, (Box, Label)):
        out["data"] = codec.geometry_payload(g)
    if ann.attributes:
        out["attributes"] = dict(ann.attributes)
    if ann.source is not Source.IMPORTED:
        out["source"] = ann.source.value
    if ann.confidence is not None:
        out["confidence"] = ann.confidence
    if ann.track_id is not None:
        out["track_id"] = ann.track_id
    if ann.crowd:
        out["crowd"] = True
    if ann.bbox is not None:
        out["bbox"] = [ann.bbox.x0, ann.bbox.y0, ann.bbox.x1, ann.bbox.y1]
    if ann.area is not None:
        out["area"] = ann.area
    return out


def annotation_from_json(d: dict[str, Any]) -> Annotation:
    box = tuple(d.get("box") or (None, None, None, None))
    geometry: Geometry = codec.geometry_from(d["kind"], box, d.get("data") or {})
    bbox = d.get("bbox")
    return Annotation(
        label=d["label"],
        geometry=geometry,
        attributes=d.get("attributes") or {},
        source=Source(d.get("source", "imported")),
        confidence=d.get("confidence"),
        track_id=d.get("track_id"),
        crowd=bool(d.get("crowd", False)),
        bbox=Box(*bbox) if bbox else None,
        area=d.get("area"),
    )


def dumps(annotations: Iterable[Annotation]) -> str:
    return orjson.dumps([annotation_to_json(a) for a in annotations]).decode()


def loads(text: str | bytes) -> tuple[Annotation, ...]:
    return tuple(annotation_from_json(d) for d in orjson.loads(text))
