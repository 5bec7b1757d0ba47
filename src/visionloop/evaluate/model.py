"""Model-bound evaluation: a registered model's ONNX export on a split of a dataset version.

    result = evaluate_model(store, "m3", "v2", split="valid")     # runs, stores, returns
    result.detection.metrics.map50, result.evaluation_id
    evaluate_predictions(store, "results.json", "v2")             # a model trained elsewhere
    compare_models(store, "m2", "m3", "v2")                       # side by side, images that got worse

The ground truth is the version's own COCO export of the split (`versions.export_version`, annotations
only), so image ids are the ids a user sees in that export and category ids the version's class ids. The
images are read from the blob store through `VersionDataset` (decoded as training decodes them) and run
through `infer.Predictor` with the model's own preprocessing; the COCO results go to the same pure
`evaluate_detections` as `visionloop evaluate --predictions … --ground-truth …`. Classification models
get `classification_metrics` / `multilabel_metrics`. The evaluation and every error event are stored
(`store.evaluations`, lineage evaluation ← model, ← version).
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson

from visionloop.core.errors import FormatError, VisionLoopError
from visionloop.evaluate.classification import (
    ClassificationMetrics,
    classification_metrics,
    multilabel_metrics,
)
from visionloop.evaluate.detection import DetectionEvaluation, evaluate_detections
from visionloop.evaluate.inputs import Source
from visionloop.evaluate.semantic import SemanticMetrics
from visionloop.infer.masks import rle
from visionloop.store import evaluations as evaluation_store
from visionloop.store import models as registry
from visionloop.store.evaluations import EvaluationInfo, EventInfo
from visionloop.store.project import Store

log = logging.getLogger(__name__)

#: score floor of the detections evaluated (COCO mAP wants the low-confidence tail too)
EVAL_CONF = 0.001
MAX_DET = 100


@dataclass
class VersionSplit:
    """A version's split as COCO ground truth; `sha256[image_id]` is each image's blob."""

    version: str
    version_id: int
    split: str
    ground_truth: dict[str, Any]
    sha256: dict[int, str]

    @property
    def categories(self) -> dict[str, int]:
        return {c["name"]: c["id"] for c in self.ground_truth["categories"]}


@dataclass
class ModelEvaluation:
    model: str
    model_id: int
    version: str
    version_id: int
    split: str
    task: str
    images: int
    export: str  # e.g. onnx/fp32
    detection: DetectionEvaluation | None = None
    classification: ClassificationMetrics | None = None
    semantic: SemanticMetrics | None = None
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    evaluation_id: int | None = None
    predictions: list[dict[str, Any]] = field(default_factory=list, repr=False)  # COCO results (detection)
    skipped_predictions: int = 0  # of classes the version does not have

    def metrics_json(self) -> dict[str, Any]:
        """What is stored as the evaluation's metrics."""
        if self.detection is not None:  # with the PR curves at the matching IoU (the web UI draws them)
            return {**self.detection.to_json(events=False),
                    "pr_curve": self.detection.metrics.pr_curve(self.detection.errors.tide.iou_threshold)}
        if self.semantic is not None:
            return {"semantic": self.semantic.to_json()}
        assert self.classification is not None
        return {"classification": self.classification.to_json()}

    def summary(self) -> dict[str, float | None]:
        return summary_metrics(self.task, self.metrics_json())

    def to_json(self, *, events: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"evaluation_id": self.evaluation_id, "model": self.model, "model_id": self.model_id,
                             "version": self.version, "version_id": self.version_id, "split": self.split,
                             "task": self.task, "images": self.images, "export": self.export,
                             "skipped_predictions": self.skipped_predictions, **self.metrics_json()}
        if events:
            d["events"] = self.events
        return d


