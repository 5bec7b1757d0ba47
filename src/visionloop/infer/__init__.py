"""Inference on ONNX Runtime: `Predictor` (no torch, no store), numpy post-processing, output writers.

Tiled inference and video come later.
"""

from visionloop.infer.output import write_predictions
from visionloop.infer.predictor import Prediction, Predictor, available_providers, choose_providers

__all__ = ["Prediction", "Predictor", "available_providers", "choose_providers", "write_predictions"]
