"""TIDE-style error breakdown and the error events (every false positive and false negative).

Definitions follow TIDE (Bolya et al., ECCV 2020, and its `tidecv` code), with t_f the foreground IoU
threshold (default 0.5) and t_b the background threshold (default 0.1). A prediction is a false positive
when COCO's own matching at t_f (see `matching`) leaves it unmatched; its error is the first that holds:

1. localization: its best IoU with a ground truth of its class is in [t_b, t_f);
2. classification: IoU >= t_f with a ground truth of another class;
3. duplicate: IoU >= t_f with a ground truth of its class that a higher-scoring prediction took;
4. background: IoU <= t_b with every ground truth (or the image has none);
5. both: anything else (wrong class and poorly localised).

A ground truth no prediction matched is *missed* unless a classification or localization error points
at it. IoUs are against non-crowd ground truth; predictions COCO ignores (on crowd regions) and those
beyond the 100 best of their class in an image are not errors.

dAP (what fixing one error type would add back) is measured oracle-style on the inputs and re-evaluated
with the COCO engine — the metric is COCO mAP at IoU t_f (mAP50 by default), not tidecv's own AP code:

- classification / localization: per ground truth, the highest-scoring such prediction becomes a perfect
  one (the ground truth's class and box or mask, same score); the others are removed (as in tidecv);
- both, duplicate, background: those predictions are removed;
- missed: those ground truths are removed (tidecv lowers the number of positives by as many);
- false positives / false negatives (TIDE's two special errors): every false positive removed / every
  unmatched ground truth removed.

Removing an unmatched prediction or an unmatched ground truth does not change any other match, so each
fix moves exactly the errors it names (except in an image with more than 100 predictions of one class,
where a removed prediction lets the 101st in).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from visionloop.evaluate.coco import map_at
from visionloop.evaluate.inputs import CocoInputs, IouType
from visionloop.evaluate.matching import FP, ImageMatch, gt_geometry, match_images

log = logging.getLogger(__name__)


class ErrorType(StrEnum):
    CLASSIFICATION = "classification"
    LOCALIZATION = "localization"
    BOTH = "both"
    DUPLICATE = "duplicate"
    BACKGROUND = "background"
    MISSED = "missed"


class EventKind(StrEnum):
    FALSE_POSITIVE = "false_positive"
    FALSE_NEGATIVE = "false_negative"


@dataclass(frozen=True)
class ErrorEvent:
    """One false positive (a prediction) or false negative (a ground truth).

    A false negative's `error` is `missed`, or `classification`/`localization` when such a false positive
    points at it (`prediction` then names the best of them). `gt_id` is the ground truth concerned (a false
    negative's own id; a false positive's nearest ground truth for its error type, None for background),
    `iou` the IoU between `prediction` and `gt_id` (0.0 when either is None). `bbox` is COCO
    [x, y, width, height]: the prediction's for a false positive, the ground truth's for a false negative.
    """

    kind: EventKind
    error: ErrorType
    image_id: int
    file_name: str
    category_id: int
    category: str
    bbox: tuple[float, float, float, float]
    score: float | None
    prediction: int | None  # index in the results list
    gt_id: int | None
    gt_category_id: int | None
    iou: float

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["kind"] = self.kind.value
        d["error"] = self.error.value
        d["bbox"] = list(self.bbox)
        return d


@dataclass
class TideBreakdown:
    """Error counts and the mAP each error type would add back (`delta`, same scale as `base`)."""

    metric: str  # e.g. "mAP@0.5 (bbox)"
    iou_threshold: float
    background_threshold: float
    base: float | None
    counts: dict[ErrorType, int]
    delta: dict[ErrorType, float]
    false_positive_delta: float
    false_negative_delta: float
    true_positives: int
    false_positives: int
    false_negatives: int

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "iou_threshold": self.iou_threshold,
                "background_threshold": self.background_threshold, "base": self.base,
                "counts": {k.value: v for k, v in self.counts.items()},
                "delta": {k.value: v for k, v in self.delta.items()},
                "false_positive_delta": self.false_positive_delta,
                "false_negative_delta": self.false_negative_delta,
                "true_positives": self.true_positives, "false_positives": self.false_positives,
                "false_negatives": self.false_negatives}


@dataclass
class ErrorAnalysis:
    tide: TideBreakdown
    events: list[ErrorEvent] = field(repr=False)

    def to_json(self, *, events: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"tide": self.tide.to_json()}
        if events:
            d["events"] = [e.to_json() for e in self.events]
        return d


@dataclass
class _Fixes:
    """What each fix does: predictions to replace by a perfect copy of a ground truth, to remove; ground
    truths to remove."""

    recover: dict[ErrorType, dict[int, dict[str, Any]]] = field(default_factory=dict)  # pred -> gt
    remove: dict[ErrorType, set[int]] = field(default_factory=dict)
    missed_gt: set[int] = field(default_factory=set)
    unmatched_gt: set[int] = field(default_factory=set)
    false_positives: set[int] = field(default_factory=set)


def _classify_image(m: ImageMatch, inputs: CocoInputs, t_f: float, t_b: float, fixes: _Fixes,
                    events: list[ErrorEvent]) -> tuple[int, int]:
    preds = inputs.predictions
    cats = inputs.categories
    fname = inputs.file_names.get(m.image_id, "")
    real = ~m.crowd  # TIDE compares with non-crowd ground truth only
    iou = np.where(real[None, :], m.iou, 0.0)
    same = m.dt_cat[:, None] == m.gt_cat[None, :]
    used = (m.gt_dt >= 0)[None, :]
    cls_iou = iou * same
    noncls_iou = iou * ~same
    used_cls_iou = cls_iou * used
    best: dict[int, tuple[float, int, ErrorType]] = {}  # gt column -> (score, row, type) of its best fixer
    fp_rows = np.flatnonzero(m.status == FP)
    fp_rows = fp_rows[np.argsort(-m.score[fp_rows], kind="mergesort")]
    has_gt = bool(real.any())
    for r in fp_rows:
        gt_col: int | None = None
        if not has_gt:
            error = ErrorType.BACKGROUND
        elif t_b <= cls_iou[r].max() < t_f:
            error, gt_col = ErrorType.LOCALIZATION, int(cls_iou[r].argmax())
        elif noncls_iou[r].max() >= t_f:
            error, gt_col = ErrorType.CLASSIFICATION, int(noncls_iou[r].argmax())
        elif used_cls_iou[r].max() >= t_f:
            error, gt_col = ErrorType.DUPLICATE, int(used_cls_iou[r].argmax())
        elif iou[r].max() <= t_b:
            error = ErrorType.BACKGROUND
            if iou[r].max() > 0:
                gt_col = int(iou[r].argmax())
        else:
            error, gt_col = ErrorType.BOTH, int(iou[r].argmax())
        index = int(m.dts[r])
        fixes.false_positives.add(index)
        if error in (ErrorType.CLASSIFICATION, ErrorType.LOCALIZATION) and gt_col is not None \
                and m.gt_dt[gt_col] < 0 and (gt_col not in best or best[gt_col][0] < m.score[r]):
            best[gt_col] = (float(m.score[r]), int(r), error)
        fixes.remove.setdefault(error, set()).add(index)
        p = preds[index]
        gt = m.gts[gt_col] if gt_col is not None else None
        events.append(ErrorEvent(
            EventKind.FALSE_POSITIVE, error, m.image_id, fname, int(p["category_id"]), cats[p["category_id"]],
            _bbox(p), float(p["score"]), index, gt["id"] if gt else None, gt["category_id"] if gt else None,
            float(m.iou[r, gt_col]) if gt_col is not None else 0.0))
    for col, (_, r, error) in best.items():
        index = int(m.dts[r])
        fixes.remove[error].discard(index)
        fixes.recover.setdefault(error, {})[index] = m.gts[col]
    fn = 0
    for col in np.flatnonzero(real & (m.gt_dt < 0)):
        g = m.gts[col]
        fn += 1
        fixes.unmatched_gt.add(g["id"])
        if col in best:
            _, r, error = best[col]
            index: int | None = int(m.dts[r])
            ov = float(m.iou[r, col])
        else:
            error, index, ov = ErrorType.MISSED, None, 0.0
            fixes.missed_gt.add(g["id"])
        events.append(ErrorEvent(
            EventKind.FALSE_NEGATIVE, error, m.image_id, fname, int(g["category_id"]), cats[g["category_id"]],
            tuple(float(x) for x in g["bbox"]), None, index, g["id"], g["category_id"], ov))  # type: ignore[arg-type]
    tp = int((m.status == 1).sum())
    return tp, fn


def _bbox(p: dict[str, Any]) -> tuple[float, float, float, float]:
    if "bbox" in p:
        b = p["bbox"]
    else:
        from faster_coco_eval.core import mask as mask_utils

        b = mask_utils.toBbox(p["segmentation"]).tolist()
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def _perfect(p: dict[str, Any], g: dict[str, Any], inputs: CocoInputs, sizes: dict[int, Any]) -> dict[str, Any]:
    d: dict[str, Any] = {"image_id": p["image_id"], "category_id": g["category_id"], "score": p["score"]}
    if inputs.iou_type is IouType.BBOX:
        d["bbox"] = list(g["bbox"])
    else:
        d["segmentation"] = gt_geometry(g, IouType.SEGM, sizes[g["image_id"]])
        if "bbox" in p:
            d["bbox"] = list(g["bbox"])
    return d


def _fixed_predictions(inputs: CocoInputs, remove: set[int], recover: dict[int, dict[str, Any]],
                       sizes: dict[int, Any]) -> list[dict[str, Any]]:
    out = []
    for i, p in enumerate(inputs.predictions):
        if i in recover:
            out.append(_perfect(p, recover[i], inputs, sizes))
        elif i not in remove:
            out.append(_clean(p, inputs.iou_type))
    return out


def _clean(p: dict[str, Any], iou_type: IouType) -> dict[str, Any]:
    """A fresh result dict (the engine writes id/area/segmentation into the ones it loads)."""
    d = {"image_id": p["image_id"], "category_id": p["category_id"], "score": p["score"]}
    if iou_type is IouType.SEGM:
        d["segmentation"] = p["segmentation"]
    if "bbox" in p and (iou_type is IouType.BBOX or "segmentation" in p):
        d["bbox"] = p["bbox"]
    return d


def analyse_errors(inputs: CocoInputs, *, iou_threshold: float = 0.5, background_threshold: float = 0.1,
                   with_delta: bool = True, matches: Iterable[ImageMatch] | None = None) -> ErrorAnalysis:
    """TIDE-style breakdown and error events of validated inputs (see the module docstring); `matches`:
    a `match_images` pass at `iou_threshold`, reused."""
    events: list[ErrorEvent] = []
    fixes = _Fixes()
    tp = fn = 0
    for m in matches if matches is not None else match_images(inputs, iou_threshold=iou_threshold):
        a, b = _classify_image(m, inputs, iou_threshold, background_threshold, fixes, events)
        tp += a
        fn += b
    counts = {t: 0 for t in ErrorType}
    for e in events:
        if e.kind is EventKind.FALSE_POSITIVE or e.error is ErrorType.MISSED:
            counts[e.error] += 1
    delta = {t: 0.0 for t in ErrorType}
    base: float | None = None
    fp_delta = fn_delta = 0.0
    if with_delta:
        sizes = {im["id"]: (im.get("height"), im.get("width")) for im in inputs.ground_truth["images"]}
        gt = inputs.ground_truth
        kind = inputs.iou_type

        def clean() -> list[dict[str, Any]]:  # fresh dicts per run: the engine writes into what it loads
            return [_clean(p, kind) for p in inputs.predictions]

        b = map_at(gt, clean(), kind, iou_threshold)
        base = None if b < 0 else b

        def gain(value: float) -> float:
            return max(0.0, value - b) if b >= 0 and value >= 0 else 0.0

        for t in ErrorType:
            if t is ErrorType.MISSED:
                if fixes.missed_gt:
                    delta[t] = gain(map_at(_without(gt, fixes.missed_gt), clean(), kind, iou_threshold))
                continue
            remove, recover = fixes.remove.get(t, set()), fixes.recover.get(t, {})
            if remove or recover:
                delta[t] = gain(map_at(gt, _fixed_predictions(inputs, remove, recover, sizes), kind, iou_threshold))
        if fixes.false_positives:
            fp_delta = gain(map_at(gt, _fixed_predictions(inputs, fixes.false_positives, {}, sizes), kind,
                                   iou_threshold))
        if fixes.unmatched_gt:
            fn_delta = gain(map_at(_without(gt, fixes.unmatched_gt), clean(), kind, iou_threshold))
    tide = TideBreakdown(
        metric=f"mAP@{iou_threshold:g} ({inputs.iou_type})", iou_threshold=iou_threshold,
        background_threshold=background_threshold, base=base, counts=counts, delta=delta,
        false_positive_delta=fp_delta, false_negative_delta=fn_delta, true_positives=tp,
        false_positives=len(fixes.false_positives), false_negatives=fn)
    return ErrorAnalysis(tide, events)


def _without(gt: dict[str, Any], ids: set[int]) -> dict[str, Any]:
    d = dict(gt)
    d["annotations"] = [dict(a) for a in gt["annotations"] if a["id"] not in ids]
    return d
