"""COCO's caption entries, for the formats that read and write ``captions_<split>.json`` (coco_captions, and coco,
which reads that file beside the objects of its split).

An entry is ``{"id", "image_id", "caption": str}`` (https://cocodataset.org/#format-data, "Image Captioning");
datumaro's exporter adds ``"category_id": 0`` (a workaround for cocoapi, ignored here), ``score`` and
``attributes`` (plugins/data_formats/coco/exporter.py, ``_CaptionsExporter``), which become the caption's
confidence and attributes. The entry's id is not kept: writers number captions 1..N.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Caption
from visionloop.core.sample import Annotation
from visionloop.formats._jsonstream import jsonable


def caption_annotation(ann: Any, path: Path, where: str) -> Annotation:
    """One COCO caption entry ({id, image_id, caption[, score][, attributes]}) as a Caption annotation; a
    FormatError naming `path` and `where` when it is not one."""
    if not isinstance(ann, dict) or "image_id" not in ann or not isinstance(ann.get("caption"), str):
        raise FormatError("a caption needs `image_id` and a string `caption`", path=path, where=where)
    attributes = ann.get("attributes") or {}
    score = ann.get("score")
    if not isinstance(attributes, dict):
        raise FormatError("a caption's `attributes` must be an object", path=path, where=where)
    if score is not None and (type(score) not in (int, float) or not 0 <= score <= 1):
        raise FormatError(f"a caption's `score` must be a number in [0, 1], got {score!r}", path=path, where=where)
    return Annotation("", Caption(ann["caption"]), attributes=attributes,
                      confidence=float(score) if score is not None else None)


def caption_entry(image_id: int, n: int, ann: Annotation) -> dict[str, Any]:
    """A Caption annotation as COCO's caption entry (id `n`): what `caption_annotation` reads back."""
    assert isinstance(ann.geometry, Caption)
    entry: dict[str, Any] = {"image_id": image_id, "id": n, "caption": ann.geometry.text}
    if ann.confidence is not None:
        entry["score"] = ann.confidence
    if ann.attributes:
        entry["attributes"] = jsonable(dict(ann.attributes))
    return entry
