"""Label errors in object detection: where a model that did not train on an image disagrees with its labels.

    findings = score_image(gt_boxes, gt_labels, pred_boxes, pred_labels, pred_scores)   # pure numpy
    ranked = rank_images([ImageLabels(...), ...])                                        # worst image first
    report = find_label_errors(store, "m3", split="valid", top=20, tag="relabel")        # a project's model

The method follows the ideas of ObjectLab (Tkachenko, Thyagarajan, Mueller 2023, "ObjectLab: Automated
Diagnosis of Mislabeled Images in Object Detection Data"): compare each image's annotations with
out-of-sample predictions and score the patterns annotators get wrong. It is implemented here (cleanlab,
which ships ObjectLab, is AGPL); the scores are this module's own, each in [0, 1], higher = more likely wrong:

- every prediction p is *owned* by the annotation it overlaps most (IoU ≥ `overlap`, else by none);
- per annotation a (class c): its best same-class prediction j (largest score·IoU among those it owns) and its
  best other-class one k;
  - **misplaced**  = s_j · (1 − IoU(a, j)): a confident prediction of the same class sits elsewhere on the object;
  - **swapped**    = max(0, s_k·IoU(a, k) − s_j·IoU(a, j)): another class explains the box better than its own;
  - **spurious**   = 1 − max{s_p : IoU(a, p) ≥ overlap}: nothing the model believes is there;
  - the annotation's finding is the largest of the three; its partner prediction (j for misplaced, k for swapped)
    is the suggested fix (move the box / relabel it), a spurious box's fix is to delete it;
- per prediction p that is no annotation's partner and no duplicate (IoU ≥ `DUPLICATE` with a partner or a
  stronger missing one): **missing** = s_p · (1 − max_a IoU(a, p)) (add the box).

The scores s are calibrated first (`calibration`): a detector's raw scores are not probabilities (a briefly
trained FCOS rarely scores a correct box above 0.7), so each class's scores are divided by the median score
the model gives that class's annotations it confirms (same class, IoU ≥ `CONFIRM`) and clipped to 1 — a typical
correct detection counts as certain, and "no confident prediction" means low for this model and class.

An image's score is its largest finding (an image is as wrong as its worst label), ties broken by the sum;
images rank by it. Predictions must be out-of-sample: a model scores the images it was trained on as it
learned them, errors included, so `find_label_errors` takes the held-out split of the model's version, or
trains K models on K − 1 folds each (`folds`) and lets each predict the fold it did not see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError
from visionloop.core.geometry import box_iou_matrix

log = logging.getLogger(__name__)

#: IoU at which a prediction counts as touching an annotation
OVERLAP = 0.1
#: score floor of the predictions read from a model
DEFAULT_CONF = 0.05
#: IoU at which an unexplained prediction is a duplicate of a stronger one (not a missing box)
DUPLICATE = 0.5
#: IoU at which a prediction confirms an annotation when calibrating the scores
CONFIRM = 0.5
#: findings under this score are not listed (they still count towards nothing: an image's score is its maximum)
MIN_FINDING = 0.05


class Kind(StrEnum):
    MISSING = "missing"  # an object the model sees that no annotation covers
    MISPLACED = "misplaced"  # an annotation whose same-class prediction sits elsewhere
    SWAPPED = "swapped"  # an annotation the model gives another class
    SPURIOUS = "spurious"  # an annotation with no confident prediction on it


FIX = {Kind.MISSING: "add the box", Kind.MISPLACED: "move the box", Kind.SWAPPED: "change the class",
       Kind.SPURIOUS: "delete the box"}


@dataclass
class Finding:
    kind: Kind
    score: float
    annotation: int | None  # index into the image's annotations (None for missing)
    prediction: int | None  # index into the image's predictions (None for spurious)
    iou: float  # IoU of the annotation and its partner prediction (missing: the prediction's best IoU)


def _f(v: float) -> float:
    return float(round(v, 6))


def score_image(gt_boxes: np.ndarray, gt_labels: Sequence[Any], pred_boxes: np.ndarray, pred_labels: Sequence[Any],
                pred_scores: np.ndarray, *, overlap: float = OVERLAP) -> list[Finding]:
    """Every finding of one image (each annotation once, each unexplained prediction once), largest first.
    Boxes are (N, 4) xyxy in one pixel frame; labels compare by equality (class names or ids)."""
    gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    ps = np.asarray(pred_scores, np.float64).reshape(-1)
    if len(gt) != len(gt_labels) or len(pb) != len(pred_labels) or len(pb) != len(ps):
        raise ValueError("boxes, labels and scores differ in length")
    if ((ps < 0) | (ps > 1)).any():
        raise ValueError("prediction scores must lie in [0, 1]")
    n, m = len(gt), len(pb)
    iou = box_iou_matrix(gt, pb) if n and m else np.zeros((n, m))
    owner = np.full(m, -1)
    if n and m:
        best = iou.argmax(axis=0)
        owner = np.where(iou[best, np.arange(m)] >= overlap, best, -1)
    gl = np.asarray([str(x) for x in gt_labels], dtype=object)
    pl = np.asarray([str(x) for x in pred_labels], dtype=object)
    partnered = np.zeros(m, bool)
    out: list[Finding] = []
    for a in range(n):
        own = np.flatnonzero(owner == a)
        agree = ps[own] * iou[a, own]
        same, other = own[pl[own] == gl[a]], own[pl[own] != gl[a]]
        j = int(same[np.argmax(agree[pl[own] == gl[a]])]) if len(same) else None
        k = int(other[np.argmax(agree[pl[own] != gl[a]])]) if len(other) else None
        a_same = ps[j] * iou[a, j] if j is not None else 0.0
        a_other = ps[k] * iou[a, k] if k is not None else 0.0
        touching = iou[a] >= overlap if m else np.zeros(0, bool)
        scores = {Kind.MISPLACED: ps[j] * (1.0 - iou[a, j]) if j is not None else 0.0,
                  Kind.SWAPPED: max(0.0, a_other - a_same),
                  Kind.SPURIOUS: 1.0 - (ps[touching].max() if touching.any() else 0.0)}
        kind = max(scores, key=lambda x: scores[x])  # ties: misplaced, then swapped, then spurious (dict order)
        partner = j if kind == Kind.MISPLACED else k if kind == Kind.SWAPPED else None
        if j is not None:
            partnered[j] = True
        if kind == Kind.SWAPPED and k is not None:
            partnered[k] = True
        out.append(Finding(kind, float(scores[kind]), a, partner, float(iou[a, partner]) if partner is not None
                           else float(iou[a].max()) if m else 0.0))
    kept = list(np.flatnonzero(partnered).tolist())
    pp = box_iou_matrix(pb, pb) if m else np.zeros((0, 0))
    for p in sorted(np.flatnonzero(~partnered).tolist(), key=lambda q: (-ps[q], q)):
        if kept and pp[p, kept].max() >= DUPLICATE:  # a second box on an object already explained or listed
            continue
        kept.append(p)
        best_iou = float(iou[:, p].max()) if n else 0.0
        out.append(Finding(Kind.MISSING, float(ps[p] * (1.0 - best_iou)), None, p, best_iou))
    out.sort(key=lambda f: (-f.score, f.annotation if f.annotation is not None else n + (f.prediction or 0)))
    return out


# -- images ------------------------------------------------------------------------------------------------------
@dataclass
class ImageLabels:
    """One image's annotations (with their ids) and a model's out-of-sample predictions, in the image's pixels."""

    image_id: int
    file_name: str
    boxes: np.ndarray  # (N, 4) xyxy
    labels: list[str]
    annotation_ids: list[int]
    pred_boxes: np.ndarray  # (M, 4) xyxy
    pred_labels: list[str]
    pred_scores: np.ndarray
    sha256: str | None = None
    fold: int | None = None  # which fold model predicted it (k-fold), None for a held-out split


