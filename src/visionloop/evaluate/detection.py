"""One call for a detection or instance-segmentation evaluation of COCO files: metrics, confusion matrix,
TIDE breakdown, error events and (optionally) PNG plots. This is what `visionloop evaluate
--predictions … --ground-truth …` runs; the model-bound evaluation will call it too."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionloop.evaluate.coco import CocoMetrics, metrics_from_inputs
from visionloop.evaluate.confusion import DetectionConfusion, detection_confusion
from visionloop.evaluate.errors import ErrorAnalysis, analyse_errors
from visionloop.evaluate.inputs import IouType, Source, load_inputs
from visionloop.evaluate.matching import match_images

log = logging.getLogger(__name__)


@dataclass
class DetectionEvaluation:
    metrics: CocoMetrics
    confusion: DetectionConfusion
    errors: ErrorAnalysis
    ground_truth: str | None = None  # file paths, when read from files
    predictions: str | None = None
    plots: list[str] = field(default_factory=list)

    def to_json(self, *, events: bool = True) -> dict[str, Any]:
        return {"ground_truth": self.ground_truth, "predictions": self.predictions,
                "metrics": self.metrics.to_json(), "confusion": self.confusion.to_json(),
                **self.errors.to_json(events=events), "plots": self.plots}


def evaluate_detections(ground_truth: Source, predictions: Source, *, iou_type: IouType | str | None = None,
                        iou_threshold: float = 0.5, background_threshold: float = 0.1,
                        score_threshold: float = 0.25, plots: Path | None = None) -> DetectionEvaluation:
    """COCO metrics, confusion matrix (at `iou_threshold`, `score_threshold`), TIDE breakdown (dAP on
    mAP@`iou_threshold`) and every false positive/negative; PR curves and the confusion matrix as PNGs in
    `plots` when given."""
    inputs = load_inputs(ground_truth, predictions, iou_type=iou_type)
    if inputs.filled_areas:
        log.warning("%d ground-truth annotations have no 'area': used width × height of their box",
                    inputs.filled_areas)
    metrics = metrics_from_inputs(inputs)
    matches = list(match_images(inputs, iou_threshold=iou_threshold))
    confusion = detection_confusion(inputs, iou_threshold=iou_threshold, score_threshold=score_threshold,
                                    matches=matches)
    errors = analyse_errors(inputs, iou_threshold=iou_threshold, background_threshold=background_threshold,
                            matches=matches)
    result = DetectionEvaluation(metrics, confusion, errors, inputs.gt_path, inputs.pred_path)
    if plots is not None:
        from visionloop.evaluate.plots import confusion_png, pr_curves

        plots = Path(plots)
        result.plots = [str(pr_curves(metrics, plots / "pr_curve.png", iou=iou_threshold)),
                        str(confusion_png(confusion, plots / "confusion_matrix.png"))]
    return result
