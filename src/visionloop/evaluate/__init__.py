"""Evaluation: COCO metrics (faster-coco-eval, equal to pycocotools), classification and semantic metrics,
detection confusion, TIDE-style error breakdown and error events — pure functions over files and arrays."""

from visionloop.evaluate.classification import (
    ClassificationMetrics,
    classification_metrics,
    multilabel_metrics,
)
from visionloop.evaluate.coco import ClassMetrics, CocoMetrics, coco_metrics
from visionloop.evaluate.confusion import DetectionConfusion, detection_confusion
from visionloop.evaluate.detection import DetectionEvaluation, evaluate_detections
from visionloop.evaluate.errors import ErrorAnalysis, ErrorEvent, ErrorType, TideBreakdown, analyse_errors
from visionloop.evaluate.inputs import CocoInputs, IouType, load_inputs
from visionloop.evaluate.semantic import SemanticConfusion, SemanticMetrics, semantic_metrics

__all__ = [
    "ClassMetrics", "ClassificationMetrics", "CocoInputs", "CocoMetrics", "DetectionConfusion",
    "DetectionEvaluation", "ErrorAnalysis", "ErrorEvent", "ErrorType", "IouType", "SemanticConfusion",
    "SemanticMetrics", "TideBreakdown", "analyse_errors", "classification_metrics", "coco_metrics",
    "detection_confusion", "evaluate_detections", "load_inputs", "multilabel_metrics", "semantic_metrics",
]
