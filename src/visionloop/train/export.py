"""Export a registered model to ONNX (fp32, optionally INT8), with a parity check and stored metadata.

    result = export_model(store, "m1", int8=True)
    result.parity       # {"boxes": 1.2e-4, "scores": 3e-7}: max |onnxruntime - torch| on fixed inputs
    result.int8         # accuracy on the validation split, fp32 vs int8, and the delta

The graph takes float32 NCHW RGB pixels on 0..255 of the model's input size (batch dynamic) and
returns decoded boxes + per-class scores (detection; plus mask coefficients and prototypes for
instance segmentation), per-pixel class probabilities (semantic) or class probabilities
(classification); thresholds, NMS and mask assembly are numpy in `visionloop.infer`. The file's metadata_props hold the
preprocessing (`visionloop.preprocessing`), class names (`visionloop.classes`), task, model and
version, so `visionloop.infer.Predictor` needs nothing else.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionloop import models as M
from visionloop.core.errors import VisionLoopError
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.store.models import ExportInfo, ModelInfo

log = logging.getLogger(__name__)

#: parity bounds between onnxruntime and torch eager on the same input (fp32)
BOUNDS = {"boxes": 0.05, "scores": 1e-3, "probabilities": 1e-4, "coefs": 1e-3, "protos": 1e-3,
          "segmentation": 1e-3}
#: outputs whose parity is relative to their largest magnitude (unbounded linear outputs: mask coefficients
#: and prototypes reach tens, where float32 kernels of two runtimes differ by 1e-3 absolute)
RELATIVE = ("coefs", "protos")
#: the graph's outputs per task, in order (`visionloop.infer.Predictor` reads them by position)
OUTPUTS = {"detect": ["boxes", "scores"], "segment": ["boxes", "scores", "coefs", "protos"],
           "semantic": ["segmentation"], "classify": ["probabilities"]}
OPSET = 17


@dataclass
class ExportResult:
    model: str
    fp32: ExportInfo
    int8: ExportInfo | None = None
    parity: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "fp32": self.fp32.to_json(),
                "int8": self.int8.to_json() if self.int8 else None, "parity": self.parity}


def load_net(store: Store, info: ModelInfo) -> Any:
    if not info.weights_sha256:
        raise VisionLoopError(f"model {info.name} has no weights (status {info.status})",
                              hint="finish its training first (`visionloop train --resume`)")
    net = M.build(info.arch, info.hyper["config"])
    state = torch.load(io.BytesIO(store.blobs.get(info.weights_sha256)), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()


def metadata(info: ModelInfo) -> dict[str, str]:
    return {"visionloop.preprocessing": json.dumps(info.preprocessing, sort_keys=True),
            "visionloop.classes": json.dumps(info.classes), "visionloop.task": info.task,
            "visionloop.model": info.name, "visionloop.arch": info.arch, "visionloop.version": info.version,
            "visionloop.multi_label": json.dumps(bool(info.hyper.get("multi_label", False)))}


def to_onnx(net: Any, info: ModelInfo) -> bytes:
    import onnx

    w, h = info.input_size
    mod = net.export_module(w, h).eval()
    x = torch.zeros(1, 3, h, w)
    outputs = OUTPUTS[info.task]
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(mod, (x,), buf, dynamo=False, opset_version=OPSET, input_names=["images"],
                          output_names=outputs,
                          dynamic_axes={"images": {0: "batch"}, **{o: {0: "batch"} for o in outputs}})
    proto = onnx.load_from_string(buf.getvalue())
    del proto.metadata_props[:]
    for k, v in metadata(info).items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "visionloop"
    return proto.SerializeToString()


def parity(net: Any, info: ModelInfo, data: bytes, *, seed: int = 0) -> dict[str, float]:
    """Max |onnxruntime - torch| per output on two fixed inputs (random pixels, a flat grey image); for the
    `RELATIVE` outputs divided by max(1, the output's largest magnitude)."""
    from visionloop.infer import Predictor

    w, h = info.input_size
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 256, (1, 3, h, w)).astype(np.float32), np.full((1, 3, h, w), 114, np.float32)]
    p = Predictor(data)
    names = OUTPUTS[info.task]
    out = dict.fromkeys(names, 0.0)
    mod = net.export_module(w, h).eval()
    for x in inputs:
        with torch.no_grad():
            ref = mod(torch.from_numpy(x))
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = p.raw(x)
        for n, a, b in zip(names, ref, got, strict=True):
            scale = max(1.0, float(np.abs(a.numpy()).max())) if n in RELATIVE else 1.0
            out[n] = max(out[n], float(np.abs(a.numpy() - b).max()) / scale)
    return out


