"""Training leaves polylines out of the targets (a detector learns objects, not lines) with one warning line that
counts them, instead of training on a line's bounding box or crashing."""

from __future__ import annotations

import logging

import numpy as np

from visionloop import formats
from visionloop.core import Annotation, Polyline, Sample
from visionloop.demo import synthetic
from visionloop.ingest import import_dataset
from visionloop.store import Store
from visionloop.train import train
from visionloop.versions import VersionDataset, create_version

SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.75, "valid": 0.25, "test": 0.0}}}


def test_detector_trains_without_the_polylines_and_says_how_many(tmp_path, caplog):
    samples = [Sample(s.image, (*s.annotations, Annotation("lane", Polyline((0, 90, 40 + i, 50, 95, 45)))),
                      split=s.split) for i, s in enumerate(synthetic.shapes(8, seed=0, size=(96, 96),
                                                                            folder=tmp_path / "render"))]
    classes = synthetic.classes()
    classes.add("lane")
    formats.write(samples, tmp_path / "dm", format="datumaro", classes=classes)
    store = Store.init(tmp_path / "project")
    import_dataset(store, tmp_path / "dm")
    v = create_version(store, SPLIT, workers=0)
    train_ds, valid_ds = VersionDataset(store, v.name, "train"), VersionDataset(store, v.name, "valid")
    assert (len(train_ds), len(valid_ds)) == (6, 2) and (train_ds.polylines(), valid_ds.polylines()) == (6, 2)
    sample = train_ds.sample(0)
    objects = [a for a in sample.annotations if not isinstance(a.geometry, Polyline)]
    assert len(objects) == len(sample.annotations) - 1
    image, target = train_ds[0]
    assert len(target["labels"]) == len(target["boxes"]) == len(objects)
    assert train_ds.class_names.index("lane") not in target["labels"].tolist()
    assert np.all(target["boxes"][:, 2] > target["boxes"][:, 0])
    with caplog.at_level(logging.WARNING, logger="visionloop.train.loop"):
        result = train(store, v.name, task="detect", epochs=1, max_steps=2, imgsz=64, batch=4, export=False)
    lines = [r.getMessage() for r in caplog.records if "polylines" in r.getMessage()]
    assert lines == [f"8 polylines of version {v.name} are left out (6 in train, 2 in valid): a detect model learns "
                     "objects, not lines"]
    assert result.history