def summary_metrics(task: str, metrics: dict[str, Any]) -> dict[str, float | None]:
    """The headline numbers of a stored metrics JSON (for tables and comparisons)."""
    if "classification" in metrics:
        c = metrics["classification"]
        return {k: c.get(k) for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "micro_f1")}
    if "semantic" in metrics:
        return {k: metrics["semantic"].get(k) for k in ("miou", "pixel_accuracy")}
    m = metrics.get("metrics", {})
    out = {k: m.get(k) for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large", "ar100")}
    tide = metrics.get("tide", {})
    out.update(false_positives=tide.get("false_positives"), false_negatives=tide.get("false_negatives"))
    return out


def version_split(store: Store, version: str | int, split: str) -> VersionSplit:
    """The split's COCO ground truth exactly as `visionloop version export --format coco` writes it."""
    from visionloop.formats.base import ImageMode
    from visionloop.versions import export_version, show_version, version_samples

    info = show_version(store, version)
    shas = [s.image.sha256 for s in version_samples(store, info.id, split=split)]
    if not shas:
        raise VisionLoopError(f"version {info.name} has no images in split {split!r}",
                              hint="pick a split it has with --split (train, valid, test)")
    with tempfile.TemporaryDirectory(prefix="vl-eval-") as tmp:
        out = Path(tmp) / "coco"
        export_version(store, info.id, out, format="coco", split=split, images=ImageMode.NONE)
        files = sorted(out.rglob("*.json"))
        gt = orjson.loads(files[0].read_bytes())
    if len(gt["images"]) != len(shas):
        raise RuntimeError(f"COCO export has {len(gt['images'])} images, the split {len(shas)}")
    sha = {im["id"]: s for im, s in zip(gt["images"], shas, strict=True)}
    return VersionSplit(info.name, info.id, split, gt, sha)  # type: ignore[arg-type]


def _predictor(store: Store, info: registry.ModelInfo, precision: str, device: str) -> Any:
    from visionloop.infer import Predictor

    e = info.export("onnx", precision)
    if e is None:
        raise VisionLoopError(f"model {info.name} has no ONNX {precision} export",
                              hint=f"run `visionloop model export {info.name}{' --int8' if precision == 'int8' else ''}`")
    return Predictor(registry.blob_file(store, e.sha256), device=device)


def evaluate_model(store: Store, model: str | int, version: str | int | None = None, split: str = "valid", *,
                   iou_threshold: float = 0.5, score_threshold: float = 0.25, plots: Path | None = None,
                   precision: str = "fp32", device: str = "cpu", save: bool = True) -> ModelEvaluation:
    """Run `model`'s ONNX export on `split` of `version` (default: the version it was trained on), compute
    the metrics and error events, and store them (unless `save` is False)."""
    from visionloop.versions import VersionDataset

    info = registry.get(store, model)
    if info.status != "ready":
        raise VisionLoopError(f"model {info.name} is {info.status}, not ready", hint="finish its training first")
    if version is None:
        if info.version_id is None and info.hyper.get("gallery"):
            raise VisionLoopError(f"gallery model {info.name} was trained on no version of this project",
                                  hint="pass the version to evaluate it on: --dataset-version V "
                                       "(`visionloop version list`)")
        if info.version_id is None:
            raise VisionLoopError(f"the version model {info.name} was trained on is gone",
                                  hint="pass --dataset-version")
        version = info.version_id
    vs = version_split(store, version, split)
    predictor = _predictor(store, info, precision, device)
    ds = VersionDataset(store, vs.version_id, split)
    result = ModelEvaluation(info.name, info.id, vs.version, vs.version_id, split, info.task, len(ds),
                             f"onnx/{precision}")
    ids = [im["id"] for im in vs.ground_truth["images"]]
    if predictor.task == "classify":
        _classify(result, predictor, ds, vs, ids, info.hyper.get("multi_label", False))
    elif predictor.task == "semantic":
        _semantic(result, predictor, VersionDataset(store, vs.version_id, split, masks=True))
    else:
        cat_of = vs.categories
        model_cat = [cat_of.get(name) for name in predictor.classes]
        if all(c is None for c in model_cat):
            raise VisionLoopError(f"model {info.name} predicts none of the classes of version {vs.version} "
                                  f"(model: {_names(predictor.classes)}; version: {_names(list(cat_of))})",
                                  hint="evaluate on a version with the model's classes (a version recipe can "
                                       "rename classes)")
        if missing := [n for n, c in zip(predictor.classes, model_cat, strict=True) if c is None]:
            log.warning("model %s predicts classes that version %s does not have: %s (left out)", info.name,
                        vs.version, ", ".join(missing))
        results: list[dict[str, Any]] = []
        for k, image_id in enumerate(ids):
            image, target = ds[k]
            pred = predictor.predict(image, conf=EVAL_CONF, max_det=MAX_DET, file_name=target["file_name"])
            for j, (b, s, c) in enumerate(zip(pred.boxes.tolist(), pred.scores.tolist(), pred.labels.tolist(),
                                              strict=True)):
                cid = model_cat[int(c)]
                if cid is None:
                    result.skipped_predictions += 1
                    continue
                r = {"image_id": image_id, "category_id": cid, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                     "score": float(s)}
                if pred.masks is not None:
                    r["segmentation"] = rle(pred.masks[j])
                results.append(r)
        result.predictions = results
        segm = predictor.task == "segment"
        result.detection = evaluate_detections(boxes_as_polygons(vs.ground_truth) if segm else vs.ground_truth,
                                               results, iou_type="segm" if segm else "bbox",
                                               iou_threshold=iou_threshold, score_threshold=score_threshold,
                                               plots=plots)
        result.events = detection_events(result.detection, vs, results)
    if save:
        stored = evaluation_store.add(
            store, model_id=info.id, version_id=vs.version_id, version_name=vs.version, split=split, task=info.task,
            metrics=result.metrics_json(), images=result.images, events=result.events,
            params={"iou_threshold": iou_threshold, "score_threshold": score_threshold, "export": result.export,
                    "conf": EVAL_CONF, "max_det": MAX_DET})
        result.evaluation_id = stored.id
    return result


def _names(names: list[str], most: int = 8) -> str:
    return ", ".join(names[:most]) + (f", … ({len(names)} in all)" if len(names) > most else "")


def detection_events(ev: DetectionEvaluation, vs: VersionSplit, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluation's error events as rows for the store (boxes COCO [x, y, w, h])."""
    gts = {a["id"]: a for a in vs.ground_truth["annotations"]}
    names = {c["id"]: c["name"] for c in vs.ground_truth["categories"]}
    out = []
    for e in ev.errors.events:
        gt = gts.get(e.gt_id) if e.gt_id is not None else None
        out.append({"kind": e.kind.value, "error": e.error.value, "image_id": e.image_id, "file_name": e.file_name,
                    "sha256": vs.sha256.get(e.image_id), "category": e.category,
                    "gt_category": names.get(e.gt_category_id) if e.gt_category_id is not None else None,
                    "score": e.score, "box": [float(x) for x in e.bbox],
                    "pred_box": [float(x) for x in results[e.prediction]["bbox"]] if e.prediction is not None else None,
                    "gt_box": [float(x) for x in gt["bbox"]] if gt is not None else None,
                    "gt_id": e.gt_id, "iou": e.iou})
    return out


def _classify(result: ModelEvaluation, predictor: Any, ds: Any, vs: VersionSplit, ids: list[int],
              multi_label: bool) -> None:
    classes = list(predictor.classes)
    index = {n: i for i, n in enumerate(classes)}
    truth: list[Any] = []
    probs: list[np.ndarray] = []
    names = ds.class_names
    kept: list[tuple[int, str]] = []
    for k, image_id in enumerate(ids):
        image, target = ds[k]
        found = [index.get(names[j]) for j in target["image_labels"].tolist()]
        labels = [j for j in found if j is not None]
        if len(labels) != len(found) or (not multi_label and len(labels) != 1):
            log.warning("%s: labels %s do not fit the model's classes (left out)", target["file_name"],
                        [names[j] for j in target["image_labels"].tolist()])
            continue
        p = predictor.predict(image, file_name=target["file_name"]).probabilities
        probs.append(np.asarray(p, dtype=np.float64))
        if multi_label:
            row = np.zeros(len(classes), dtype=np.int64)
            row[labels] = 1
            truth.append(row)
        else:
            truth.append(labels[0])
        kept.append((image_id, target["file_name"]))
    if not probs:
        raise VisionLoopError(f"no image of split {vs.split!r} has labels of the model's classes",
                              hint=f"model classes: {', '.join(classes)}")
    scores = np.stack(probs)
    events: list[dict[str, Any]] = []
    if multi_label:
        y = np.stack(truth)
        result.classification = multilabel_metrics(y, scores, classes)
        pred = scores >= 0.5
        for (image_id, fname), t, p, s in zip(kept, y, pred, scores, strict=True):
            for c in np.flatnonzero(p & ~t.astype(bool)):
                events.append(_cls_event("false_positive", "classification", image_id, fname, vs, classes[c], None,
                                         float(s[c])))
            for c in np.flatnonzero(~p & t.astype(bool)):
                events.append(_cls_event("false_negative", "missed", image_id, fname, vs, classes[c], classes[c],
                                         float(s[c])))
    else:
        y = np.asarray(truth, dtype=np.int64)
        result.classification = classification_metrics(y, scores, classes)
        for (image_id, fname), t, s in zip(kept, y, scores, strict=True):
            p = int(s.argmax())
            if p != t:
                events.append(_cls_event("false_positive", "classification", image_id, fname, vs, classes[p],
                                         classes[t], float(s[p])))
    result.events = events
    result.images = len(kept)


def boxes_as_polygons(gt: dict[str, Any]) -> dict[str, Any]:
    """The ground truth with every object that has no segmentation given its box as a polygon (as
    segmentation training takes it), so mask mAP counts it instead of failing on it."""
    anns = []
    for a in gt["annotations"]:
        if not a.get("segmentation"):
            x, y, w, h = a["bbox"]
            a = {**a, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}
        anns.append(a)
    return {**gt, "annotations": anns}


def _semantic(result: ModelEvaluation, predictor: Any, ds: Any) -> None:
    """Per-class IoU and mIoU over the split's pixels (the label maps built as training builds them)."""
    from visionloop.evaluate.semantic import SemanticConfusion

    index = {n: i for i, n in enumerate(predictor.classes)}
    remap = np.asarray([0] + [index.get(n, -1) + 1 for n in ds.class_names], dtype=np.int64)
    if (remap[1:] == 0).any():
        missing = [n for n in ds.class_names if n not in index]
        raise VisionLoopError(f"the version has classes model {result.model} does not predict: {', '.join(missing)}",
                              hint="evaluate on a version with the model's classes")
    conf = SemanticConfusion(["background", *predictor.classes])
    for k in range(len(ds)):
        image, target = ds[k]
        truth = target["label_map"]
        truth = np.where(truth == 255, 255, remap[np.minimum(truth, len(remap) - 1)])
        conf.update(truth, predictor.predict(image, file_name=target["file_name"]).label_map)
    result.semantic = conf.result()


def _cls_event(kind: str, error: str, image_id: int, file_name: str, vs: VersionSplit, category: str,
               gt_category: str | None, score: float) -> dict[str, Any]:
    return {"kind": kind, "error": error, "image_id": image_id, "file_name": file_name,
            "sha256": vs.sha256.get(image_id), "category": category, "gt_category": gt_category, "score": score,
            "box": None, "pred_box": None, "gt_box": None, "gt_id": None, "iou": 0.0}


# -- predictions of a model trained elsewhere ----------------------------------------------------
def _name_matcher(gt_images: list[dict[str, Any]]) -> Any:
    exact = {im["file_name"]: im["id"] for im in gt_images}
    base: dict[str, list[int]] = {}
    for im in gt_images:
        base.setdefault(PurePosixPath(im["file_name"].replace("\\", "/")).name, []).append(im["id"])

    def match(name: str) -> int | None:
        if name in exact:
            return exact[name]
        found = base.get(PurePosixPath(str(name).replace("\\", "/")).name, [])
        return found[0] if len(found) == 1 else None

    return match


def match_predictions(data: Any, vs: VersionSplit, *, path: str = "predictions") -> list[dict[str, Any]]:
    """COCO results of another tool, on the version's ids.

    Accepted: a results list whose `image_id`s are the ids of the version's COCO export of the split; a
    results list whose entries carry `file_name` (matched by name, then by base name); a COCO file with
    `images` (file names) and scored `annotations` (as `visionloop predict --format coco` writes), whose
    categories are matched by name. Categories given by name (`category` / `category_name`) are matched by
    name as well."""
    match = _name_matcher(vs.ground_truth["images"])
    cat_ids = vs.categories
    valid_ids = {im["id"] for im in vs.ground_truth["images"]}
    names_of: dict[Any, str] | None = None
    cat_map: dict[Any, int] | None = None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list) and isinstance(data.get("images"), list):
        names_of = {im.get("id"): im.get("file_name", "") for im in data["images"] if isinstance(im, dict)}
        if isinstance(data.get("categories"), list):
            cat_map = {}
            for c in data["categories"]:
                if isinstance(c, dict) and c.get("name") in cat_ids:
                    cat_map[c.get("id")] = cat_ids[c["name"]]
        items = data["annotations"]
    elif isinstance(data, list):
        items = data
    else:
        raise FormatError("is neither a COCO results list nor a COCO file with scored annotations", path=path,
                          hint="give a JSON list of {image_id, category_id, bbox, score}")
    out: list[dict[str, Any]] = []
    unmatched: Counter[str] = Counter()
    for i, p in enumerate(items):
        if not isinstance(p, dict):
            raise FormatError("prediction is not an object", path=path, where=f"[{i}]",
                              hint="each result is {image_id, category_id, bbox, score}")
        q = dict(p)
        name = p.get("file_name") if "file_name" in p else (names_of.get(p.get("image_id")) if names_of else None)
        if name is not None:
            image_id = match(str(name))
            if image_id is None:
                unmatched[str(name)] += 1
                continue
            q["image_id"] = image_id
        elif p.get("image_id") not in valid_ids:
            raise FormatError(f"image_id {p.get('image_id')!r} is not an image of version {vs.version}'s "
                              f"{vs.split!r} COCO export", path=path, where=f"[{i}]",
                              hint="use the ids of `visionloop version export --format coco`, or give each "
                                   "result a file_name")
        label = p.get("category", p.get("category_name"))
        if isinstance(label, str):
            if label not in cat_ids:
                raise FormatError(f"class {label!r} is not a class of version {vs.version}", path=path,
                                  where=f"[{i}]", hint=f"classes: {', '.join(cat_ids)}")
            q["category_id"] = cat_ids[label]
        elif cat_map is not None:
            if p.get("category_id") not in cat_map:
                raise FormatError(f"category_id {p.get('category_id')!r} names no class of version {vs.version}",
                                  path=path, where=f"[{i}]", hint=f"classes: {', '.join(cat_ids)}")
            q["category_id"] = cat_map[p["category_id"]]
        for k in ("file_name", "category", "category_name", "id", "area", "iscrowd"):
            q.pop(k, None)
        out.append(q)
    if unmatched:
        first = next(iter(unmatched))
        raise FormatError(f"{len(unmatched)} image names match no image of version {vs.version}'s {vs.split!r} "
                          f"split, e.g. {first!r}", path=path,
                          hint="file names must equal those of the version's export (or their base names)")
    return out


def evaluate_predictions(store: Store, predictions: Source, version: str | int, split: str = "valid", *,
                         iou_type: str | None = None, iou_threshold: float = 0.5, score_threshold: float = 0.25,
                         plots: Path | None = None) -> DetectionEvaluation:
    """Evaluate COCO results made elsewhere against `split` of `version` (see `match_predictions`)."""
    path = str(predictions) if isinstance(predictions, str | Path) else "predictions"
    if isinstance(predictions, str | Path):
        try:
            data = orjson.loads(Path(predictions).read_bytes())
        except FileNotFoundError:
            raise VisionLoopError("no such file", path=predictions) from None
        except orjson.JSONDecodeError as e:
            raise FormatError(f"is not valid JSON ({e})", path=predictions) from None
    else:
        data = predictions
    vs = version_split(store, version, split)
    results = match_predictions(data, vs, path=path)
    ev = evaluate_detections(vs.ground_truth, results, iou_type=iou_type, iou_threshold=iou_threshold,
                             score_threshold=score_threshold, plots=plots)
    ev.predictions = path
    ev.ground_truth = f"version {vs.version} ({split})"
    return ev


# -- stored evaluations: errors and comparisons ---------------------------------------------------
def model_errors(store: Store, model: str | int, *, error: str | None = None, category: str | None = None,
                 version: str | int | None = None, split: str | None = None,
                 min_score: float = 0.0) -> tuple[EvaluationInfo, list[EventInfo]]:
    """The error events of the model's latest evaluation (on `version` / `split` when given); false
    positives scoring under `min_score` are left out (false negatives have no score and stay)."""
    info = registry.get(store, model)
    vid = None
    if version is not None:
        from visionloop.versions import show_version

        vid = show_version(store, version).id
    ev = evaluation_store.latest(store, model_id=info.id, version_id=vid, split=split)
    if ev is None:
        raise VisionLoopError(f"model {info.name} has not been evaluated"
                              + (f" on version {version}" if version is not None else ""),
                              hint=f"run `visionloop evaluate {info.name} --dataset-version V`")
    found = evaluation_store.events(store, ev.id, error=error, category=category)
    return ev, [e for e in found if e.score is None or e.kind != "false_positive" or e.score >= min_score]


@dataclass
class ImageChange:
    image_id: int
    file_name: str
    errors_before: int
    errors_after: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ModelComparison:
    """Two models' evaluations on one version split: metrics side by side (`rows`: name, older, newer,
    newer − older) and the images where the newer model (the higher id) has more errors: error events
    counted per image are the false negatives and the false positives scoring at least `min_score` (the
    evaluation's score threshold, 0.25 by default — the long low-confidence tail COCO mAP needs is not an
    error a user sees)."""

    older: EvaluationInfo
    newer: EvaluationInfo
    rows: list[tuple[str, float | None, float | None, float | None]]
    worse: list[ImageChange]
    better: int  # images with fewer errors
    min_score: float = 0.25

    def to_json(self) -> dict[str, Any]:
        return {"older": {"model": self.older.model, "evaluation_id": self.older.id},
                "newer": {"model": self.newer.model, "evaluation_id": self.newer.id},
                "version": self.newer.version, "split": self.newer.split,
                "metrics": [{"metric": n, "older": a, "newer": b, "delta": d} for n, a, b, d in self.rows],
                "min_score": self.min_score, "worse": [w.to_json() for w in self.worse], "better": self.better}


def _evaluation_for(store: Store, model: str | int, version: str | int, split: str,
                    **kw: Any) -> EvaluationInfo:
    from visionloop.versions import show_version

    info = registry.get(store, model)
    vid = show_version(store, version).id
    found = evaluation_store.latest(store, model_id=info.id, version_id=vid, split=split)
    if found is None:
        found = evaluation_store.get(store, evaluate_model(store, info.id, vid, split, **kw).evaluation_id or 0)
    return found


def compare_models(store: Store, a: str | int, b: str | int, version: str | int, split: str = "valid",
                   **kw: Any) -> ModelComparison:
    """Compare two models on `split` of `version`, reusing each one's latest evaluation there (evaluating
    it first when it has none)."""
    ea, eb = _evaluation_for(store, a, version, split, **kw), _evaluation_for(store, b, version, split, **kw)
    if ea.model_id == eb.model_id:
        raise VisionLoopError(f"both names are model {ea.model}", hint="compare two different models")
    return compare_evaluations(store, ea, eb)


def compare_evaluations(store: Store, ea: EvaluationInfo, eb: EvaluationInfo) -> ModelComparison:
    """Two stored evaluations of the same version split side by side (the older model first)."""
    if (ea.version_id, ea.version, ea.split) != (eb.version_id, eb.version, eb.split):
        raise VisionLoopError(f"evaluation {ea.id} is on {ea.version}/{ea.split} and {eb.id} on {eb.version}/{eb.split}",
                              hint="compare evaluations of the same version and split")
    if ea.task != eb.task:
        raise VisionLoopError(f"evaluation {ea.id} is of a {ea.task} model and {eb.id} of a {eb.task} model",
                              hint="compare models of one task")
    older, newer = (ea, eb) if (ea.model_id, ea.id) < (eb.model_id, eb.id) else (eb, ea)
    sa, sb = summary_metrics(older.task, older.metrics), summary_metrics(newer.task, newer.metrics)
    rows = []
    for name in sa:
        x, y = sa.get(name), sb.get(name)
        rows.append((name, x, y, (y - x) if x is not None and y is not None else None))

    min_score = float(newer.params.get("score_threshold", 0.25))

    def per_image(ev: EvaluationInfo) -> tuple[Counter[int], dict[int, str]]:
        counts: Counter[int] = Counter()
        names: dict[int, str] = {}
        for e in evaluation_store.events(store, ev.id):
            if e.kind == "false_positive" and e.score is not None and e.score < min_score:
                continue
            counts[e.image_id] += 1
            names[e.image_id] = e.file_name
        return counts, names

    ca, na = per_image(older)
    cb, nb = per_image(newer)
    worse = [ImageChange(i, nb[i], ca.get(i, 0), cb[i]) for i in sorted(cb) if cb[i] > ca.get(i, 0)]
    worse.sort(key=lambda w: (-(w.errors_after - w.errors_before), w.image_id))
    better = sum(1 for i in ca if ca[i] > cb.get(i, 0))
    return ModelComparison(older, newer, rows, worse, better, min_score)
