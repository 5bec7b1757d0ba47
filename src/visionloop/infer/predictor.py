"""Predictor: an exported model on ONNX Runtime. Imports neither torch nor the store.

    p = Predictor("model.onnx")                       # CPU; device="cuda:1": CUDA (TensorRT) on GPU 1
    pred = p.predict_file("photo.jpg", conf=0.25)      # boxes in the photo's own pixels
    pred.to_json()

The preprocessing (input size, letterbox or stretch, pixel range) is read from the file's
metadata (`visionloop.preprocessing`), and the resize is the `Resize` op of `visionloop.transforms`
— the op training used — so what the model sees here is what it saw in training. Box decoding is
inside the graph; thresholds and class-wise NMS are numpy (`visionloop.infer.post`).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import ImageError, VisionLoopError
from visionloop.infer.decoders import DECODERS, unletterbox_points
from visionloop.infer.masks import instance_masks, semantic_map
from visionloop.infer.post import select, unletterbox
from visionloop.infer.prediction import Prediction
from visionloop.infer.session import open_session
from visionloop.transforms import Frame, Resize, ResizeMode

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


#: an execution provider as onnxruntime takes it: a name, or (name, provider options)
Provider = str | tuple[str, dict[str, Any]]
DEVICE = re.compile(r"cuda(?::(\d+))?")


def gpu_index(device: str) -> int:
    """The GPU index of cuda[:N] (0 without one); any other device string is refused."""
    if (m := DEVICE.fullmatch(device)) is None:
        raise VisionLoopError(f"unknown device {device!r}", hint="use cpu, cuda or cuda:N (N: the GPU's index)")
    return int(m.group(1) or 0)


def choose_providers(device: str = "cpu") -> list[Provider]:
    """cpu → CPU only; cuda[:N] → TensorRT / CUDA where this onnxruntime has them, each on GPU N (`device_id`,
    0 without an index), CPU as the fallback."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    index = gpu_index(device)
    have = available_providers()
    gpu = [p for p in GPU_PROVIDERS if p in have]
    if not gpu:
        raise VisionLoopError("this onnxruntime has no CUDA/TensorRT execution provider",
                              hint="pip install onnxruntime-gpu, or use --device cpu")
    return [*((p, {"device_id": index}) for p in gpu), "CPUExecutionProvider"]


def provider_names(providers: list[Provider]) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in providers]


class Predictor:
    def __init__(self, model: str | Path | bytes, *, providers: list[Provider] | None = None, threads: int | None = None,
                 device: str = "cpu", spin_us: int | None = None) -> None:
        self.session = open_session(model, providers=providers or choose_providers(device), threads=threads,
                                    spin_us=spin_us,
                                    what="model", hint="pass a file exported by `visionloop model export`")
        meta = self.session.get_modelmeta().custom_metadata_map
        if "visionloop.preprocessing" not in meta:
            raise VisionLoopError("the ONNX file has no visionloop preprocessing metadata",
                                  path=None if isinstance(model, bytes) else str(model),
                                  hint="export it with `visionloop model export`")
        self.meta = meta
        self.preprocessing: dict[str, Any] = json.loads(meta["visionloop.preprocessing"])
        self.classes: list[str] = json.loads(meta["visionloop.classes"])
        self.task: str = meta.get("visionloop.task", "detect")
        self.width, self.height = int(self.preprocessing["width"]), int(self.preprocessing["height"])
        self._resize = Resize(width=self.width, height=self.height, mode=ResizeMode(self.preprocessing["resize"]))
        self.input_name = self.session.get_inputs()[0].name
        self.providers = self.session.get_providers()
        decoder = self.preprocessing.get("decoder")
        if decoder is not None and decoder not in DECODERS:
            raise VisionLoopError(f"the ONNX file asks for an unknown output decoder {decoder!r}",
                                  path=None if isinstance(model, bytes) else str(model),
                                  hint=f"decoders of this visionloop: {', '.join(DECODERS)}; upgrade visionloop")
        self._decode = DECODERS[decoder] if decoder else None

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """HWC uint8 RGB → (1, 3, H, W) float32 on 0..255 and the 3×3 matrix image → input."""
        frame = Frame.from_array(image, [], bgr=False)
        params = self._resize.make_params(frame, np.random.default_rng(0))
        self._resize.apply(frame, params)
        x = frame.image().transpose(2, 0, 1)[None].astype(np.float32)
        return np.ascontiguousarray(x), params["matrix"]

    def raw(self, x: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs on a batch (a gallery model's raw outputs decoded to visionloop's layout)."""
        outs = list(self.session.run(None, {self.input_name: x}))
        return self._decode(outs) if self._decode is not None else outs

    def predict(self, image: np.ndarray, *, conf: float = 0.25, iou: float = 0.6, max_det: int = 100,
                file_name: str = "", tile: tuple[int, int] | None = None, overlap: float = 0.2,
                full: bool = False, merge: str = "nms") -> Prediction:
        """Detections in the image's own pixels. `tile=(rows, cols)`: tiled inference (`infer.tiles`):
        overlapping tiles (plus the whole image with `full`), merged class-wise by `merge` (nms | wbf)."""
        if tile is not None and self.task in ("segment", "semantic"):
            raise VisionLoopError(f"tiled prediction is for detection models, not {self.task}",
                                  hint="predict without --tile")
        if tile is not None and self.task != "classify":
            from visionloop.infer.tiles import predict_tiled

            return predict_tiled(self, image, tile=tile, overlap=overlap, full=full, merge_method=merge, conf=conf,
                                 iou=iou, max_det=max_det, file_name=file_name)
        h, w = image.shape[:2]
        x, matrix = self.preprocess(image)
        outs = self.raw(x)
        pred = Prediction(file_name, w, h, self.task, self.classes)
        if self.task == "classify":
            pred.probabilities = outs[0][0]
            return pred
        if self.task == "semantic":
            pred.label_map = semantic_map(outs[0][0], matrix, w, h)
            return pred
        index, pred.scores, pred.labels = select(outs[0][0], outs[1][0], conf=conf, iou=iou, max_det=max_det)
        pred.boxes = unletterbox(outs[0][0][index].reshape(-1, 4), matrix, w, h)
        if self.task == "segment":
            pred.masks = instance_masks(outs[2][0][index], outs[3][0], pred.boxes, matrix, w, h)
        elif len(outs) > 2:  # landmarks of a gallery detector (faces: eyes, nose, mouth corners)
            pred.keypoints = unletterbox_points(outs[2][0][index], matrix, w, h).reshape(len(index), outs[2].shape[-1] // 2, 2)
        return pred

    def predict_file(self, path: str | Path, **kw: Any) -> Prediction:
        import cv2

        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # applies EXIF orientation, as training's decode
        if bgr is None:
            raise ImageError("cannot read the image", path=path, hint="pass a JPEG, PNG, BMP, TIFF or WebP file")
        return self.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), file_name=Path(path).name, **kw)
