"""Evaluation: COCO metrics (faster-coco-eval, equal to pycocotools), classification and semantic metrics,
detection confusion, TIDE-style error breakdown and error events — pure functions over files and arrays."""

from visionloop.evaluate.coco import ClassMetrics, CocoMetrics, coco_metrics
from visionloop.evaluate.inputs import CocoInputs, IouType, load_inputs

__all__ = ["ClassMetrics", "CocoInputs", "CocoMetrics", "IouType", "coco_metrics", "load_inputs"]
