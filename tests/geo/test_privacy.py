"""Privacy blurring: the face in scikit-image's astronaut() (found by the gallery's CenterFace) and a synthetic
plate (found by a user's ONNX plate detector registered through the gallery) lose their high-frequency
energy; every pixel outside the blurred ellipses is byte-identical."""

from __future__ import annotations

import io

import cv2
import numpy as np
import torch
from skimage import data as skdata

from visionloop import gallery
from visionloop.geo.privacy import blur, find_regions
from visionloop.infer import Predictor
from visionloop.store import Store
from visionloop.store import models as registry

PLATE = (300, 400, 420, 440)  # x0, y0, x1, y1 in the 512 × 512 astronaut


class _PlateDetector(torch.nn.Module):
    """A user's 'plate detector' in visionloop's detection layout, answering the synthetic plate's box
    (at 512 px input, stretch) with a score that follows the plate's white pixels — 0 on a black image."""

    def forward(self, x):
        n = x.shape[0]
        box = torch.tensor([[float(v) for v in PLATE]]).expand(n, 1, 4)
        white = (x[:, :, PLATE[1]:PLATE[3], PLATE[0]:PLATE[2]].mean(dim=(1, 2, 3)) / 255.0).view(n, 1, 1)
        return box, white


def _hf(a: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)).mean())


def test_faces_and_plates_blurred_the_rest_byte_identical(tmp_path):
    img = skdata.astronaut().copy()
    x0, y0, x1, y1 = PLATE
    img[y0:y1, x0:x1] = 255
    cv2.putText(img, "AB 123", (x0 + 6, y1 - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 2)
    buf = io.BytesIO()
    torch.onnx.export(_PlateDetector(), (torch.zeros(1, 3, 512, 512),), buf, dynamo=False, opset_version=17,
                      input_names=["images"], output_names=["boxes", "scores"], dynamic_axes={"images": {0: "batch"}})
    (tmp_path / "plates.onnx").write_bytes(buf.getvalue())
    with Store.init(tmp_path / "p") as store:
        faces = gallery.add(store, "face-detector")
        plates = gallery.add_onnx(store, tmp_path / "plates.onnx", task="detect", classes=["plate"], input=512,
                                  preprocess="stretch")
        detectors = [(m.name, Predictor(registry.blob_file(store, m.export("onnx").sha256))) for m in (faces, plates)]
    regions = find_regions(detectors, img, conf=0.5)
    assert sorted(r.cls for r in regions) == ["face", "plate"]
    out = blur(img, regions)
    for r in regions:
        a, b, c, d = (int(v) for v in r.box)
        assert _hf(out[b:d, a:c]) < 0.25 * _hf(img[b:d, a:c]), r  # at least 75 % of the detail gone
    # outside the regions grown by 15 % per side, nothing changed
    changed = np.any(out != img, axis=2)
    allowed = np.zeros_like(changed)
    for r in regions:
        a, b, c, d = r.box
        gx, gy = (c - a) * 0.15, (d - b) * 0.15
        allowed[max(0, int(b - gy)):int(np.ceil(d + gy)), max(0, int(a - gx)):int(np.ceil(c + gx))] = True
    assert changed.any() and not (changed & ~allowed).any()
    assert np.array_equal(out[~allowed], img[~allowed])
    # no plate on a black image: the plug-in's own score decides
    assert find_regions(detectors[1:], np.zeros((512, 512, 3), np.uint8), conf=0.5) == []


class _Vehicles:
    """A vehicle detector plug-in (anything with predict(rgb, conf)): a car, a distant car and a person."""

    classes = ["person", "car"]

    def predict(self, rgb, conf=0.5):
        from types import SimpleNamespace

        boxes = np.array([[100, 200, 300, 320], [400, 100, 416, 110], [20, 20, 60, 120]], np.float32)
        return SimpleNamespace(boxes=boxes, scores=np.array([0.9, 0.8, 0.95], np.float32),
                               labels=np.array([1, 1, 0]), classes=self.classes)


def test_vehicle_plate_band_fallback_blurs_the_band_only():
    from visionloop.geo.privacy import plate_bands

    img = skdata.astronaut().copy()
    regions = plate_bands([("cars", _Vehicles())], img)
    # one band: the near car's lower 40 % without its outer 15 %; the 16 px car and the person are left alone
    assert [(r.cls, r.box, r.source) for r in regions] == [("plate", (130.0, 266.0, 270.0, 314.0),
                                                            "cars (car band)")]
    out = blur(img, regions)
    a, b, c, d = (int(v) for v in regions[0].box)
    assert _hf(out[b:d, a:c]) < 0.25 * _hf(img[b:d, a:c])
    gx, gy = (c - a) * 0.15, (d - b) * 0.15
    allowed = np.zeros(img.shape[:2], bool)
    allowed[int(b - gy):int(np.ceil(d + gy)), int(a - gx):int(np.ceil(c + gx))] = True
    assert np.array_equal(out[~allowed], img[~allowed])