@dataclass
class LabelError:
    """One finding on a project image: what is wrong, how sure, and the fix the model suggests."""

    image_id: int
    file_name: str
    kind: str
    score: float
    annotation_id: int | None
    label: str | None
    box: list[float] | None  # the annotation's xyxy
    fix_label: str | None  # the predicted class (missing, misplaced, swapped)
    fix_box: list[float] | None  # the predicted box
    fix_score: float | None
    iou: float

    @property
    def fix(self) -> str:
        k = Kind(self.kind)
        if k == Kind.SWAPPED:
            return f"change the class to {self.fix_label}"
        if k == Kind.SPURIOUS:
            return "delete the box"
        return f"{FIX[k]} ({self.fix_label} at {', '.join(f'{v:.0f}' for v in self.fix_box or [])})"

    def to_json(self) -> dict[str, Any]:
        r = None if self.box is None else [_f(v) for v in self.box]
        return {"image_id": self.image_id, "file_name": self.file_name, "kind": self.kind, "score": _f(self.score),
                "annotation_id": self.annotation_id, "label": self.label, "box": r, "fix": self.fix,
                "fix_label": self.fix_label, "fix_box": None if self.fix_box is None else [_f(v) for v in self.fix_box],
                "fix_score": None if self.fix_score is None else _f(self.fix_score), "iou": _f(self.iou)}


