"""Street-scene segmentation (issue 16): data in the Cityscapes and Mapillary Vistas layouts imports, trains a
small semantic model for a few steps and evaluates with per-class IoU and mIoU. No street-scene model is
available offline, so the samples are synthetic shapes written by visionloop's own Cityscapes / Vistas writers
(whose layouts tests/formats checks against the tools' real files) — what is tested is the chain, not accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop import formats
from visionloop.demo import synthetic
from visionloop.evaluate.model import evaluate_model
from visionloop.ingest import import_dataset
from visionloop.store import Store
from visionloop.train import train
from visionloop.versions import create_version

SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "keep"}}


@pytest.mark.parametrize("fmt", ["cityscapes", "mapillary"])
def test_street_layouts_import_train_and_evaluate_miou(fmt, tmp_path):
    shapes = list(synthetic.shapes(12, seed=2, size=(96, 96), folder=tmp_path / "render"))
    formats.write(shapes, tmp_path / fmt, format=fmt, classes=synthetic.classes())
    with Store.init(tmp_path / "p") as store:
        report = import_dataset(store, tmp_path / fmt)
        assert report.counts["images_added"] == 12 and report.quarantined == []
        version = create_version(store, SPLIT, workers=0).name
        r = train(store, version, task="semantic", epochs=2, imgsz=64, batch=4, lr=3e-3, seed=0, name="street")
        assert r.history[-1]["loss"] < r.history[0]["loss"]
        result = evaluate_model(store, "street", save=False)
        m = result.semantic
        valid = sum(1 for s in shapes if s.split in ("valid", "val"))
        assert valid > 0 and int(m.confusion.sum()) == valid * 96 * 96  # every valid pixel counted once
        assert set(synthetic.classes().names) <= set(m.classes)
        assert len(m.iou) == len(m.classes) and 0.0 <= m.miou <= 1.0
        c = m.confusion.astype(float)  # mIoU over the classes in the truth or the prediction, from the counts
        tp, union = np.diag(c), c.sum(0) + c.sum(1) - np.diag(c)
        assert m.miou == pytest.approx(float(np.mean(tp[union > 0] / union[union > 0])), abs=1e-12)