def export_model(store: Store, model: str | int, *, to: str = "onnx", int8: bool = False, net: Any = None,
                 calibration: int = 32) -> ExportResult:
    if to != "onnx":
        raise VisionLoopError(f"cannot export to {to!r} yet", hint="use --to onnx")
    info = registry.get(store, model)
    net = (net if net is not None else load_net(store, info)).cpu().eval()
    data = to_onnx(net, info)
    diffs = parity(net, info, data)
    for k, v in diffs.items():
        if v > BOUNDS[k]:
            raise VisionLoopError(f"ONNX parity failed for {info.name}: max |onnx - torch| of {k} is {v:.3g} "
                                  f"(bound {BOUNDS[k]:g})", hint="report this as a bug")
    fp32 = registry.add_export(store, info.id, format="onnx", precision="fp32", data=data,
                               parity={"max_abs_diff": diffs, "bounds": {k: BOUNDS[k] for k in diffs},
                                       "relative": [k for k in diffs if k in RELATIVE]},
                               meta=metadata(info))
    result = ExportResult(info.name, fp32, parity=diffs)
    if int8:
        q = quantize_int8(store, info, data, calibration=calibration)
        acc = accuracy(store, info, {"fp32": data, "int8": q})
        if acc:
            acc["delta"] = {k: round(acc["int8"][k] - v, 6) for k, v in acc["fp32"].items()
                            if isinstance(v, int | float)}
        result.int8 = registry.add_export(store, info.id, format="onnx", precision="int8", data=q, metrics=acc,
                                          meta=metadata(info))
    return result


def _images(store: Store, info: ModelInfo, split: str, limit: int | None = None) -> list[tuple[np.ndarray, Any]]:
    from visionloop.versions import VersionDataset

    ds = VersionDataset(store, info.version_id if info.version_id is not None else info.version, split,
                        masks=info.task in ("segment", "semantic"))
    out = []
    for i in range(len(ds) if limit is None else min(limit, len(ds))):
        img, target = ds[i]
        out.append((img, target))
    return out


def quantize_int8(store: Store, info: ModelInfo, data: bytes, *, calibration: int = 32) -> bytes:
    """Static INT8 (QDQ, per-channel weights) calibrated on train images through the model's preprocessing."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from visionloop.infer import Predictor

    p = Predictor(data)
    calib = [p.preprocess(img)[0] for img, _ in _images(store, info, "train", calibration)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"images": x}

    with tempfile.TemporaryDirectory(prefix="visionloop-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        logging.disable(logging.WARNING)  # onnxruntime.quantization's advice ("consider pre-processing", one
        try:  # "expected bias to be an initializer" per GroupNorm conv) goes to the root logger: not the user's
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        proto = onnx.load(str(dst))
    del proto.metadata_props[:]
    for k, v in {**metadata(info), "visionloop.precision": "int8"}.items():
        proto.metadata_props.add(key=k, value=v)
    return proto.SerializeToString()


def accuracy(store: Store, info: ModelInfo, files: dict[str, bytes]) -> dict[str, Any]:
    """Each file's accuracy on the validation split, end to end through `Predictor` (original pixels)."""
    from visionloop.infer import Predictor
    from visionloop.train.metrics import classification_metrics, detection_metrics

    split = info.hyper.get("valid_split")
    if not split:
        return {}
    items = _images(store, info, split)
    out: dict[str, Any] = {"split": split, "images": len(items)}
    for name, data in files.items():
        p = Predictor(data)
        if info.task in ("detect", "segment"):
            seg = info.task == "segment"
            preds = [p.predict(img, conf=0.05) for img, _ in items]
            out[name] = detection_metrics([(q.boxes, q.scores, q.labels, q.masks) for q in preds],
                                          [t for _, t in items], num_classes=len(info.classes), masks=seg)
        elif info.task == "semantic":
            from visionloop.train.metrics import semantic_metrics

            preds = [p.predict(img) for img, _ in items]
            out[name] = semantic_metrics([q.label_map for q in preds], [t["label_map"] for _, t in items],
                                         num_classes=len(info.classes))
        else:
            probs = np.stack([p.predict(img).probabilities for img, _ in items])
            multi = bool(info.hyper.get("multi_label"))
            if multi:
                tg = np.zeros((len(items), len(info.classes)), np.float32)
                for i, (_, t) in enumerate(items):
                    tg[i, t["image_labels"]] = 1
            else:
                tg = np.asarray([int(t["image_labels"][0]) for _, t in items])
            out[name] = classification_metrics(probs, tg, multi_label=multi)
    return out
