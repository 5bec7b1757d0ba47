"""Inference on ONNX Runtime: `Predictor` (no torch, no store), numpy post-processing, tiled inference
(`tiles`: `Predictor.predict(..., tile=(rows, cols))`), video frames and tracks (`video`), output writers.
"""

from visionloop.infer.output import write_predictions
from visionloop.infer.predictor import Prediction, Predictor, available_providers, choose_providers
from visionloop.infer.video import IoUTracker, VideoResult, predict_video

__all__ = ["IoUTracker", "Prediction", "Predictor", "VideoResult", "available_providers", "choose_providers",
           "predict_video", "write_predictions"]
