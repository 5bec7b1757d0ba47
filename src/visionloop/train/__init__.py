"""Training: a dataset version in, a registered, exported model out (torch; a lean loop).

    from visionloop.train import train, export_model
    result = train(store, "v1", task="detect", epochs=10, imgsz=320)
    export_model(store, result.model.name, int8=True)
"""

from visionloop.train.export import ExportResult, export_model
from visionloop.train.loop import Progress, TrainResult, parse_duration, train

__all__ = ["ExportResult", "Progress", "TrainResult", "export_model", "parse_duration", "train"]
