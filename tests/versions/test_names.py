"""Output names are unique even when sources share a stem (a.jpg + a.png) or a name in two splits."""

import json

import cv2
import numpy as np

from visionloop.versions import create_version, version_samples

from .conftest import new_project


def _split_folder(root, split, files):
    folder = root / split
    folder.mkdir(parents=True)
    images, anns = [], []
    for i, (name, img) in enumerate(files, start=1):
        ok, buf = cv2.imencode(name[name.rfind("."):], img)
        (folder / name).write_bytes(buf.tobytes())
        images.append({"id": i, "file_name": name, "width": img.shape[1], "height": img.shape[0]})
        anns.append({"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 10, 10], "area": 100, "iscrowd": 0})
    (folder / "_annotations.coco.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}))


def test_colliding_stems_and_splits_get_unique_names(tmp_path):
    a = np.full((32, 48, 3), 90, np.uint8)
    b = np.full((32, 48, 3), 160, np.uint8)
    _split_folder(tmp_path / "data", "train", [("a.jpg", a), ("a.png", b), ("c.jpg", b)])
    _split_folder(tmp_path / "data", "valid", [("c.jpg", b)])  # the same bytes and name in another split
    store = new_project(tmp_path / "p", tmp_path / "data")
    n_images = store.stats().images
    info = create_version(store, {"schema": 1, "split": {"mode": "keep"},
                                  "preprocess": {"resize": {"width": 24, "height": 16}}}, workers=0)
    samples = list(version_samples(store, info.name))
    names = [s.image.file_name for s in samples]
    assert len(names) == len(set(names)) == n_images
    assert all(n.endswith(".jpg") for n in names)  # everything was re-encoded as JPEG
    assert sum(n.startswith("a_") for n in names) == 2  # a.jpg and a.png: both disambiguated by hash
    assert sorted(s.split for s in samples if s.image.file_name.startswith("c_")) == ["train", "valid"]  # kept
