"""COCO detection (bbox) and instance-segmentation (segm) metrics.

The engine is faster-coco-eval (C++ evaluate/accumulate): its summary numbers are identical to
pycocotools' (the tests compare them on fixed fixtures to 1e-9 and `bench/evaluate.py` checks equality
at 500,000 detections); single cells of its precision array can differ from pycocotools' in the last bit
(1.0 where pycocotools has 1 - 2.2e-16, as pycocotools adds `np.spacing(1)` to the denominator).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from visionloop.evaluate.inputs import CocoInputs, IouType, Source, load_inputs

log = logging.getLogger(__name__)

#: the 12 summary numbers, in pycocotools' order (`COCOeval.stats`)
STAT_NAMES = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
              "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")


def _defined(x: float) -> float | None:
    """pycocotools writes -1 where a metric is undefined (no ground truth): None here, null in JSON."""
    return None if x < 0 else float(x)


@dataclass
class ClassMetrics:
    """One category's AP (IoU .50:.95, .50, .75) and AR@100, over all areas; None without ground truth."""

    category_id: int
    name: str
    ap: float | None
    ap50: float | None
    ap75: float | None
    ar100: float | None
    ground_truth: int  # non-crowd ground-truth instances
    predictions: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CocoMetrics:
    """COCO metrics of one evaluation; fields are None where pycocotools reports -1."""

    iou_type: str
    map: float | None
    map50: float | None
    map75: float | None
    map_small: float | None
    map_medium: float | None
    map_large: float | None
    ar1: float | None
    ar10: float | None
    ar100: float | None
    ar_small: float | None
    ar_medium: float | None
    ar_large: float | None
    per_class: list[ClassMetrics]
    images: int
    ground_truth: int
    predictions: int
    stats: list[float]  # the 12 numbers exactly as pycocotools' COCOeval.stats (with -1)
    # accumulate() output, for PR curves: precision [T, R, K, A, M], recall [T, K, A, M]
    precision: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros(0))
    recall: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros(0))
    iou_thresholds: list[float] = field(default_factory=list)
    recall_thresholds: list[float] = field(default_factory=list, repr=False)

    def pr_curve(self, iou: float = 0.5) -> dict[str, Any]:
        """The PR curves at one IoU (area all, 100 detections) as JSON: COCO's interpolated precision at its
        101 recall thresholds (`precision[t, :, k, 0, -1]`), per class (None for a class without ground
        truth) and `mean` over the classes that have some (negative cells counted as 0, as `plots` draws)."""
        if self.precision.size == 0:
            return {"iou": iou, "recall": [], "classes": [], "mean": []}
        t = int(np.argmin(np.abs(np.asarray(self.iou_thresholds) - iou)))
        prec = self.precision[t, :, :, 0, -1]  # [R, K]
        classes = []
        defined = []
        for k, c in enumerate(self.per_class):
            col = prec[:, k]
            ok = bool((col > -1).any())
            if ok:
                defined.append(k)
            classes.append({"category_id": c.category_id, "name": c.name,
                            "ap": float(np.mean(col[col > -1])) if ok else None,
                            "precision": [float(x) for x in np.clip(col, 0, None)] if ok else None})
        mean = np.clip(prec[:, defined], 0, None).mean(axis=1) if defined else np.zeros(0)
        return {"iou": float(self.iou_thresholds[t]), "recall": [float(x) for x in self.recall_thresholds],
                "classes": classes, "mean": [float(x) for x in mean]}

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"iou_type": self.iou_type}
        d.update({name: getattr(self, name) for name in STAT_NAMES})
        d.update(images=self.images, ground_truth=self.ground_truth, predictions=self.predictions,
                 per_class=[c.to_json() for c in self.per_class])
        return d


