"""Instance and semantic segmentation: the heads learn, export with parity, and predict in the photo's pixels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from visionloop import formats
from visionloop.core.errors import VisionLoopError
from visionloop.core.geometry import IGNORE, Box, label_map
from visionloop.demo import synthetic
from visionloop.infer import Predictor
from visionloop.infer.masks import instance_masks, semantic_map
from visionloop.infer.post import select, unletterbox
from visionloop.ingest import import_dataset
from visionloop.models.instance import FCOSMaskDetector
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.train import train
from visionloop.train.export import load_net
from visionloop.versions import create_version

FAST = {"imgsz": 64, "batch": 4, "lr": 3e-3, "seed": 0}
SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.75, "valid": 0.25, "test": 0.0}}}


@pytest.fixture(scope="module")
def instance(shapes_project):
    store, version = shapes_project
    return store, version, train(store, version, task="segment", epochs=4, name="seg", **FAST)


@pytest.fixture(scope="module")
def semantic(shapes_project):
    store, version = shapes_project
    return store, version, train(store, version, task="semantic", epochs=4, name="sem", **FAST)


def _photo() -> np.ndarray:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (90, 130, 3)).astype(np.uint8)  # not the input size: letterbox + map back
    image[20:60, 30:70] = (250, 30, 30)
    return image


def test_instance_loss_falls_and_reports_mask_map(instance):
    _, _, r = instance
    losses = [h["loss"] for h in r.history]
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.8
    assert {"map", "map50", "mask_map", "mask_map50", "mask_map75"} <= set(r.metrics)
    info = r.model
    assert info.task == "segment" and info.arch == "fcos_seg_lite0"
    diffs = info.export("onnx", "fp32").parity["max_abs_diff"]
    assert set(diffs) == {"boxes", "scores", "coefs", "protos"}
    assert diffs["boxes"] <= 0.05 and diffs["scores"] <= 1e-3 and diffs["coefs"] <= 1e-3 and diffs["protos"] <= 1e-3


def test_instance_predictor_equals_torch(instance):
    store, _, _ = instance
    info = registry.get(store, "seg")
    p = Predictor(store.blobs.get(info.export("onnx", "fp32").sha256))
    image = _photo()
    ours = p.predict(image, conf=0.01)
    assert ours.masks is not None and ours.masks.shape == (len(ours.boxes), 90, 130) and ours.masks.dtype == bool
    net = load_net(store, info)
    x, matrix = p.preprocess(image)
    with torch.no_grad():
        b, s, c, pr = (t[0].numpy() for t in net.predict_raw(torch.from_numpy(x)))
    index, scores, labels = select(b, s, conf=0.01)
    boxes = unletterbox(b[index], matrix, 130, 90)
    masks = instance_masks(c[index], pr, boxes, matrix, 130, 90)
    assert len(ours.boxes) == len(boxes) > 0 and ours.labels.tolist() == labels.tolist()
    assert np.mean(ours.masks != masks) < 1e-3
    for m, bx in zip(ours.masks, ours.boxes, strict=True):  # every mask inside its box
        ys, xs = np.nonzero(m)
        if len(xs):
            assert xs.min() >= np.floor(bx[0]) and xs.max() < np.ceil(bx[2])
            assert ys.min() >= np.floor(bx[1]) and ys.max() < np.ceil(bx[3])
    d = ours.to_json()["detections"][0]
    assert d["mask"]["size"] == [90, 130] and isinstance(d["mask"]["counts"], str)


def test_semantic_loss_falls_and_reports_miou(semantic):
    _, _, r = semantic
    losses = [h["loss"] for h in r.history]
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.8
    assert 0.0 <= r.metrics["miou"] <= 1.0 and len(r.metrics["iou"]) == 4  # background + 3 classes
    info = r.model
    assert info.task == "semantic" and info.arch == "lraspp_lite0"
    assert info.export("onnx", "fp32").parity["max_abs_diff"]["segmentation"] <= 1e-3


def test_semantic_predictor_equals_torch(semantic):
    store, _, _ = semantic
    info = registry.get(store, "sem")
    p = Predictor(store.blobs.get(info.export("onnx", "fp32").sha256))
    image = _photo()
    ours = p.predict(image)
    assert ours.label_map is not None and ours.label_map.shape == (90, 130) and ours.label_map.max() <= 3
    net = load_net(store, info)
    x, matrix = p.preprocess(image)
    with torch.no_grad():
        probs = net.probabilities(torch.from_numpy(x))[0].numpy()
    assert np.mean(ours.label_map != semantic_map(probs, matrix, 130, 90)) < 1e-3
    segments = ours.to_json()["segments"]
    assert sum(s["pixels"] for s in segments) == int((ours.label_map > 0).sum())
    assert all(s["mask"]["size"] == [90, 130] for s in segments)


def test_label_map_paints_small_objects_last_and_ignores_crowds():
    big = np.zeros((3, 6, 6), np.uint8)
    big[0, :, :] = 1  # whole image, class 0
    big[1, 1:3, 1:3] = 1  # small, class 2, on top
    big[2, 4:6, 4:6] = 1  # crowd
    out = label_map(big, np.array([0, 2, 1]), np.array([0, 0, 1]))
    assert out[0, 0] == 1 and out[1, 1] == 3 and out[2, 2] == 3 and out[5, 5] == IGNORE
    assert (out == 1).sum() == 36 - 4 - 4


def test_instance_masks_map_prototypes_to_the_photo():
    """One prototype that is 1 on a block of the 4-px grid; the letterbox halves the photo."""
    protos = np.full((2, 16, 16), -20.0, np.float32)
    protos[0, 4:8, 2:6] = 20.0  # input pixels x 8..24, y 16..32 → photo x 16..48, y 32..64
    coefs = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    matrix = np.array([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1]], np.float64)  # photo 128 × 128 → input 64 × 64
    boxes = np.array([[0, 0, 128, 128], [0, 0, 32, 128]], np.float32)  # the second box cuts the mask
    masks = instance_masks(coefs, protos, boxes, matrix, 128, 128)
    ys, xs = np.nonzero(masks[0])
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (16, 48, 32, 64)
    assert masks[0][34:62, 18:46].all()  # the block; its corner pixels are rounded by the bilinear upsampling
    assert 32 * 32 - 4 * 6 <= masks[0].sum() <= 32 * 32
    assert masks[1][34:62, 18:32].all() and not masks[1][:, 32:].any()


def test_mask_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    net = FCOSMaskDetector(2, fpn_channels=32)
    x = torch.rand(2, 3, 64, 64) * 255
    masks = torch.zeros(2, 1, 64, 64, dtype=torch.uint8)
    masks[0, 0, 8:40, 10:30] = 1
    masks[1, 0, 20:60, 16:56] = 1
    targets = [{"boxes": torch.tensor([[10.0, 8, 30, 40]]), "labels": torch.tensor([0]), "masks": masks[0]},
               {"boxes": torch.tensor([[16.0, 20, 56, 60]]), "labels": torch.tensor([1]), "masks": masks[1]}]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    first = None
    for _ in range(15):
        loss = net.loss(x, targets)["mask"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(net.loss(x, targets)["mask"]) < first * 0.7


def test_segmentation_refuses_a_version_of_boxes_only(tmp_path):
    samples = [dataclasses.replace(s, annotations=tuple(a for a in s.annotations if isinstance(a.geometry, Box)))
               for s in synthetic.shapes(8, seed=1, size=(96, 96), folder=tmp_path / "render")]
    formats.write(samples, tmp_path / "coco", format="coco", classes=synthetic.classes())
    store = Store.init(tmp_path / "project")
    import_dataset(store, tmp_path / "coco")
    v = create_version(store, SPLIT, workers=0)
    with pytest.raises(VisionLoopError, match="has no polygons or masks"):
        train(store, v.name, task="semantic", epochs=1, **FAST)


def test_evaluate_instance_model_on_masks(instance):
    from visionloop.evaluate.model import boxes_as_polygons, evaluate_model

    store, version, _ = instance
    result = evaluate_model(store, "seg", save=False)
    assert result.task == "segment" and result.detection is not None
    assert result.predictions and all("segmentation" in r for r in result.predictions)
    assert result.detection.metrics.iou_type == "segm" and 0.0 <= result.detection.metrics.map <= 1.0
    gt = boxes_as_polygons({"annotations": [{"bbox": [1, 2, 3, 4]}, {"bbox": [0, 0, 1, 1], "segmentation": [[0, 0]]}]})
    assert gt["annotations"][0]["segmentation"] == [[1, 2, 4, 2, 4, 6, 1, 6]]
    assert gt["annotations"][1]["segmentation"] == [[0, 0]]


def test_evaluate_semantic_model_counts_every_pixel(semantic):
    from visionloop.evaluate.model import evaluate_model

    store, version, _ = semantic
    result = evaluate_model(store, "sem", save=False)
    m = result.semantic
    assert m is not None and m.classes == ["background", "square", "triangle", "disc"]
    assert int(m.confusion.sum()) == 4 * 96 * 96  # the 4 valid images, every pixel once (no crowds here)
    assert result.summary()["miou"] == m.miou


def test_predictions_as_coco_and_as_pre_labels(instance, semantic, tmp_path):
    from visionloop.core.geometry import Mask
    from visionloop.infer.output import to_coco, to_samples

    store, _, _ = instance
    image = _photo()
    for name in ("seg", "sem"):
        info = registry.get(store, name)
        p = Predictor(store.blobs.get(info.export("onnx", "fp32").sha256))
        pred = p.predict(image, conf=0.01)
        coco = to_coco([pred], info.classes)
        assert coco["annotations"] and all(a["segmentation"]["size"] == [90, 130] for a in coco["annotations"])
        (tmp_path / "a.png").write_bytes(b"")
        sample = next(to_samples([pred], [tmp_path / "a.png"], tmp_path))
        assert sample.annotations and all(isinstance(a.geometry, Mask) or a.geometry.__class__.__name__ == "Box"
                                          for a in sample.annotations)
        assert any(isinstance(a.geometry, Mask) for a in sample.annotations)


def test_semantic_map_equals_the_argmax_of_the_warped_probabilities():
    """One channel at a time (bounded memory) gives what warping all channels and taking argmax gives."""
    import cv2

    rng = np.random.default_rng(0)
    probs = rng.random((5, 32, 32)).astype(np.float32)
    matrix = np.array([[0.4, 0, 0], [0, 0.4, 4.0], [0, 0, 1]], np.float64)  # 80 × 60 photo, letterboxed
    m = matrix[:2].copy()
    m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    full = cv2.warpAffine(probs.transpose(1, 2, 0), m, (80, 60), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_array_equal(semantic_map(probs, matrix, 80, 60), full.argmax(-1))


def test_label_map_refuses_more_classes_than_it_holds():
    with pytest.raises(VisionLoopError, match="at most 254 classes"):
        label_map(np.ones((1, 2, 2), np.uint8), np.array([254]))
    assert label_map(np.ones((1, 2, 2), np.uint8), np.array([253])).max() == 254
