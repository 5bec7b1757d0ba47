"""OCR: PP-OCR text detection + recognition on ONNX Runtime, through rapidocr's own pipeline (DB
post-processing, crops, text direction, CTC decoding) — the well-kept implementation, not a copy of it.

    p = OcrPredictor(det, rec, cls)          # files or bytes; the detector carries visionloop's metadata
    p.predict(rgb).to_json()                 # {"detections": [{"class": "text", "text": ..., "polygon": ...}]}
    OcrPredictor(det, rec, cls, device="cuda")   # CUDA execution provider, as `Predictor(device="cuda")`

The device is chosen as for every other predictor (`infer.predictor.choose_providers`: cpu, the default, or
cuda, refused at once when this onnxruntime has no GPU provider) and handed to rapidocr's onnxruntime engine
config (`EngineConfig.onnxruntime.use_cuda`, `cuda_ep_cfg.device_id`), which builds all three sessions with
it. rapidocr's onnxruntime engine knows CUDA but not TensorRT: where `choose_providers` would pick TensorRT
first, OCR runs on CUDA.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError
from visionloop.infer.prediction import Prediction

log = logging.getLogger(__name__)


def engine_params(device: str) -> dict[str, Any]:
    """rapidocr's onnxruntime engine config for `device`: {} on cpu (its default, CPU only); on cuda[:N] the
    CUDA execution provider on GPU N (0 without an index). A device `choose_providers` refuses is refused here."""
    from visionloop.infer.predictor import choose_providers, gpu_index, provider_names

    providers = provider_names(choose_providers(device))
    if providers == ["CPUExecutionProvider"]:
        return {}
    if "CUDAExecutionProvider" not in providers:
        raise VisionLoopError("OCR on the GPU needs onnxruntime's CUDA execution provider (rapidocr's onnxruntime "
                              f"engine has no TensorRT); this onnxruntime offers {', '.join(providers)}",
                              hint="pip install onnxruntime-gpu, or use --device cpu")
    return {"EngineConfig.onnxruntime.use_cuda": True,
            "EngineConfig.onnxruntime.cuda_ep_cfg.device_id": gpu_index(device)}


class OcrPredictor:
    task = "ocr"

    def __init__(self, det: str | Path | bytes, rec: str | Path | bytes, cls: str | Path | bytes | None = None, *,
                 threads: int | None = None, device: str = "cpu") -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError:
            raise VisionLoopError("the OCR pipeline needs the rapidocr package",
                                  hint="pip install 'rapidocr==3.10.*'") from None
        import onnxruntime as ort

        self._tmp = tempfile.TemporaryDirectory(prefix="visionloop-ocr-")  # bytes → files rapidocr can open
        paths = {k: self._file(k, v) for k, v in (("det", det), ("rec", rec), ("cls", cls)) if v is not None}
        meta = ort.InferenceSession(str(paths["det"]), providers=["CPUExecutionProvider"]).get_modelmeta()
        m = meta.custom_metadata_map
        self.preprocessing: dict[str, Any] = json.loads(m.get("visionloop.preprocessing", "{}"))
        self.classes: list[str] = json.loads(m.get("visionloop.classes", '["text"]'))
        self.width = self.height = int(self.preprocessing.get("max_side", 960))
        params: dict[str, Any] = {"Det.model_path": str(paths["det"]), "Rec.model_path": str(paths["rec"]),
                                  "Global.use_cls": "cls" in paths, "Global.log_level": "error",
                                  "Global.max_side_len": self.width}
        if "cls" in paths:
            params["Cls.model_path"] = str(paths["cls"])
        if threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        params.update(engine_params(device))
        self.device = device
        self.engine = RapidOCR(params=params)
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)

    def _file(self, kind: str, src: str | Path | bytes) -> Path:
        if isinstance(src, bytes):
            path = Path(self._tmp.name) / f"{kind}.onnx"
            path.write_bytes(src)
            return path
        path = Path(src)
        if not path.is_file():
            raise VisionLoopError(f"the OCR {kind} model is missing", path=path, hint="re-add it: visionloop gallery add text-ocr")
        return path

    def predict(self, image: np.ndarray, *, conf: float = 0.25, file_name: str = "", max_det: int = 100,
                **_: Any) -> Prediction:
        """Text regions of an RGB image: polygons (4 points), axis-aligned boxes, the strings read, confidences.
        `conf` drops lines read with a lower score (rapidocr's `text_score`; its own default is 0.5): 0.25 as every
        other predictor, the CLI and the API, so the three answer alike."""
        h, w = image.shape[:2]
        out = self.engine(np.ascontiguousarray(image[..., ::-1]), text_score=conf)  # PP-OCR reads BGR
        pred = Prediction(file_name, w, h, "ocr", self.classes)
        polys = np.asarray(out.boxes, np.float32).reshape(-1, 4, 2) if out.boxes is not None else np.zeros((0, 4, 2))
        texts = list(out.txts or ())
        scores = np.asarray(out.scores or (), np.float32)
        keep = np.arange(min(len(scores), max_det))  # rapidocr's reading order: top to bottom, left to right
        pred.polygons = polys[keep]
        pred.texts = [texts[i] for i in keep]
        pred.scores = scores[keep]
        pred.labels = np.zeros(len(keep), np.int64)
        pred.boxes = (np.concatenate([pred.polygons.min(1), pred.polygons.max(1)], axis=1).astype(np.float32)
                      if len(keep) else np.zeros((0, 4), np.float32))
        return pred

    def predict_file(self, path: str | Path, **kw: Any) -> Prediction:
        import cv2

        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            from visionloop.core.errors import ImageError

            raise ImageError("cannot read the image", path=path, hint="pass a JPEG, PNG, BMP, TIFF or WebP file")
        return self.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), file_name=Path(path).name, **kw)