@dataclass
class ImageScore:
    image_id: int
    file_name: str
    sha256: str | None
    score: float
    total: float  # sum of the findings' scores (the tie-break)
    findings: list[LabelError] = field(default_factory=list)
    fold: int | None = None

    @property
    def kind(self) -> str | None:
        return self.findings[0].kind if self.findings else None

    def to_json(self) -> dict[str, Any]:
        return {"image_id": self.image_id, "file_name": self.file_name, "score": _f(self.score), "kind": self.kind,
                "fold": self.fold, "findings": [f.to_json() for f in self.findings]}


def calibration(images: Sequence[ImageLabels], *, confirm: float = CONFIRM) -> dict[str, float]:
    """class → the median of the best same-class score on each annotation a prediction confirms (IoU ≥ confirm):
    how sure this model is, for this class, of an object it gets right."""
    best: dict[str, list[float]] = {}
    for im in images:
        gt = np.asarray(im.boxes, np.float64).reshape(-1, 4)
        pb = np.asarray(im.pred_boxes, np.float64).reshape(-1, 4)
        if not len(gt) or not len(pb):
            continue
        iou = box_iou_matrix(gt, pb)
        pl = np.asarray(im.pred_labels, dtype=object)
        for a, label in enumerate(im.labels):
            ok = (iou[a] >= confirm) & (pl == label)
            if ok.any():
                best.setdefault(label, []).append(float(np.asarray(im.pred_scores)[ok].max()))
    return {c: float(np.median(v)) for c, v in best.items()}


def calibrated(scores: np.ndarray, labels: Sequence[str], scale: dict[str, float] | None) -> np.ndarray:
    """Scores divided by their class's calibration (classes without one: unchanged), clipped to 1."""
    s = np.asarray(scores, np.float64).reshape(-1)
    if not scale:
        return s
    div = np.asarray([scale.get(x, 1.0) for x in labels], np.float64).reshape(-1)
    return np.minimum(1.0, s / np.maximum(div, 1e-6))


def image_score(im: ImageLabels, *, overlap: float = OVERLAP, min_finding: float = MIN_FINDING,
                scale: dict[str, float] | None = None) -> ImageScore:
    found = score_image(im.boxes, im.labels, im.pred_boxes, im.pred_labels,
                        calibrated(im.pred_scores, im.pred_labels, scale), overlap=overlap)
    errors = []
    for f in found:
        if f.score < min_finding:
            continue
        a, p = f.annotation, f.prediction
        errors.append(LabelError(
            im.image_id, im.file_name, str(f.kind), f.score, im.annotation_ids[a] if a is not None else None,
            im.labels[a] if a is not None else None,
            [float(v) for v in np.asarray(im.boxes, np.float64).reshape(-1, 4)[a]] if a is not None else None,
            im.pred_labels[p] if p is not None else None,
            [float(v) for v in np.asarray(im.pred_boxes, np.float64).reshape(-1, 4)[p]] if p is not None else None,
            float(im.pred_scores[p]) if p is not None else None, f.iou))
    top = found[0].score if found else 0.0
    return ImageScore(im.image_id, im.file_name, im.sha256, top, float(sum(f.score for f in found)), errors, im.fold)


