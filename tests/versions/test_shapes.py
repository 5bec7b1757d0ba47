"""End to end on shapes with boxes, polygons and RLE masks: flips and quarter turns move pixels and geometry
together, exactly (PNG output, so no codec noise). Also the train-time dataset's masks."""

import json

import cv2
import numpy as np
import pytest

from visionloop import formats
from visionloop.core import Box, Mask, Polygon
from visionloop.demo import synthetic
from visionloop.ingest import import_dataset
from visionloop.store import Store
from visionloop.versions import VersionDataset, create_version, version_samples

RECIPE = {
    "schema": 1,
    "split": {"mode": "keep"},
    "augment": {"multiplier": 4, "flip": {"horizontal": True, "vertical": True},
                "rot90": {"clockwise": True, "counter_clockwise": True, "upside_down": True}},
    "output": {"format": "png"},
}


@pytest.fixture(scope="module")
def shapes_version(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    formats.write(synthetic.shapes(24, seed=3, folder=root / "render"), root / "coco", format="coco",
                  classes=synthetic.classes())
    store = Store.init(root / "p")
    import_dataset(store, root / "coco")
    return store, create_version(store, RECIPE, workers=0)


def _pixels(path):
    return cv2.imread(path, cv2.IMREAD_COLOR)


def _region(geometry, h, w):
    if isinstance(geometry, Mask):
        return geometry.to_array().astype(bool)
    if isinstance(geometry, Box):
        m = np.zeros((h, w), bool)
        m[int(geometry.y0):int(geometry.y1), int(geometry.x0):int(geometry.x1)] = True
        return m
    return None


def test_masks_and_boxes_carry_the_same_pixels(shapes_version):
    store, info = shapes_version
    sources = {s.image.file_name: s for s in store.samples()}
    checked = 0
    for s in version_samples(store, info.name):
        stem = s.image.file_name.split("_aug-")[0].rsplit(".", 1)[0]
        src = next(v for k, v in sources.items() if k.rsplit(".", 1)[0] == stem)
        a, b = _pixels(src.image.path), _pixels(s.image.path)
        assert len(s.annotations) == len(src.annotations)  # lattice maps drop nothing
        for before, after in zip(src.annotations, s.annotations, strict=True):
            assert before.label == after.label
            ra = _region(before.geometry, *a.shape[:2])
            rb = _region(after.geometry, *b.shape[:2])
            if ra is None:
                assert isinstance(after.geometry, Polygon)
                assert after.geometry.area == pytest.approx(before.geometry.area)
                continue
            assert ra.sum() == rb.sum() > 0
            np.testing.assert_array_equal(np.sort(a[ra], axis=0), np.sort(b[rb], axis=0))
            checked += 1
    assert checked > 100


def test_augmented_copies_use_every_turn(shapes_version):
    store, info = shapes_version
    from sqlalchemy import select

    from visionloop.store.schema import VersionItemRow

    with store.session() as s:
        metas = [json.loads(m) for m in s.scalars(select(VersionItemRow.meta).where(
            VersionItemRow.version_id == info.id, VersionItemRow.out_index > 0))]
    seen = {op for m in metas for op in m["ops"]}
    assert {"hflip", "vflip", "rot90(1)", "rot90(2)", "rot90(3)"} <= seen
    sizes = {(x.image.width, x.image.height) for x in version_samples(store, info.name)}
    assert sizes == {(320, 240), (240, 320)}  # quarter turns swap the sides


def test_dataset_masks_follow(shapes_version):
    store, info = shapes_version
    ds = VersionDataset(store, info.name, "train", masks=True)
    image, target = ds[5]
    n = len(target["boxes"])
    assert target["masks"].shape == (n, image.shape[0], image.shape[1])
    for box, mask in zip(target["boxes"], target["masks"], strict=True):
        ys, xs = np.nonzero(mask)
        assert xs.min() >= np.floor(box[0]) - 1 and xs.max() <= np.ceil(box[2]) + 1
        assert ys.min() >= np.floor(box[1]) - 1 and ys.max() <= np.ceil(box[3]) + 1
