"""Writing predictions: one JSON list (`json`) or a COCO file with results (`coco`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from visionloop.infer.predictor import Prediction


def to_coco(preds: Sequence[Prediction], classes: Sequence[str]) -> dict[str, Any]:
    """COCO with images, categories and `annotations` carrying scores (the results format)."""
    images, anns = [], []
    for i, p in enumerate(preds, 1):
        images.append({"id": i, "file_name": p.file_name, "width": p.width, "height": p.height})
        for b, s, c in zip(p.boxes.tolist(), p.scores.tolist(), p.labels.tolist(), strict=True):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1,
                         "bbox": [round(b[0], 2), round(b[1], 2), round(w, 2), round(h, 2)],
                         "area": round(w * h, 2), "iscrowd": 0, "score": round(float(s), 6)})
    return {"images": images, "annotations": anns,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}


def write_predictions(preds: Sequence[Prediction], out: str | Path, *, format: str = "json",
                      classes: Sequence[str] = ()) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if format == "coco":
        path = out / "predictions.coco.json"
        path.write_bytes(orjson.dumps(to_coco(preds, classes)))
    else:
        path = out / "predictions.json"
        path.write_bytes(orjson.dumps([p.to_json() for p in preds], option=orjson.OPT_INDENT_2))
    return path