def rank_images(images: Sequence[ImageLabels], *, overlap: float = OVERLAP, min_finding: float = MIN_FINDING,
                calibrate: bool = True) -> list[ImageScore]:
    """The images' scores, most likely mislabelled first (ties: larger sum, then image id). With `calibrate`,
    the scores are calibrated per class over these images first (`calibration`), per fold when the images come
    from several fold models (`ImageLabels.fold`)."""
    scales: dict[int | None, dict[str, float] | None] = {}
    for fold in {im.fold for im in images}:  # each fold's model has its own score scale
        scales[fold] = calibration([im for im in images if im.fold == fold]) if calibrate else None
    scored = [image_score(im, overlap=overlap, min_finding=min_finding, scale=scales[im.fold]) for im in images]
    scored.sort(key=lambda s: (-s.score, -s.total, s.image_id))
    return scored


# -- a project's model -------------------------------------------------------------------------------------------
@dataclass
class LabelErrors:
    model: str  # the model (held-out) or the models of the folds, comma-separated
    version: str | None
    split: str | None
    folds: int | None
    images: list[ImageScore]  # every scored image, worst first
    top: int  # how many of them are reported (and tagged)
    tag: str | None = None
    batch_id: int | None = None
    fold_models: list[str] = field(default_factory=list)
    inputs: list[ImageLabels] = field(default_factory=list, repr=False)  # what was scored (annotations, predictions)

    @property
    def reported(self) -> list[ImageScore]:
        return self.images[:self.top]

    def counts(self) -> dict[str, int]:
        """Reported images by the kind of their worst finding."""
        out: dict[str, int] = {}
        for im in self.reported:
            if im.kind is not None:
                out[im.kind] = out.get(im.kind, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "split": self.split, "folds": self.folds,
                "fold_models": self.fold_models, "scored": len(self.images), "top": self.top, "tag": self.tag,
                "batch_id": self.batch_id, "kinds": self.counts(), "images": [im.to_json() for im in self.reported]}