def run_cocoeval(gt: dict[str, Any], results: list[dict[str, Any]], iou_type: IouType | str,
                 *, iou_thresholds: list[float] | None = None) -> Any:
    """evaluate + accumulate + summarize on faster-coco-eval; returns the COCOeval object.

    `gt` and `results` are normalised (see `inputs`); faster-coco-eval writes into the result dicts.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt, print_function=log.debug)
    coco_dt = coco_gt.loadRes(results)
    ev = COCOeval_faster(coco_gt, coco_dt, str(iou_type), print_function=log.debug)
    if iou_thresholds is not None:
        ev.params.iouThrs = np.asarray(iou_thresholds, dtype=np.float64)
    ev.evaluate()
    ev.accumulate()
    if iou_thresholds is None:
        ev.summarize()
    return ev


def map_at(gt: dict[str, Any], results: list[dict[str, Any]], iou_type: IouType | str, iou: float) -> float:
    """COCO mAP at one IoU threshold (area all, 100 detections), as pycocotools' `AP@[IoU=iou]`."""
    ev = run_cocoeval(gt, results, iou_type, iou_thresholds=[iou])
    s = ev.eval["precision"][0, :, :, 0, -1]
    return float(np.mean(s[s > -1])) if (s > -1).any() else -1.0


def metrics_from_inputs(inputs: CocoInputs) -> CocoMetrics:
    """COCO metrics of validated inputs."""
    # the engine writes id/area/iscrowd (and a box polygon, or a mask's bbox) into the results it loads;
    # mask results are copied so that a later evaluation of the same inputs sees them as given
    results = inputs.predictions if inputs.iou_type is IouType.BBOX else [dict(p) for p in inputs.predictions]
    ev = run_cocoeval(inputs.ground_truth, results, inputs.iou_type)
    stats = [float(x) for x in np.asarray(ev.stats, dtype=np.float64)[:12]]
    precision = np.asarray(ev.eval["precision"])
    recall = np.asarray(ev.eval["recall"])
    cat_ids = [int(c) for c in ev.params.catIds]
    iou_thrs = np.asarray(ev.params.iouThrs)
    n_gt: dict[int, int] = dict.fromkeys(cat_ids, 0)
    for a in inputs.ground_truth["annotations"]:
        if not a["iscrowd"]:
            n_gt[a["category_id"]] += 1
    n_pred: dict[int, int] = dict.fromkeys(cat_ids, 0)
    for p in inputs.predictions:
        n_pred[p["category_id"]] += 1

    def mean(a: np.ndarray) -> float | None:
        return float(np.mean(a[a > -1])) if (a > -1).any() else None

    t50 = np.where(np.isclose(iou_thrs, 0.5))[0]
    t75 = np.where(np.isclose(iou_thrs, 0.75))[0]
    per_class = []
    for k, cid in enumerate(cat_ids):
        p = precision[:, :, k, 0, -1]
        per_class.append(ClassMetrics(
            category_id=cid, name=inputs.categories[cid], ap=mean(p), ap50=mean(p[t50]), ap75=mean(p[t75]),
            ar100=mean(recall[:, k, 0, -1]), ground_truth=n_gt[cid], predictions=n_pred[cid]))
    return CocoMetrics(
        iou_type=str(inputs.iou_type), **{name: _defined(v) for name, v in zip(STAT_NAMES, stats, strict=True)},
        per_class=per_class, images=len(inputs.ground_truth["images"]), ground_truth=sum(n_gt.values()),
        predictions=len(inputs.predictions), stats=stats, precision=precision, recall=recall,
        iou_thresholds=[float(x) for x in iou_thrs], recall_thresholds=[float(x) for x in ev.params.recThrs])


def coco_metrics(ground_truth: Source, predictions: Source, *, iou_type: IouType | str | None = None) -> CocoMetrics:
    """COCO mAP, mAP50, mAP75, small/medium/large, AR@1/10/100 and per-class AP/AR.

    `ground_truth`: a COCO dict or the path of an instances JSON; `predictions`: a COCO results list or
    the path of one. `iou_type` None: segm when the predictions carry segmentations, else bbox.
    """
    return metrics_from_inputs(load_inputs(ground_truth, predictions, iou_type=iou_type))
