"""Writing predictions: one JSON list (`json`) or a COCO file with results (`coco`); video results; predictions
as samples (`source=model` annotations with confidences) for import as pre-labels."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.geometry import Box, Label, Mask
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample, Source
from visionloop.infer.prediction import Prediction


def to_coco(preds: Sequence[Prediction], classes: Sequence[str]) -> dict[str, Any]:
    """COCO with images, categories and `annotations` carrying scores (the results format)."""
    from visionloop.infer.masks import rle

    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for i, p in enumerate(preds, 1):
        images.append({"id": i, "file_name": p.file_name, "width": p.width, "height": p.height})
        for j, (b, s, c) in enumerate(zip(p.boxes.tolist(), p.scores.tolist(), p.labels.tolist(), strict=True)):
            w, h = b[2] - b[0], b[3] - b[1]
            ann = {"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1,
                   "bbox": [round(b[0], 2), round(b[1], 2), round(w, 2), round(h, 2)],
                   "area": round(w * h, 2), "iscrowd": 0, "score": round(float(s), 6)}
            if p.masks is not None:
                ann["segmentation"] = rle(p.masks[j])
                ann["area"] = int(p.masks[j].sum())
            anns.append(ann)
        if p.label_map is not None:  # semantic: one region per class present, score 1
            for k in range(1, len(classes) + 1):
                m = p.label_map == k
                if m.any():
                    ys, xs = np.nonzero(m)
                    x0, y0 = int(xs.min()), int(ys.min())
                    anns.append({"id": len(anns) + 1, "image_id": i, "category_id": k,
                                 "bbox": [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0],
                                 "area": int(m.sum()), "iscrowd": 0, "score": 1.0, "segmentation": rle(m)})
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


def write_video(result: Any, out: str | Path) -> Path:
    """`<video name>.video.json`: per-frame detections with track ids and the per-track summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result.file_name}.video.json"
    path.write_bytes(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2))
    return path


def common_root(files: Sequence[str | Path]) -> Path:
    """The deepest folder holding every file (their names are relative to it in an import)."""
    folders = [os.path.dirname(os.path.abspath(f)) for f in files]
    return Path(os.path.commonpath(folders)) if folders else Path.cwd()


def to_samples(preds: Sequence[Prediction], files: Sequence[str | Path], root: str | Path) -> Iterator[Sample]:
    """Predictions as samples of their image files: boxes (or the best class of a classifier) as annotations with
    `source=model` and the score as `confidence`; file names relative to `root`. An image with no detection is
    MISSING (nobody labelled it), not NULL."""
    root = os.path.abspath(root)
    for pred, f in zip(preds, files, strict=True):
        name = Path(os.path.relpath(os.path.abspath(f), root)).as_posix()
        anns: list[Annotation] = []
        if pred.task == "classify" and pred.probabilities is not None:
            best = int(pred.probabilities.argmax())
            anns.append(Annotation(pred.classes[best], Label(), source=Source.MODEL,
                                   confidence=min(max(float(pred.probabilities[best]), 0.0), 1.0)))
        elif pred.label_map is not None:
            for k in range(1, len(pred.classes) + 1):
                if (m := pred.label_map == k).any():
                    anns.append(Annotation(pred.classes[k - 1], Mask.from_array(m.astype(np.uint8)),
                                           source=Source.MODEL, confidence=1.0))
        else:
            for j, (b, sc, c) in enumerate(zip(pred.boxes.tolist(), pred.scores.tolist(), pred.labels.tolist(),
                                               strict=True)):
                geometry: Box | Mask = Box(*b)
                if pred.masks is not None and pred.masks[j].any():
                    geometry = Mask.from_array(pred.masks[j].astype(np.uint8))
                anns.append(Annotation(pred.classes[int(c)], geometry, source=Source.MODEL,
                                       confidence=min(max(float(sc), 0.0), 1.0)))
        yield Sample(ImageRef(name, path=str(f)), tuple(anns),
                     state=LabelState.ANNOTATED if anns else LabelState.MISSING)


def prediction_classes(classes: Sequence[str]) -> ClassMap:
    return ClassMap.from_names(classes, start=1)