def predict(predictor: Any, file: str, conf: float) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One image file through an `infer.Predictor`: (boxes xyxy, class names, scores)."""
    from visionloop.infer.embed import read_rgb

    pred = predictor.predict(read_rgb(file), conf=conf)
    names = [predictor.classes[int(c)] for c in pred.labels.tolist()]
    return np.asarray(pred.boxes, np.float64).reshape(-1, 4), names, np.asarray(pred.scores, np.float64)


def _predictor(store: Any, model: str | int) -> tuple[Any, Any]:
    from visionloop.infer import Predictor
    from visionloop.store import models as registry

    info = registry.get(store, model)
    if info.task not in ("detect", "segment"):
        raise VisionLoopError(f"model {info.name} is a {info.task} model; label errors take a detector",
                              hint="pass a model trained with --task detect")
    if info.status != "ready":
        raise VisionLoopError(f"model {info.name} is {info.status}, not ready", hint="finish its training first")
    e = info.export("onnx", "fp32")
    if e is None:
        raise VisionLoopError(f"model {info.name} has no ONNX export", hint=f"run `visionloop model export {info.name}`")
    return info, Predictor(registry.blob_file(store, e.sha256))


def held_out_images(store: Any, version: str | int, split: str | None) -> tuple[str, str, list[int]]:
    """(version name, split, project image ids) of a version's held-out split (default valid, else test): the
    source images of its items in that split that are not also in its train split."""
    from sqlalchemy import select

    from visionloop.store.schema import VersionItemRow
    from visionloop.versions import show_version

    info = show_version(store, version)
    with store.session() as s:
        rows = s.execute(select(VersionItemRow.split, VersionItemRow.source_image_id)
                         .where(VersionItemRow.version_id == info.id)).all()
    by_split: dict[str, set[int]] = {}
    for sp, i in rows:
        by_split.setdefault(sp, set()).add(int(i))
    train = by_split.get("train", set())
    if split is None:
        split = next((sp for sp in ("valid", "test") if by_split.get(sp, set()) - train), None)
        if split is None:
            raise VisionLoopError(f"version {info.name} holds no images outside its train split, so its model has "
                                  "seen every one", hint="pass --folds K (trains K models), or version with a "
                                                         "valid split")
    ids = sorted(by_split.get(split, set()) - train)
    if not ids:
        raise VisionLoopError(f"version {info.name} has no {split!r} images outside its train split",
                              hint="pick another --split, or pass --folds K")
    return info.name, split, ids


def find_label_errors(store: Any, model: str | int | None, *, version: str | int | None = None,
                      split: str | None = None, folds: int | None = None,
                      train_fold: Callable[[str, int], str] | None = None, conf: float = DEFAULT_CONF,
                      top: int | None = None, tag: str | None = None, save: bool = True, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> LabelErrors:
    """Score a project's labelled images for label errors with out-of-sample predictions and rank them.

    Held out (default): `model`'s ONNX export predicts the images of `split` (default valid, else test) of
    `version` (default: the one it was trained on) that are not in its train split; it refuses the train split.
    `folds` K: the labelled images are cut into K seeded folds; for each, `train_fold(version, k)` trains a
    model on a version of everything else (the recipe of `version`, or of `model`'s, with the fold left out by
    tag) and returns its name; that model predicts the fold. The images are the project's own (original
    pixels, current annotations), so findings name the annotation ids a relabel fixes. `top` images are kept
    in the report (default every image with a finding); `save` tags them (`tag`, one undoable batch)."""
    from visionloop.store import models as registry
    from visionloop.store import tags as tag_store

    if folds is not None and folds < 2:
        raise VisionLoopError(f"--folds must be at least 2, got {folds}")
    if top is not None and top < 1:
        raise VisionLoopError(f"--top must be at least 1, got {top}")
    labelled = {im.id: im for im in tag_store.images(store)}
    for im in tag_store.images(store, unlabelled_only=True):
        labelled.pop(im.id, None)
    plan: list[tuple[Any, list[int], int | None]] = []  # (predictor, image ids, fold)
    fold_models: list[str] = []
    if folds is None:
        if model is None:
            raise VisionLoopError("label errors need a model", hint="pass MODEL, or --folds K to train K models")
        info, predictor = _predictor(store, model)
        if split == "train":
            raise VisionLoopError(f"model {info.name} was trained on the train split: its predictions there are "
                                  "not out-of-sample and would agree with the errors it learned",
                                  hint="pass --split valid (or test), or --folds K to train K models on the other "
                                       "folds")
        if version is None and info.version_id is None:
            raise VisionLoopError(f"the version model {info.name} was trained on is gone", hint="pass --version V")
        vname, split, ids = held_out_images(store, version if version is not None else info.version_id, split)
        ids = [i for i in ids if i in labelled]
        if not ids:
            raise VisionLoopError(f"no image of version {vname}'s {split!r} split is labelled in the project now",
                                  hint="pass another --split or --folds K")
        plan.append((predictor, ids, None))
        name = info.name
    else:
        if train_fold is None:
            raise VisionLoopError("--folds needs a trainer", hint="run it through `visionloop label-errors`")
        vname, split = None, None
        recipe_of = _base_recipe(store, model, version)
        ids_all = sorted(labelled)
        if len(ids_all) < folds:
            raise VisionLoopError(f"{len(ids_all)} labelled images cannot make {folds} folds", hint="use fewer folds")
        order = np.random.default_rng(seed).permutation(len(ids_all))
        for k in range(folds):
            fold_ids = sorted(ids_all[int(i)] for i in order[k::folds])
            fold_tag = f"label-errors-fold-{k + 1}-of-{folds}-seed-{seed}"
            tag_store.add_tag(store, fold_ids, fold_tag, source=f"visionloop label-errors --folds {folds}",
                              summary={"fold": k + 1, "folds": folds, "seed": seed})
            fv = _fold_version(store, recipe_of, fold_tag)
            trained = train_fold(fv, k)
            fold_models.append(trained)
            plan.append((_predictor(store, trained)[1], fold_ids, k + 1))
        name = ", ".join(fold_models)
    boxes = tag_store.boxes(store, [i for _, ids, _ in plan for i in ids])
    total = sum(len(ids) for _, ids, _ in plan)
    done = 0
    inputs: list[ImageLabels] = []
    for predictor, ids, fold in plan:
        _check_classes(predictor.classes, {b.label for i in ids for b in boxes[i]})
        for i in ids:
            im = labelled[i]
            pb, pl, ps = predict(predictor, registry.blob_file(store, im.sha256), conf)
            anns = boxes[i]
            inputs.append(ImageLabels(i, im.file_name, np.asarray([b.box for b in anns], np.float64).reshape(-1, 4),
                                      [b.label for b in anns], [b.id for b in anns], pb, pl, ps, im.sha256, fold))
            done += 1
            if progress is not None:
                progress(done, total)
    ranked = rank_images(inputs)
    with_findings = sum(1 for r in ranked if r.findings)
    result = LabelErrors(name, vname, split, folds, ranked, min(top, len(ranked)) if top else with_findings,
                         fold_models=fold_models, inputs=inputs)
    if save and result.reported:
        result.batch_id, result.tag = tag_store.add_tag(
            store, [r.image_id for r in result.reported], tag, source=f"visionloop label-errors {name}",
            summary={"label_errors": True, "model": name, "top": result.top})
    log.info("scored %d images for label errors; %d reported", len(ranked), result.top)
    return result


def _check_classes(model_classes: Sequence[str], labels: set[str]) -> None:
    if labels and not labels & set(model_classes):
        raise VisionLoopError(f"the model predicts none of the annotations' classes ({', '.join(sorted(labels))})",
                              hint=f"its classes: {', '.join(model_classes)}; use a model trained on this project")


def _base_recipe(store: Any, model: str | int | None, version: str | int | None) -> dict[str, Any]:
    from visionloop.store import models as registry
    from visionloop.versions import show_version

    if version is None and model is not None:
        info = registry.get(store, model)
        version = info.version_id
    if version is None:
        return {"schema": 1, "seed": 0}
    return dict(show_version(store, version).recipe)


def _fold_version(store: Any, recipe: dict[str, Any], fold_tag: str) -> str:
    """A version of everything but the fold (all of it train), with the recipe's preprocessing and augmentation."""
    from visionloop.versions import create_version

    pre = dict(recipe.get("preprocess") or {})
    tags = dict(pre.get("filter_tags") or {})
    tags["exclude"] = [*tags.get("exclude", []), fold_tag]
    pre["filter_tags"] = tags
    r = {**recipe, "preprocess": pre, "split": {"mode": "random", "ratios": {"train": 1.0, "valid": 0.0, "test": 0.0}}}
    return create_version(store, r, workers=0).name


def draw(store: Any, result: LabelErrors, out: Any, *, crop: bool = True, per_image: int = 3) -> list[Any]:
    """The reported images' worst findings drawn as `visionloop errors --show` draws error events (one PNG
    each: the annotation green, the model's suggestion red), `<rank>_<kind>_<image stem>.png` in `out`."""
    from visionloop.evaluate.show import draw_events
    from visionloop.store.evaluations import EventInfo

    def xywh(b: list[float] | None) -> list[float] | None:
        return None if b is None else [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    events = []
    for rank, im in enumerate(result.reported, 1):
        for j, f in enumerate(im.findings[:per_image]):
            events.append(EventInfo(
                rank * 100 + j, 0, "false_negative" if f.kind == Kind.MISSING else "false_positive", f.kind,
                im.image_id, im.file_name, im.sha256, f.fix_label or f.label or "", f.label, f.score,
                xywh(f.box or f.fix_box), xywh(f.fix_box), xywh(f.box), f.annotation_id, f.iou))
    return draw_events(store, events, out, crop=crop)
