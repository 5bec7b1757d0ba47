"""POST /v1/inputs: uploaded images (and optionally an annotation file) become one import batch.

The uploads are written into a fresh folder under the project's `.cache/uploads/` and go through the
ordinary import (`ingest.import_dataset`): the same checks, quarantine, batch and undo as `visionloop
import`, blurred at import when the project says so (`privacy.blur_on_import`). Without an annotation file the
images land unlabelled (a COCO file listing them is written beside them). File names are reduced to a safe base name; nothing is written outside that folder.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import orjson

from visionloop.serve import images as img
from visionloop.serve.errors import BadRequest
from visionloop.store import Store

SAFE = re.compile(r"[^A-Za-z0-9._-]+")
EXT = {"jpeg": ".jpg", "png": ".png", "bmp": ".bmp", "tiff": ".tif", "webp": ".webp"}


def safe_name(name: str, kind: str, taken: set[str]) -> str:
    base = SAFE.sub("_", Path(name.replace("\\", "/")).name).strip("._") or "image"
    stem = Path(base).stem[:100] or "image"
    ext = Path(base).suffix.lower()
    if ext not in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"):
        ext = EXT[kind]
    out, n = f"{stem}{ext}", 1
    while out in taken:
        n += 1
        out = f"{stem}_{n}{ext}"
    taken.add(out)
    return out


def import_uploads(store: Store, files: list[tuple[str, bytes]], *, annotations: tuple[str, bytes] | None,
                   format: str | None, split: str | None, max_pixels: int) -> dict[str, Any]:
    from visionloop.geo.privacy import blur_batch, import_detectors
    from visionloop.ingest import import_dataset

    if not files:
        raise BadRequest("no image in the request", hint="send the images as multipart `files`")
    checked = []
    for i, (name, data) in enumerate(files):
        kind, w, h = img.check(data, max_pixels=max_pixels, name=f"image {i + 1}" + (f" ({name})" if name else ""))
        checked.append((name or f"image_{i + 1}", data, kind, w, h))
    cache = Path(store.root) / ".cache" / "uploads"
    cache.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=cache))
    try:
        taken: set[str] = set()
        entries = []
        for name, data, kind, w, h in checked:
            file = safe_name(name, kind, taken)
            (folder / file).write_bytes(data)
            entries.append({"id": len(entries) + 1, "file_name": file, "width": w, "height": h})
        if annotations is not None:
            ann_name = SAFE.sub("_", Path((annotations[0] or "").replace("\\", "/")).name).strip("._")
            if not ann_name or ann_name in taken:
                ann_name = "annotations.json"
            (folder / ann_name).write_bytes(annotations[1])
        else:
            classes = store.classes()
            doc = {"images": entries, "annotations": [],
                   "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes.names)]}
            (folder / "_annotations.coco.json").write_bytes(orjson.dumps(doc))
            format = "coco"
        detectors = import_detectors(store)  # the project blurs at import (privacy.blur_on_import): uploads too
        report = import_dataset(store, folder, format=format, split=split)
        blurred = blur_batch(store, report.batch_id, detectors) if detectors and report.batch_id else None
        return {**report.to_json(), "source": "upload",
                **({"blur": blurred.to_json()} if blurred is not None else {})}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
